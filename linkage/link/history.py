"""Key history that a failed link run did not record: written before the next run links.

`link` writes the spine, then appends that run's key events to the registry. A run that dies
between the two leaves a spine whose changes no registry row describes; the next run would
compare against that spine and never see them. So each link run first walks the spine's Delta
history: every spine version written by a run with no registry rows gets its events (against
the version before it) appended, under that run's id, before the new run's own.

A run has recorded its history when a registry commit carries its run id (a run whose spine
changed no key adds no registry row, but still commits). The catch-up commit is stamped with
the id of the run it records, so it counts as that run's.
"""

from __future__ import annotations

import json
from dataclasses import replace

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from linkage.lake import read_table, table_exists, table_path, table_version, write_table
from linkage.link.spine import registry_events
from linkage.schemas import PERSON_REGISTRY, PERSON_SPINE, TableContract
from linkage.tracking import RunContext


def table_writes(spark: SparkSession, lake: str, contract: TableContract) -> list[tuple[int, str]]:
    """(table version, run id) of every write of a table, oldest first (from each commit's userMetadata)."""
    if not table_exists(spark, lake, contract):
        return []
    history = (
        DeltaTable.forPath(spark, table_path(lake, contract)).history().select("version", "userMetadata")
    )
    writes = []
    for row in history.collect():
        try:
            run_id = json.loads(row["userMetadata"] or "{}").get("run_id")
        except (ValueError, AttributeError):
            run_id = None
        if run_id:
            writes.append((int(row["version"]), str(run_id)))
    return sorted(writes)


def unrecorded_spine_versions(
    writes: list[tuple[int, str]], recorded_runs: set[str]
) -> list[tuple[int | None, int, str]]:
    """(baseline version or None, unrecorded version, its run id) for each spine write after the last recorded one.

    Pure: the baseline of the first unrecorded write is the newest write whose run did record its events.
    """
    last_recorded = max((i for i, (_, run_id) in enumerate(writes) if run_id in recorded_runs), default=None)
    start = 0 if last_recorded is None else last_recorded + 1
    result = []
    for index in range(start, len(writes)):
        baseline = writes[index - 1][0] if index > 0 else None
        result.append((baseline, writes[index][0], writes[index][1]))
    return result


def record_missing_history(spark: SparkSession, lake: str, run: RunContext) -> int:
    """Append the events of spine writes no registry commit records; returns how many spine versions were caught up."""
    recorded = {run_id for _, run_id in table_writes(spark, lake, PERSON_REGISTRY)}
    missing = unrecorded_spine_versions(table_writes(spark, lake, PERSON_SPINE), recorded)
    registry: DataFrame | None = None
    if missing and table_exists(spark, lake, PERSON_REGISTRY):
        # Pinned to its current version: the writes below replace the table this frame reads.
        registry = read_table(
            spark, lake, PERSON_REGISTRY, version=table_version(spark, table_path(lake, PERSON_REGISTRY))
        )
    for baseline, version, run_id in missing:
        known = registry.select("person_key") if registry is not None else None
        previous = read_table(spark, lake, PERSON_SPINE, version=baseline) if baseline is not None else None
        events = registry_events(
            read_table(spark, lake, PERSON_SPINE, version=version), previous, known
        ).withColumn("run_id", F.lit(run_id))
        registry = events if registry is None else registry.unionByName(events)
        stamped = replace(run, run_id=run_id, job=f"{run.job} (history recorded by run {run.run_id})")
        written = write_table(registry, lake, PERSON_REGISTRY, stamped)
        registry = read_table(spark, lake, PERSON_REGISTRY, version=written.version)
    return len(missing)
