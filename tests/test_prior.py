"""The prior's rules' recall, estimated from the trained model instead of assumed."""

from __future__ import annotations

import pytest

from linkage.link import prior
from linkage.link.fields import rule_sql
from linkage.link.settings import COMPARISONS, PRIOR_DETERMINISTIC_RULES


def splink_comparisons(m_by_label: dict[str, float] | None = None) -> list[dict]:
    """The project's comparisons as Splink dicts (Spark dialect), with m set on the levels named by label."""
    m_by_label = m_by_label or {}
    comparisons = [c.get_comparison("spark").as_dict() for c in COMPARISONS]
    for comparison in comparisons:
        for level in comparison["comparison_levels"]:
            label = f"{comparison['output_column_name']}:{level.get('label_for_charts', '')}"
            if label in m_by_label:
                level["m_probability"] = m_by_label[label]
    return comparisons


def labels_implying_equal(column: str) -> list[str]:
    return [
        f"{c['output_column_name']}:{level.get('label_for_charts', '')}"
        for c in splink_comparisons()
        for level in c["comparison_levels"]
        if not level.get("is_null_level") and prior.level_implies_equal(level["sql_condition"], column)
    ]


def test_only_levels_that_require_the_column_equal_imply_it():
    assert labels_implying_equal("forename_std") == ["forename:Exact match on forename_std"]
    # Both exact levels of the date (1 January apart), not day/month swapped, within a month or year only.
    assert labels_implying_equal("date_of_birth") == ["date_of_birth:exact, 1 January", "date_of_birth:exact"]
    # A shared number that looks like a relative's is still an equal number: the rule finds that pair too.
    assert len(labels_implying_equal("nhs_number")) == 2
    # Year of birth is equal in the "year only" level, but also whenever the dates are: no exact-match level tells
    # how often a match has it equal, so the model cannot estimate a rule on it (m_equal below).
    assert labels_implying_equal("year_of_birth") == ["date_of_birth:year only, equal"]


def test_m_equal_sums_the_implying_levels_and_is_unknown_when_none_was_estimated():
    comparisons = splink_comparisons(
        {
            "date_of_birth:exact, 1 January": 0.01,
            "date_of_birth:exact": 0.9,
            "date_of_birth:within a month": 0.05,
        }
    )
    assert prior.m_equal(comparisons, "date_of_birth") == pytest.approx(0.91)
    for comparison in comparisons:
        for level in comparison["comparison_levels"]:
            level.pop("m_probability", None)
    assert prior.m_equal(comparisons, "date_of_birth") is None
    assert prior.m_equal(comparisons, "year_of_birth") is None


def test_union_recall_counts_a_shared_column_once():
    agree = {"a": 0.9, "b": 0.8, "c": 0.5}
    # P(a and (b or c)) = 0.9 * (1 - 0.2 * 0.5)
    assert prior.union_recall([frozenset("ab"), frozenset("ac")], agree) == pytest.approx(0.81)
    assert prior.union_recall([frozenset("ab")], agree) == pytest.approx(0.72)


NAMES_AND_DATE = [rule_sql(PRIOR_DETERMINISTIC_RULES[1])]


def names_and_date_model(forename: float, surname: float, date: float) -> dict:
    """A model whose exact forename, surname and date-of-birth levels have these m probabilities, prior 1e-4."""
    comparisons = splink_comparisons(
        {
            "forename:Exact match on forename_std": forename,
            "surname:Exact match on surname_std": surname,
            "date_of_birth:exact": date,
        }
    )
    return {"comparisons": comparisons, "probability_two_random_records_match": 1e-4}


def test_the_prior_is_divided_by_the_estimated_recall_instead_of_the_assumed_one():
    model = names_and_date_model(0.6, 0.5, 0.8)
    present = {"forename_std": 1.0, "surname_std": 1.0, "date_of_birth": 0.5}
    adjusted, recall = prior.with_estimated_prior(model, NAMES_AND_DATE, present, assumed_recall=0.8)
    # 0.6 * 0.5 * (0.8 * 0.5^2): both records of a match must hold a date of birth.
    assert recall.recall == pytest.approx(0.06) and recall.source == "estimated"
    assert adjusted["probability_two_random_records_match"] == pytest.approx(1e-4 * 0.8 / 0.06)
    assert model["probability_two_random_records_match"] == 1e-4  # the trained model is not changed in place


def test_the_assumed_recall_stands_when_the_model_cannot_estimate_it():
    model = {"comparisons": splink_comparisons(), "probability_two_random_records_match": 1e-4}
    by_year = ["(l.`forename_std` = r.`forename_std`) AND (l.`year_of_birth` = r.`year_of_birth`)"]
    kept, recall = prior.with_estimated_prior(model, by_year, {"forename_std": 1.0}, assumed_recall=0.8)
    assert kept is model and recall.source == "configured" and recall.recall == 0.8
    assert "no equality level" in recall.describe()
    # Rules that would find almost no match are not near-certain evidence: the estimate is not used.
    rare_model = names_and_date_model(0.01, 0.01, 0.9)
    present = {"forename_std": 1.0, "surname_std": 1.0, "date_of_birth": 1.0}
    kept, recall = prior.with_estimated_prior(rare_model, NAMES_AND_DATE, present, assumed_recall=0.8)
    assert kept is rare_model and recall.source == "configured" and "below" in recall.reason
