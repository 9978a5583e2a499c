"""Write, audit, publish: what wraps every job that writes analyst-facing tables.

1. Take the lake lock (one writer at a time).
2. Run the job body. Each table it writes becomes a new Delta version, invisible to analysts:
   names resolve through the manifest, which still points at the published release.
3. Stage the candidate: the published release's analyst tables overlaid with the ones written,
   plus the restricted tables at their current versions. One manifest row, status `staged`.
4. Run the audits; log each to MLflow and a row to `<lake>/releases/audits`.
5. All passed: append ONE `published` row (one Delta commit) and analysts see the whole new
   release. Any failed: append `rejected`; the candidate keeps its report, analysts keep the
   previous release, and the job exits 1. `jobs.release publish --override` can publish it later.

A body that raises leaves no manifest row at all: the published release is untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pyspark.sql import SparkSession

from linkage import lake as lake_tables
from linkage import sources
from linkage.config import AppConfig
from linkage.errors import StageFailed
from linkage.harness import JobContext, Stage, StageResult
from linkage.releases import journal
from linkage.releases.audits import AuditInputs, as_report, run_audits
from linkage.releases.lock import lake_lock, user_of
from linkage.releases.manifest import (
    ANALYST_ZONES,
    ManifestEvent,
    append_audits,
    append_event,
    current_release_id,
    next_release_id,
    read_events,
    releases,
)
from linkage.schemas import TableContract
from linkage.tracking import RunContext


class AuditsFailed(StageFailed):
    """The candidate release failed an audit: it stays staged, analysts keep the previous release."""


def published_tables(lake: str) -> tuple[str | None, dict[str, int]]:
    events = read_events(lake)
    current = current_release_id(events)
    return current, (dict(releases(events)[current].tables) if current else {})


def pinned_versions(spark: SparkSession, lake: str, contracts: list[TableContract]) -> dict[str, int]:
    """Version of each existing input, fixed now: what a job reads for its whole run.

    Analyst-facing tables: the version this release cycle wrote, else the published release's,
    else (a lake from before releases) the current one. Restricted tables: the current version
    (only the lake's single writer changes them, one atomic commit at a time).
    """
    _, published = published_tables(lake)
    written = journal.written()
    versions = {}
    for contract in contracts:
        table = f"{contract.zone}/{contract.name}"
        if contract.zone in ANALYST_ZONES and table in written:
            versions[table] = written[table]
        elif contract.zone in ANALYST_ZONES and table in published:
            versions[table] = published[table]
        elif lake_tables.table_exists(spark, lake, contract):
            versions[table] = lake_tables.table_version(spark, lake_tables.table_path(lake, contract))
    return versions


def log_pinned(run: RunContext, versions: Mapping[str, int]) -> None:
    run.log_params({f"input_version.{table}": version for table, version in versions.items()})


def candidate_tables(
    spark: SparkSession, lake: str, published: dict[str, int], written: dict[str, int]
) -> dict[str, int]:
    restricted = {
        f"{c.zone}/{c.name}": lake_tables.table_version(spark, lake_tables.table_path(lake, c))
        for c in sources.restricted_tables()
        if lake_tables.table_exists(spark, lake, c)
    }
    analyst = {t: v for t, v in published.items() if t.split("/", 1)[0] in ANALYST_ZONES}
    return {**restricted, **analyst, **written}


def job_lock(ctx: JobContext):
    """The lake's writer lock for this job (one writer at a time), with the configured stale-lock rules."""
    releases_config = ctx.config.releases
    return lake_lock(
        ctx.config.paths.lake,
        ctx.job,
        releases_config.lock_hours,
        releases_config.take_over_stale_lock,
        ctx.environ,
    )


def locked(body: Stage) -> Stage:
    """A job that writes only restricted tables: one writer at a time, no release."""

    def run_locked(ctx: JobContext) -> StageResult:
        with job_lock(ctx):
            return body(ctx)

    return run_locked


def released(body: Stage) -> Stage:
    """A job whose tables analysts read: lock, run, stage, audit, publish (see the module docstring)."""

    def run_released(ctx: JobContext) -> StageResult:
        with job_lock(ctx):
            return release_cycle(ctx, body)

    return run_released


def release_cycle(ctx: JobContext, body: Stage) -> StageResult:
    """Run the body with its writes journaled, then stage, audit and publish them. Caller holds the lock.

    A body that reports failures (a cohort failed) is not released: the analysts keep the previous release.
    """
    journal.start()
    try:
        result = body(ctx)
        result.raise_failures()
    finally:
        written = journal.stop()
    if not written:
        ctx.say("no table written: no release staged")
        return result
    publish_candidate(ctx.spark, ctx.config, ctx.run, written, ctx.environ, say=ctx.say, stage=ctx.stage)
    return result


def publish_candidate(
    spark: SparkSession,
    config: AppConfig,
    run: RunContext,
    written: dict[str, int],
    environ: Mapping[str, str],
    say: Callable[[str], None],
    stage: Callable[[str], Any],
) -> str:
    """Stage the written tables as a release, audit it and publish it; raises AuditsFailed when an audit fails."""
    lake = config.paths.lake
    events = read_events(lake)
    previous_id = current_release_id(events)
    previous = dict(releases(events)[previous_id].tables) if previous_id else {}
    candidate = candidate_tables(spark, lake, previous, written)
    release_id = next_release_id(events)
    actor = user_of(environ)
    append_event(lake, events, release_id, "staged", candidate, previous_id, run_id=run.run_id, actor=actor)
    with stage("audit release"):
        results = run_audits(AuditInputs(spark, config, candidate, previous, written))
    record_audits(lake, run, release_id, results)
    failures = tuple(r.name for r in results if not r.passed)
    for result in results:
        say(f"audit {result.name:<20} {'pass' if result.passed else 'FAIL'}  {result.summary}")
    if failures:
        append_event(
            lake,
            events,
            release_id,
            "rejected",
            candidate,
            previous_id,
            audits_passed=False,
            audit_failures=failures,
            run_id=run.run_id,
            actor=actor,
        )
        keeps = f"analysts keep release {previous_id}" if previous_id else "nothing is published yet"
        raise AuditsFailed(
            f"release {release_id} NOT published: audit(s) failed: {', '.join(failures)}; {keeps}. "
            f"Report: python -m jobs.release list; to publish anyway: python -m jobs.release publish "
            f'--release {release_id} --override "reason"'
        )
    publish(spark, config, events, release_id, candidate, run_id=run.run_id, actor=actor, audits_passed=True)
    say(f"release {release_id} published ({len(candidate)} tables; previous {previous_id or 'none'})")
    return release_id


def record_audits(lake: str, run: RunContext, release_id: str, results: list) -> None:
    append_audits(lake, release_id, run.run_id, results)
    run.log_metrics({f"audit.{r.name}.passed": 1.0 if r.passed else 0.0 for r in results})
    run.log_metrics({f"audit.{r.name}.{k}": v for r in results for k, v in r.counts.items()})
    run.log_dict({"release_id": release_id, "audits": as_report(results)}, "release/audits.json")
    run.set_tags({"lake_release": release_id})


def publish(
    spark: SparkSession | None,
    config: AppConfig,
    events: list[ManifestEvent],
    release_id: str,
    tables: dict[str, int],
    **details: Any,
) -> None:
    """The one commit that makes a release current; then the external catalog and retention follow it."""
    append_event(config.paths.lake, events, release_id, "published", tables, release_id, **details)
    after_publish(spark, config, events)


def after_publish(spark: SparkSession | None, config: AppConfig, events: list[ManifestEvent]) -> None:
    from linkage.releases.retention import vacuum_unkept_versions

    current = current_release_id(events)
    if spark is not None and config.releases.catalog == "external" and current:
        from linkage.releases.catalog import register_views

        register_views(spark, config.paths.lake, releases(events)[current].tables)
    if config.releases.vacuum:
        vacuum_unkept_versions(config.paths.lake, events, config.releases.keep)
