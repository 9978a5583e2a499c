"""Configuration models: one frozen, typed section per concern, and the home of every default.

conf/base.yaml holds only what has no default here; overlays hold what differs. The README's
configuration reference is generated from these fields (`python -m linkage.docs --write README.md`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from linkage import sources
from linkage.config.synthetic_defaults import (
    SYNTHETIC_CONDITION_RATES,
    SYNTHETIC_COVERAGE,
    SYNTHETIC_DMY_DOB_SHARE,
    SYNTHETIC_DUPLICATE_RATE,
    SYNTHETIC_ERROR_RATES,
    SYNTHETIC_GROUP_ERROR_FACTOR,
    SYNTHETIC_NHS_PRESENT,
    SYNTHETIC_RATE_DEFAULTS,
    SYNTHETIC_REFERENCE_DATE,
)

# A source's name: one of linkage.sources' registered sources (checked when the configuration is read).
Source = Annotated[str, BeforeValidator(sources.registered_name)]


class Frozen(BaseModel):
    """Base for every config section: immutable, and unknown keys are errors, not ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class PathsConfig(Frozen):
    raw: str = Field(description="Folder holding the raw extract files (CSV or Parquet) of the four sources.")
    lake: str = Field(
        description="Root of all Delta tables (<lake>/<zone>/<table>) and, by default, the MLflow store."
    )
    truth: str | None = Field(
        None, description="Optional truth.csv for synthetic or labelled data (QA only)."
    )
    truth_conditions: str | None = Field(None, description="Optional truth_conditions.csv for cohort QA.")
    scratch: str | None = Field(
        None,
        description="Scratch space for Spark checkpoints; default <lake>/restricted/_scratch (holds identifiable values).",
    )
    exports: str | None = Field(None, description="Folder for shareable CSV exports; default <lake>/exports.")

    @property
    def scratch_dir(self) -> str:
        return self.scratch or f"{self.lake.rstrip('/')}/restricted/_scratch"

    @property
    def exports_dir(self) -> str:
        return self.exports or f"{self.lake.rstrip('/')}/exports"


class SparkConfig(Frozen):
    master: str = Field(
        "local[*]", description="Spark master URL: local[N], spark://host:port, yarn, k8s://..."
    )
    app_name: str = Field("linkage", description="Spark application name.")
    driver_memory: str = Field(
        "6g", description="Driver heap; only applies when the job starts the JVM itself."
    )
    shuffle_partitions: int = Field(
        4, ge=1, description="spark.sql.shuffle.partitions: size it from the data."
    )
    local_dir: str | None = Field(
        None, description="spark.local.dir for shuffle spill; default Spark's /tmp."
    )
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"] = Field(
        "ERROR", description="Spark log level (driver)."
    )
    java_options: str = Field(
        "",
        description="Extra driver JVM options, after the factory's own; only applies when the job starts "
        "the JVM itself. E.g. -XX:TieredStopAtLevel=1 for short runs on tiny data. A collector named here "
        "(-XX:+UseG1GC, -XX:+UseSerialGC) replaces the factory's -XX:+UseParallelGC.",
    )
    conf: dict[str, str] = Field(
        default_factory=dict, description="Any other spark.* settings, passed as they are."
    )

    @field_validator("conf", mode="before")
    @classmethod
    def _values_as_text(cls, value: Any) -> Any:
        # YAML turns `true` and `8` into bool/int; Spark settings are strings.
        if not isinstance(value, Mapping):
            return value
        return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}

    @field_validator("conf")
    @classmethod
    def _spark_keys_only(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not (key.startswith("spark.") or key.startswith("delta.")):
                raise ValueError(f"'{key}' is not a Spark setting (keys must start with 'spark.')")
        return {k: str(v) for k, v in value.items()}


class TrackingConfig(Frozen):
    uri: str | None = Field(None, description="MLflow tracking URI; default sqlite:///<lake>/mlflow.db.")
    experiment: str = Field("linkage", description="MLflow experiment every job logs to.")
    registered_model: str = Field("linkage-splink", description="Model registry name of the Splink model.")
    approved_alias: str = Field(
        "approved", description="Registry alias QA sets on the version link runs use."
    )


class SyntheticConfig(Frozen):
    people: int = Field(20_000, ge=10, description="Size of the synthetic resident population.")
    profile: Literal["default", "families", "messy"] = Field(
        "default",
        description="Generator world: default (the project's), families (rare names, relatives sharing "
        "forenames, twins, valid wrong NHS numbers) or messy (2.5x errors, more missing identifiers).",
    )
    seed: int = Field(42, description="Random seed: the same seed and size give byte-identical files.")
    error_rate_scale: float = Field(
        1.0, ge=0.0, le=5.0, description="Multiplies every identifier error rate."
    )
    malformed_rows: int = Field(
        0, ge=0, description="Malformed rows injected per file (to exercise quarantine)."
    )
    reference_date: date = Field(
        SYNTHETIC_REFERENCE_DATE, description="Extract date: 'today' for the synthetic world."
    )
    coverage: dict[Source, float] = Field(
        default_factory=lambda: dict(SYNTHETIC_COVERAGE),
        description="Share of residents with a record in each source (age-weighted inside the source).",
    )
    nhs_number_present: dict[Source, float] = Field(
        default_factory=lambda: dict(SYNTHETIC_NHS_PRESENT),
        description="Share of people records with an NHS number.",
    )
    duplicate_rate: dict[Source, float] = Field(
        default_factory=lambda: dict(SYNTHETIC_DUPLICATE_RATE),
        description="Share of a source's people held twice under two local ids.",
    )
    dmy_dob_share: dict[Source, float] = Field(
        default_factory=lambda: dict(SYNTHETIC_DMY_DOB_SHARE),
        description="Share of a source's dates of birth written DD/MM/YYYY instead of YYYY-MM-DD.",
    )
    error_rates: dict[str, float] = Field(
        default_factory=lambda: dict(SYNTHETIC_ERROR_RATES),
        description="Base rate of each identifier error kind, per record (scaled by error_rate_scale).",
    )
    group_error_factor: dict[str, float] = Field(
        default_factory=lambda: dict(SYNTHETIC_GROUP_ERROR_FACTOR),
        description="Multiplier of name-error and NHS-number-missing rates by ethnic group (modest, as published).",
    )
    condition_rates: dict[str, float] = Field(
        default_factory=lambda: dict(SYNTHETIC_CONDITION_RATES),
        description="Share of eligible residents given each condition's evidence (or a near-miss negative).",
    )
    third_sector_dob_present: float = Field(
        0.7, ge=0.0, le=1.0, description="Third-sector records with a full DOB."
    )
    third_sector_year_only: float = Field(
        0.5, ge=0.0, le=1.0, description="Of third-sector records without a DOB, share with a year of birth."
    )
    bom_files: list[str] = Field(
        default_factory=lambda: ["social_care_clients"],
        description="Files written with a UTF-8 byte order mark.",
    )

    @field_validator(
        "coverage",
        "nhs_number_present",
        "duplicate_rate",
        "dmy_dob_share",
        "error_rates",
        "group_error_factor",
        "condition_rates",
        mode="before",
    )
    @classmethod
    def _merge_rate_defaults(cls, value: Any, info: Any) -> Any:
        """A partial mapping (e.g. one --set key) overrides only those keys; unknown keys are errors."""
        defaults = SYNTHETIC_RATE_DEFAULTS[info.field_name]
        if not isinstance(value, Mapping):
            return value
        unknown = sorted(set(value) - set(defaults))
        if unknown:
            raise ValueError(f"unknown key(s) {unknown}; allowed: {sorted(defaults)}")
        return {**defaults, **value}

    @field_validator(
        "coverage", "nhs_number_present", "duplicate_rate", "dmy_dob_share", "error_rates", "condition_rates"
    )
    @classmethod
    def _shares(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {key: rate for key, rate in value.items() if not 0.0 <= rate <= 1.0}
        if bad:
            raise ValueError(f"rates must be between 0 and 1, got {bad}")
        return value


class ColumnMapping(Frozen):
    """Canonical field -> the column name this site uses (matched case-insensitively)."""

    people_file: str
    activity_file: str
    people_columns: dict[str, str] = Field(
        default_factory=dict, description="Canonical field -> site column; '' = not supplied (reads as null)."
    )
    activity_columns: dict[str, str] = Field(
        default_factory=dict, description="As people_columns, for the activity file."
    )


def _declared_files(given: Mapping[str, Any]) -> dict[str, Any]:
    """ingest.sources: each registered source's declared file names, under what the files give.

    An unknown source is left in, for the key check to name it."""
    merged: dict[str, Any] = {}
    for declaration in sources.declarations():
        mapping = given.get(declaration.name, {})
        defaults = {"people_file": declaration.people_file, "activity_file": declaration.activity_file}
        merged[declaration.name] = {**defaults, **mapping} if isinstance(mapping, Mapping) else mapping
    return merged | {name: mapping for name, mapping in given.items() if name not in merged}


class IngestConfig(Frozen):
    sources: dict[Source, ColumnMapping] = Field(
        default_factory=lambda: _declared_files({}),
        validate_default=True,
        description="Per source: people_file, activity_file (names without extension, .csv or .parquet; default "
        "the names linkage.sources declares) and people_columns / activity_columns mapping canonical "
        "field -> this site's column name.",
    )
    max_future_days: int = Field(
        0, ge=0, description="Dates more than this many days after the run date are impossible."
    )
    earliest_birth_year: int = Field(
        1900, ge=1800, description="Dates of birth before this year are impossible."
    )
    nicknames_file: str = Field(
        "conf/names/nicknames.csv", description="Name variant -> canonical name list."
    )
    run_date: date | None = Field(
        None, description="Date treated as 'today' for future-date checks; default the system date."
    )
    allow_empty_sources: list[Source] = Field(
        default_factory=list,
        description="Sources whose people file may give no rows although the previous run had some (else exit 2).",
    )

    @field_validator("sources", mode="before")
    @classmethod
    def _every_registered_source(cls, value: Any) -> Any:
        """Every registered source, its file names defaulting to the declared ones; a source given here
        overrides only the keys it gives."""
        if not isinstance(value, Mapping):
            return value
        return _declared_files(value)


class ThresholdsConfig(Frozen):
    lower: float = Field(
        0.5, gt=0.0, lt=1.0, description="Pairs at or above this probability go to review when below upper."
    )
    upper: float = Field(
        0.995, gt=0.0, lt=1.0, description="Clustering threshold: pairs at or above it link."
    )
    best_link: float = Field(
        0.85,
        gt=0.0,
        lt=1.0,
        description="A pair at or above this (below upper) links when each record is the other's single best "
        "candidate in its source.",
    )
    best_link_scope: Literal["unlinked_records_to_persons", "unlinked_records", "any"] = Field(
        "unlinked_records_to_persons",
        description="What a best_link link (below upper) may join. unlinked_records_to_persons: a record with no link "
        "at or above upper, by NHS number or by clerical match, by its single best such link, where each record is "
        "the other's best among the records not yet linked to it (a person's own records do not outrank its next "
        "duplicate) and the lone record fits, at best_link or above, each record of its own source that the other "
        "is linked to; unlinked_records: the same with the best among all candidates; so two persons of several records "
        "are never merged on one borderline pair; any: every mutual best pair (the first release).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdsConfig:
        if self.upper <= self.lower:
            raise ValueError(f"upper must be > lower, got {self.upper} <= {self.lower}")
        if not self.lower <= self.best_link <= self.upper:
            raise ValueError(f"best_link must lie between lower and upper, got {self.best_link}")
        return self


class LinkageConfig(Frozen):
    thresholds: ThresholdsConfig = ThresholdsConfig()
    probability_two_random_records_match: float | None = Field(
        None, gt=0, lt=1, description="Prior; default estimated from deterministic rules."
    )
    u_max_pairs: float = Field(5e6, gt=0, description="Pairs sampled to estimate u probabilities.")
    u_num_chunks: int = Field(
        1, ge=1, description="Chunks the u sampling is split into (memory against time)."
    )
    break_lineage_method: Literal["parquet", "checkpoint", "persist", "delta_lake_table"] = Field(
        "parquet",
        description="How Splink materialises intermediate tables (parquet: in paths.scratch, removed after).",
    )
    model_version: str | None = Field(
        None, description="Registry version to link with; default the approved alias."
    )
    seed: int = 42
    prior_recall: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Recall of the deterministic rules the prior is estimated from. Unset: estimated from the "
        "trained model (how often a match agrees on each rule's columns, from the m probabilities and the share of "
        "records holding each column), falling back to 0.8 when the model cannot tell.",
    )
    em_max_iterations: int = Field(25, ge=1, description="EM iterations per training session.")
    # At 1M people the name block alone is ~355M pairs: without a cap EM would score them all.
    em_max_pairs: float | None = Field(
        5e6,
        gt=0,
        description="Cap on pairs per EM session, reached by sampling records (None: every blocked pair).",
    )
    max_cluster_size: int = Field(
        20, ge=2, description="Clusters larger than this are re-clustered with stricter model links."
    )
    oversized_cluster_probability: float = Field(
        0.9999, gt=0, lt=1, description="Model links kept inside oversized clusters."
    )
    qa_reference_date: date = Field(
        SYNTHETIC_REFERENCE_DATE,
        description="Link QA bands ages in this date's year (truth metrics and review sample groups by age band); "
        "set it to the extract's date. Default: the synthetic extract's date.",
    )
    conflict_split_rounds: int = Field(
        3,
        ge=0,
        le=10,
        description="Rounds of removing the weakest model link in clusters holding two valid NHS "
        "numbers with dates of birth years apart, or more than two digits apart with forenames not equal "
        "(0: off).",
    )
    components_in_driver_max_edges: int = Field(
        5_000_000,
        ge=0,
        description="Link graphs of up to this many links are split into clusters in the driver (about 400 "
        "bytes of the driver's Python memory per link); larger ones in logarithmic Spark rounds (0: always in Spark).",
    )


class PseudonymiseConfig(Frozen):
    release_id: str = Field(
        "local-dev", min_length=1, description="Names the data release; logged with each run."
    )
    key_env: str = Field("LINKAGE_PSEUDO_KEY", description="Environment variable holding the release key.")
    key_file: str | None = Field(
        None, description="File holding the release key (used when the env var is unset)."
    )
    vocabularies: str = Field(
        "conf/vocabularies",
        description="Folder of controlled vocabularies (<field>.csv) of the free-text activity "
        "fields published; other values become Other.",
    )
    reference_date: date | None = Field(None, description="Date ages are computed at; default the run date.")
    source_priority: tuple[Source, ...] = Field(
        default_factory=sources.names,
        description="When a person's records disagree equally often, the value from the first source here wins.",
    )

    @field_validator("source_priority")
    @classmethod
    def _every_source_once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if sorted(value) != sorted(sources.names()):
            raise ValueError(
                f"must list each of {', '.join(sources.names())} exactly once, "
                f"got {', '.join(value) or 'none'}"
            )
        return value


class DisclosureConfig(Frozen):
    suppress_min: int = Field(1, ge=1, description="Smallest count suppressed.")
    suppress_max: int = Field(7, ge=0, description="Largest count suppressed (0 turns suppression off).")
    rounding_base: int = Field(5, ge=1, description="Unsuppressed counts are rounded to this base.")

    @model_validator(mode="after")
    def _range(self) -> DisclosureConfig:
        if self.suppress_max and self.suppress_max < self.suppress_min:
            raise ValueError(
                f"suppress_max must be >= suppress_min, got {self.suppress_max} < {self.suppress_min}"
            )
        return self


class CohortsConfig(Frozen):
    declarations: str = Field("conf/cohorts", description="Folder of cohort declaration YAML files.")
    codelists: str = Field("conf/codelists", description="Folder of codelist CSV files.")
    only: list[str] = Field(default_factory=list, description="Build only these cohorts (default all).")
    index_date: date = Field(
        SYNTHETIC_REFERENCE_DATE,
        description="Default index date of person-level cohorts (default: the synthetic extract's date).",
    )
    parallelism: int = Field(4, ge=1, description="Cohorts built at once, each in a FAIR pool.")
    age_band_starts: list[int] | None = Field(
        None,
        min_length=1,
        description="Lower bounds of the summary age bands; default pseudonymised/person's age bands.",
    )
    disclosure: DisclosureConfig = DisclosureConfig()


class ReleaseGatesConfig(Frozen):
    """Linkage QA gates a release must pass before analysts see it (null switches a gate off)."""

    max_keys_merged_share: float | None = Field(
        0.05,
        ge=0,
        le=1,
        description="Most person keys of the previous spine that may merge in one run (share).",
    )
    max_keys_split_share: float | None = Field(
        0.05,
        ge=0,
        le=1,
        description="Most person keys of the previous spine that may split in one run (share).",
    )
    max_conflict_cluster_share: float | None = Field(
        0.05,
        ge=0,
        le=1,
        description="Most persons whose records hold two NHS numbers or birth years apart (share).",
    )
    max_expected_false_match_rate: float | None = Field(
        0.02,
        ge=0,
        le=1,
        description="Most model-estimated false matches per linked pair (Splink's own estimate).",
    )
    min_precision: float | None = Field(
        0.95,
        ge=0,
        le=1,
        description="Least pairwise precision against truth, checked only when paths.truth is set.",
    )


class ReleasesConfig(Frozen):
    catalog: Literal["embedded", "external"] = Field(
        "embedded",
        description="embedded: views made from the lake's release manifest in each session; external: "
        "also written to the Hive metastore named in spark.conf at publish.",
    )
    keep: int = Field(
        5, ge=1, description="Published releases kept readable; older table versions are vacuumed."
    )
    vacuum: bool = Field(
        True, description="Vacuum versions older than the oldest kept release after each publish."
    )
    lock_hours: float = Field(
        12, gt=0, description="A run's lake lock expires after this; then it may be taken over."
    )
    take_over_stale_lock: bool = Field(
        False, description="Take over an EXPIRED lock (a crashed run's); never a live one."
    )
    gates: ReleaseGatesConfig = ReleaseGatesConfig()


class AppConfig(Frozen):
    environment: Literal["local", "docker", "cluster"] = Field(
        description="Stated by the overlay, or its file name (local.yaml, docker.yaml, cluster.yaml). Outside "
        "`local` the release key is mandatory, models are never auto-approved, disclosure control "
        "cannot be changed by --set and no synthetic extract is generated."
    )
    paths: PathsConfig
    spark: SparkConfig = SparkConfig()
    tracking: TrackingConfig = TrackingConfig()
    synthetic: SyntheticConfig = SyntheticConfig()
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    linkage: LinkageConfig = LinkageConfig()
    pseudonymise: PseudonymiseConfig = PseudonymiseConfig()
    cohorts: CohortsConfig = CohortsConfig()
    releases: ReleasesConfig = ReleasesConfig()
    # Which file (or --set) chose the environment: printed by every job, not a setting.
    _environment_origin: str = PrivateAttr("")

    @property
    def environment_origin(self) -> str:
        return self._environment_origin

    @property
    def tracking_uri_shown(self) -> str:
        """tracking_uri with any user:password masked: the form messages may print."""
        return _mask_secrets(self.tracking_uri)

    @property
    def tracking_uri(self) -> str:
        if self.tracking.uri:
            return self.tracking.uri
        return f"sqlite:///{Path(self.paths.lake).resolve() / 'mlflow.db'}"

    def config_hash(self) -> str:
        """Short, stable hash of the effective configuration (stamped on every table write)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def public_dump(self) -> dict[str, Any]:
        """The configuration as JSON data with secrets masked: what MLflow may record (config.json, params).

        Masked: values of spark.conf keys whose name says secret, password, token, key or credential
        (e.g. spark.hadoop.fs.s3a.secret.key) and the user:password part of any URI (tracking.uri).
        """
        return _mask_secrets(self.model_dump(mode="json"))

    def flat_params(self) -> dict[str, str]:
        """Dotted key -> value, for MLflow parameters, secrets masked (see public_dump)."""
        return {key: str(value) for key, value in flatten_keys(self.public_dump()).items()}


MASKED = "<masked>"
SECRET_SETTING = re.compile(r"secret|passw|token|key|credential", re.IGNORECASE)
_URI_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def _mask_secrets(data: Any, in_spark_conf: bool = False) -> Any:
    if isinstance(data, dict):
        return {
            key: (
                MASKED
                if in_spark_conf and SECRET_SETTING.search(str(key)) and value is not None
                else _mask_secrets(value, in_spark_conf=key == "conf" and not in_spark_conf)
            )
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [_mask_secrets(value) for value in data]
    if isinstance(data, str):
        return _URI_CREDENTIALS.sub(rf"\g<scheme>{MASKED}@", data)
    return data


def flatten_keys(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value of nested mappings (an empty mapping is a value)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_keys(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat
