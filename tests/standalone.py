"""A Spark standalone cluster (a master and one worker on 127.0.0.1) and the link job submitted to it.

Started with PySpark's own `spark-class` launcher (the pip package ships no sbin/start-*.sh) and driven
through `spark-submit --master spark://127.0.0.1:PORT`, exactly as an operator would. The submission
reads what the session's pipeline wrote, so it runs in a background thread as soon as that pipeline
ends (tests/conftest.py): its minutes overlap the in-process tests instead of adding to the run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pyspark
from conftest import SHORT_LIVED_JVM, in_background, in_background_session

from linkage.config import PROJECT_ROOT

SPARK_BIN = Path(pyspark.__file__).parent / "bin"
# A bound, not a timing: on a loaded 2-core machine a worker JVM took over 90 s to register.
STARTUP_SECONDS = 300
SUBMIT_TIMEOUT_SECONDS = 900


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
    env["SPARK_DAEMON_JAVA_OPTS"] = SHORT_LIVED_JVM  # the master and the worker
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


@contextmanager
def standalone_cluster(work: Path, daemons: list[subprocess.Popen]) -> Iterator[tuple[str, Path]]:
    """(master URL, worker folder) of a master and one 2-core worker, stopped on exit; `daemons` holds the
    running processes so whoever owns the run can kill them if it ends first."""
    env = cluster_env()
    master_port, master_ui, worker_ui = free_port(), free_port(), free_port()
    master_url = f"spark://127.0.0.1:{master_port}"
    master_log, worker_log = work / "master.log", work / "worker.log"
    master = subprocess.Popen(
        [
            str(SPARK_BIN / "spark-class"),
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(master_port),
            "--webui-port",
            str(master_ui),
        ],
        env=env,
        stdout=master_log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=in_background_session,  # noqa: PLW1509 - priority only, before exec
    )
    daemons.append(master)
    try:
        wait_for_port(master_port, master, STARTUP_SECONDS)
        worker = subprocess.Popen(
            [
                str(SPARK_BIN / "spark-class"),
                "org.apache.spark.deploy.worker.Worker",
                master_url,
                "--host",
                "127.0.0.1",
                "--cores",
                "2",
                "--memory",
                "3g",
                "--webui-port",
                str(worker_ui),
                "--work-dir",
                str(work / "worker"),
            ],
            env=env,
            stdout=worker_log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=in_background_session,  # noqa: PLW1509 - priority only, before exec
        )
        daemons.append(worker)
        wait_for_log(worker_log, "Successfully registered with master", worker, STARTUP_SECONDS)
        yield master_url, work / "worker"
    finally:
        for daemon in reversed(daemons):
            stop(daemon)


@dataclass(frozen=True)
class ClusterLink:
    """What the submission left: its exit code and output, the worker's folder and the lake it wrote."""

    returncode: int
    stdout: str
    stderr: str
    worker_dir: Path
    lake: Path
    daemons_stopped: bool


def submit_link(
    master_url: str,
    worker_dir: Path,
    pipeline_lake: Path,
    settings: dict[str, str],
    work: Path,
    processes: list[subprocess.Popen],
) -> ClusterLink:
    """The link job through spark-submit on the people the pipeline ingested, with the model it approved,
    into a lake of its own."""
    lake = work / "lake"
    shutil.copytree(pipeline_lake / "restricted" / "people_std", lake / "restricted" / "people_std")
    settings = {**settings, "paths.lake": str(lake), "paths.raw": str(work / "raw")}
    command = [
        str(SPARK_BIN / "spark-submit"),
        "--master",
        master_url,
        "--conf",
        "spark.executor.memory=1g",
        "--conf",
        "spark.executor.cores=2",
        "--conf",
        f"spark.pyspark.python={sys.executable}",
        "--driver-java-options",
        SHORT_LIVED_JVM,
        "--conf",
        f"spark.executor.extraJavaOptions={SHORT_LIVED_JVM}",
        str(PROJECT_ROOT / "jobs" / "link.py"),
        *[part for key, value in settings.items() for part in ("--set", f"{key}={value}")],
    ]
    submit = subprocess.Popen(
        command,
        env=cluster_env(),
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=in_background,  # noqa: PLW1509 - priority only, before exec
    )
    processes.append(submit)
    stdout, stderr = submit.communicate(timeout=SUBMIT_TIMEOUT_SECONDS)
    return ClusterLink(submit.returncode, stdout, stderr, worker_dir, lake, daemons_stopped=False)


class BackgroundClusterLink(threading.Thread):
    """Waits for the session pipeline, then starts the cluster, submits the link job and stops the cluster.

    `outcome()` joins it: the ClusterLink, or the reason there is none (the pipeline failed, a daemon did not start).
    """

    def __init__(self, pipeline: subprocess.Popen, pipeline_lake: Path, settings: dict[str, str], work: Path):
        super().__init__(name="cluster-link", daemon=True)
        self.pipeline, self.pipeline_lake, self.settings, self.work = pipeline, pipeline_lake, settings, work
        self.daemons: list[subprocess.Popen] = []
        self.result: ClusterLink | None = None
        self.error: str | None = None

    def run(self) -> None:
        try:
            if self.pipeline.wait() != 0:
                self.error = "the session pipeline failed, so there is nothing to link on the cluster"
                return
            with standalone_cluster(self.work, self.daemons) as (master_url, worker_dir):
                link = submit_link(
                    master_url, worker_dir, self.pipeline_lake, self.settings, self.work, self.daemons
                )
            self.result = replace(
                link, daemons_stopped=all(daemon.poll() is not None for daemon in self.daemons)
            )
        except Exception as error:  # noqa: BLE001 - reported by the test that reads it
            self.error = f"{type(error).__name__}: {error}"

    def outcome(self, timeout: float) -> ClusterLink:
        self.join(timeout)
        if self.is_alive():
            raise TimeoutError(f"the cluster link did not finish in {timeout} s")
        if self.result is None:
            raise RuntimeError(self.error or "the cluster link left no result")
        return self.result

    def kill(self) -> None:
        """Leave nothing running when the session ends first."""
        for daemon in self.daemons:
            if daemon.poll() is None:
                daemon.kill()
