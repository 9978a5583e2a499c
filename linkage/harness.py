"""The job harness every entry point goes through: `main(argv, environ) -> exit code`, `--config` and
repeated `--set`. `run_command` for commands without Spark (generate, approve, the review server),
`run_job` for Spark jobs (adds the session and one MLflow run).

Every stage has one shape: `<package>/stage.py:run(ctx: JobContext) -> StageResult`. It reads its
inputs through the table contracts, calls pure functions, writes, and returns what it wrote (each
table's version and rows, from the commit) with its headline figures. The harness logs the writes
to the run the same way for every stage and turns reported failures into `StageFailed` (exit 1).

Exit codes: 0 ok, 2 bad configuration or input, 1 any other failure. Each stage prints one
line with its wall time. Errors are printed as one line with quoted literals redacted (a
Spark error can quote a field's value, and values here are identifiable); the full traceback
goes to a log file inside the restricted zone.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from pyspark.sql import SparkSession

from linkage.config import AppConfig, load_config
from linkage.errors import LinkageError, StageFailed
from linkage.session import spark_session
from linkage.tracking import RunContext, tracking_run

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


@dataclass
class StageClock:
    """Prints `[job] stage ... N.N s` as each stage ends and remembers the times."""

    job: str
    out: TextIO | None = None  # None: whatever sys.stdout is when printing (tests redirect it)
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.seconds[name] = elapsed
            print(f"[{self.job}] {name:<28} {elapsed:8.1f} s", file=self.out or sys.stdout, flush=True)

    def say(self, message: str) -> None:
        print(f"[{self.job}] {message}", file=self.out or sys.stdout, flush=True)


@dataclass
class CommandContext:
    """What a command that needs no Spark receives (generate, approve): everything it needs, passed explicitly."""

    job: str
    args: argparse.Namespace
    config: AppConfig
    environ: Mapping[str, str]
    clock: StageClock

    def stage(self, name: str):
        return self.clock.stage(name)

    def say(self, message: str) -> None:
        self.clock.say(message)


@dataclass
class JobContext(CommandContext):
    """What a Spark job's body receives: the command's context plus its Spark session and MLflow run."""

    spark: SparkSession
    run: RunContext


@dataclass(frozen=True)
class StageResult:
    """What a stage returns: the tables it wrote ("zone/name" -> version and rows, from each commit), its
    headline figures (the pipeline's summary and the benches read these), and what failed while the
    rest finished (a cohort): a stage with failures is not released and its job exits 1."""

    tables: Mapping[str, Any] = field(default_factory=dict)  # "zone/name" -> linkage.lake.TableWrite
    summary: Mapping[str, Any] = field(default_factory=dict)
    failures: tuple[str, ...] = ()

    def raise_failures(self) -> None:
        if self.failures:
            raise StageFailed("; ".join(self.failures))

    def run_metrics(self, clock: StageClock) -> dict[str, float]:
        """What the stage's MLflow run records: each step's wall seconds and each table written."""
        return {
            **{f"stage_seconds.{name}": sec for name, sec in clock.seconds.items()},
            **self.written_metrics(),
        }

    def written_metrics(self) -> dict[str, float]:
        """`written.<zone>.<table>.rows` and `.version` for the run: the same record for every stage."""
        metrics: dict[str, float] = {}
        for table, write in self.tables.items():
            name = table.replace("/", ".")
            metrics[f"written.{name}.rows"] = write.rows
            metrics[f"written.{name}.version"] = write.version
        return metrics


Stage = Callable[[JobContext], StageResult]
CommandBody = Callable[[CommandContext], None]


def build_parser(
    job: str, description: str, add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"jobs.{job}", description=description)
    parser.add_argument(
        "--config",
        default=None,
        help="Environment overlay YAML (default conf/local.yaml); conf/base.yaml beside it is read first.",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Override one setting, e.g. --set spark.shuffle_partitions=8 (repeatable).",
    )
    if add_arguments:
        add_arguments(parser)
    return parser


def run_job(
    job: str,
    description: str,
    body: Stage,
    argv: Sequence[str],
    environ: Mapping[str, str],
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """Parse, load config (before Spark), open Spark and the MLflow run, call the body, map errors."""

    def with_spark_and_run(command: CommandContext) -> None:
        config, clock = command.config, command.clock
        with ExitStack() as stack:
            with clock.stage("start spark"):
                spark = stack.enter_context(spark_session(config.spark, spark_log_file(config, job)))
            run = stack.enter_context(tracking_run(config, job=job))
            started = time.perf_counter()
            result = body(
                JobContext(
                    job=job,
                    args=command.args,
                    config=config,
                    environ=command.environ,
                    clock=clock,
                    spark=spark,
                    run=run,
                )
            )
            run.log_metrics(result.run_metrics(clock))
            result.raise_failures()
            clock.say(f"done in {time.perf_counter() - started:.1f} s (MLflow run {run.run_id})")

    return run_command(job, description, with_spark_and_run, argv, environ, add_arguments)


def run_command(
    job: str,
    description: str,
    body: CommandBody,
    argv: Sequence[str],
    environ: Mapping[str, str],
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """The job boundary every entry point goes through: parse, load config, call the body, map errors to exit codes
    (0 ok, 2 bad configuration or input, 1 anything else) with one redacted line on stderr."""
    parser = build_parser(job, description, add_arguments)
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exit_:  # argparse already printed the usage error
        return EXIT_OK if exit_.code == 0 else EXIT_BAD_INPUT
    clock = StageClock(job)
    config: AppConfig | None = None
    try:
        with clock.stage("load config"):
            config = load_config(args.config, overrides=args.set)
        clock.say(f"environment: {config.environment} (from {config.environment_origin})")
        body(CommandContext(job, args, config, environ, clock))
        return EXIT_OK
    except LinkageError as error:
        print(f"[{job}] error: {error}", file=sys.stderr, flush=True)
        return error.exit_code
    except Exception as error:  # noqa: BLE001 - the job boundary: report and map to exit 1
        log_path = write_traceback(config, job)
        where = f"; full traceback in {log_path}" if log_path else ""
        print(
            f"[{job}] failed: {type(error).__name__}: {redact(first_line(error))}{where}",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_FAILURE


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:400] if text else ""


# A quoted literal may hold apostrophes (O'Neill): a quote only closes where no letter or digit follows it.
_QUOTED = re.compile(r"'(?:[^'\n]|'(?=\w))*'(?!\w)|\"(?:[^\"\n]|\"(?=\w))*\"(?!\w)")
# Unquoted values: digit runs of 6+ (NHS numbers, also spaced 3-3-4), dates, UK postcodes.
_UNQUOTED = re.compile(
    r"\b\d{3}[ -]?\d{3}[ -]?\d{4}\b|\b\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}\b|\d{6,}"
    r"|\b[A-Za-z]{1,2}\d[A-Za-z\d]? ?\d[A-Za-z]{2}\b"
)


def redact(message: str) -> str:
    """Replace quoted literals (Spark quotes offending values, e.g. a cast that failed) and unquoted
    NHS numbers, dates, long digit runs and postcodes."""
    return _UNQUOTED.sub("<redacted>", _QUOTED.sub("'<redacted>'", message))


def restricted_log_folder(config: AppConfig) -> Path | None:
    """<lake>/restricted/_logs, created owner-only; None when the lake is not a local folder."""
    if "://" in config.paths.lake:
        return None
    folder = Path(config.paths.lake) / "restricted" / "_logs"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
    except OSError:
        return None
    return folder


def spark_log_file(config: AppConfig, name: str) -> str | None:
    """Where Spark's full log goes (task errors quote data values): the restricted zone, never the console."""
    folder = restricted_log_folder(config)
    if folder is None:
        return None
    path = folder / f"spark-{name}-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"
    try:
        # Created owner-only here; log4j then appends to it.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600))
    except OSError:
        return None
    return str(path)


def write_traceback(config: AppConfig | None, name: str) -> Path | None:
    """The current exception's full traceback, which may quote values, into the restricted zone
    (owner-only); None when the lake is not a local folder or cannot be written."""
    if config is None or "://" in config.paths.lake:
        return None
    folder = Path(config.paths.lake) / "restricted" / "_logs"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"
        path.write_text(traceback.format_exc(), encoding="utf-8")
        path.chmod(0o600)
        return path
    except OSError:
        return None
