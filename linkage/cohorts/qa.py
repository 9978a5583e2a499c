"""Cohort QA against the synthetic truth: person-level precision and recall per truth condition.

A cohort row names a person_id; the truth names true persons. The bridge runs through the
restricted zone: truth.csv (source record -> true person), restricted/person_spine (source record
-> person_key) and the release key (person_key -> person_id). A person_key whose records belong
to several true persons maps to the one holding most of them. Only the two ratios leave this module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from linkage.cohorts.declaration import TruthCheck
from linkage.config import AppConfig
from linkage.errors import InputError
from linkage.lake import read_table, table_exists
from linkage.schemas import PERSON_SPINE, RECORD_JOIN_KEY

PersonIdMapper = Callable[[DataFrame], DataFrame]  # frame with person_key -> (person_key, person_id)


def truth_configured(spark: SparkSession, config: AppConfig) -> bool:
    paths = config.paths
    return bool(paths.truth and paths.truth_conditions) and table_exists(spark, paths.lake, PERSON_SPINE)


def release_key_mapper(config: AppConfig, environ: Mapping[str, str]) -> PersonIdMapper:
    """person_key -> person_id under the release key, the same function pseudonymise uses."""
    from linkage.pseudonymise.keys import load_release_key
    from linkage.pseudonymise.tokens import person_id_for

    key = load_release_key(config, environ, say=lambda _: None)
    return lambda person_key_df: person_id_for(person_key_df, key)


def read_csv(spark: SparkSession, path: str, columns: list[str]) -> DataFrame:
    """The named columns of a truth CSV, as strings (the files carry other columns too)."""
    df = spark.read.csv(path, header=True)
    missing = [name for name in columns if name not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    return df.select(*columns)


def truth_person_map(spark: SparkSession, config: AppConfig, to_person_id: PersonIdMapper) -> DataFrame:
    """(person_id, true_person_id): each linked person's majority true person."""
    truth_df = read_csv(spark, config.paths.truth, ["source_dataset", "source_record_id", "true_person_id"])
    spine_df = read_table(spark, config.paths.lake, PERSON_SPINE).select(
        "source_dataset", "source_record_id", "person_key"
    )
    votes_df = (
        spine_df.join(truth_df, list(RECORD_JOIN_KEY), how="inner")
        .groupBy("person_key", "true_person_id")
        .agg(F.count(F.lit(1)).alias("records"))
    )
    # Majority; ties broken by true_person_id so the map is deterministic.
    ranked = Window.partitionBy("person_key").orderBy(F.col("records").desc(), F.col("true_person_id"))
    majority_df = (
        votes_df.withColumn("rank", F.row_number().over(ranked))
        .where("rank = 1")
        .select("person_key", "true_person_id")
    )
    return (
        to_person_id(majority_df.select("person_key"))
        .join(majority_df, "person_key", how="inner")
        .select("person_id", "true_person_id")
    )


def truth_conditions(spark: SparkSession, config: AppConfig) -> DataFrame:
    df = read_csv(spark, config.paths.truth_conditions, ["true_person_id", "condition", "date"])
    parsed = F.coalesce(
        F.try_to_timestamp("date", F.lit("yyyy-MM-dd")), F.try_to_timestamp("date", F.lit("dd/MM/yyyy"))
    )
    return df.select("true_person_id", "condition", parsed.cast("date").alias("date"))


def precision_recall(predicted_df: DataFrame, actual_df: DataFrame) -> dict[str, float | None]:
    """Over distinct `true_person_id` sets; None when a denominator is zero. Only ratios are returned."""
    predicted_df = predicted_df.select("true_person_id").distinct().withColumn("is_predicted", F.lit(True))
    actual_df = actual_df.select("true_person_id").distinct().withColumn("is_actual", F.lit(True))
    row = (
        predicted_df.join(actual_df, "true_person_id", how="full")
        .agg(
            F.count(F.when(F.col("is_predicted"), 1)).alias("predicted"),
            F.count(F.when(F.col("is_actual"), 1)).alias("actual"),
            F.count(F.when(F.col("is_predicted") & F.col("is_actual"), 1)).alias("both"),
        )
        .first()
    )
    return {
        "precision": row.both / row.predicted if row.predicted else None,
        "recall": row.both / row.actual if row.actual else None,
    }


def check_cohort(
    cohort_df: DataFrame,
    truth_map_df: DataFrame,
    conditions_df: DataFrame,
    check: TruthCheck,
    index_date: date,
) -> dict[str, float | None]:
    """Precision and recall of the cohort (or of one of its flags) against one truth condition."""
    mapped_df = cohort_df.join(truth_map_df, "person_id", how="left").withColumn(
        # A person_id with no truth (should not happen) is a false positive, never silently dropped.
        "true_person_id",
        F.coalesce("true_person_id", F.concat(F.lit("unmapped:"), F.col("person_id"))),
    )
    predicted_df = mapped_df.where(F.col(check.variable)) if check.variable else mapped_df
    actual_df = conditions_df.where(
        (F.col("condition") == check.condition)
        & (F.col("date").isNull() | (F.col("date") <= F.lit(index_date)))
    )
    if check.population_only:
        actual_df = actual_df.join(
            mapped_df.select("true_person_id").distinct(), "true_person_id", how="inner"
        )
    return precision_recall(predicted_df, actual_df)
