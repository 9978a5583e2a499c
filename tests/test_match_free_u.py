"""u freed of the matches in its random sample (linkage.link.match_free_u), on hand-built model JSON."""

from __future__ import annotations

import math

import pytest

from linkage.link.match_free_u import match_free_u, u_floor, with_match_free_u


def level(sql: str, m: float | None, u: float | None, **flags) -> dict:
    return {"sql_condition": sql, "label_for_charts": sql, "m_probability": m, "u_probability": u, **flags}


def model(prior: float) -> dict:
    return {
        "probability_two_random_records_match": prior,
        "comparisons": [
            {
                "output_column_name": "date_of_birth",
                "comparison_levels": [
                    level("dob_l IS NULL OR dob_r IS NULL", None, None, is_null_level=True),
                    level("dob_l = dob_r", 0.93, 5.1e-4),
                    level("months_between(dob_l, dob_r) < 1", 0.006, None),  # u not trained
                    level("ELSE", 0.064, 0.9994),
                ],
            },
            {
                "output_column_name": "family",
                "comparison_levels": [
                    level(
                        "forename_l <> forename_r",
                        1 / 8192,
                        1.0,
                        fix_m_probability=True,
                        fix_u_probability=True,
                    ),
                    level("ELSE", 1.0, 1.0, fix_m_probability=True, fix_u_probability=True),
                ],
            },
        ],
    }


def test_the_sampled_share_is_split_into_matches_and_non_matches():
    # Sampled share = prior * m + (1 - prior) * u: with prior 0.01, m 0.9 and u 0.001 the sample shows 0.00999.
    sampled = 0.01 * 0.9 + 0.99 * 0.001
    assert match_free_u(sampled, 0.9, 0.01, floor=1e-9) == pytest.approx(0.001, rel=1e-12)


def test_u_never_falls_below_one_pair_of_the_sample():
    # Every sampled agreement explained by matches: the sample cannot tell u from zero.
    assert match_free_u(2e-5, 0.95, 3e-5, floor=1e-6) == 1e-6
    assert u_floor(records=5_000, max_pairs=5e6) == pytest.approx(1 / 5e6)
    assert u_floor(records=300, max_pairs=5e6) == pytest.approx(1 / (300 * 299 / 2))
    assert u_floor(records=1, max_pairs=5e6) == 1.0


def test_trained_levels_change_and_the_others_are_kept():
    before = model(prior=5.1e-4)
    after, changes = with_match_free_u(before, floor=2e-7)
    dob = after["comparisons"][0]["comparison_levels"]
    expected = (5.1e-4 - 5.1e-4 * 0.93) / (1 - 5.1e-4)
    assert dob[1]["u_probability"] == pytest.approx(expected, rel=1e-12)
    assert dob[0]["u_probability"] is None and dob[2]["u_probability"] is None
    assert dob[3]["u_probability"] == pytest.approx((0.9994 - 5.1e-4 * 0.064) / (1 - 5.1e-4), rel=1e-12)
    assert after["comparisons"][1] == before["comparisons"][1]  # fixed corrections untouched
    assert before["comparisons"][0]["comparison_levels"][1]["u_probability"] == 5.1e-4  # input not mutated
    # Only the exact level moved by a reportable amount: the ELSE level's u barely changes.
    assert [(c.comparison, c.level) for c in changes] == [("date_of_birth", "dob_l = dob_r")]
    assert changes[0].bits == pytest.approx(math.log2(5.1e-4 / expected))
    assert changes[0].bits > 3.8


def test_a_sparse_prior_leaves_u_as_sampled():
    # At a national scale's prior (1e-8) the sample holds almost no matches: nothing to take out.
    after, changes = with_match_free_u(model(prior=1e-8), floor=2e-7)
    assert after["comparisons"][0]["comparison_levels"][1]["u_probability"] == pytest.approx(5.1e-4, rel=1e-4)
    assert changes == []
