"""The approved Splink model compiled into native Spark expressions: blocking, comparison and scoring in one pass.

Splink on Spark predicts in materialised steps (concatenate, term frequencies, blocked id pairs,
comparison vectors, match weights), each a separate Spark job that writes and re-reads parquet,
and joins every candidate pair back to both of its records. This module reads the model JSON
that Splink saved (Splink stays the source of the model: training, JSON, charts) and builds one
DataFrame plan instead:

- the records, with one term-frequency column per column the model adjusts for, read once;
- for each prediction blocking rule, a self-join of the records' ids and the columns the rules read,
  keeping a pair only when no earlier rule found it (`NOT coalesce(rule_k, false)` for every earlier
  k, exactly as Splink's blocking does, so a pair's match_key is the first rule that finds it);
- the union of those joins, joined back once to both records (every column the model reads), with
  each comparison's gamma (the level's CASE), its match weight log2(m/u), its term-frequency
  adjustment and the prior summed into match_weight.

Everything the model holds is read from the JSON through Splink's own settings classes (level
order and comparison vector values, the m/u clamps and defaults, which exact-match level a
term-frequency adjustment takes its u from), so a changed comparison or correction needs no
change here. Match weights equal Splink's predict to floating-point rounding (tests/test_scorer.py).

The comparison SQL may call Splink's JVM functions (jaro_winkler and friends): they are registered
by creating Splink's SparkAPI on the session (linkage.link.model.splink_backend does).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from splink.internals.misc import prob_to_match_weight
from splink.internals.settings_creator import SettingsCreator

from linkage.link.lineage import materialised

# Splink's composite unique id separator (splink.internals.constants via unique_id_concat).
UID_SEPARATOR = "-__-"
UID = "__uid"
MATCH_KEY = "match_key"
# A column a blocking rule reads: `l.x` or `r.x`, optionally quoted.
_RULE_COLUMN = re.compile(r"\b[lr]\.[`\"]?(\w+)")


@dataclass(frozen=True)
class CompiledLevel:
    """One comparison level: its condition, gamma value, log2(m/u) and term-frequency adjustment (if any)."""

    sql_condition: str
    gamma: int
    match_weight: float
    tf_column: str | None = None  # the input column whose term frequency adjusts this level
    tf_weight: float = 0.0
    tf_log2_u: float = 0.0  # log2 of the u of the exact-match level the adjustment is relative to
    tf_minimum_u: float = 0.0


@dataclass(frozen=True)
class CompiledComparison:
    name: str  # output_column_name
    gamma_column: str
    levels: tuple[CompiledLevel, ...]

    @property
    def has_tf(self) -> bool:
        return any(level.tf_column for level in self.levels)


@dataclass(frozen=True)
class CompiledModel:
    prior_match_weight: float
    unique_id_columns: tuple[str, ...]
    blocking_rules: tuple[str, ...]
    comparisons: tuple[CompiledComparison, ...]

    @property
    def tf_columns(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for comparison in self.comparisons:
            for level in comparison.levels:
                if level.tf_column:
                    seen[level.tf_column] = None
        return tuple(seen)


def _unquoted(name: str) -> str:
    return name.strip('`"')


def compile_model(model: dict[str, Any]) -> CompiledModel:
    """Read a Splink model JSON (as saved by Splink, with the fixed corrections appended) into plain values."""
    settings = SettingsCreator.from_path_or_dict(model).get_settings("spark")
    comparisons = []
    for comparison in settings.comparisons:
        levels = []
        for level in comparison.comparison_levels:
            tf_column, tf_log2_u = None, 0.0
            if (
                level._has_tf_adjustments
                and level.comparison_vector_value != -1  # noqa: SLF001
                and level._tf_adjustment_weight != 0
                and not level._is_else_level
            ):  # noqa: SLF001
                tf_column = _unquoted(level._tf_adjustment_input_column.name)  # noqa: SLF001
                tf_log2_u = math.log2(
                    level._u_probability_corresponding_to_exact_match(  # noqa: SLF001
                        comparison.comparison_levels
                    )
                )
            levels.append(
                CompiledLevel(
                    sql_condition=level.sql_condition,
                    gamma=level.comparison_vector_value,
                    match_weight=level._match_weight,  # noqa: SLF001 - log2(m/u) with Splink's clamps; 0 for null
                    tf_column=tf_column,
                    tf_weight=float(level._tf_adjustment_weight),  # noqa: SLF001
                    tf_log2_u=tf_log2_u,
                    tf_minimum_u=float(level._tf_minimum_u_value),
                )
            )  # noqa: SLF001
        comparisons.append(
            CompiledComparison(
                comparison.output_column_name,
                comparison._gamma_column_name,  # noqa: SLF001
                tuple(levels),
            )
        )
    uid_columns = tuple(_unquoted(c.name) for c in settings.column_info_settings.unique_id_input_columns)
    rules = tuple(rule.blocking_rule_sql for rule in settings._blocking_rules_to_generate_predictions)  # noqa: SLF001
    if not rules:
        raise ValueError(
            "the model has no blocking rules for prediction: scoring every pair is not supported"
        )
    prior = settings.core_model_settings.probability_two_random_records_match
    return CompiledModel(
        prior_match_weight=prob_to_match_weight(prior),
        unique_id_columns=uid_columns,
        blocking_rules=rules,
        comparisons=tuple(comparisons),
    )


def with_term_frequencies(
    records_df: DataFrame, columns: tuple[str, ...], counted_df: DataFrame | None = None
) -> DataFrame:
    """Add tf_<column>: the share of records with this value among records where the column is known (Splink's),
    counted over `counted_df` (all the records) when records_df is some of them."""
    counted = records_df if counted_df is None else counted_df
    for column in columns:
        counts = (
            counted.where(F.col(column).isNotNull())
            .groupBy(column)
            .count()
            .withColumn("total", F.sum("count").over(Window.partitionBy()))
            .select(column, (F.col("count").cast("double") / F.col("total")).alias(f"tf_{column}"))
        )
        records_df = records_df.join(counts, column, how="left")
    return records_df


def with_unique_id(records_df: DataFrame, uid_columns: tuple[str, ...]) -> DataFrame:
    """Splink's composite id (source_dataset || '-__-' || unique id): pairs keep uid_l < uid_r, as in Splink."""
    parts = [F.col(uid_columns[0])]
    for column in uid_columns[1:]:
        parts += [F.lit(UID_SEPARATOR), F.col(column)]
    return records_df.withColumn(UID, F.concat(*parts))


def with_ranked_uid(records_df: DataFrame) -> DataFrame:
    """The composite id replaced by a number in the same order: every rule's join carries the id of both records
    and the pairs are joined back to both records by it, and a long sorts, shuffles and compares faster than a
    string. Pairs keep Splink's orientation (uid_l < uid_r as strings), as the number follows the string's order.

    The records sorted by id, then numbered: a range partition of a sort holds only ids above the partition before
    it, and monotonically_increasing_id grows with the partition and the row within it. The numbers are stable for
    as long as the sort's plan is (a lost cached partition is recomputed under the same range bounds, and the ids
    are unique, so the order within a partition is total). At 1M people (5.2M pairs, one session, warm) scoring
    into a no-op sink took 83.6 s this way against 94.7 s with the string id, the records' sort included.
    """
    return records_df.orderBy(UID).withColumn(UID, F.monotonically_increasing_id())


def rule_columns_read(blocking_rules: tuple[str, ...]) -> list[str]:
    """Every record column the rules read (`l.x`, `r.x`, null tests included), in first-seen order."""
    found: dict[str, None] = {}
    for rule in blocking_rules:
        found.update(dict.fromkeys(_RULE_COLUMN.findall(rule)))
    return list(found)


def rule_keys(blocking_rules: tuple[str, ...]) -> list[str]:
    """The composite id and every column the rules read: all a blocking join needs of a record."""
    return [UID, *[c for c in rule_columns_read(blocking_rules) if c != UID]]


def blocked_pairs(records_df: DataFrame, blocking_rules: tuple[str, ...]) -> DataFrame:
    """The union of the rules' self-joins, each pair once, tagged with the first rule (match_key) that finds it.

    Each rule joins the records' ids and the columns the rules read (a few short columns), and the pairs found are
    joined back to both records once. Joining the whole records in every rule shuffled every record twice per
    rule, 26 times for 13 rules: at 1M people (5.2M pairs) scoring into a no-op sink took 219.2 s that way and
    157.6 s this way. (With the 12.9M pairs of the rules before they were narrowed it was the other way round:
    156.3 s against 178.9 s, the pairs then outnumbering the records eight to one.)
    """
    return with_records(blocked_pair_ids(records_df, blocking_rules), records_df)


def with_records(pair_ids_df: DataFrame, records_df: DataFrame) -> DataFrame:
    """(match_key, every column of both records suffixed _l and _r) of pairs given as ids (`blocked_pair_ids`)."""
    left = records_df.select(*[F.col(c).alias(f"{c}_l") for c in records_df.columns])
    right = records_df.select(*[F.col(c).alias(f"{c}_r") for c in records_df.columns])
    return (
        pair_ids_df.join(left, f"{UID}_l")
        .join(right, f"{UID}_r")
        .select(MATCH_KEY, *[f"{c}_{side}" for side in ("l", "r") for c in records_df.columns])
    )


def blocked_pair_ids(
    records_df: DataFrame,
    blocking_rules: tuple[str, ...],
    changed_df: DataFrame | None = None,
    rule_indexes: Iterable[int] | None = None,
) -> DataFrame:
    """`blocked_pairs` as ids alone: (match_key, __uid_l, __uid_r), each pair once. records_df needs the composite
    id and the columns the rules read (`rule_keys`). With `rule_indexes`, only the pairs those rules are the first
    to find.

    With `changed_df` (some of the records, same columns), only the pairs holding at least one changed record:
    changed x all, and unchanged x changed, so a small change joins a small side to the records instead of
    the records to themselves. The pairs are exactly those of the full joins that touch a changed record."""
    keys = rule_keys(blocking_rules)
    records_keys = records_df.select(*keys)
    if changed_df is None:
        sides = [(records_keys, records_keys)]
    else:
        # The changed records are few (linkage.link.incremental links in full above a share): broadcast, each
        # rule's join reads the records' keys where they are instead of shuffling them, twice, per rule.
        changed = F.broadcast(changed_df.select(*keys))
        unchanged = records_keys.join(F.broadcast(changed_df.select(UID)), UID, how="left_anti")
        sides = [(changed, records_keys), (unchanged, changed)]
    joins = []
    for key, rule in enumerate(blocking_rules):
        if rule_indexes is not None and key not in rule_indexes:
            continue
        condition = F.expr(f"({rule})") & (F.col(f"l.{UID}") < F.col(f"r.{UID}"))
        if key:
            earlier = " OR ".join(f"coalesce(({r}), false)" for r in blocking_rules[:key])
            condition = condition & F.expr(f"NOT ({earlier})")
        for left, right in sides:
            joins.append(
                left.alias("l")
                .join(right.alias("r"), condition, how="inner")
                .select(
                    F.lit(str(key)).alias(MATCH_KEY),
                    F.col(f"l.{UID}").alias(f"{UID}_l"),
                    F.col(f"r.{UID}").alias(f"{UID}_r"),
                )
            )
    pairs = joins[0]
    for join in joins[1:]:
        pairs = pairs.unionByName(join)
    return pairs


def gamma(comparison: CompiledComparison) -> Column:
    """The comparison vector value: the first level whose condition holds (Splink's CASE, same order)."""
    whens = " ".join(
        level.sql_condition + f" {level.gamma}"
        if level.sql_condition.strip().upper() == "ELSE"
        else f"WHEN {level.sql_condition} THEN {level.gamma}"
        for level in comparison.levels
    )
    return F.expr(f"CASE {whens} END")


def level_weight(comparison: CompiledComparison) -> Column:
    """log2(m/u) of the level the pair falls in."""
    g = F.col(comparison.gamma_column)
    weight = None
    for level in comparison.levels:
        weight = (
            F.when(g == level.gamma, F.lit(level.match_weight))
            if weight is None
            else weight.when(g == level.gamma, F.lit(level.match_weight))
        )
    return weight


def tf_adjustment(comparison: CompiledComparison) -> Column:
    """Splink's term-frequency adjustment in bits: weight * (log2 u_exact - log2 max(tf_l, tf_r, minimum)); 0 elsewhere."""
    g = F.col(comparison.gamma_column)
    adjustment = None
    for level in comparison.levels:
        if level.tf_column:
            tf_l, tf_r = F.col(f"tf_{level.tf_column}_l"), F.col(f"tf_{level.tf_column}_r")
            largest = F.greatest(F.coalesce(tf_l, tf_r), F.coalesce(tf_r, tf_l), F.lit(level.tf_minimum_u))
            value = F.when(
                F.coalesce(tf_l, tf_r).isNotNull(),
                F.lit(level.tf_weight) * (F.lit(level.tf_log2_u) - F.log2(largest)),
            ).otherwise(F.lit(0.0))
        else:
            value = F.lit(0.0)
        adjustment = (
            F.when(g == level.gamma, value)
            if adjustment is None
            else adjustment.when(g == level.gamma, value)
        )
    return adjustment


def match_probability(match_weight: Column) -> Column:
    """1 / (1 + 2^-w), written as Splink writes it so neither branch overflows."""
    return F.when(match_weight >= 0, 1.0 / (1.0 + F.pow(F.lit(2.0), -match_weight))).otherwise(
        F.pow(F.lit(2.0), match_weight) / (1.0 + F.pow(F.lit(2.0), match_weight))
    )


def scored(pairs_df: DataFrame, model: CompiledModel) -> DataFrame:
    """Pairs with gamma_* per comparison, match_weight and match_probability, and the pair's ids and match_key."""
    with_gammas = pairs_df.select("*", *[gamma(c).alias(c.gamma_column) for c in model.comparisons])
    terms = []
    for comparison in model.comparisons:
        terms.append(level_weight(comparison))
        if comparison.has_tf:
            terms.append(tf_adjustment(comparison))
    weight = F.lit(model.prior_match_weight)
    for term in terms:
        weight = weight + term
    ids = [f"{c}_{side}" for side in ("l", "r") for c in model.unique_id_columns]
    return with_gammas.select(
        weight.alias("match_weight"),
        match_probability(weight).alias("match_probability"),
        *ids,
        *[c.gamma_column for c in model.comparisons],
        MATCH_KEY,
    )


def scoring_records(records_df: DataFrame, compiled: CompiledModel) -> DataFrame:
    """The records as the joins read them: with term frequencies and the composite id."""
    return with_unique_id(with_term_frequencies(records_df, compiled.tf_columns), compiled.unique_id_columns)


def materialised_scores(
    records_df: DataFrame, model: dict[str, Any], changed_keys: DataFrame | None = None
) -> tuple[DataFrame, int]:
    """Every candidate pair of the model's blocking rules, scored (Splink's predict() output columns), computed
    once and stored by linkage.link.lineage.materialised, so the link job's later queries on the scores do not
    analyse the scorer's plan again; returns it and its row count.

    records_df holds one row per record with the columns the model reads (linkage.link.model.model_input).
    With `changed_keys` (source_dataset, source_record_id of some records), only the pairs holding at least one
    of them (an incremental link); term frequencies are still those of all the records.
    The records (with term frequencies) are cached for the duration: every rule's join reads them twice, and
    records are far fewer than pairs. This is not optional: left as a plan, the term-frequency joins are
    repeated under both sides of every rule's join, and on the scorer test's 236 records collecting the
    scores took over 150 s and filled a 4 GB heap (55 s for match_weight alone) against 3.7 s cached.
    Released once the pairs are computed.
    """
    compiled = compile_model(model)
    if changed_keys is not None:
        return rescored_scores(records_df, compiled, changed_keys)
    records = with_ranked_uid(scoring_records(records_df, compiled)).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        predictions = materialised(scored(blocked_pairs(records, compiled.blocking_rules), compiled))
        count = predictions.count()
    finally:
        records.unpersist()
    return predictions, count


def rescored_scores(
    records_df: DataFrame, compiled: CompiledModel, changed_keys: DataFrame
) -> tuple[DataFrame, int]:
    """`materialised_scores` of the pairs holding a changed record (`changed_keys`: source_dataset,
    source_record_id), with the same weights, at the cost of the few records involved.

    A full scoring joins every record, with its term frequencies, to the pairs. Here the rules' joins read only
    the records' ids and the columns the rules read (kept, with the term-frequency columns, for the duration),
    each rule's pairs are stored as they are found (one union of every rule's two joins was a plan that took as
    long to analyse as to run), and term frequencies, still counted over all the records, are attached to the
    records the pairs hold alone. At 1M people and a 1% change (78,185 pairs): term frequencies over every
    record 28.5 s, the rules' joins in one plan 30.6 s against 16.3 s one rule at a time (README, Incremental link).
    """
    rules = compiled.blocking_rules
    records = with_unique_id(records_df, compiled.unique_id_columns)
    narrow = records.select(*dict.fromkeys([*rule_keys(rules), *compiled.tf_columns]))
    narrow = narrow.persist(StorageLevel.MEMORY_AND_DISK)
    changed_ids = with_unique_id(changed_keys, compiled.unique_id_columns).select(UID)
    changed = narrow.join(F.broadcast(changed_ids), UID, how="left_semi").persist(
        StorageLevel.MEMORY_AND_DISK
    )
    try:
        ids = None
        for key in range(len(rules)):
            found = materialised(blocked_pair_ids(narrow, rules, changed, rule_indexes=(key,)))
            ids = found if ids is None else ids.unionByName(found)
        ids = materialised(ids)
        held = ids.select(F.col(f"{UID}_l").alias(UID)).unionByName(ids.select(F.col(f"{UID}_r").alias(UID)))
        involved = with_term_frequencies(
            records.join(F.broadcast(held.distinct()), UID, how="left_semi"), compiled.tf_columns, narrow
        )
        predictions = materialised(scored(with_records(ids, involved), compiled))
        count = predictions.count()
    finally:
        narrow.unpersist()
        changed.unpersist()
    return predictions, count
