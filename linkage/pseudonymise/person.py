"""The analysts' person table: one row per person_id, generalised attributes chosen by one stated rule.

Where a person's records disagree (two dates of birth, two sexes), the value kept is the most
common non-null one; ties go to the source first in pseudonymise.source_priority (by default GP:
the registration record is the most curated), then to the record with the most recent activity, then to the
smallest value so the choice never depends on row order. The postcode district instead follows
the most recent activity first (people move; the contract asks for the most recent postcode).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from linkage import sources
from linkage.demographics import PERSON_AGE_BAND_STARTS, age_at, age_band, birth_date, known, or_unknown
from linkage.schemas import RECORD_JOIN_KEY

NO_ACTIVITY_RANK = 2**31 - 1  # sorts after every -unix_date() of a real date

# Attributes chosen per person by the most-common rule, and the one chosen by recency.
MOST_COMMON_ATTRIBUTES = ("date_of_birth", "year_of_birth", "sex", "ethnic_group", "imd_decile")
MOST_RECENT_ATTRIBUTES = ("postcode_district",)


def source_rank(source: Column, priority: Sequence[str]) -> Column:
    """Position of the source in `priority` (0 = preferred); unknown sources rank last."""
    ranks = [F.when(source == name, F.lit(rank)) for rank, name in enumerate(priority)]
    return F.coalesce(*ranks, F.lit(len(priority)))


def record_activity_span(activity_dfs: Mapping[str, DataFrame]) -> DataFrame:
    """(source_dataset, source_record_id, first_activity_date, last_activity_date) of each record with activity."""
    dated = [
        df.select("source_dataset", "source_record_id", F.col(column).alias("activity_date"))
        for source, df in activity_dfs.items()
        for column in sources.get(source).activity_date_columns  # when something happened to the person
    ]
    return (
        reduce(DataFrame.unionByName, dated)
        .where(F.col("activity_date").isNotNull())
        .groupBy("source_dataset", "source_record_id")
        .agg(
            F.min("activity_date").alias("first_activity_date"),
            F.max("activity_date").alias("last_activity_date"),
        )
    )


def person_records(
    record_person_df: DataFrame,
    people_df: DataFrame,
    activity_span_df: DataFrame,
    source_priority: Sequence[str],
) -> DataFrame:
    """One row per source record with its person_id, source rank, activity span and the attributes to choose from."""
    return (
        record_person_df.join(people_df, list(RECORD_JOIN_KEY), how="left")
        .join(activity_span_df, list(RECORD_JOIN_KEY), how="left")
        .select(
            "person_id",
            "source_dataset",
            source_rank(F.col("source_dataset"), source_priority).alias("source_rank"),
            "first_activity_date",
            "last_activity_date",
            "date_of_birth",
            "year_of_birth",
            "sex",
            # 'Unknown' is a missing value for the choice: a known group on any record wins over it.
            known(F.col("ethnic_group")).alias("ethnic_group"),
            "imd_decile",
            "postcode_district",
        )
    )


def preferred_value(records: Column, name: str, most_recent_first: bool = False) -> Column:
    """One attribute's value chosen by the module's rule from a person's array of record structs; null if none.

    Each record struct holds source_rank, last_activity_date and the attribute. Done with array functions
    on the person's few records, so the whole person table needs one shuffle, not one per attribute.
    """
    values = F.array_distinct(
        F.filter(F.transform(records, lambda record: record[name]), lambda v: v.isNotNull())
    )

    def ranking(value: Column) -> Column:
        same = F.filter(records, lambda record: record[name] == value)
        fewer_first = -F.size(same)
        best_source_rank = F.array_min(F.transform(same, lambda record: record["source_rank"]))
        latest = F.array_max(F.transform(same, lambda record: record["last_activity_date"]))  # nulls skipped
        # Ascending sort: more recent is smaller; a value seen only on records without activity sorts last.
        older_first = F.coalesce(-F.unix_date(latest), F.lit(NO_ACTIVITY_RANK))
        keys = (
            [older_first, best_source_rank, fewer_first]
            if most_recent_first
            else [fewer_first, best_source_rank, older_first]
        )
        return F.struct(*[key.alias(f"k{i}") for i, key in enumerate(keys)], value.alias("value"))

    return F.try_element_at(F.array_sort(F.transform(values, ranking)), F.lit(1))["value"]


def build_person(records_df: DataFrame, reference_date: date, run_id: str) -> DataFrame:
    """The PERSON table from person_records(): one row per person_id."""
    attributes = [*MOST_COMMON_ATTRIBUTES, *MOST_RECENT_ATTRIBUTES]
    person_df = records_df.groupBy("person_id").agg(
        *[F.bool_or(F.col("source_dataset") == source).alias(f"in_{source}") for source in sources.names()],
        F.min("first_activity_date").alias("first_activity_date"),
        F.max("last_activity_date").alias("last_activity_date"),
        F.collect_list(F.struct("source_rank", "last_activity_date", *attributes)).alias("records"),
    )
    chosen = {name: preferred_value(F.col("records"), name) for name in MOST_COMMON_ATTRIBUTES}
    chosen |= {
        name: preferred_value(F.col("records"), name, most_recent_first=True)
        for name in MOST_RECENT_ATTRIBUTES
    }
    # Choose once in its own projection: the derived columns below then read plain columns.
    chosen_df = person_df.select(
        *[c for c in person_df.columns if c != "records"],
        *[value.alias(name) for name, value in chosen.items()],
    )
    # With only a year of birth, the birth is taken at mid-year (see demographics.birth_date).
    birth = F.coalesce(F.col("date_of_birth"), birth_date(F.col("year_of_birth")))
    return chosen_df.select(
        "person_id",
        F.coalesce(F.year("date_of_birth"), F.col("year_of_birth")).alias("year_of_birth"),
        F.month("date_of_birth").alias("month_of_birth"),
        age_band(age_at(birth, F.lit(reference_date)), PERSON_AGE_BAND_STARTS).alias("age_band"),
        "sex",
        or_unknown(F.col("ethnic_group")).alias("ethnic_group"),
        "imd_decile",
        "postcode_district",
        *[F.col(f"in_{source}") for source in sources.names()],
        "first_activity_date",
        "last_activity_date",
        F.lit(run_id).alias("run_id"),
    )


def persons_with_conflicts(records_df: DataFrame) -> dict[str, int]:
    """How many persons' records hold more than one distinct value per attribute (QA aggregates only)."""
    names = [*MOST_COMMON_ATTRIBUTES, *MOST_RECENT_ATTRIBUTES]
    # More than one distinct non-null value is a minimum and a maximum that differ. count_distinct of several
    # columns makes Spark copy every row once per column (an Expand) before grouping: at 1M people 11-14 s.
    bounds_df = records_df.groupBy("person_id").agg(
        *[agg(name).alias(f"{name}__{agg.__name__}") for name in names for agg in (F.min, F.max)]
    )
    totals = bounds_df.agg(
        *[F.count_if(F.col(f"{name}__min") != F.col(f"{name}__max")).alias(name) for name in names]
    ).first()
    return {name: int(totals[name] or 0) for name in names}
