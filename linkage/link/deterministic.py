"""Deterministic pass: records sharing a valid NHS number link without scoring when their dates of birth agree.

A shared NHS number with a disagreeing date of birth or sex is more often a family member's
number or a keying error than the same person, so such pairs are flagged for QA, not linked.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

PAIR_KEYS = ("source_dataset_l", "source_record_id_l", "source_dataset_r", "source_record_id_r")
# PAIR_KEYS in the order to join on: the record ids first (see linkage.schemas.RECORD_JOIN_KEY).
PAIR_JOIN_KEYS = ("source_record_id_l", "source_record_id_r", "source_dataset_l", "source_dataset_r")


def dob_agrees(left: Column, right: Column) -> Column:
    """Same date, or the same date with day and month swapped; null when either is missing."""
    swapped = (
        (F.year(left) == F.year(right))
        & (F.dayofmonth(left) == F.month(right))
        & (F.month(left) == F.dayofmonth(right))
    )
    return (left == right) | swapped


def sex_conflicts(left: Column, right: Column) -> Column:
    """Both sexes known and different (unknown never conflicts)."""
    return F.coalesce(left != right, F.lit(False))


def nhs_number_pairs(people_df: DataFrame) -> DataFrame:
    """Every pair of records sharing a valid NHS number, left record ordered before right, with agreement flags."""
    columns = ("source_dataset", "source_record_id", "nhs_number", "date_of_birth", "sex")
    holders = people_df.where(F.col("nhs_number").isNotNull()).select(*columns)
    left = holders.select(*[F.col(c).alias(f"{c}_l") for c in columns])
    right = holders.select(*[F.col(c).alias(f"{c}_r") for c in columns])
    ordered = F.struct("source_dataset_l", "source_record_id_l") < F.struct(
        "source_dataset_r", "source_record_id_r"
    )
    pairs = left.join(right, (F.col("nhs_number_l") == F.col("nhs_number_r")) & ordered, how="inner")
    dob_ok = F.coalesce(dob_agrees(F.col("date_of_birth_l"), F.col("date_of_birth_r")), F.lit(False))
    dob_conflict = F.coalesce(~dob_agrees(F.col("date_of_birth_l"), F.col("date_of_birth_r")), F.lit(False))
    sex_bad = sex_conflicts(F.col("sex_l"), F.col("sex_r"))
    return pairs.select(
        *PAIR_KEYS,
        (dob_ok & ~sex_bad).alias("is_linked"),
        (dob_conflict | sex_bad).alias("is_conflict"),
    )


def deterministic_links(pairs_df: DataFrame) -> DataFrame:
    """The pairs the NHS-number pass links."""
    return pairs_df.where("is_linked").select(*PAIR_KEYS)


def nhs_number_conflicts(pairs_df: DataFrame) -> DataFrame:
    """Shared NHS number but a disagreeing date of birth or sex: for QA, never forced together."""
    return pairs_df.where("is_conflict").select(*PAIR_KEYS)
