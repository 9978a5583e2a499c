"""The cohorts stage, `run(ctx)`: every selected cohort built (in parallel unless --sequential), logged once.

A cohort that fails is reported with the others' results and the stage's failures: the job exits 1
and no release is published (the others' tables are written, unpublished).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from linkage.cohorts import qa
from linkage.cohorts.builder import input_tables
from linkage.cohorts.runner import CohortOutcome, QaInputs, build_all, selected_cohorts
from linkage.config import AppConfig
from linkage.harness import JobContext, StageResult
from linkage.releases.cycle import log_pinned, pinned_versions
from linkage.tracking import RunContext


def run(ctx: JobContext) -> StageResult:
    """Build every selected cohort; summary {cohorts: {name: status/rows/seconds/...}, failed: [...], wall_seconds}.

    `rows` is the disclosure-controlled cohort size. A failed cohort is a failure of the stage, returned (the
    job exits 1; the pipeline reports it after its summary).
    """
    config = ctx.config
    cohorts = selected_cohorts(config)
    # Every cohort reads the same pinned versions: a run committing meanwhile cannot mix two releases.
    versions = pinned_versions(ctx.spark, config.paths.lake, list(input_tables()))
    log_pinned(ctx.run, versions)
    with ctx.stage("prepare truth"):
        qa_inputs = prepare_qa(ctx)
    if qa_inputs is None:
        ctx.say(
            "no truth configured (paths.truth, paths.truth_conditions, restricted/person_spine): QA skipped"
        )
    outcomes, wall_seconds = build_in_modes(ctx, cohorts, qa_inputs, versions)
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
    return StageResult(
        tables={table: write for o in outcomes for table, write in o.tables.items()},
        summary=results,
        failures=failures(outcomes),
    )


def build_in_modes(
    ctx: JobContext, cohorts: dict[str, Path], qa_inputs: QaInputs | None, versions: dict[str, int]
) -> tuple[list[CohortOutcome], dict[str, float]]:
    """All cohorts in parallel; or one at a time (--sequential); or both, to compare wall times (--compare)."""
    sequential = bool(getattr(ctx.args, "sequential", False))
    compare = bool(getattr(ctx.args, "compare", False))
    modes = ["sequential", "parallel"] if compare else ["sequential" if sequential else "parallel"]
    wall_seconds: dict[str, float] = {}
    outcomes: list[CohortOutcome] = []
    for mode in modes:
        parallelism = 1 if mode == "sequential" else ctx.config.cohorts.parallelism
        with ctx.stage(f"build {len(cohorts)} cohorts ({mode})"):
            started = time.perf_counter()
            outcomes = build_all(ctx.spark, ctx.config, ctx.run, cohorts, qa_inputs, parallelism, versions)
            wall_seconds[mode] = round(time.perf_counter() - started, 2)
    return outcomes, wall_seconds


def failures(outcomes: list[CohortOutcome]) -> tuple[str, ...]:
    failed = [o for o in outcomes if o.status != "ok"]
    if not failed:
        return ()
    errors = "; ".join(f"{o.name}: {o.error}" for o in failed)
    return (f"{len(failed)} cohort(s) failed, the others were written: {errors}",)


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
