"""A job on a real Spark standalone cluster: a master and one worker on 127.0.0.1.

Started with PySpark's own `spark-class` launcher (the pip package ships no sbin/start-*.sh),
driven through `spark-submit --master spark://127.0.0.1:PORT`, exactly as an operator would,
then both daemons are stopped. Marked `cluster`; it runs in CI like every other test.
"""

from __future__ import annotations

import os
import shutil
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


def test_link_runs_through_spark_submit_on_a_standalone_cluster(standalone_cluster, pipeline_run, tmp_path, spark):
    """The link job, the one that puts Splink's similarity jar, Delta and checkpointed iterations on executors,
    submitted to the cluster on the people the session's pipeline ingested, with the model it approved: the person
    keys come out identical to the local run's. (Every job starts Spark through the same session factory; a whole
    pipeline here would repeat the session's pipeline for minutes and test nothing more of the cluster.)"""
    assert pipeline_run.exit_code == 0, pipeline_run.stderr[-2000:]
    master_url, worker_dir = standalone_cluster
    lake = tmp_path / "lake"
    shutil.copytree(pipeline_run.lake / "restricted" / "people_std", lake / "restricted" / "people_std")
    settings = dict(pipeline_run.overrides[i + 1].split("=", 1) for i in range(0, len(pipeline_run.overrides), 2))
    settings.update({"paths.lake": str(lake), "paths.raw": str(tmp_path / "raw")})
    command = [
        str(SPARK_BIN / "spark-submit"), "--master", master_url,
        "--conf", "spark.executor.memory=1g", "--conf", "spark.executor.cores=2",
        "--conf", f"spark.pyspark.python={sys.executable}",
        str(PROJECT_ROOT / "jobs" / "link.py"),
        *[part for key, value in settings.items() for part in ("--set", f"{key}={value}")],
    ]
    result = subprocess.run(command, env=cluster_env(), cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"spark-submit failed:\n{result.stderr[-3000:]}"
    assert "[link] done in" in result.stdout

    # The application really ran on the cluster: the worker launched executors for it.
    assert list(worker_dir.glob("app-*")), "the worker never ran an executor for the link job"
    columns = ["source_dataset", "source_record_id", "person_key"]
    on_cluster = spark.read.format("delta").load(str(lake / "restricted" / "person_spine"))
    local = spark.read.format("delta").load(str(pipeline_run.lake / "restricted" / "person_spine"))
    assert on_cluster.count() > 0
    assert sorted(on_cluster.select(columns).collect()) == sorted(local.select(columns).collect())
