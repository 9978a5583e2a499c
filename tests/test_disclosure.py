"""The disclosure policy: small counts hidden, the rest rounded, no hidden cell recoverable from its breakdown."""

import pytest
from chispa import assert_df_equality

from linkage.cohorts.disclosure import apply_disclosure_control, with_totals
from linkage.config import DisclosureConfig

POLICY = DisclosureConfig()  # suppress 1..7, round to 5
SCHEMA = "breakdown string, category string, count long"
OUT_SCHEMA = "breakdown string, category string, count long, is_suppressed boolean"


def controlled(spark, rows, policy=POLICY):
    df = spark.createDataFrame(rows, SCHEMA)
    return {
        (r.breakdown, r.category): (r["count"], r.is_suppressed)
        for r in apply_disclosure_control(df, policy).collect()
    }


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (0, 0),  # zero reveals no one: shown
        (1, None),  # smallest suppressed count
        (7, None),  # largest suppressed count
        (8, 10),  # 8/5 = 1.6 -> 2 -> 10
        (12, 10),  # 2.4 -> 2
        (13, 15),  # 2.6 -> 3
        (None, 0),  # a missing count is no one
    ],
)
def test_single_cell_is_suppressed_or_rounded(spark, raw, shown):
    # One cell per breakdown: no secondary suppression can apply.
    assert controlled(spark, [("sex", "F", raw)])[("sex", "F")][0] == shown


def test_one_hidden_cell_hides_next_smallest_nonzero_cell_not_the_total(spark):
    rows = [("sex", "F", 5), ("sex", "M", 40), ("sex", "U", 12), ("sex", "X", 0), ("sex", "Total", 57)]
    result = controlled(spark, rows)
    # 5 is primary; the zero cell and the total are never chosen, so U (12) is the second hidden cell.
    assert result == {
        ("sex", "F"): (None, True),
        ("sex", "U"): (None, True),
        ("sex", "M"): (40, False),
        ("sex", "X"): (0, False),
        ("sex", "Total"): (55, False),
    }


def test_two_hidden_cells_need_no_secondary_suppression(spark):
    result = controlled(spark, [("age", "0-4", 3), ("age", "5-10", 2), ("age", "11-15", 30)])
    assert result[("age", "11-15")] == (30, False)
    assert result[("age", "0-4")] == result[("age", "5-10")] == (None, True)


def test_secondary_suppression_stays_within_its_breakdown(spark):
    result = controlled(spark, [("sex", "F", 4), ("sex", "M", 20), ("age", "0-4", 9), ("age", "5-10", 11)])
    assert result == {
        ("sex", "F"): (None, True),
        ("sex", "M"): (None, True),
        ("age", "0-4"): (10, False),
        ("age", "5-10"): (10, False),
    }


def test_ties_for_next_smallest_break_by_category_name(spark):
    result = controlled(spark, [("g", "a", 2), ("g", "c", 9), ("g", "b", 9)])
    assert result[("g", "b")] == (None, True)
    assert result[("g", "c")] == (10, False)


def test_totals_are_summed_from_unrounded_counts_then_rounded(spark):
    # 8 + 8 + 8 = 24 -> 25; summing the rounded cells would give 30.
    df = spark.createDataFrame([("sex", "F", 8), ("sex", "M", 8), ("sex", "U", 8)], SCHEMA)
    result = apply_disclosure_control(with_totals(df), POLICY)
    expected = spark.createDataFrame(
        [
            ("sex", "F", 10, False),
            ("sex", "M", 10, False),
            ("sex", "U", 10, False),
            ("sex", "Total", 25, False),
        ],
        OUT_SCHEMA,
    )
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


def test_small_total_is_itself_suppressed(spark):
    df = spark.createDataFrame([("sex", "F", 3), ("sex", "M", 0)], SCHEMA)
    result = {
        r.category: (r["count"], r.is_suppressed)
        for r in apply_disclosure_control(with_totals(df), POLICY).collect()
    }
    assert result == {"F": (None, True), "M": (0, False), "Total": (None, True)}


def test_policy_numbers_come_from_config(spark):
    policy = DisclosureConfig(suppress_min=1, suppress_max=10, rounding_base=10)
    result = controlled(spark, [("g", "a", 10), ("g", "b", 11), ("g", "c", 14), ("g", "d", 15)], policy)
    assert result == {
        ("g", "a"): (None, True),
        ("g", "b"): (None, True),
        ("g", "c"): (10, False),
        ("g", "d"): (20, False),
    }


def test_suppression_can_be_switched_off(spark):
    policy = DisclosureConfig(suppress_min=1, suppress_max=0, rounding_base=1)
    assert controlled(spark, [("g", "a", 1), ("g", "b", 3)], policy) == {
        ("g", "a"): (1, False),
        ("g", "b"): (3, False),
    }
