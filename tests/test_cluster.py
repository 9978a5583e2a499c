"""The pipeline on a real Spark standalone cluster: a master and one worker on 127.0.0.1.

Started with PySpark's own `spark-class` launcher (the pip package ships no sbin/start-*.sh),
driven through `spark-submit --master spark://127.0.0.1:PORT`, exactly as an operator would,
then both daemons are stopped. Marked `cluster`; it runs in CI like every other test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyspark
import pytest

from linkage.config import PROJECT_ROOT

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SPARK_BIN = Path(pyspark.__file__).parent / "bin"
STARTUP_SECONDS = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Spark daemon exited early with code {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {seconds} s")


def wait_for_log(path: Path, needle: str, process: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Spark daemon exited early with code {process.returncode}")
        if path.exists() and needle in path.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise TimeoutError(f"'{needle}' not seen in {path.name} after {seconds} s")


def cluster_env() -> dict[str, str]:
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    # spark-class locates SPARK_HOME with the python3 on PATH: it must be the venv's.
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    env["PYSPARK_PYTHON"] = sys.executable
    env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    env["SPARK_HOME"] = str(SPARK_BIN.parent)
    env.pop("PYSPARK_GATEWAY_PORT", None)
    return env


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    work = tmp_path_factory.mktemp("standalone")
    env = cluster_env()
    master_port, master_ui, worker_ui = free_port(), free_port(), free_port()
    master_url = f"spark://127.0.0.1:{master_port}"
    master_log, worker_log = work / "master.log", work / "worker.log"
    master = subprocess.Popen(
        [str(SPARK_BIN / "spark-class"), "org.apache.spark.deploy.master.Master",
         "--host", "127.0.0.1", "--port", str(master_port), "--webui-port", str(master_ui)],
        env=env, stdout=master_log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    worker = None
    try:
        wait_for_port(master_port, master, STARTUP_SECONDS)
        worker = subprocess.Popen(
            [str(SPARK_BIN / "spark-class"), "org.apache.spark.deploy.worker.Worker", master_url,
             "--host", "127.0.0.1", "--cores", "2", "--memory", "3g", "--webui-port", str(worker_ui),
             "--work-dir", str(work / "worker")],
            env=env, stdout=worker_log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for_log(worker_log, "Successfully registered with master", worker, STARTUP_SECONDS)
        yield master_url, work / "worker"
    finally:
        if worker is not None:
            stop(worker)
        stop(master)
    assert master.poll() is not None and (worker is None or worker.poll() is not None)


def test_pipeline_runs_through_spark_submit_on_a_standalone_cluster(standalone_cluster, pipeline_run, tmp_path,
                                                                      spark):
    """Same extract, same store as the in-process pipeline run: the approved model is reused (no training)
    and the person keys come out identical, whatever the master."""
    assert pipeline_run.exit_code == 0
    master_url, worker_dir = standalone_cluster
    lake, raw = tmp_path / "lake", tmp_path / "raw"
    settings = dict(pipeline_run.overrides[i + 1].split("=", 1) for i in range(0, len(pipeline_run.overrides), 2))
    settings.update({"paths.raw": str(raw), "paths.lake": str(lake)})
    command = [
        str(SPARK_BIN / "spark-submit"), "--master", master_url,
        "--conf", "spark.executor.memory=1g", "--conf", "spark.executor.cores=2",
        "--conf", f"spark.pyspark.python={sys.executable}",
        str(PROJECT_ROOT / "jobs" / "pipeline.py"),
        *[part for key, value in settings.items() for part in ("--set", f"{key}={value}")],
    ]
    result = subprocess.run(command, env=cluster_env(), cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"spark-submit failed:\n{result.stderr[-3000:]}"
    assert "[pipeline] done in" in result.stdout
    assert "using approved model version" in result.stdout

    # The application really ran on the cluster: the worker launched executors for it.
    assert list(worker_dir.glob("app-*")), "the worker never ran an executor for the pipeline"
    spine = spark.read.format("delta").load(str(lake / "restricted" / "person_spine"))
    people = spark.read.format("delta").load(str(lake / "restricted" / "people_std"))
    assert spine.count() == people.count() > 0
    persons = spark.read.format("delta").load(str(lake / "pseudonymised" / "person"))
    assert 0 < persons.count() <= spine.select("person_key").distinct().count()
    assert (lake / "cohorts" / "cohort_asthma_summary").is_dir()

    columns = ["source_dataset", "source_record_id", "person_key"]
    in_process = spark.read.format("delta").load(str(pipeline_run.lake / "restricted" / "person_spine"))
    assert sorted(spine.select(columns).collect()) == sorted(in_process.select(columns).collect())
