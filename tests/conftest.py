"""Shared fixtures: one Spark session per test run, tuned for tiny data, and one MLflow store."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from linkage.config import AppConfig, SparkConfig, load_config
from linkage.session import build_spark

# Tiny data: a couple of partitions and no UI. Jobs run inside tests reuse this session
# (build_spark -> getOrCreate) and leave it running because the test run owns it.
TEST_SPARK = SparkConfig(master="local[2]", shuffle_partitions=2, driver_memory="4g", log_level="ERROR",
                         conf={"spark.ui.enabled": "false", "spark.sql.adaptive.coalescePartitions.enabled": "true"})


@pytest.fixture(scope="session")
def spark():
    os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)
    session = build_spark(TEST_SPARK)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory) -> str:
    """One SQLite MLflow store for the whole run: creating a store costs seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def lake(tmp_path) -> Path:
    path = tmp_path / "lake"
    path.mkdir()
    return path


@pytest.fixture
def test_overrides(tmp_path, lake, tracking_uri) -> list[str]:
    """--set overrides that point a job at a temporary lake, the shared store and the test session settings."""
    return [
        f"paths.lake={lake}",
        f"paths.raw={tmp_path / 'raw'}",
        "paths.truth=",
        "paths.truth_conditions=",
        f"tracking.uri={tracking_uri}",
        f"spark.master={TEST_SPARK.master}",
        f"spark.shuffle_partitions={TEST_SPARK.shuffle_partitions}",
        f"pseudonymise.key_file={tmp_path / 'secrets' / 'pseudo_key'}",
    ]


@pytest.fixture
def make_config(test_overrides) -> Callable[..., AppConfig]:
    """Build an AppConfig for a test: the test overrides plus any of its own `key=value`."""

    def _make(*extra: str) -> AppConfig:
        return load_config(None, overrides=[*test_overrides, *extra])

    return _make


@dataclass(frozen=True)
class PipelineRun:
    exit_code: int
    stdout: str
    stderr: str
    lake: Path
    raw: Path
    tracking_uri: str
    overrides: tuple[str, ...]


@pytest.fixture(scope="session")
def pipeline_run(spark, tmp_path_factory, tracking_uri) -> PipelineRun:
    """The whole pipeline once, in-process, on a 300-person generated extract; shared by e2e tests."""
    from jobs import pipeline as pipeline_job

    work = tmp_path_factory.mktemp("pipeline")
    lake, raw = work / "lake", work / "raw"
    overrides = []
    for setting in (f"paths.lake={lake}", f"paths.raw={raw}", f"tracking.uri={tracking_uri}",
                    "tracking.registered_model=linkage-splink-pipeline-test",
                    f"pseudonymise.key_file={work / 'secrets' / 'pseudo_key'}",
                    f"spark.master={TEST_SPARK.master}", f"spark.shuffle_partitions={TEST_SPARK.shuffle_partitions}",
                    "synthetic.people=300", "linkage.u_max_pairs=20000"):
        overrides += ["--set", setting]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = pipeline_job.main(overrides, {})
    return PipelineRun(code, out.getvalue(), err.getvalue(), lake, raw, tracking_uri, tuple(overrides))


@pytest.fixture(scope="session")
def released(spark, tmp_path_factory, tracking_uri):
    """One pseudonymise run on builders' tiny restricted zone, shared by the tests that read a release."""
    from builders import make_release  # imported here: it loads the jobs, which most tests never need

    return make_release(spark, tmp_path_factory.mktemp("pseudonymise"), tracking_uri)
