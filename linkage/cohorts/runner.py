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
    read_inputs,
)
from linkage.cohorts.declaration import Declaration, declaration_files, load_declaration
from linkage.cohorts.disclosure import TOTAL_CATEGORY
from linkage.config import AppConfig
from linkage.errors import ConfigError
from linkage.harness import first_line, redact, write_traceback
from linkage.lake import TableWrite, read_table, write_table
from linkage.tracking import RunContext


@dataclass
class CohortOutcome:
    name: str
    status: str = "failed"
    seconds: float = 0.0
    rows: int | None = None  # disclosure-controlled cohort size (None when suppressed)
    quality: dict[str, float | None] = field(default_factory=dict)
    error: str | None = None
    provenance: dict[str, list[str]] = field(default_factory=dict)
    tables: dict[str, TableWrite] = field(default_factory=dict)  # "zone/name" -> what its writes committed

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
        compiled = compile_criteria(declaration, config.cohorts.codelists)  # once: checks, codelists read
        outcome.provenance = {
            item.name: [
                *(item.codelist.provenance if item.codelist else ()),
                *(item.ending.provenance if item.ending else ()),
            ]
            for item in compiled
        }
        person_table, summary_table = cohort_contracts(declaration)
        lake = config.paths.lake
        cohort_df = build_cohort(
            read_inputs(spark, lake, versions), declaration, config.cohorts, compiled
        ).withColumn("run_id", F.lit(run.run_id))
        outcome.tables[f"{person_table.zone}/{person_table.name}"] = write_table(
            cohort_df, lake, person_table, run
        )
        written_df = read_table(spark, lake, person_table)  # summarise what was written, not a recomputation
        summary_df = build_summary(written_df, declaration, config.cohorts).withColumn(
            "run_id", F.lit(run.run_id)
        )
        outcome.tables[f"{summary_table.zone}/{summary_table.name}"] = write_table(
            summary_df, lake, summary_table, run
        )
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
