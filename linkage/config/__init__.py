"""Typed configuration, parsed once: the models (every section and default) and the loader.

`from linkage.config import load_config, AppConfig, ...` is the public API. The sections and
their defaults live in linkage.config.models (the generator's realism data in
linkage.config.synthetic_defaults); merging base.yaml, an overlay and --set in
linkage.config.loader.
"""

from linkage.config.loader import DEFAULT_CONF_DIR, DEFAULT_OVERLAY, PROJECT_ROOT, load_config
from linkage.config.models import (
    AppConfig,
    CohortsConfig,
    ColumnMapping,
    DisclosureConfig,
    IngestConfig,
    LinkageConfig,
    PathsConfig,
    PseudonymiseConfig,
    ReleaseGatesConfig,
    ReleasesConfig,
    Source,
    SparkConfig,
    SyntheticConfig,
    ThresholdsConfig,
    TrackingConfig,
)

__all__ = [
    "DEFAULT_CONF_DIR",
    "DEFAULT_OVERLAY",
    "PROJECT_ROOT",
    "AppConfig",
    "CohortsConfig",
    "ColumnMapping",
    "DisclosureConfig",
    "IngestConfig",
    "LinkageConfig",
    "PathsConfig",
    "PseudonymiseConfig",
    "ReleaseGatesConfig",
    "ReleasesConfig",
    "Source",
    "SparkConfig",
    "SyntheticConfig",
    "ThresholdsConfig",
    "TrackingConfig",
    "load_config",
]
