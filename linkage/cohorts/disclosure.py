"""The one disclosure-control policy every shared count passes through.

Primary suppression hides small counts (by default 1 to 7; zero is shown: it reveals no one),
the rest are rounded to a base (default 5). Secondary suppression then stops a hidden cell
being recovered by subtraction: a breakdown with exactly one hidden cell also hides its next
smallest non-zero cell. Totals are computed by the caller from unrounded counts (see
`with_totals`) and rounded like any other cell, so no total is a sum of rounded numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from linkage.config import DisclosureConfig

TOTAL_CATEGORY = "Total"


def is_small_count(count: Column, policy: DisclosureConfig) -> Column:
    """True for counts the policy suppresses outright (suppress_min..suppress_max; never zero)."""
    if policy.suppress_max == 0:
        return F.lit(False)
    return count.between(policy.suppress_min, policy.suppress_max)


def rounded_count(count: Column, policy: DisclosureConfig) -> Column:
    """Count rounded half up to the nearest multiple of the rounding base."""
    base = policy.rounding_base
    return (F.round(count.cast("double") / base, 0) * base).cast("long")


def with_totals(
    counts_df: DataFrame,
    group_cols: Sequence[str] = ("breakdown",),
    category_col: str = "category",
    count_col: str = "count",
    total_category: str = TOTAL_CATEGORY,
) -> DataFrame:
    """Append one total row per group, summed from the unrounded counts."""
    totals_df = (
        counts_df.groupBy(*group_cols)
        .agg(F.sum(count_col).cast("long").alias(count_col))
        .withColumn(category_col, F.lit(total_category))
    )
    return counts_df.unionByName(totals_df.select(*counts_df.columns))


def apply_disclosure_control(
    counts_df: DataFrame,
    policy: DisclosureConfig,
    group_cols: Sequence[str] = ("breakdown",),
    category_col: str = "category",
    count_col: str = "count",
    total_category: str = TOTAL_CATEGORY,
) -> DataFrame:
    """Suppress (null) and round `count_col`; adds `is_suppressed`. Rows named `total_category` are totals.

    Secondary suppression works within each group (one breakdown): a total is never chosen as
    the second cell, because hiding a total does not stop the others revealing the hidden cell.
    """
    counts_df = counts_df.withColumn(count_col, F.coalesce(F.col(count_col).cast("long"), F.lit(0)))
    count = F.col(count_col)
    is_total = F.col(category_col) == F.lit(total_category)
    is_primary = is_small_count(count, policy)
    group = Window.partitionBy(*group_cols)
    # Candidates for the second hidden cell: shown, non-zero, not a total; smallest first, ties by name.
    is_candidate = ~is_primary & ~is_total & (count > 0)
    candidate_order = Window.partitionBy(*group_cols, is_candidate).orderBy(
        count.asc(), F.col(category_col).asc()
    )
    marked_df = (
        counts_df.withColumn("_is_primary", is_primary)
        .withColumn("_primary_cells", F.sum(F.when(is_primary & ~is_total, 1).otherwise(0)).over(group))
        .withColumn("_candidate_rank", F.when(is_candidate, F.row_number().over(candidate_order)))
    )
    is_secondary = (F.col("_primary_cells") == 1) & F.coalesce(F.col("_candidate_rank") == 1, F.lit(False))
    is_suppressed = F.col("_is_primary") | is_secondary
    return (
        marked_df.withColumn(
            count_col, F.when(is_suppressed, F.lit(None).cast("long")).otherwise(rounded_count(count, policy))
        )
        .withColumn("is_suppressed", is_suppressed)
        .drop("_is_primary", "_primary_cells", "_candidate_rank")
    )
