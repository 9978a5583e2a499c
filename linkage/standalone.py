"""A Spark standalone cluster on 127.0.0.1: a master and N workers, started with PySpark's own `spark-class`.

The pip package ships no sbin/start-*.sh, so the daemons are started as an operator would start them by hand.
The bench runs its link job on one (`python -m linkage.bench --standalone-workers 2`), and the cluster test
submits the link job to one through spark-submit (tests/standalone.py).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyspark

SPARK_BIN = Path(pyspark.__file__).parent / "bin"
# A bound, not a timing: on a loaded 2-core machine a worker JVM took over 90 s to register.
STARTUP_SECONDS = 300


@dataclass(frozen=True)
class StandaloneCluster:
    """Where a started cluster is: its master URL and each worker's folder."""

    master_url: str
    worker_dirs: tuple[Path, ...]


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


def cluster_env(daemon_java_options: str = "") -> dict[str, str]:
    """The environment of the daemons and of spark-submit: this interpreter's venv first on PATH."""
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    # spark-class locates SPARK_HOME with the python3 on PATH: it must be the venv's.
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    env["PYSPARK_PYTHON"] = sys.executable
    env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    env["SPARK_HOME"] = str(SPARK_BIN.parent)
    if daemon_java_options:
        env["SPARK_DAEMON_JAVA_OPTS"] = daemon_java_options  # the master and the workers
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


def at_lower_priority(command: list[str], niceness: int | None, own_session: bool = False) -> list[str]:
    """`command` run at `niceness` (its own children inherit it); unchanged for None.

    For a command started in a session of its own (`start_new_session=True`), the session's CPU group is
    lowered too: Linux shares CPU between sessions first (autogroups) and by niceness only inside one. Without
    autogroups (a kernel setting) there is no /proc/self/autogroup, and niceness alone applies machine-wide.

    The priority is set by `nice` and a shell in the child, never by a preexec_fn: a preexec_fn makes Python
    reinitialise itself in the forked child, which drops the other threads' state. When the fork comes from a
    thread beside a live Spark session (a cluster started in the background), that ran PySpark's per-thread
    Py4J finalizers in the child, which shut down the parent's sockets to the JVM: the parent's next call
    reconnected, and a call in flight could fail with "Connection reset by peer" (inferred, not reproduced).
    """
    if niceness is None:
        return command
    if not own_session:
        return ["nice", "-n", str(niceness), *command]
    lower_group_then_run = 'echo "$0" > /proc/self/autogroup 2>/dev/null; exec nice -n "$0" "$@"'
    return ["sh", "-c", lower_group_then_run, str(niceness), *command]


def _daemon(arguments: list[str], log: Path, env: dict[str, str], niceness: int | None) -> subprocess.Popen:
    return subprocess.Popen(
        at_lower_priority([str(SPARK_BIN / "spark-class"), *arguments], niceness, own_session=True),
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@contextmanager
def standalone_cluster(
    work: Path,
    daemons: list[subprocess.Popen],
    workers: int = 1,
    cores_per_worker: int = 2,
    memory_per_worker: str = "3g",
    daemon_java_options: str = "",
    niceness: int | None = None,
) -> Iterator[StandaloneCluster]:
    """A master and `workers` workers on 127.0.0.1, logs and work folders under `work`, stopped on exit; the
    daemons at `niceness` when given.

    `daemons` holds the running processes, so whoever owns the run can kill them if it ends first.
    """
    env = cluster_env(daemon_java_options)
    master_port = free_port()
    master_url = f"spark://127.0.0.1:{master_port}"
    work.mkdir(parents=True, exist_ok=True)
    master_arguments = ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"]
    master_arguments += ["--port", str(master_port), "--webui-port", str(free_port())]
    master = _daemon(master_arguments, work / "master.log", env, niceness)
    daemons.append(master)
    try:
        wait_for_port(master_port, master, STARTUP_SECONDS)
        started: list[tuple[subprocess.Popen, Path]] = []
        worker_dirs = []
        for index in range(workers):
            name = "worker" if workers == 1 else f"worker-{index + 1}"
            worker_dir, log = work / name, work / f"{name}.log"
            arguments = ["org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1"]
            arguments += ["--cores", str(cores_per_worker), "--memory", memory_per_worker]
            arguments += ["--webui-port", str(free_port()), "--work-dir", str(worker_dir)]
            worker = _daemon(arguments, log, env, niceness)
            daemons.append(worker)
            started.append((worker, log))
            worker_dirs.append(worker_dir)
        for worker, log in started:
            wait_for_log(log, "Successfully registered with master", worker, STARTUP_SECONDS)
        yield StandaloneCluster(master_url, tuple(worker_dirs))
    finally:
        for daemon in reversed(daemons):
            stop(daemon)
