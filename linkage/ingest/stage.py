"""The ingest stage, `run(ctx)`: locate and check every file first, then standardise, quarantine, write and
reconcile.

Every row read is counted once, as accepted or under one quarantine reason; the totals are
checked against the lines read, printed, returned and logged to MLflow (aggregates only).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import reduce

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from linkage import lake, sources
from linkage.config import IngestConfig
from linkage.errors import LinkageError
from linkage.harness import JobContext, StageResult
from linkage.ingest import fields
from linkage.ingest.guards import previous_people_counts, refuse_emptied_sources
from linkage.ingest.people import standardise_people
from linkage.ingest.reader import (
    FileLayout,
    RawFile,
    locate,
    may_hold_quoted_line_breaks,
    read_files,
    read_header_at,
    resolve_layout,
)
from linkage.ingest.rules import (
    ENCODING_ERROR,
    MALFORMED_ROW,
    REASON_CODES,
    DateRules,
    accepted_rows,
    quarantine_rows,
    with_reason,
)
from linkage.schemas import PEOPLE_STD, QUARANTINE, RECORD_JOIN_KEY
from linkage.standardise.names import read_nicknames
from linkage.tracking import RunContext


class ReconciliationError(LinkageError):
    """Rows read differ from rows accepted plus quarantined: a bug, never a data problem."""


@dataclass(frozen=True)
class PlannedFile:
    raw: RawFile
    layout: FileLayout
    rules: fields.FileFields

    @property
    def metric_prefix(self) -> str:
        return f"ingest.{self.raw.source}.{self.raw.name.rsplit('.', 1)[0]}"


def date_rules(config: IngestConfig, today: date | None = None) -> DateRules:
    """Dates after the run date (plus `max_future_days`) or before `earliest_birth_year` are impossible."""
    run_date = config.run_date or today or datetime.now(UTC).date()
    return DateRules(config.earliest_birth_year, run_date + timedelta(days=config.max_future_days))


def plan_files(ctx: JobContext) -> list[PlannedFile]:
    """Locate every source's two files and match their headers before any data is read: fail fast, naming what
    is missing."""
    planned = []
    for declaration in sources.declarations():
        source = declaration.name
        mapping = ctx.config.ingest.sources[source]
        for role, stem, columns, rules in (
            ("people", mapping.people_file, mapping.people_columns, declaration.people),
            ("activity", mapping.activity_file, mapping.activity_columns, declaration.activity),
        ):
            raw = locate(ctx.spark, ctx.config.paths.raw, stem, source, role)
            header, header_line = read_header_at(ctx.spark, raw)
            layout = resolve_layout(raw, header, rules.fields, columns, header_line)
            planned.append(PlannedFile(raw, layout, rules))
    return planned


def reason_counts(classified: list[DataFrame]) -> list[tuple[dict[str | None, int], int, int]]:
    """Per file: rows per reason (None = accepted), the last physical line seen and the continuation
    lines of records spanning several lines; one Spark job for all files."""
    per_file = (
        reduce(
            DataFrame.unionByName,
            [
                df.select(
                    F.lit(index).alias("file_index"), "reason_code", "line_number", "continuation_lines"
                )
                for index, df in enumerate(classified)
            ],
        )
        .groupBy("file_index", "reason_code")
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.max(F.col("line_number") + F.col("continuation_lines")).alias("last"),
            F.sum("continuation_lines").alias("continued"),
        )
    )
    result: list[tuple[dict[str | None, int], int, int]] = [({}, 0, 0) for _ in classified]
    for row in per_file.collect():
        by_reason, last, continued = result[row["file_index"]]
        by_reason[row["reason_code"]] = row["n"]
        result[row["file_index"]] = (
            by_reason,
            max(last, row["last"] or 0),
            continued + (row["continued"] or 0),
        )
    return result


def rows_read(raw: RawFile, last_line: int, header_line: int = 1, continuation_lines: int = 0) -> int:
    """Data rows read: lines are numbered consecutively over the whole file, so the last number, less
    the header (and any blank lines before it) and the extra lines of multi-line records, says how many."""
    header_lines = header_line if raw.format == "csv" else 0
    return max(last_line - header_lines - continuation_lines, 0)


def run(ctx: JobContext) -> StageResult:
    """Ingest the raw extracts into people_std, each source's activity table and quarantine; return the counts."""
    config = ctx.config
    rules = date_rules(config.ingest)
    with ctx.stage("check inputs"):
        planned = plan_files(ctx)
        nicknames_df = read_nicknames(ctx.spark, config.ingest.nicknames_file)
    ctx.run.log_params({"ingest.latest_plausible_date": rules.latest.isoformat()})
    with ExitStack() as cleanup:
        with ctx.stage("classify rows"):
            classified = classify_files(ctx.spark, planned, rules, nicknames_df, cleanup)
        counts = classified.counts
        people_plans = [plan for plan in planned if plan.raw.role == "people"]
        refuse_emptied_sources(
            {plan.raw.source: counts[f"{plan.metric_prefix}.accepted"] for plan in people_plans},
            {plan.raw.source: plan.raw.name for plan in people_plans},
            previous_people_counts(ctx.spark, config.paths.lake),
            config.ingest.allow_empty_sources,
        )
        with ctx.stage("write tables"):
            tables = write_ingested(classified, config.paths.lake, ctx.run)
        with ctx.stage("quality counts"):
            counts.update(quality_counts(ctx.spark, config.paths.lake))
    counts.update(totals(counts))
    _report(ctx, planned, counts)
    ctx.run.log_metrics(counts)
    ctx.run.log_dict(counts, "ingest_counts.json")
    return StageResult(tables=tables, summary=counts)


@dataclass
class Classified:
    """Every file's rows, classified: counts per file and reason, and the frames to write (not yet computed)."""

    counts: dict[str, int] = field(default_factory=dict)
    people: list[DataFrame] = field(default_factory=list)
    quarantine: list[DataFrame] = field(default_factory=list)
    activity: dict[str, DataFrame] = field(default_factory=dict)


def classify_files(
    spark: SparkSession,
    planned: list[PlannedFile],
    rules: DateRules,
    nicknames_df: DataFrame,
    cleanup: ExitStack,
) -> Classified:
    """Read, classify and count every file; standardise the accepted rows. The classified rows are cached
    (each file is parsed once, then counted, standardised and written from memory) until `cleanup` closes,
    also when a later step fails: the pipeline's session lives on."""
    files = [(plan.raw, plan.layout) for plan in planned]

    def classify(plan: PlannedFile, rows_df: DataFrame) -> DataFrame:
        # PySpark's MEMORY_AND_DISK is the serialized level: every cached column batch written through the serializer
        # and read back through it. The _DESER level, which PySpark's own DataFrame.cache() uses, keeps the batches
        # as they are (see README, *Every target again, in one run*).
        classified_df = (
            with_reason(rows_df, plan.rules, rules)
            .transform(raw_line_of_quarantined_only)
            .persist(StorageLevel.MEMORY_AND_DISK_DESER)
        )
        cleanup.callback(classified_df.unpersist)
        return classified_df

    # Every physical line read as a record first; a file where a quarantined line may be part of a record with a
    # quoted line break is read again, its line breaks found (see reader.read_files).
    cached = [
        classify(plan, rows_df)
        for plan, rows_df in zip(planned, read_files(spark, files, find_line_breaks=False), strict=True)
    ]
    counts = reason_counts(cached)
    reread = files_with_quoted_line_breaks(cached, counts)
    if reread:
        for index, rows_df in zip(reread, read_files(spark, [files[i] for i in reread]), strict=True):
            cached[index].unpersist()
            cached[index] = classify(planned[index], rows_df)
        for index, file_counts in zip(reread, reason_counts([cached[i] for i in reread]), strict=True):
            counts[index] = file_counts
    # The nickname list is built from Python rows: cached, its two broadcasts need no Python worker.
    nicknames_df = nicknames_df.persist(StorageLevel.MEMORY_AND_DISK)
    cleanup.callback(nicknames_df.unpersist)
    classified = Classified()
    for plan, classified_df, (by_reason, last_line, continued) in zip(planned, cached, counts, strict=True):
        read = rows_read(plan.raw, last_line, plan.layout.header_line, continued)
        _record_counts(classified.counts, plan, read, by_reason)
        classified.quarantine.append(quarantine_rows(classified_df, plan.raw.source, plan.raw.name))
        accepted_df = accepted_rows(classified_df)
        if plan.raw.role == "people":
            classified.people.append(standardise_people(accepted_df, plan.raw.source, nicknames_df, rules))
        else:
            declaration = sources.get(plan.raw.source)
            classified.activity[plan.raw.source] = declaration.standardised_activity(accepted_df)
    return classified


def files_with_quoted_line_breaks(
    classified: list[DataFrame], counts: list[tuple[dict[str | None, int], int, int]]
) -> list[int]:
    """Indexes of the files read line by line whose malformed rows include a line with an odd number of quotes:
    one Spark job over the quarantined rows of the files that have malformed or undecodable rows, none when no
    file has any."""
    # A malformed line that is also undecodable is counted under its first reason, encoding_error.
    suspects = [
        index
        for index, (by_reason, _, _) in enumerate(counts)
        if by_reason.get(MALFORMED_ROW) or by_reason.get(ENCODING_ERROR)
    ]
    if not suspects:
        return []
    odd_df = reduce(
        DataFrame.unionByName,
        [
            classified[index]
            .where(may_hold_quoted_line_breaks(F.col("is_malformed"), F.col("raw_line")))
            .select(F.lit(index).alias("file_index"))
            .limit(1)
            for index in suspects
        ],
    )
    return sorted(row["file_index"] for row in odd_df.collect())


def raw_line_of_quarantined_only(classified_df: DataFrame) -> DataFrame:
    """Null the raw line of accepted rows: only quarantine keeps it, and an accepted row's raw line was most of
    what the cache held (at 1M people, classifying and caching the gp files took 25.6 s with every raw line and
    17.1 s with the quarantined rows' only)."""
    return classified_df.withColumn("raw_line", F.when(F.col("reason_code").isNotNull(), F.col("raw_line")))


def write_ingested(classified: Classified, lake_root: str, run: RunContext) -> dict[str, lake.TableWrite]:
    """people_std, each source's activity table and quarantine, one Delta transaction each."""
    run_id = F.lit(run.run_id)
    outputs = [
        (PEOPLE_STD, reduce(DataFrame.unionByName, classified.people)),
        *[(sources.get(source).activity_std, df) for source, df in classified.activity.items()],
        (QUARANTINE, reduce(DataFrame.unionByName, classified.quarantine)),
    ]
    return {
        f"{contract.zone}/{contract.name}": lake.write_table(
            df.withColumn("run_id", run_id), lake_root, contract, run
        )
        for contract, df in outputs
    }


def quality_counts(spark: SparkSession, lake_root: str) -> dict[str, int]:
    """From the written tables: a few columns of Delta are cheaper than recomputing the standardisation."""
    people_std = lake.read_table(spark, lake_root, PEOPLE_STD)
    activity_std = [
        lake.read_table(spark, lake_root, contract) for contract in sources.activity_std_contracts().values()
    ]
    return {**people_field_counts(people_std), **orphan_counts(people_std, activity_std)}


def totals(counts: dict[str, int]) -> dict[str, int]:
    return {
        f"ingest.rows_{kind}": sum(v for k, v in counts.items() if k.endswith(f".{kind}"))
        for kind in ("read", "accepted", "quarantined")
    }


def _record_counts(
    counts: dict[str, int], plan: PlannedFile, read: int, by_reason: dict[str | None, int]
) -> None:
    accepted = by_reason.get(None, 0)
    quarantined = sum(n for reason, n in by_reason.items() if reason is not None)
    if accepted + quarantined != read:
        raise ReconciliationError(
            f"{plan.raw.name}: {read} rows read but {accepted} accepted + {quarantined} quarantined"
        )
    prefix = plan.metric_prefix
    counts[f"{prefix}.read"] = read
    counts[f"{prefix}.accepted"] = accepted
    counts[f"{prefix}.quarantined"] = quarantined
    for reason in REASON_CODES:
        counts[f"{prefix}.quarantined.{reason}"] = by_reason.get(reason, 0)


def people_field_counts(people_std: DataFrame) -> dict[str, int]:
    """Per source: identifiers supplied but unusable (nulled, raw kept; sex_unmapped includes U/9/0/Other codes)
    and 1 January placeholders."""
    flags = {
        "dob_invalid": F.col("dob_is_valid") == F.lit(False),
        "dob_placeholder": F.col("dob_is_placeholder"),
        "nhs_number_invalid": F.col("nhs_number_is_valid") == F.lit(False),
        "postcode_invalid": F.col("postcode_is_valid") == F.lit(False),
        "sex_unmapped": F.col("sex_raw").isNotNull() & F.col("sex").isNull(),
        "ethnicity_unmapped": F.col("ethnicity_raw").isNotNull() & F.col("ethnicity_code").isNull(),
    }
    aggregated = (
        people_std.groupBy("source_dataset")
        .agg(*[F.count_if(F.coalesce(flag, F.lit(False))).alias(name) for name, flag in flags.items()])
        .collect()
    )
    return {
        f"ingest.{row['source_dataset']}.people.{name}": int(row[name])
        for row in aggregated
        for name in flags
    }


def orphan_counts(people_df: DataFrame, activity_dfs: list[DataFrame]) -> dict[str, int]:
    """Accepted activity rows whose person id is not an accepted people record (kept; see activity.py)."""
    keys = people_df.select("source_dataset", "source_record_id")
    activity_keys = reduce(
        DataFrame.unionByName, [df.select("source_dataset", "source_record_id") for df in activity_dfs]
    )
    orphans = dict(
        activity_keys.join(keys, list(RECORD_JOIN_KEY), how="left_anti")
        .groupBy("source_dataset")
        .count()
        .collect()
    )
    return {
        f"ingest.{source}.activity.orphan_rows": int(orphans.get(source, 0)) for source in sources.names()
    }


def _report(ctx: JobContext, planned: list[PlannedFile], counts: dict[str, int]) -> None:
    for plan in planned:
        prefix = plan.metric_prefix
        reasons = ", ".join(
            f"{reason} {counts[f'{prefix}.quarantined.{reason}']}"
            for reason in REASON_CODES
            if counts[f"{prefix}.quarantined.{reason}"]
        )
        ctx.say(
            f"{plan.raw.name:<28} read {counts[f'{prefix}.read']:>9}  accepted {counts[f'{prefix}.accepted']:>9}"
            f"  quarantined {counts[f'{prefix}.quarantined']:>7}" + (f" ({reasons})" if reasons else "")
        )
    ctx.say(
        f"total read {counts['ingest.rows_read']} = accepted {counts['ingest.rows_accepted']}"
        f" + quarantined {counts['ingest.rows_quarantined']}"
    )
