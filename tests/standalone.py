"""A Spark standalone cluster (a master and one worker on 127.0.0.1, linkage.standalone) and the link job
submitted to it, driven through `spark-submit --master spark://127.0.0.1:PORT`, exactly as an operator would. The submission
reads what the session's pipeline wrote, so it runs in a background thread as soon as that pipeline
ends (tests/conftest.py): its minutes overlap the in-process tests instead of adding to the run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from conftest import BACKGROUND_NICENESS, SHORT_LIVED_JVM

from linkage import standalone as cluster
from linkage.config import PROJECT_ROOT
from linkage.standalone import SPARK_BIN, at_lower_priority, cluster_env

SUBMIT_TIMEOUT_SECONDS = 900


@contextmanager
def standalone_cluster(work: Path, daemons: list[subprocess.Popen]) -> Iterator[tuple[str, Path]]:
    """(master URL, worker folder) of a master and one 2-core worker, at a lower priority than the tests."""
    with cluster.standalone_cluster(
        work, daemons, daemon_java_options=SHORT_LIVED_JVM, niceness=BACKGROUND_NICENESS
    ) as started:
        yield started.master_url, started.worker_dirs[0]


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
        at_lower_priority(command, BACKGROUND_NICENESS),
        env=cluster_env(SHORT_LIVED_JVM),
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
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
