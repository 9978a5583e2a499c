"""The prior (probability that two random records match) with its rules' recall estimated from the trained model.

Splink estimates the prior as the pairs that near-certain rules find divided by all pairs and by the rules' recall,
which the user assumes. A fixed recall suits one kind of data: on this project's own generator the rules (NHS number
and date of birth, or forename, surname and date of birth all equal) find 0.89 of the true pairs, on FEBRL3 (names
and date of birth only, three or more errors per duplicate) 0.29, so a fixed 0.8 put FEBRL3's prior 2.7x too low and
every probability there too low with it. The trained model already says how often a match agrees on each column:
the m probabilities of the levels that imply the column is equal. With the share of records holding the column, and
the columns taken as independent given a match (as the model itself takes them), that is the rules' recall.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import expressions as exp

from linkage.link.fields import rule_columns

# Below this the rules are no longer near-certain evidence of anything, and the estimate is not trusted: the
# configured recall is used instead (and the run says so).
MIN_ESTIMATED_RECALL = 0.05


def _conjuncts(condition: exp.Expression) -> list[exp.Expression]:
    if isinstance(condition, exp.And):
        return [*_conjuncts(condition.left), *_conjuncts(condition.right)]
    if isinstance(condition, exp.Paren):
        return _conjuncts(condition.this)
    return [condition]


def _top_conjuncts(sql_condition: str) -> list[exp.Expression]:
    """The condition's top-level AND parts (none when it does not parse)."""
    try:
        return _conjuncts(sqlglot.parse_one(sql_condition, read="spark"))
    except sqlglot.errors.ParseError:
        return []


def _is_column_equality(part: exp.Expression, column: str) -> bool:
    return (
        isinstance(part, exp.EQ)
        and all(isinstance(side, exp.Column) for side in (part.left, part.right))
        and {part.left.name, part.right.name} == {f"{column}_l", f"{column}_r"}
    )


def level_implies_equal(sql_condition: str, column: str) -> bool:
    """Whether a comparison level's condition holds only when `column_l = column_r` (a top-level conjunct)."""
    return any(_is_column_equality(part, column) for part in _top_conjuncts(sql_condition))


def is_equality_level(sql_condition: str, column: str) -> bool:
    """Whether the condition is `column_l = column_r` and nothing else (an exact-match level)."""
    parts = _top_conjuncts(sql_condition)
    return len(parts) == 1 and _is_column_equality(parts[0], column)


def m_equal(comparisons: Sequence[dict], column: str) -> float | None:
    """P(column_l = column_r | match, both present), or None when the model cannot tell.

    Told by a comparison with an exact-match level on the column: Splink gives a pair the first level whose
    condition holds, so an equal pair falls in that level or in an earlier one that implies equality (the date of
    birth's 1 January level, the NHS number's relative's-number level); their m probabilities summed. A column
    equal only as part of a wider condition (year of birth, equal when the dates are) is not told.
    """
    for comparison in comparisons:
        levels = [level for level in comparison["comparison_levels"] if not level.get("is_null_level")]
        exact = [i for i, level in enumerate(levels) if is_equality_level(level["sql_condition"], column)]
        if not exact:
            continue
        implying = [
            level.get("m_probability")
            for level in levels[: exact[0] + 1]
            if level_implies_equal(level["sql_condition"], column)
        ]
        if levels[exact[0]].get("m_probability") is None:
            return None
        return min(1.0, sum(m or 0.0 for m in implying))
    return None


def union_recall(rules: Sequence[frozenset[str]], agree: Mapping[str, float]) -> float:
    """P(at least one rule holds | match) when each column agrees independently with probability agree[c]
    (inclusion-exclusion over the rules: rules sharing a column are not independent of each other)."""
    total = 0.0
    for size in range(1, len(rules) + 1):
        for chosen in itertools.combinations(rules, size):
            both = 1.0
            for column in frozenset().union(*chosen):
                both *= agree[column]
            total += (-1) ** (size + 1) * both
    return total


@dataclass(frozen=True)
class PriorRecall:
    """The recall the prior was divided by, and where it came from (for the run's parameters and output)."""

    recall: float
    source: str  # "estimated" or "configured"
    reason: str = ""

    def describe(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.recall:.3f}, {self.source}{why}"


def estimated_recall(
    comparisons: Sequence[dict], rule_sqls: Sequence[str], present_share: Mapping[str, float]
) -> float | None:
    """The prior rules' recall from the trained comparisons and the share of records holding each column; None
    when some column a rule reads has no comparison level that tells its equality."""
    rules = [rule_columns(sql) for sql in rule_sqls]
    agree: dict[str, float] = {}
    for column in frozenset().union(*rules):
        m = m_equal(comparisons, column)
        if m is None:
            return None
        # Both records of a match must hold the column for a rule on it to find the pair.
        agree[column] = m * present_share.get(column, 0.0) ** 2
    return union_recall(rules, agree)


def with_estimated_prior(
    model: dict, rule_sqls: Sequence[str], present_share: Mapping[str, float], assumed_recall: float
) -> tuple[dict, PriorRecall]:
    """The model with its prior (estimated with `assumed_recall`) divided again by the recall the model estimates.

    Splink's estimate is (pairs the rules find) / recall / (all pairs), so rescaling by assumed/estimated is the
    estimate Splink would have made with the estimated recall, without counting the pairs again.
    """
    recall = estimated_recall(model["comparisons"], rule_sqls, present_share)
    if recall is None:
        return model, PriorRecall(assumed_recall, "configured", "a prior rule column has no equality level")
    if recall < MIN_ESTIMATED_RECALL:
        return model, PriorRecall(
            assumed_recall, "configured", f"estimated recall {recall:.3f} below {MIN_ESTIMATED_RECALL}"
        )
    prior = model["probability_two_random_records_match"] * assumed_recall / recall
    # A probability: rules finding nearly every pair in a tiny extract must not push it to 1.
    prior = min(prior, 1.0 - 1e-9)
    return {**model, "probability_two_random_records_match": prior}, PriorRecall(recall, "estimated")
