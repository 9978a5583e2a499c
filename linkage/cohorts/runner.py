"""Build every declared cohort at once: one thread per cohort on the shared session, each in its own FAIR pool.

A failing cohort is reported (error redacted: Spark messages can quote values) and the others
finish. Only disclosure-controlled counts, wall times and QA ratios reach MLflow and the result.
"""

from __future__ import annotations

import csv
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from linkage.cohorts import qa
from linkage.cohorts.builder import (
    build_cohort,
    build_summary,
    cohort_contracts,
    compile_criteria,
    input_tables,
    read_inputs,
)
from linkage.cohorts.declaration import Declaration, declaration_files, load_declaration
from linkage.cohorts.disclosure import TOTAL_CATEGORY
from linkage.config import AppConfig
from linkage.errors import ConfigError, LinkageError
from linkage.harness import JobContext, first_line, redact, write_traceback
from linkage.lake import read_table, write_table
from linkage.releases.cycle import log_pinned, pinned_versions
from linkage.tracking import RunContext


class CohortsFailed(LinkageError):
    """One or more cohorts failed; the others were written. Exit code 1."""

    def __init__(self, message: str, results: dict[str, Any]):
        super().__init__(message)
        self.results = results


@dataclass
class CohortOutcome:
    name: str
    status: str = "failed"
    seconds: float = 0.0
    rows: int | None = None  # disclosure-controlled cohort size (None when suppressed)
    quality: dict[str, float | None] = field(default_factory=dict)
    error: str | None = None
    provenance: dict[str, list[str]] = field(default_factory=dict)

    def as_result(self) -> dict[str, Any]:
        result: dict[str, Any] = {"status": self.status, "seconds": round(self.seconds, 2)}
        if self.rows is not None:
            result["rows"] = self.rows
        result.update({k: v for k, v in self.quality.items() if v is not None})
        if self.error:
            result["error"] = self.error
        return result


@dataclass(frozen=True)
class QaInputs:
    truth_map_df: DataFrame
    conditions_df: DataFrame


def selected_cohorts(config: AppConfig) -> dict[str, Path]:
    files = declaration_files(config.cohorts.declarations)
    unknown = sorted(set(config.cohorts.only) - set(files))
    if unknown:
        raise ConfigError(f"cohorts.only names cohorts with no declaration: {unknown} (have {sorted(files)})")
    return {
        name: path for name, path in files.items() if not config.cohorts.only or name in config.cohorts.only
    }


def export_summary(summary_df: DataFrame, exports_dir: str, table_name: str) -> list[dict[str, Any]]:
    """Write the (already disclosure-controlled) summary as one CSV for sharing; returns its rows."""
    ordered_df = summary_df.drop("run_id").orderBy(
        "breakdown", F.col("category") == TOTAL_CATEGORY, "category"
    )
    rows = [
        row.asDict() for row in ordered_df.collect()
    ]  # bounded: breakdowns x categories, never person level
    if "://" in exports_dir:
        ordered_df.coalesce(1).write.mode("overwrite").csv(
            f"{exports_dir.rstrip('/')}/{table_name}", header=True
        )
        return rows
    folder = Path(exports_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{table_name}.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=ordered_df.columns)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def build_one(
    spark: SparkSession,
    config: AppConfig,
    run: RunContext,
    name: str,
    path: Path,
    qa_inputs: QaInputs | None,
    versions: dict[str, int] | None = None,
) -> CohortOutcome:
    """Build, write, summarise, export and check one cohort in this thread's FAIR pool; never raises."""
    outcome = CohortOutcome(name)
    started = time.perf_counter()
    spark.sparkContext.setLocalProperty("spark.scheduler.pool", name)
    try:
        declaration: Declaration = load_declaration(path)
        outcome.provenance = {
            item.name: [
                *(item.codelist.provenance if item.codelist else ()),
                *(item.ending.provenance if item.ending else ()),
            ]
            for item in compile_criteria(declaration, config.cohorts.codelists)
        }
        person_table, summary_table = cohort_contracts(declaration)
        lake = config.paths.lake
        cohort_df = build_cohort(read_inputs(spark, lake, versions), declaration, config.cohorts).withColumn(
            "run_id", F.lit(run.run_id)
        )
        write_table(cohort_df, lake, person_table, run)
        written_df = read_table(spark, lake, person_table)  # summarise what was written, not a recomputation
        summary_df = build_summary(written_df, declaration, config.cohorts).withColumn(
            "run_id", F.lit(run.run_id)
        )
        write_table(summary_df, lake, summary_table, run)
        rows = export_summary(
            read_table(spark, lake, summary_table), config.paths.exports_dir, summary_table.name
        )
        total = next(
            (
                row["count"]
                for row in rows
                if row["breakdown"] == "source" and row["category"] == TOTAL_CATEGORY
            ),
            None,
        )
        outcome.rows = None if total is None else int(total)
        if qa_inputs is not None:
            index_date = declaration.index_date or config.cohorts.index_date
            for check in declaration.truth_checks:
                scores = qa.check_cohort(
                    written_df, qa_inputs.truth_map_df, qa_inputs.conditions_df, check, index_date
                )
                outcome.quality.update(
                    {f"{check.condition}.{metric}": value for metric, value in scores.items()}
                )
        outcome.status = "ok"
    except Exception as error:  # noqa: BLE001 - one cohort's failure must not stop the others
        outcome.error = f"{type(error).__name__}: {redact(first_line(_cause(error)))}"
        log_path = write_traceback(config, f"cohort-{name}")
        if log_path:
            outcome.error += f" (traceback in {log_path})"
    finally:
        outcome.seconds = time.perf_counter() - started
        spark.sparkContext.setLocalProperty("spark.scheduler.pool", None)
    return outcome


def _cause(error: Exception) -> BaseException | str:
    """A JVM error's own message: py4j's first line only names the Java method that failed."""
    java_exception = getattr(error, "java_exception", None)
    if java_exception is not None:
        try:
            return str(java_exception.getMessage())
        except Exception:  # noqa: BLE001 - the gateway may be gone; fall back to py4j's text
            return error
    return error


def build_all(
    spark: SparkSession,
    config: AppConfig,
    run: RunContext,
    cohorts: dict[str, Path],
    qa_inputs: QaInputs | None,
    parallelism: int,
    versions: dict[str, int] | None = None,
) -> list[CohortOutcome]:
    """All cohorts, `parallelism` at a time (1 = one after another), in declaration-name order."""
    if parallelism <= 1:
        return [
            build_one(spark, config, run, name, path, qa_inputs, versions) for name, path in cohorts.items()
        ]
    with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="cohort") as pool:
        futures = [
            pool.submit(build_one, spark, config, run, name, path, qa_inputs, versions)
            for name, path in cohorts.items()
        ]
        return [future.result() for future in futures]


def prepare_qa(ctx: JobContext) -> QaInputs | None:
    if not qa.truth_configured(ctx.spark, ctx.config):
        return None
    mapper = qa.release_key_mapper(ctx.config, ctx.environ)
    truth_map_df = qa.truth_person_map(ctx.spark, ctx.config, mapper).cache()
    conditions_df = qa.truth_conditions(ctx.spark, ctx.config).cache()
    # Materialised here, once: cohort threads reaching an unfilled cache at once would each compute it.
    truth_map_df.count()
    conditions_df.count()
    return QaInputs(truth_map_df, conditions_df)


def run_cohorts(ctx: JobContext) -> dict[str, Any]:
    """Build every selected cohort; returns {cohorts: {name: status/rows/seconds/...}, failed: [...], wall_seconds}.

    `rows` is the disclosure-controlled cohort size. Failures are returned, not raised: the job
    entry point (`cohorts_job`) turns them into exit code 1, the pipeline reports them its own way.
    """
    config = ctx.config
    cohorts = selected_cohorts(config)
    sequential = bool(getattr(ctx.args, "sequential", False))
    compare = bool(getattr(ctx.args, "compare", False))
    # Every cohort reads the same pinned versions: a run committing meanwhile cannot mix two releases.
    versions = pinned_versions(ctx.spark, config.paths.lake, list(input_tables()))
    log_pinned(ctx.run, versions)
    with ctx.stage("prepare truth"):
        qa_inputs = prepare_qa(ctx)
    if qa_inputs is None:
        ctx.say(
            "no truth configured (paths.truth, paths.truth_conditions, restricted/person_spine): QA skipped"
        )
    modes = ["sequential", "parallel"] if compare else ["sequential" if sequential else "parallel"]
    wall_seconds: dict[str, float] = {}
    outcomes: list[CohortOutcome] = []
    for mode in modes:
        parallelism = 1 if mode == "sequential" else config.cohorts.parallelism
        with ctx.stage(f"build {len(cohorts)} cohorts ({mode})"):
            started = time.perf_counter()
            outcomes = build_all(ctx.spark, config, ctx.run, cohorts, qa_inputs, parallelism, versions)
            wall_seconds[mode] = round(time.perf_counter() - started, 2)
    if qa_inputs is not None:
        qa_inputs.truth_map_df.unpersist()
        qa_inputs.conditions_df.unpersist()
    for outcome in outcomes:
        detail = f"{outcome.rows} persons (rounded)" if outcome.rows is not None else "count suppressed"
        ctx.say(
            f"{outcome.name:<24} {outcome.status:<6} {outcome.seconds:6.1f} s  "
            + (detail if outcome.status == "ok" else outcome.error or "")
        )
    results = {
        "cohorts": {o.name: o.as_result() for o in outcomes},
        "failed": [o.name for o in outcomes if o.status != "ok"],
        "wall_seconds": wall_seconds,
    }
    log_results(ctx.run, results, outcomes, config)
    return results


def log_results(
    run: RunContext, results: dict[str, Any], outcomes: list[CohortOutcome], config: AppConfig
) -> None:
    metrics: dict[str, float | None] = {
        f"wall_seconds.{mode}": s for mode, s in results["wall_seconds"].items()
    }
    if len(results["wall_seconds"]) == 2:
        metrics["parallel_speedup"] = results["wall_seconds"]["sequential"] / max(
            results["wall_seconds"]["parallel"], 1e-9
        )
    for outcome in outcomes:
        metrics[f"{outcome.name}.seconds"] = outcome.seconds
        metrics[f"{outcome.name}.ok"] = 1.0 if outcome.status == "ok" else 0.0
        metrics[f"{outcome.name}.persons_rounded"] = outcome.rows
        metrics.update({f"{outcome.name}.{key}": value for key, value in outcome.quality.items()})
    run.log_metrics(metrics)
    run.log_params({"cohorts.built": ",".join(o.name for o in outcomes)})
    run.log_dict(
        {
            "results": results,
            "codelists": {o.name: o.provenance for o in outcomes},
            "tables": {o.name: f"{config.paths.lake.rstrip('/')}/cohorts/cohort_{o.name}" for o in outcomes},
        },
        "cohorts.json",
    )


def cohorts_job(ctx: JobContext) -> None:
    """Body of jobs/cohorts.py: run_cohorts, then exit 1 (CohortsFailed) when any cohort failed."""
    results = run_cohorts(ctx)
    if results["failed"]:
        errors = "; ".join(f"{name}: {results['cohorts'][name].get('error')}" for name in results["failed"])
        raise CohortsFailed(
            f"{len(results['failed'])} cohort(s) failed, the others were written: {errors}", results
        )
