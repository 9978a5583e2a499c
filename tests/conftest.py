"""Shared fixtures: one Spark session per test run, tuned for tiny data, and one MLflow store."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from session_jvm import SessionJvm, gateway_exit_status

from linkage.config import PROJECT_ROOT, AppConfig, SparkConfig, load_config
from linkage.session import build_spark
from linkage.standalone import at_lower_priority

# Spark sizes the on-heap pages of its sorts, aggregations and hash joins from the heap (64 MB at 4 GB on two
# cores), and each operator of each running task takes at least one: on a few rows that is pure heap. Measured on
# tests/test_incremental.py: the heap after a GC pause peaked at 3,826 MB of 4,096 with the default (1.6 GB of it
# page arrays at the peak) and at 1,182 MB with 2 MB pages. A heap that full can throw OutOfMemoryError in a
# task, and in local mode a task's fatal error ends the whole JVM.
TINY_DATA_PAGE = "2m"

# Tiny data: one shuffle partition and no UI. On a few rows a task's cost is deserialising its plan, not
# its rows, so a second partition doubles the work and splits nothing. Jobs run inside tests reuse this
# session (build_spark -> getOrCreate) and leave it running because the test run owns it.
TEST_SPARK = SparkConfig(
    master="local[2]",
    shuffle_partitions=1,
    driver_memory="4g",
    log_level="ERROR",
    conf={
        "spark.ui.enabled": "false",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        # The suite runs the same jobs over and over (ingest alone a dozen times): a code cache larger
        # than Spark's 100 entries compiles each generated class once instead of once per job.
        "spark.sql.codegen.cache.maxEntries": "2000",
        "spark.buffer.pageSize": TINY_DATA_PAGE,
    },
)


SESSION_JVM = pytest.StashKey[SessionJvm]()
JVM_DEATH = pytest.StashKey[str]()  # the report, once the session JVM was found dead


@pytest.fixture(scope="session")
def spark(request, tmp_path_factory):
    os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)
    jvm = SessionJvm(tmp_path_factory.mktemp("spark-jvm"))
    request.config.stash[SESSION_JVM] = jvm
    with jvm.stderr_captured():
        config = TEST_SPARK.model_copy(update={"java_options": jvm.java_options()})
        session = build_spark(config, spark_log_file=str(jvm.spark_log))
    yield session
    if gateway_exit_status() is None:  # a dead JVM is reported by pytest_runtest_protocol, not here
        session.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Stop the run at the first test after the session's JVM died, saying how it ended (tests/session_jvm.py)."""
    yield
    jvm = item.config.stash.get(SESSION_JVM, None)
    if jvm is None or item.session.shouldstop:
        return
    status = gateway_exit_status()
    if status is not None:
        report = jvm.death_report(status, after=item.nodeid)
        item.config.stash[JVM_DEATH] = report
        item.session.shouldstop = report.splitlines()[0]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The session JVM's GC figures on every run, and the whole report when it died."""
    jvm = config.stash.get(SESSION_JVM, None)
    if jvm is None:
        return
    terminalreporter.section("the tests' Spark JVM")
    for line in config.stash.get(JVM_DEATH, jvm.gc_summary()).splitlines():
        terminalreporter.write_line(line)


@pytest.fixture(scope="module", autouse=True)
def release_cached_frames():
    """Drop every cached DataFrame after each test module, so one module's leftovers never squeeze the next."""
    yield
    from pyspark.sql import SparkSession

    if gateway_exit_status() is not None:  # the JVM died: nothing is cached any more
        return
    session = SparkSession.getActiveSession()
    if session is not None:
        session.catalog.clearCache()


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


SYSTEM_PYTHON = Path("/usr/bin/python3")
# A JVM that lives a minute or two on tiny data spends more CPU compiling hot code with the optimising
# JIT than it gets back, and it shares two cores with the test session: quick JIT and one GC thread.
SHORT_LIVED_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
# Keep a subprocess's Spark as small as the test session's.
CHEAP_SPARK = [
    "spark.master=local[2]",
    f"spark.shuffle_partitions={TEST_SPARK.shuffle_partitions}",
    "spark.driver_memory=2g",
    "spark.conf.spark.ui.enabled=false",
    f"spark.conf.spark.buffer.pageSize={TINY_DATA_PAGE}",
    f"spark.java_options={SHORT_LIVED_JVM}",
]


# The session pipeline and the cluster link run in the background while the in-process tests run, and
# nothing waits for them until the last tests (see pytest_collection_modifyitems): at a lower priority they
# take the core the in-process tests leave idle instead of slowing the tests the run is waiting on.
BACKGROUND_NICENESS = 10


def bare_env(home: Path) -> dict[str, str]:
    """A new user's shell: no PYSPARK_PYTHON, no venv on PATH, and the system `python3` (which lacks pyarrow
    and the project on a bare machine) first on PATH, where PySpark looks for a worker interpreter."""
    fake_bin = home / "fake-bin"
    fake_bin.mkdir(parents=True, exist_ok=True)
    if SYSTEM_PYTHON.exists() and not (fake_bin / "python3").exists():
        (fake_bin / "python3").symlink_to(SYSTEM_PYTHON)
    env = {"HOME": str(home), "PATH": f"{fake_bin}:/usr/bin:/bin", "LANG": "C.UTF-8"}
    if os.environ.get("JAVA_HOME"):
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    return env


def readme_own_extract_command() -> list[str]:
    """The README's command for a site's own extract, word by word (optional parts unbracketed)."""
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    line = re.search(r"^\.venv/bin/python -m jobs\.pipeline --set paths\.raw=DIR .*$", readme, re.M).group(0)
    return line.replace("[", "").replace("]", "").split()


def snapshot(folder: Path) -> dict[str, int]:
    """File name -> modification time (ns) of everything in a folder."""
    return {path.name: path.stat().st_mtime_ns for path in sorted(folder.iterdir())}


@dataclass(frozen=True)
class PipelineRun:
    exit_code: int
    stdout: str
    stderr: str
    lake: Path
    raw: Path
    tracking_uri: str
    overrides: tuple[str, ...]
    command: tuple[str, ...]
    raw_before: dict[str, int]

    def settings(self, lake: Path | None = None) -> list[str]:
        """The pipeline's `--set key=value` values; with `lake`, pointing at that lake (a copy) instead."""
        values = [
            v for flag, v in zip(self.overrides[::2], self.overrides[1::2], strict=True) if flag == "--set"
        ]
        if lake is None:
            return values
        return [v for v in values if not v.startswith("paths.lake=")] + [f"paths.lake={lake}"]

    def config(self, lake: Path | None = None) -> AppConfig:
        """The configuration the pipeline ran with (or the same on another lake)."""
        return load_config(None, overrides=self.settings(lake))


@dataclass
class StartedPipeline:
    process: subprocess.Popen
    work: Path
    lake: Path
    raw: Path
    tracking_uri: str
    overrides: list[str]
    command: list[str]
    raw_before: dict[str, int]
    cluster_link: Any = None  # standalone.BackgroundClusterLink when a selected test reads cluster_link


def start_pipeline(work: Path) -> StartedPipeline:
    """Generate a 300-person extract and start the README's own-extract command on it, as written, in a
    subprocess with a bare environment. Its own MLflow store: two processes writing one SQLite file can lock."""
    from linkage.synthetic import generate_extract

    lake, raw, tracking_uri = work / "lake", work / "raw", f"sqlite:///{work / 'mlflow.db'}"
    overrides: list[str] = []
    for setting in (
        f"tracking.uri={tracking_uri}",
        "tracking.registered_model=linkage-splink-pipeline-test",
        f"pseudonymise.key_file={work / 'secrets' / 'pseudo_key'}",
        *CHEAP_SPARK,
        "synthetic.people=300",
        "linkage.u_max_pairs=20000",
        # A review queue long enough for the browser test (tests/test_review_browser.py). On 300 people the model
        # is sure of almost every pair once u is freed of the sample's matches: 2 of 858 scored pairs lie between
        # 0.0001 and the default upper 0.995, 9 between 0.5 and 0.9999.
        "linkage.thresholds.upper=0.9999",
    ):
        overrides += ["--set", setting]
    config = load_config(None, overrides=[*overrides[1::2], f"paths.lake={lake}", f"paths.raw={raw}"])
    generate_extract(config.synthetic, raw, Path(config.cohorts.codelists))
    raw_before = snapshot(raw)
    command = [
        part.replace("paths.raw=DIR", f"paths.raw={raw}")
        .replace("paths.lake=DIR", f"paths.lake={lake}")
        .replace("paths.truth=FILE", f"paths.truth={raw / 'truth.csv'}")
        for part in readme_own_extract_command()
    ]
    with (work / "stdout.txt").open("w") as stdout, (work / "stderr.txt").open("w") as stderr:
        process = subprocess.Popen(
            at_lower_priority([*command, *overrides], BACKGROUND_NICENESS),
            cwd=PROJECT_ROOT,
            env=bare_env(work / "home"),
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    return StartedPipeline(process, work, lake, raw, tracking_uri, overrides, command, raw_before)


PIPELINE_WANTED = pytest.StashKey[bool]()
CLUSTER_WANTED = pytest.StashKey[bool]()


def pytest_collection_modifyitems(config, items):
    """Tests that read the session pipeline's output run last, and the pipeline starts before the first test:
    its subprocess works (minutes, mostly one core) while the in-process tests run on the other."""
    reading = [item for item in items if "pipeline_run" in getattr(item, "fixturenames", ())]
    if reading:
        others = [item for item in items if "pipeline_run" not in getattr(item, "fixturenames", ())]
        items[:] = [*others, *reading]
    config.stash[PIPELINE_WANTED] = bool(reading)
    config.stash[CLUSTER_WANTED] = any("cluster_link" in getattr(item, "fixturenames", ()) for item in items)


@pytest.fixture(scope="session", autouse=True)
def started_pipeline(request, tmp_path_factory) -> Iterator[StartedPipeline | None]:
    """The session pipeline, started at once when any selected test reads it (see pipeline_run)."""
    if not request.config.stash.get(PIPELINE_WANTED, False):
        yield None
        return
    started = start_pipeline(tmp_path_factory.mktemp("pipeline"))
    if request.config.stash.get(CLUSTER_WANTED, False):
        from standalone import BackgroundClusterLink

        started.cluster_link = BackgroundClusterLink(
            started.process, started.lake, pipeline_settings(started), tmp_path_factory.mktemp("standalone")
        )
        started.cluster_link.start()
    yield started
    if started.cluster_link is not None:
        started.cluster_link.kill()
    if started.process.poll() is None:  # the session ended first (interrupted): leave nothing running
        started.process.kill()
        started.process.wait(timeout=30)


def pipeline_settings(started: StartedPipeline) -> dict[str, str]:
    """The session pipeline's settings as key -> value (its --set pairs, lake and raw folder)."""
    settings = dict(started.overrides[i + 1].split("=", 1) for i in range(0, len(started.overrides), 2))
    return {**settings, "paths.lake": str(started.lake), "paths.raw": str(started.raw)}


@pytest.fixture(scope="session")
def cluster_link(started_pipeline):
    """The link job submitted to a standalone cluster on the session pipeline's output (tests/standalone.py),
    started in the background when the pipeline ended; waits for it."""
    if started_pipeline is None or started_pipeline.cluster_link is None:
        pytest.fail(
            "the cluster link starts with the session pipeline: select a test that reads pipeline_run"
        )
    return started_pipeline.cluster_link.outcome(timeout=3600)


@pytest.fixture(scope="session")
def pipeline_run(started_pipeline, tmp_path_factory) -> PipelineRun:
    """The README's own-extract command, as written, run once in a subprocess with a bare environment on a
    generated 300-person extract; every end-to-end test reads what it wrote (one whole pipeline per test run)."""
    started = started_pipeline or start_pipeline(tmp_path_factory.mktemp("pipeline"))
    exit_code = started.process.wait(timeout=3600)
    # Tests rebuild the run's configuration from these (pairs of "--set", "key=value").
    settings = (
        "--set",
        f"paths.lake={started.lake}",
        "--set",
        f"paths.raw={started.raw}",
        *started.overrides,
    )
    return PipelineRun(
        exit_code,
        (started.work / "stdout.txt").read_text(encoding="utf-8"),
        (started.work / "stderr.txt").read_text(encoding="utf-8"),
        started.lake,
        started.raw,
        started.tracking_uri,
        settings,
        tuple(started.command),
        started.raw_before,
    )


@pytest.fixture(scope="session")
def released(spark, tmp_path_factory, tracking_uri):
    """One pseudonymise run on builders' tiny restricted zone, shared by the tests that read a release."""
    from builders import make_release  # imported here: it loads the jobs, which most tests never need

    return make_release(spark, tmp_path_factory.mktemp("pseudonymise"), tracking_uri)
