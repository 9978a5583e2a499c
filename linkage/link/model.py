"""Splink on Spark: the backend with a cleaned-up scratch folder, each source present registered, and training.

Splink breaks lineage by writing intermediate tables (parquet) under the SparkContext's
checkpoint folder and never deletes them; they hold identifiable values, so each job gets its
own folder inside the restricted zone's scratch space and removes it when it ends.

Spark settings for this workload (set by linkage.session and config, not here):
- spark.sql.shuffle.partitions from config (spark.shuffle_partitions): Splink runs hundreds of
  small queries, and the default 200 partitions made a 10k run take 3.7x longer than 2-4.
  Use about 2 x cores up to 1M records; more only on a cluster.
- break_lineage_method "parquet" (linkage.break_lineage_method): "persist" ran out of heap while
  clustering 100k records; parquet files in <scratch>/splink-<run id> are deleted at job end.
- spark.sql.codegen.wholeStage stays on (Spark's default): a stage whose generated code exceeds the JVM's
  64 KB method limit falls back to interpreted execution by itself, and the rest runs compiled.
- No caching of Splink tables (they are re-read from parquet); only the small NHS-number pair and
  edge frames are persisted, and released before the job ends.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import reduce
from typing import Any, NamedTuple

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from splink import Linker
from splink.backends.spark import SparkAPI
from splink.internals.exceptions import EMTrainingException

from linkage import sources
from linkage.config import AppConfig, LinkageConfig
from linkage.errors import InputError
from linkage.link.em import em_over_pattern_counts
from linkage.link.fields import (
    ModelPlan,
    plan_model,
    populated_columns,
    populated_counts,
    present_shares,
    rule_sql,
)
from linkage.link.match_free_u import UChange, u_floor, with_match_free_u
from linkage.link.prior import PriorRecall, with_estimated_prior
from linkage.link.scorer import MATCH_KEY, blocked_pair_ids, rule_columns_read, rule_keys, with_unique_id
from linkage.link.settings import (
    BLOCKING_RULES_FOR_PREDICTION,
    EM_BLOCKING_RULES,
    MODEL_COLUMNS,
    PRIOR_DETERMINISTIC_RULES,
    RECORD_SOURCE,
    SOURCE_DATASET,
    UNIQUE_ID,
    build_settings,
    with_corrections,
)
from linkage.link.u_sampling import u_counts_in_one_query

# The recall the prior is first estimated with when none is configured, before EM: it only scales the prior, which
# `with_estimated_prior` rescales with the recall the trained model gives. EM starts from the same prior as before
# the recall was estimated, so its estimates are unchanged by that.
PROVISIONAL_PRIOR_RECALL = 0.8

# Splink logs each EM iteration and every SQL step at INFO; the job prints its own stage lines.
SPLINK_LOG_LEVEL = logging.WARNING


@contextmanager
def splink_backend(spark: SparkSession, config: AppConfig, run_id: str) -> Iterator[SparkAPI]:
    """A SparkAPI whose intermediate files live in <scratch>/<run_id> and are deleted on exit, even on failure."""
    scratch = f"{config.paths.scratch_dir.rstrip('/')}/splink-{run_id}"
    remove_leftover_scratch(spark, config.paths.scratch_dir)
    spark.sparkContext.setCheckpointDir(scratch)
    logging.getLogger("splink").setLevel(SPLINK_LOG_LEVEL)
    try:
        yield SparkAPI(spark_session=spark, break_lineage_method=config.linkage.break_lineage_method)
    finally:
        for view in [
            t.name for t in spark.catalog.listTables() if t.isTemporary and t.name.startswith("__splink")
        ]:
            spark.catalog.dropTempView(view)
        remove_path(spark, scratch)


def remove_leftover_scratch(spark: SparkSession, scratch_dir: str) -> list[str]:
    """Delete `splink-*` folders a killed train or link job left in the scratch folder (they hold identifiable
    values; a job that ends, even by an error, removes its own). Returns the names removed."""
    jvm = spark._jvm  # noqa: SLF001 - py4j gateway: the only route to Hadoop's FileSystem from Python
    folder = jvm.org.apache.hadoop.fs.Path(scratch_dir)
    filesystem = folder.getFileSystem(spark._jsc.hadoopConfiguration())  # noqa: SLF001
    if not filesystem.exists(folder):
        return []
    removed = []
    for status in filesystem.listStatus(folder):
        name = status.getPath().getName()
        if status.isDirectory() and name.startswith("splink-"):
            filesystem.delete(status.getPath(), True)
            removed.append(name)
    return removed


def remove_path(spark: SparkSession, path: str) -> None:
    """Recursively delete a folder through Hadoop's FileSystem (local disk, HDFS, object stores alike)."""
    jvm = spark._jvm  # noqa: SLF001 - py4j gateway: the only route to Hadoop's FileSystem from Python
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    filesystem = hadoop_path.getFileSystem(spark._jsc.hadoopConfiguration())  # noqa: SLF001
    if filesystem.exists(hadoop_path):
        filesystem.delete(hadoop_path, True)


def model_input(people_df: DataFrame) -> DataFrame:
    """The columns the model reads, one row per source record, and the source under its comparison's name."""
    missing = [c for c in MODEL_COLUMNS if c not in people_df.columns]
    if missing:
        raise InputError(f"restricted/people_std lacks columns the model needs: {', '.join(missing)}")
    return people_df.select(*MODEL_COLUMNS, F.col(SOURCE_DATASET).alias(RECORD_SOURCE))


def register_sources(db_api: SparkAPI, people_df: DataFrame) -> list:
    """One Splink input table per source present, so link_and_dedupe links across and dedupes within them."""
    model_df = model_input(people_df)
    present = {row.source_dataset for row in model_df.select("source_dataset").distinct().collect()}
    if not present:
        raise InputError("restricted/people_std is empty: nothing to link")
    # Temp view names start __splink so the backend's clean-up drops them; a unique suffix lets a later job in
    # the same session (the pipeline's train then link) register its own.
    suffix = uuid.uuid4().hex[:8]
    return [
        db_api.register(
            model_df.where(F.col("source_dataset") == source),
            dataset_display_name=source,
            table_name=f"__splink__input_{source}_{suffix}",
        )
        for source in sources.names()
        if source in present
    ]


def build_linker(tables: list, settings: Any) -> Linker:
    return Linker(tables, settings, log_level=SPLINK_LOG_LEVEL)


def train_linker(
    linker: Linker,
    config: LinkageConfig,
    em_rules=EM_BLOCKING_RULES,
    prior_rules=PRIOR_DETERMINISTIC_RULES,
    skipped: list[str] | None = None,
    pattern_counts: bool = True,
    stage: Callable[[str], AbstractContextManager] = lambda name: nullcontext(),
) -> list:
    """Prior from near-certain rules, u by random sampling, then m by EM in sessions that each fix one rule's fields.

    A session whose rule finds no pairs (e.g. postcodes present but never shared) is skipped and named in
    `skipped`; the others stand. `pattern_counts=False` leaves Splink's own EM loop and u counting in place (the
    bench's plain Splink comparison). `stage(name)` times each step (the job's stage clock; the bench reports them).
    """
    if config.probability_two_random_records_match is None:
        with stage("train model: prior"):
            linker.training.estimate_probability_two_random_records_match(
                list(prior_rules), recall=assumed_prior_recall(config)
            )
    with (
        stage("train model: u"),
        u_counts_in_one_query(linker) if pattern_counts else nullcontext(),
    ):
        linker.training.estimate_u_using_random_sampling(
            max_pairs=config.u_max_pairs, seed=config.seed, num_chunks=config.u_num_chunks
        )
    sessions, failures = [], []
    for index, rule in enumerate(em_rules):
        try:
            # Splink's estimates (to 1e-6), iterated over pattern counts in the driver.
            with (
                stage(f"train model: em {index}"),
                em_over_pattern_counts() if pattern_counts else nullcontext(),
            ):
                sessions.append(
                    linker.training.estimate_parameters_using_expectation_maximisation(
                        rule, max_pairs=config.em_max_pairs
                    )
                )
        except EMTrainingException as error:
            failures.append(error)
            sql = rule_sql(rule)
            if skipped is not None:
                skipped.append(sql)
            logging.getLogger(__name__).warning("EM session on %s skipped: it found no record pairs", sql)
        except ValueError as error:
            # Splink 5 refuses an m that underflows to 0 (a level seen only among certain non-matches, typical of
            # very clean or tiny data). The session's estimates are discarded whole; the other sessions stand.
            if "m_probability" not in str(error):
                raise
            failures.append(error)
            logging.getLogger(__name__).warning(
                "EM session on %s skipped: an m probability underflowed to 0",
                rule_sql(rule),
            )
    if not sessions:
        raise failures[0]
    return sessions


def assumed_prior_recall(config: LinkageConfig) -> float:
    """The recall the prior is first estimated with: the configured one, else a provisional one that
    `with_estimated_prior` replaces once EM has estimated the m probabilities."""
    return config.prior_recall if config.prior_recall is not None else PROVISIONAL_PRIOR_RECALL


class TrainedModel(NamedTuple):
    """Splink's model JSON (as a dict, with the fixed corrections), the trained linker (without them: it holds the
    training sessions' history), a linker of the full model (the weight charts are drawn from it so QA sees the
    corrections beside the estimated weights), the recall the prior was divided by, and the levels whose u moved
    once the sample's matches were taken out (linkage.link.match_free_u)."""

    model: dict
    trained: Linker
    scoring: Linker
    prior_recall: PriorRecall
    u_changes: list[UChange]


def train_model(
    db_api: SparkAPI,
    people_df: DataFrame,
    config: LinkageConfig,
    plan: ModelPlan | None = None,
    counts: dict[str, dict[str, int]] | None = None,
    stage: Callable[[str], AbstractContextManager] = lambda name: nullcontext(),
) -> TrainedModel:
    """Estimate the model on people_std, with the comparisons and rules of `plan` (default: the full model).

    `counts` are people_std's populated counts (`fields.populated_counts`), computed when not given. EM sessions
    skipped for finding no pairs are added to plan.dropped["em_sessions"].
    """
    tables = register_sources(db_api, people_df)
    counts = counts if counts is not None else populated_counts(people_df)
    if plan is None:
        plan = plan_model(populated_columns(counts))
    trained = build_linker(tables, build_settings(config, plan.comparisons, plan.prediction_rules))
    train_linker(
        trained,
        config,
        plan.em_rules,
        plan.prior_rules,
        skipped=plan.dropped.setdefault("em_sessions", []),
        stage=stage,
    )
    model = trained.misc.save_model_to_json()
    if config.probability_two_random_records_match is None and config.prior_recall is None:
        model, prior_recall = with_estimated_prior(
            model,
            [rule_sql(rule) for rule in plan.prior_rules],
            present_shares(counts),
            PROVISIONAL_PRIOR_RECALL,
        )
    else:
        prior_recall = PriorRecall(assumed_prior_recall(config), "configured")
    records = sum(per_source["records"] for per_source in counts.values())
    model, u_changes = with_match_free_u(model, u_floor(records, config.u_max_pairs))
    model = with_corrections(model, corrections=plan.corrections)
    return TrainedModel(model, trained, build_linker(tables, model), prior_recall, u_changes)


def chart_html(trained: Linker, scoring: Linker) -> dict[str, str]:
    """Splink's aggregate charts (no records in them) as self-contained HTML, by artifact file name."""
    charts = {
        "match_weights.html": scoring.visualisations.match_weights_chart(),
        "m_u_parameters.html": scoring.visualisations.m_u_parameters_chart(),
        "parameter_estimates.html": trained.visualisations.parameter_estimate_comparisons_chart(),
    }
    # Inline: the pages must open offline. The Vega spec is logged beside each page, as JSON, for reuse.
    pages = {name: chart.to_html(inline=True) for name, chart in charts.items()}
    pages.update(
        {
            name.replace(".html", ".json"): json.dumps(chart.chart_dict, default=str)
            for name, chart in charts.items()
        }
    )
    return pages


def _rule_blocks(records_df: DataFrame, index: int, rule: Any) -> DataFrame:
    """(rule, comparisons, largest) of one rule: its records grouped by the values of its equality conditions'
    keys (a record with a null key is in no block: an equality with null holds for no pair).

    Grouped by a 64-bit hash of the keys, not the keys: at 1M people the thirteen rules' groupings took 14.9-16.2 s
    against 22.4-25.3 s, with the same counts. Two blocks merge only if their keys' hashes collide: for the 3M key
    values of the largest rule the chance that any pair does is about 2.4e-7 (n^2 / 2^65).
    """
    conditions = rule.get_blocking_rule("spark")._equi_join_conditions  # noqa: SLF001
    left, right = [k for k, _ in conditions], [k for _, k in conditions]

    def keyed(keys: list[str], side_l: int, side_r: int) -> DataFrame:
        values = [F.expr(key) for key in keys] or [F.lit(0)]
        present = reduce(lambda a, b: a & b, [value.isNotNull() for value in values])
        return records_df.where(present).select(
            F.xxhash64(*values).alias("block"), F.lit(side_l).alias("in_l"), F.lit(side_r).alias("in_r")
        )

    # A symmetric rule's two sides are one: its records are counted once, as both.
    sides = keyed(left, 1, 1) if left == right else keyed(left, 1, 0).unionByName(keyed(right, 0, 1))
    return (
        sides.groupBy("block")
        .agg(F.sum("in_l").cast("long").alias("count_l"), F.sum("in_r").cast("long").alias("count_r"))
        .select((F.col("count_l") * F.col("count_r")).alias("comparisons"))
        .agg(F.sum("comparisons").alias("comparisons"), F.max("comparisons").alias("largest"))
        .select(F.lit(index).alias("rule"), "comparisons", "largest")
    )


def blocking_block_sizes(people_df: DataFrame, rules=BLOCKING_RULES_FOR_PREDICTION) -> list[dict[str, Any]]:
    """Each prediction rule's comparisons before its filter conditions and its largest block, for link_and_dedupe:
    the sum and the largest of the `block_count`s that splink.blocking_analysis.n_largest_blocks gives over every
    block (tests/test_scorer.py).

    A rule's equality conditions split the records into blocks; a block whose left keys n_l records share and whose
    right keys n_r share makes n_l x n_r comparisons (each pair twice and each record with itself when the rule is
    symmetric). This is what grows when a rule meets a common value, so it is what to check before linking a new
    extract. It needs no join of the records: one aggregation per rule of the columns the rules read (cached once),
    where counting the pairs each rule adds beyond the rules above it (`blocking_pair_counts`) runs every rule's
    self-join, 59.4 s of a 202 s train at 1M people. The link run logs those marginal counts from its own pairs
    (`pairs_by_blocking_rule.*`).
    """
    rule_sqls = tuple(rule_sql(rule) for rule in rules)
    records = (
        model_input(people_df).select(*rule_columns_read(rule_sqls)).persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        blocks = reduce(
            DataFrame.unionByName, [_rule_blocks(records, i, rule) for i, rule in enumerate(rules)]
        )
        by_rule = {row["rule"]: row for row in blocks.collect()}
    finally:
        records.unpersist()
    return [
        {
            "rule": sql,
            "comparisons_before_filters": int(by_rule[i]["comparisons"] or 0),
            "largest_block_comparisons": int(by_rule[i]["largest"] or 0),
        }
        for i, sql in enumerate(rule_sqls)
    ]


def blocking_pair_counts(people_df: DataFrame, rules=BLOCKING_RULES_FOR_PREDICTION) -> list[dict[str, Any]]:
    """Pairs each prediction blocking rule adds beyond the rules above it, and the running total: the counts
    splink.blocking_analysis.count_comparisons_from_blocking_rules gives for link_and_dedupe (tests/test_scorer.py).

    Counted in one Spark job over the compiled scorer's own blocking joins, where Splink's analysis runs a
    materialised SQL pipeline per rule (14.5 s of a 300-person train). Rules may call Splink's JVM functions:
    call it inside splink_backend.

    The pairs are counted as ids, and the id and the columns the rules read are cached for the count: every
    rule's join reads the records twice, and otherwise each read went back to the table. At 100k people (bench
    lake, warm session) 18.0 s that way against 9.7 s this way.
    """
    rule_sqls = tuple(rule_sql(rule) for rule in rules)
    records = (
        with_unique_id(model_input(people_df), (SOURCE_DATASET, UNIQUE_ID))
        .select(*rule_keys(rule_sqls))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        by_rule = {
            row[MATCH_KEY]: row["count"]
            for row in blocked_pair_ids(records, rule_sqls).groupBy(MATCH_KEY).count().collect()
        }
    finally:
        records.unpersist()
    counts, cumulative = [], 0
    for key, sql in enumerate(rule_sqls):
        marginal = by_rule.get(str(key), 0)
        cumulative += marginal
        counts.append({"rule": sql, "marginal_pairs": marginal, "cumulative_pairs": cumulative})
    return counts
