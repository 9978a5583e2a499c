"""Fit the model to the identifiers a site actually sends.

A site may send no postcodes, no NHS numbers, or map a field to "" for one source. A comparison, blocking
rule, EM session or prior rule that reads a column no record holds sees no data: an EM session on it fails
("resulted in no record pairs"), and a comparison on it is never estimated. So `train` and `link` first count
the populated values of each model column and keep only what can see data, and say what they dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from splink import block_on

from linkage.link.scorer import rule_columns_read
from linkage.link.settings import (
    BLOCKING_RULES_FOR_PREDICTION,
    COMPARISONS,
    CORRECTIONS,
    EM_BLOCKING_RULES,
    MODEL_COLUMNS,
    PRIOR_DETERMINISTIC_RULES,
    RECORD_SOURCE,
    SOURCE_DATASET,
    UNIQUE_ID,
)

# A column needs values on at least two records before any pair can compare them.
MIN_POPULATED = 2

# The column each comparison cannot do without: when no record holds it, the comparison is dropped.
COMPARISON_NEEDS = {
    "forename": "forename_std",
    "surname": "surname_std",
    "date_of_birth": "year_of_birth",
    "sex": "sex",
    "postcode": "postcode_std",
    "nhs_number": "nhs_number",
    # One source alone (a dedupe-only extract) has no pair across sources: `populated_columns` counts the source column
    # as populated only when two sources hold records.
    "source": RECORD_SOURCE,
    # Fixed corrections: "family" reads forenames (it tells apart relatives by them); "relatives" needs both.
    "family": "forename_std",
    "relatives": "nhs_number",
}
# Extra columns a fixed correction needs (all must be populated).
CORRECTION_ALSO_NEEDS = {"relatives": ("date_of_birth",)}

# EM sessions to add when the configured ones leave a comparison unestimated (its columns in every kept rule, or
# the rule that would estimate it dropped), in order of preference.
EM_FALLBACK_RULES = (
    block_on("date_of_birth"),
    block_on("surname_phonetic", "year_of_birth"),
    block_on("forename_canonical", "surname_canonical"),
    # Fixes the surname only (the forename comparison reads surname_std, for swaps, not surname_phonetic): with
    # names and date of birth alone, the one session left that estimates the date of birth beside another field.
    block_on("surname_phonetic"),
)
# Prediction rules added when an extract holds neither NHS numbers nor postcodes: every configured rule left then
# needs two of forename, surname and date of birth to agree, and a duplicate with two of them mistyped is never
# compared (FEBRL3: recall 0.617 where plain Splink, blocking on each field alone, had 0.740). Each of these blocks
# on one field alone, as plain Splink does. Their pairs grow with the square of the commonest value's count, which
# an extract with no NHS number and no postcode (a third-sector or research file) keeps small; with either
# identifier present they are not added.
SINGLE_FIELD_RULES = (
    block_on("date_of_birth"),
    block_on("surname_std"),
    block_on("forename_std"),
)
SINGLE_FIELD_RULES_UNLESS = frozenset({"nhs_number", "postcode_std"})
# Prior rules to use when none of the configured ones can see data.
PRIOR_FALLBACK_RULES = (
    block_on("forename_std", "surname_std", "year_of_birth"),
    block_on("forename_std", "surname_std", "postcode_std"),
)

# `AND l.x IS NULL` (or r.x) in a blocking rule: a condition on one side only, which Spark applies before the join.
_NULL_TEST = re.compile(r"\s+AND\s+[lr]\.[`\"]?(\w+)[`\"]?\s+IS\s+NULL\b", re.IGNORECASE)
_LEVEL_COLUMN = re.compile(r"\b(\w+?)_[lr]\b")


def populated_counts(people_df: DataFrame) -> dict[str, dict[str, int]]:
    """Non-null values of each model column, per source (an empty array counts as missing). One Spark job."""
    columns = [c for c in MODEL_COLUMNS if c not in (SOURCE_DATASET, UNIQUE_ID) and c in people_df.columns]

    def present(name: str):
        column = F.col(name)
        if people_df.schema[name].dataType.typeName() == "array":
            return F.when(F.size(column) > 0, 1)
        return F.when(column.isNotNull(), 1)

    rows = (
        people_df.groupBy(SOURCE_DATASET)
        .agg(F.count("*").alias("__records"), *[F.count(present(c)).alias(c) for c in columns])
        .collect()
    )
    return {
        row[SOURCE_DATASET]: {"records": row["__records"], **{c: row[c] for c in columns}} for row in rows
    }


def populated_columns(counts: dict[str, dict[str, int]]) -> frozenset[str]:
    """Columns held by at least MIN_POPULATED records across all sources, and the source column when at least two
    sources hold records (only then can a pair lie across sources)."""
    totals: dict[str, int] = {}
    for per_source in counts.values():
        for column, n in per_source.items():
            if column != "records":
                totals[column] = totals.get(column, 0) + n
    populated = {c for c, n in totals.items() if n >= MIN_POPULATED}
    if sum(1 for per_source in counts.values() if per_source["records"]) >= 2:
        populated.add(RECORD_SOURCE)
    return frozenset(populated)


def rule_sql(rule: Any, dialect: str = "spark") -> str:
    return rule.get_blocking_rule(dialect).blocking_rule_sql


def rule_columns(sql: str) -> frozenset[str]:
    """Columns a blocking rule needs populated (`l.x`, `r.x`): a column it only tests for null needs no values."""
    return frozenset(rule_columns_read((_NULL_TEST.sub("", sql),)))


def _rule_on(sql: str, populated: frozenset[str]) -> str:
    """The rule as it acts on this extract: a null test of a column no record holds is always true, so dropped.
    Two rules that differ only in such tests (`l.x IS NULL`, `r.x IS NULL`) pair the same records."""
    return _NULL_TEST.sub(lambda m: "" if m.group(1) not in populated else m.group(0), sql)


def _kept_rules(rule_sqls: list[str], populated: frozenset[str]) -> list[int]:
    """Indexes of the rules to keep: those whose columns are populated here, and of those that act alike on this
    extract only the first."""
    seen: set[str] = set()
    kept = []
    for i, sql in enumerate(rule_sqls):
        acting = _rule_on(sql, populated)
        if rule_columns(sql) <= populated and acting not in seen:
            seen.add(acting)
            kept.append(i)
    return kept


def comparison_columns(comparison: dict) -> frozenset[str]:
    """Columns a comparison's levels read (`x_l`, `x_r`), from its Splink dict."""
    found: set[str] = set()
    for level in comparison["comparison_levels"]:
        found.update(_LEVEL_COLUMN.findall(level["sql_condition"]))
    return frozenset(found)


def comparison_usable(comparison: dict, populated: frozenset[str]) -> bool:
    name = comparison["output_column_name"]
    needs = (COMPARISON_NEEDS.get(name), *CORRECTION_ALSO_NEEDS.get(name, ()))
    return all(column is None or column in populated for column in needs)


@dataclass(frozen=True)
class ModelPlan:
    """What the model uses given the populated columns, and what it dropped (for the run's output and MLflow)."""

    comparisons: tuple
    corrections: tuple
    prediction_rules: tuple
    em_rules: tuple
    prior_rules: tuple
    missing_columns: tuple[str, ...]
    added_prediction_rules: tuple[str, ...] = ()
    dropped: dict[str, list[str]] = field(default_factory=dict)

    @property
    def adapted(self) -> bool:
        return any(self.dropped.values()) or bool(self.added_em_rules) or bool(self.added_prediction_rules)

    @property
    def added_em_rules(self) -> list[str]:
        configured = {rule_sql(r) for r in EM_BLOCKING_RULES}
        return [rule_sql(r) for r in self.em_rules if rule_sql(r) not in configured]

    def summary(self) -> dict[str, Any]:
        return {
            "missing_columns": list(self.missing_columns),
            **{f"dropped_{k}": v for k, v in self.dropped.items()},
            "added_em_rules": self.added_em_rules,
            "added_blocking_rules": list(self.added_prediction_rules),
        }

    def describe(self) -> str:
        """One line for the job's output: what was dropped or added, and why."""
        if not self.adapted:
            return "all model fields populated: full model"
        parts = [f"no values for {', '.join(self.missing_columns)}"]
        parts += [
            f"dropped {kind.replace('_', ' ')}: {'; '.join(items)}"
            for kind, items in self.dropped.items()
            if items
        ]
        if self.added_em_rules:
            parts.append(f"added EM sessions: {'; '.join(self.added_em_rules)}")
        if self.added_prediction_rules:
            parts.append(f"added blocking rules: {'; '.join(self.added_prediction_rules)}")
        return " | ".join(parts)


def _usable_rules(rules, populated: frozenset[str]) -> tuple[list, list[str]]:
    """The rules that can see data here (each once, as `_kept_rules`), and the SQL of those dropped."""
    sqls = [rule_sql(r) for r in rules]
    kept = _kept_rules(sqls, populated)
    return [rules[i] for i in kept], [sql for i, sql in enumerate(sqls) if i not in kept]


def _estimated_by(rule, comparison: dict) -> bool:
    """Splink estimates a comparison in an EM session only when the session's rule reads none of its columns."""
    return not (rule_columns(rule_sql(rule)) & comparison_columns(comparison))


def _estimated_in(rule, comparisons: list[dict]) -> list[dict]:
    return [d for d in comparisons if _estimated_by(rule, d)]


# Comparisons that do not count as a session's second view of a pair: one source or two says little about which
# pairs match, so a session estimating the date of birth beside it alone still sees each pair once.
NOT_COMPANY = frozenset({"source"})


def _informative(comparisons: list[dict]) -> list[dict]:
    return [d for d in comparisons if d["output_column_name"] not in NOT_COMPANY]


def _company_needed(comparisons: list[dict]) -> int:
    """Comparisons a session must estimate together: two when the model has two (EM needs a second view of each pair
    to tell matches from non-matches: a session estimating one comparison alone made FEBRL3's date of birth
    `else` level m = 4e-6, -17.9 bits, when 6% of its true pairs have dates that disagree), else one."""
    return min(2, len(_informative(comparisons)))


def _sessions_with_company(rules: list, comparisons: list[dict]) -> tuple[list, list]:
    """The sessions that estimate enough comparisons together, and those that do not."""
    needed = _company_needed(comparisons)
    kept = [r for r in rules if len(_informative(_estimated_in(r, comparisons))) >= needed]
    return kept, [r for r in rules if r not in kept]


def _with_fallback_sessions(kept_em: list, comparisons: list[dict], populated: frozenset[str]) -> list:
    """Add fallback sessions until every comparison is estimated: first sessions that estimate it beside another
    comparison, then, for a comparison no such session reaches, one that estimates it at all."""
    kept_em = list(kept_em)
    for needed in (_company_needed(comparisons), 1):
        for rule in EM_FALLBACK_RULES:
            unestimated = [d for d in comparisons if not any(_estimated_by(r, d) for r in kept_em)]
            if not unestimated:
                return kept_em
            sql = rule_sql(rule)
            estimated = _estimated_in(rule, comparisons)
            if (
                rule_columns(sql) <= populated
                and sql not in {rule_sql(r) for r in kept_em}
                and len(_informative(estimated)) >= needed
                and any(d in unestimated for d in estimated)
            ):
                kept_em.append(rule)
    return kept_em


def plan_model(
    populated: frozenset[str],
    comparisons=COMPARISONS,
    corrections=CORRECTIONS,
    prediction_rules=BLOCKING_RULES_FOR_PREDICTION,
    em_rules=EM_BLOCKING_RULES,
    prior_rules=PRIOR_DETERMINISTIC_RULES,
) -> ModelPlan:
    """Keep the comparisons, rules and sessions that can see data; add fallback EM sessions so every kept
    comparison is estimated at least once, and a fallback prior rule when none is left."""
    from linkage.errors import InputError

    kept_comparisons, dropped_comparisons = [], []
    for comparison in comparisons:
        as_dict = comparison.get_comparison("spark").as_dict()
        (kept_comparisons if comparison_usable(as_dict, populated) else dropped_comparisons).append(
            (comparison, as_dict)
        )
    kept_corrections = [
        c for c in corrections if comparison_usable(c.get_comparison("spark").as_dict(), populated)
    ]
    dropped_corrections = [
        c.get_comparison("spark").as_dict()["output_column_name"]
        for c in corrections
        if c not in kept_corrections
    ]
    if not kept_comparisons:
        raise InputError(
            "restricted/people_std holds no values in any field the model compares: nothing to link on"
        )
    kept_prediction, dropped_prediction = _usable_rules(prediction_rules, populated)
    if not kept_prediction:
        raise InputError(
            "restricted/people_std holds no values in the fields of any blocking rule: nothing to link on"
        )
    added_prediction = []
    if not (SINGLE_FIELD_RULES_UNLESS & populated):
        configured = {rule_sql(r) for r in kept_prediction}
        added_prediction = [
            r for r in _usable_rules(SINGLE_FIELD_RULES, populated)[0] if rule_sql(r) not in configured
        ]
        kept_prediction += added_prediction
    kept_em, dropped_em = _usable_rules(em_rules, populated)
    compared = [d for _, d in kept_comparisons]
    kept_em, lone_em = _sessions_with_company(kept_em, compared)
    kept_em = _with_fallback_sessions(kept_em, compared, populated)
    kept_em_sql = {rule_sql(r) for r in kept_em}
    kept_prior, dropped_prior = _usable_rules(prior_rules, populated)
    if not kept_prior:
        kept_prior, _ = _usable_rules(PRIOR_FALLBACK_RULES, populated)
    missing = tuple(c for c in MODEL_COLUMNS if c not in (SOURCE_DATASET, UNIQUE_ID) and c not in populated)
    return ModelPlan(
        comparisons=tuple(c for c, _ in kept_comparisons),
        corrections=tuple(kept_corrections),
        prediction_rules=tuple(kept_prediction),
        em_rules=tuple(kept_em),
        prior_rules=tuple(kept_prior),
        missing_columns=missing,
        added_prediction_rules=tuple(rule_sql(r) for r in added_prediction),
        dropped={
            "comparisons": [d["output_column_name"] for _, d in dropped_comparisons] + dropped_corrections,
            "blocking_rules": dropped_prediction,
            "em_sessions": dropped_em,
            "em_sessions_estimating_one_comparison": [
                rule_sql(r) for r in lone_em if rule_sql(r) not in kept_em_sql
            ],
            "prior_rules": dropped_prior,
        },
    )


def model_for_populated(model: dict, populated: frozenset[str]) -> tuple[dict, list[str]]:
    """A registered model (Splink JSON) without the prediction blocking rules that would see no data here.

    Comparisons stay: on a missing column they fall to their null level, which weighs nothing.
    """
    rules = model.get("blocking_rules_to_generate_predictions", [])
    indexes = _kept_rules([r["blocking_rule"] for r in rules], populated)
    kept = [rules[i] for i in indexes]
    dropped = [r["blocking_rule"] for i, r in enumerate(rules) if i not in indexes]
    if rules and not kept:
        from linkage.errors import InputError

        raise InputError(
            "restricted/people_std holds no values in the fields of any of the model's blocking rules"
        )
    return {**model, "blocking_rules_to_generate_predictions": kept}, dropped


def populated_metrics(counts: dict[str, dict[str, int]]) -> dict[str, float]:
    """Share of each source's records holding each model column (`fields.<source>.<column>`), for MLflow."""
    return {
        f"fields.{source}.{column}": (n / per_source["records"] if per_source["records"] else 0.0)
        for source, per_source in counts.items()
        for column, n in per_source.items()
        if column != "records"
    }


def present_shares(counts: dict[str, dict[str, int]]) -> dict[str, float]:
    """Share of all records (every source) holding each model column."""
    records = sum(per_source["records"] for per_source in counts.values())
    columns = {column for per_source in counts.values() for column in per_source if column != "records"}
    return {
        column: (
            sum(per_source.get(column, 0) for per_source in counts.values()) / records if records else 0.0
        )
        for column in columns
    }


def with_current_rules_and_corrections(model: dict, populated: frozenset[str]) -> dict:
    """A trained model (Splink JSON) with this code's prediction blocking rules and fixed corrections for the fields
    populated here, its estimates kept. Neither is read by training (EM has its own rules and never sees the
    corrections; u and the prior neither), so this is what `train` would register from the same data: the benches
    use it to measure a change of rules or corrections without training again."""
    from linkage.link.settings import with_corrections

    plan = plan_model(populated)
    names = {c.get_comparison("spark").as_dict()["output_column_name"] for c in CORRECTIONS}
    return with_corrections(
        {
            **model,
            "comparisons": [c for c in model["comparisons"] if c["output_column_name"] not in names],
            "blocking_rules_to_generate_predictions": [
                r.get_blocking_rule("spark").as_dict() for r in plan.prediction_rules
            ],
        },
        corrections=plan.corrections,
    )
