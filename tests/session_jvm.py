"""The test session's Spark JVM: where its output goes, and a clear stop when it dies.

A JVM that exits in the middle of the run leaves every later test failing with "Connection refused", which says
nothing about why it went. So the JVM writes its GC log, its stderr and Spark's full log into the run's temporary
folder, and the run stops after the first test that finds it gone, naming its exit status and the last errors it
logged. The report keeps exception classes, thread names and stack frames only: messages can quote data values.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# What the status of a dead PySpark gateway JVM means (SparkExitCode and PySpark's gateway).
EXIT_MEANINGS = {
    0: "exit 0: its stdin reached end of file (the gateway exits when Python's end of that pipe closes) "
    "or code called System.exit(0)",
    50: "exit 50: Spark's handler for an uncaught fatal error (in local mode a task's fatal error, such as "
    "StackOverflowError, ends the whole driver)",
    52: "exit 52: OutOfMemoryError in a task or a Spark thread",
}
EXCEPTION_CLASS = re.compile(
    r"(?:^|Caused by: |Exception in thread \"[^\"]*\" )([\w$.]+(?:Error|Exception))\b"
)
STACK_FRAME = re.compile(r"^\s+at ([\w$.<>/-]+\([\w$.-]*(?::\d+)?\))")
UNCAUGHT_IN_THREAD = re.compile(r"Uncaught exception in thread ([\w .()\-]+)")
GC_PAUSE = re.compile(r"GC\(\d+\) (Pause [\w ]+?)(?: \([^)]*\))* (\d+)M->(\d+)M\((\d+)M\) ([\d.]+)ms")
TAIL_BYTES = 2_000_000


@dataclass(frozen=True)
class SessionJvm:
    """Where the session JVM's diagnostics go."""

    folder: Path

    @property
    def stderr(self) -> Path:
        return self.folder / "stderr.txt"

    @property
    def spark_log(self) -> Path:
        return self.folder / "spark.log"

    @property
    def gc_log(self) -> Path:
        return self.folder / "gc.log"

    def java_options(self) -> str:
        """A GC log (one line per pause) and any crash report in the folder; none for a folder whose path would
        split the options (Spark splits them at spaces, -Xlog at colons), e.g. a --basetemp with a space."""
        if re.search(r"[\s:\"']", str(self.folder)):
            return ""
        return f"-Xlog:gc:file={self.gc_log}:uptime:filecount=0 -XX:ErrorFile={self.folder}/hs_err_pid%p.log"

    @contextmanager
    def stderr_captured(self) -> Iterator[None]:
        """Children started inside (the gateway JVM) write their stderr to the folder, not to pytest's capture,
        where a passing test's output is dropped with the JVM's last words in it."""
        saved = os.dup(2)
        try:
            with self.stderr.open("ab") as target:
                os.dup2(target.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)

    def death_report(self, status: int, after: str) -> str:
        meaning = (
            f"killed by {signal.Signals(-status).name}"
            if status < 0
            else EXIT_MEANINGS.get(status, f"exit {status}")
        )
        lines = [
            f"The tests' Spark JVM is gone ({meaning}); found after {after}.",
            f"Its logs: {self.folder} (stderr.txt, spark.log, gc.log, any hs_err_pid*.log).",
            self.gc_summary(),
        ]
        errors = last_error_lines([self.stderr, self.spark_log, *sorted(self.folder.glob("hs_err_pid*.log"))])
        if errors:
            lines += ["Its last errors (classes, threads and frames only):", *errors]
        return "\n".join(lines)

    def gc_summary(self) -> str:
        pauses = [match.groups() for match in GC_PAUSE.finditer(tail(self.gc_log))]
        if not pauses:
            return "GC: no pauses logged."
        full = sum(1 for kind, *_ in pauses if "Full" in kind)
        seconds = sum(float(ms) for *_, ms in pauses) / 1000
        peak_after = max(int(after) for _, _, after, _, _ in pauses)
        heap = max(int(size) for _, _, _, size, _ in pauses)
        return (
            f"GC: {len(pauses)} pauses ({full} full) in the last {TAIL_BYTES // 1_000_000} MB of the log, "
            f"{seconds:.1f} s paused; heap after a pause peaked at {peak_after} MB (heap {heap} MB)."
        )


def tail(path: Path) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(max(path.stat().st_size - TAIL_BYTES, 0))
        return handle.read().decode("utf-8", errors="replace")


def last_error_lines(paths: list[Path], keep: int = 30) -> list[str]:
    """Exception classes, 'uncaught exception in thread' names and stack frames, in order, last `keep`."""
    found: list[str] = []
    for path in paths:
        for line in tail(path).splitlines():
            if frame := STACK_FRAME.match(line):
                found.append(f"    at {frame.group(1)}")
            elif thread := UNCAUGHT_IN_THREAD.search(line):
                found.append(f"  [{path.name}] uncaught exception in thread {thread.group(1).strip()}")
            elif exception := EXCEPTION_CLASS.search(line):
                found.append(f"  [{path.name}] {exception.group(1)}")
    return found[-keep:]


def gateway_exit_status() -> int | None:
    """The exit status of this process's PySpark gateway JVM while a SparkContext is active, else None."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway  # noqa: SLF001 - the only handle on the JVM's process
    process = getattr(gateway, "proc", None)
    if process is None or SparkContext._active_spark_context is None:  # noqa: SLF001
        return None
    return process.poll()
