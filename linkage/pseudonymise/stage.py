"""The pseudonymise stage, `run(ctx)`: restricted spine, people and activity -> the analysts' zone.

Each output table is replaced in one Delta transaction; local ids and identifiers never leave the
restricted zone because every output is selected column by column from its contract.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from linkage import lake, sources
from linkage.errors import InputError
from linkage.harness import JobContext, StageResult
from linkage.pseudonymise.keys import load_release_key
from linkage.pseudonymise.person import (
    build_person,
    person_records,
    persons_with_conflicts,
    record_activity_span,
)
from linkage.pseudonymise.tokens import person_id_for
from linkage.pseudonymise.vocabulary import (
    other_counts,
    read_vocabularies,
    with_controlled_vocabulary,
)
from linkage.schemas import (
    PEOPLE_STD,
    PERSON_SPINE,
    PERSON_TABLE_NAME,
    RECORD_JOIN_KEY,
    RECORD_KEY,
    TableContract,
)


def record_person_map(spine_df: DataFrame, key: bytes) -> DataFrame:
    """(source_dataset, source_record_id, person_id) for every spine record with a person_key."""
    return spine_df.join(person_id_for(spine_df, key), "person_key", how="inner").select(
        *RECORD_KEY, "person_id"
    )


def pseudonymise_activity(
    activity_df: DataFrame, record_person_df: DataFrame, contract: TableContract, run_id: str
) -> DataFrame:
    """Activity rows keyed by person_id, holding only the contract's columns (local ids dropped)."""
    return (
        activity_df.join(record_person_df, list(RECORD_JOIN_KEY), how="inner")
        .withColumn("run_id", F.lit(run_id))
        .select(*contract.column_names)
    )


def run(ctx: JobContext) -> StageResult:
    """Write pseudonymised/person and each source's activity table; returns the tables written and rows per table."""
    config = ctx.config
    key = load_release_key(config, ctx.environ, say=ctx.say)  # first: without a key, read nothing
    vocabularies = read_vocabularies(config.pseudonymise.vocabularies)
    reference_date = config.pseudonymise.reference_date or datetime.now(UTC).date()
    read = pinned_inputs(ctx, reference_date)
    metrics: dict[str, int] = {}
    spine_df = read(PERSON_SPINE)
    # Persisted: every output joins to it, and recomputing would rerun the Python HMAC each time.
    record_person_df = record_person_map(spine_df, key).persist(StorageLevel.MEMORY_AND_DISK)
    records_df: DataFrame | None = None
    try:
        with ctx.stage("pseudonymise keys"):
            metrics["spine_records_without_person"] = spine_df.count() - record_person_df.count()
        activity_dfs = {source: read(c) for source, c in sources.activity_std_contracts().items()}
        tables = write_activity_tables(ctx, activity_dfs, record_person_df, vocabularies, metrics)
        with ctx.stage("write person"):
            # Persisted: the person table and the conflict counts both group it, and recomputing it joined the
            # spine, the people and every activity row again.
            records_df = person_records(
                record_person_df,
                read(PEOPLE_STD),
                record_activity_span(activity_dfs),
                config.pseudonymise.source_priority,
            ).persist(StorageLevel.MEMORY_AND_DISK)
            person_df = build_person(records_df, reference_date, ctx.run.run_id)
            person = sources.person_contract()
            tables[f"{person.zone}/{person.name}"] = lake.write_table(
                person_df, config.paths.lake, person, ctx.run
            )
        with ctx.stage("conflict counts"):
            conflicts = persons_with_conflicts(records_df)
    finally:
        record_person_df.unpersist()
        if records_df is not None:
            records_df.unpersist()
    counts = {table.split("/", 1)[1]: write.rows for table, write in tables.items()}
    report_release(ctx, counts, metrics, conflicts)
    return StageResult(tables=tables, summary=counts)


def pinned_inputs(ctx: JobContext, reference_date: date) -> Callable[[TableContract], DataFrame]:
    """A reader of the input tables at the versions current now (logged), so a link run committing meanwhile
    cannot mix two spines into one release; InputError naming every input table that is missing."""
    spark, lake_root = ctx.spark, ctx.config.paths.lake
    inputs = [PERSON_SPINE, PEOPLE_STD, *sources.activity_std_contracts().values()]
    missing = [f"{c.zone}/{c.name}" for c in inputs if not lake.table_exists(spark, lake_root, c)]
    if missing:
        raise InputError(
            f"input tables missing from {lake_root}: {', '.join(missing)} (run ingest and link first)"
        )
    versions = lake.table_versions(spark, lake_root, inputs)
    ctx.run.log_params(
        {
            "pseudonymise.reference_date_used": reference_date.isoformat(),
            **{f"input_version.{name}": version for name, version in versions.items()},
        }
    )
    ctx.run.set_tags({"release_id": ctx.config.pseudonymise.release_id})

    def read(contract: TableContract) -> DataFrame:
        return lake.read_table(
            spark, lake_root, contract, version=versions[f"{contract.zone}/{contract.name}"]
        )

    return read


def write_activity_tables(
    ctx: JobContext,
    activity_dfs: dict[str, DataFrame],
    record_person_df: DataFrame,
    vocabularies: dict[str, tuple[str, ...]],
    metrics: dict[str, int],
) -> dict[str, lake.TableWrite]:
    """Each source's pseudonymised activity table (free text reduced to the controlled vocabulary); adds its
    'other' counts and rows without a person to `metrics`."""
    lake_root, tables = ctx.config.paths.lake, {}
    for source, contract in sources.pseudonymised_activity_contracts().items():
        with ctx.stage(f"write {contract.name}"):
            fields = sources.get(source).free_text_fields
            controlled_df = with_controlled_vocabulary(activity_dfs[source], fields, vocabularies)
            events_df = pseudonymise_activity(controlled_df, record_person_df, contract, ctx.run.run_id)
            written = lake.write_table(events_df, lake_root, contract, ctx.run)
            tables[f"{contract.zone}/{contract.name}"] = written
            metrics.update(
                other_counts(lake.read_table(ctx.spark, lake_root, contract), contract.name, fields)
            )
            metrics[f"activity_rows_without_person.{source}"] = activity_dfs[source].count() - written.rows
    return tables


def report_release(
    ctx: JobContext, counts: dict[str, int], metrics: dict[str, int], conflicts: dict[str, int]
) -> None:
    """Rows per table, the quality counts and persons with conflicting attributes to the run; one line printed."""
    ctx.run.log_metrics(
        {
            **{f"rows.{name}": n for name, n in counts.items()},
            **metrics,
            **{f"persons_with_conflicting.{name}": n for name, n in conflicts.items()},
        }
    )
    ctx.say(
        f"release '{ctx.config.pseudonymise.release_id}': {counts[PERSON_TABLE_NAME]} persons, "
        + ", ".join(f"{name} {n}" for name, n in counts.items() if name != PERSON_TABLE_NAME)
    )
