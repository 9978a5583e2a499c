"""Documented commands run as a new user would: a subprocess with a bare environment, no make.

The PATH of these subprocesses starts with a folder whose `python3` is the system interpreter,
which lacks pyarrow and the project: PySpark starts its workers with `python3` from PATH unless
the session factory points them at the driver's interpreter.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import CHEAP_SPARK, SYSTEM_PYTHON, bare_env, snapshot

from linkage.config import PROJECT_ROOT, SparkConfig
from linkage.harness import redact
from linkage.session import worker_python


def system_python_lacks_pyarrow() -> bool:
    if not SYSTEM_PYTHON.exists():
        return False
    probe = subprocess.run([str(SYSTEM_PYTHON), "-c", "import pyarrow"], capture_output=True, check=False)
    return probe.returncode != 0


needs_bare_python = pytest.mark.skipif(
    not system_python_lacks_pyarrow(),
    reason="needs a system python3 without pyarrow to stand in for a bare machine",
)


def test_workers_use_the_configured_python_then_the_environment_then_the_driver():
    configured = SparkConfig(conf={"spark.pyspark.python": "/opt/cluster/python"})
    assert worker_python(configured, {"PYSPARK_PYTHON": "/env/python"}) == "/opt/cluster/python"
    assert worker_python(SparkConfig(), {"PYSPARK_PYTHON": "/env/python"}) == "/env/python"
    assert worker_python(SparkConfig(), {}) == sys.executable


def test_redact_hides_names_with_apostrophes_and_unquoted_identifiers():
    cast_error = "[CAST_INVALID_INPUT] The value 'O'Neill 9434765919' of the type \"STRING\" cannot be cast"
    assert "Neill" not in redact(cast_error) and "9434765919" not in redact(cast_error)
    unquoted = redact("bad record 943 476 5919 born 1980-01-02 postcode SW1A 1AA, nhs 9434765919")
    for value in ("943 476 5919", "1980-01-02", "SW1A 1AA", "9434765919"):
        assert value not in unquoted
    assert redact("line 12 of gp_patients.csv") == "line 12 of gp_patients.csv"


@pytest.mark.slow
@needs_bare_python
def test_task_errors_on_identifiable_values_never_reach_the_console(tmp_path):
    """Executor errors quote the value a task failed on; only the restricted log may hold it."""
    lake = tmp_path / "lake"
    args = [
        "fail",
        "--set",
        f"paths.lake={lake}",
        "--set",
        f"paths.raw={tmp_path / 'raw'}",
        "--set",
        f"pseudonymise.key_file={tmp_path / 'key'}",
    ]
    for setting in CHEAP_SPARK:
        args += ["--set", setting]
    env = {**bare_env(tmp_path), "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "tests/scripts/udf_job.py"), *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "the cast failed" in done.stdout and "PythonException" in done.stderr
    printed = done.stdout + done.stderr
    assert "Neill" not in printed and "9434765919" not in printed
    spark_logs = list((lake / "restricted" / "_logs").glob("spark-udf_job-*.log"))
    assert len(spark_logs) == 1 and "O'Neill 9434765919" in spark_logs[0].read_text(encoding="utf-8")
    assert spark_logs[0].stat().st_mode & 0o077 == 0


@pytest.mark.slow
def test_readme_own_extract_command_runs_as_written(pipeline_run):
    """The session's pipeline run is the README command itself (tests/conftest.py: bare environment, subprocess)."""
    assert pipeline_run.command[:3] == (".venv/bin/python", "-m", "jobs.pipeline")
    assert pipeline_run.exit_code == 0, pipeline_run.stderr[-3000:]
    assert "generated a synthetic" not in pipeline_run.stdout
    assert re.search(r"linkage F1 against truth: [01]\.\d{4}", pipeline_run.stdout)
    assert re.search(r"^\[pipeline\] pseudonymise\s+\d+\.\d s$", pipeline_run.stdout, re.M)
    assert snapshot(pipeline_run.raw) == pipeline_run.raw_before  # the site's folder is read, never written
