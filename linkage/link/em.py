"""Splink's EM with the iterations run over agreement-pattern counts in the driver, not over every pair in Spark.

Splink's EM session (blocking, sampling, comparison vectors, the M-step's rules for fixed and unobserved
levels, the training history its charts read) is unchanged; only its iteration loop is replaced. Splink
runs each iteration as a Spark job over every compared pair, because the E-step adds term-frequency
adjustments, which differ pair by pair. But within a session the u probabilities are fixed (Splink's
default, and this project's), so each pair's term-frequency adjustment is a constant: the pairs collapse
to their distinct (gamma pattern, total adjustment) rows with a count, computed in one Spark job, and
the iterations run on that small table in numpy. The E-step then gives every pair of a row the same
match probability Splink gives it, and the M-step sums are the same sums grouped differently: the
estimates equal Splink's to floating-point rounding (tests/test_em.py).

The pattern counts are computed by Splink's own SQL (its sampled blocking, its comparison vectors, its
term-frequency adjustments) run as one query: Splink runs it as three, each written to parquet and read
back (the blocked pairs and every pair's comparison vector), and only the counts are needed.

Sessions that estimate u, or whose model has a level with no weight yet, are left to Splink's own loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from splink.internals import em_training_session
from splink.internals import expectation_maximisation as splink_em
from splink.internals.blocking import block_using_rules_sqls
from splink.internals.comparison_vector_values import compute_comparison_vector_values_from_id_pairs_sqls
from splink.internals.misc import prob_to_match_weight
from splink.internals.pipeline import CTEPipeline
from splink.internals.vertically_concatenate import enqueue_df_concat_with_tf

logger = logging.getLogger(__name__)

COUNT, TF_TOTAL = "__pattern_count", "__tf_adjustment_total"
PATTERN_COUNTS = "__splink__em_pattern_counts"


def pattern_counts_sql(core_model_settings: Any, with_term_frequencies: bool) -> str:
    """Distinct (gammas, total term-frequency adjustment in bits) with their pair counts, from the comparison vectors
    (`__splink__df_comparison_vectors`).

    The adjustment SQL is Splink's own (ComparisonLevel._tf_adjustment_sql), so it is the value Splink's E-step adds.
    """
    gammas = [c._gamma_column_name for c in core_model_settings.comparisons]  # noqa: SLF001
    adjustments = []
    if with_term_frequencies:
        for comparison in core_model_settings.comparisons:
            if comparison._has_tf_adjustments:  # noqa: SLF001
                whens = "\n".join(
                    level._tf_adjustment_sql(
                        comparison._gamma_column_name,  # noqa: SLF001
                        comparison.comparison_levels,
                    )
                    for level in comparison.comparison_levels
                )
                adjustments.append(f"CASE {whens} END")
    total = " + ".join(adjustments) if adjustments else "cast(0 as float8)"
    return (
        f"select {', '.join(gammas)}, {total} as {TF_TOTAL}, count(*) as {COUNT} "
        f"from __splink__df_comparison_vectors group by {', '.join(gammas)}, {total}"
    )


def match_probability(match_weight: np.ndarray) -> np.ndarray:
    """Splink's two-branch formula, so neither branch overflows."""
    with np.errstate(
        over="ignore", invalid="ignore"
    ):  # np.where computes both branches; the unused one may be inf/inf
        return np.where(
            match_weight >= 0,
            1.0 / (1.0 + np.power(2.0, -match_weight)),
            np.power(2.0, match_weight) / (1.0 + np.power(2.0, match_weight)),
        )


def expectation(core_model_settings: Any, gammas: dict[str, np.ndarray], tf_total: np.ndarray) -> np.ndarray:
    """Each pattern row's match probability under the current parameters (Splink's E-step)."""
    weight = np.full(
        tf_total.shape, prob_to_match_weight(core_model_settings.probability_two_random_records_match)
    )
    for comparison in core_model_settings.comparisons:
        by_gamma = {
            level.comparison_vector_value: level._match_weight  # noqa: SLF001
            for level in comparison.comparison_levels
        }
        column = gammas[comparison._gamma_column_name]  # noqa: SLF001
        level_weight = np.zeros(column.shape)
        for value, level_mw in by_gamma.items():
            level_weight[column == value] = level_mw
        weight = weight + level_weight
    return match_probability(weight + tf_total)


def parameter_records(
    core_model_settings: Any, gammas: dict[str, np.ndarray], counts: np.ndarray, probability: np.ndarray
) -> list[dict[str, Any]]:
    """What Splink's M-step reads: per comparison and observed level, m and u as shares of the expected counts;
    and the match share as the new prior (compute_new_parameters_sql and its proportions, in numpy)."""
    matches, non_matches = probability * counts, (1.0 - probability) * counts
    records = []
    for comparison in core_model_settings.comparisons:
        column = gammas[comparison._gamma_column_name]  # noqa: SLF001
        observed = sorted(int(v) for v in np.unique(column) if v != -1)
        m_counts = {v: matches[column == v].sum() for v in observed}
        u_counts = {v: non_matches[column == v].sum() for v in observed}
        m_total, u_total = sum(m_counts.values()), sum(u_counts.values())
        records += [
            {
                "comparison_vector_value": v,
                "output_column_name": comparison.output_column_name,
                "m_probability": m_counts[v] / m_total,
                "u_probability": u_counts[v] / u_total,
            }
            for v in observed
        ]
    records.append(
        {
            "comparison_vector_value": 0,
            "output_column_name": "_probability_two_random_records_match",
            "m_probability": matches.sum() / counts.sum(),
            "u_probability": non_matches.sum() / counts.sum(),
        }
    )
    return records


def pattern_counts_pipeline(session: Any) -> CTEPipeline:
    """An EM session's pattern counts as one pipeline: the SQL of Splink's EMTrainingSession._comparison_vectors
    (the records with term frequencies, the training rule's blocking with the session's record sample, the comparison
    vectors), then `pattern_counts_sql`. Splink executes a pipeline as one query of CTEs; only its last table
    is stored. Call after `session._ensure_em_sampling_settings()`."""
    linker = session._original_linker  # noqa: SLF001
    settings = linker._settings_obj  # noqa: SLF001
    columns = settings.column_info_settings
    pipeline = CTEPipeline()
    enqueue_df_concat_with_tf(linker, pipeline)  # also enqueues __splink__df_concat, which the blocking reads
    pipeline.enqueue_list_of_sqls(
        block_using_rules_sqls(
            input_tablename_l="__splink__df_concat",
            input_tablename_r="__splink__df_concat",
            blocking_rules=[session._blocking_rule_for_training],  # noqa: SLF001
            link_type=settings._link_type,  # noqa: SLF001
            source_dataset_input_column=columns.source_dataset_input_column,
            unique_id_input_column=columns.unique_id_input_column,
            sample_threshold=session._sample_threshold,  # noqa: SLF001
            sample_modulus=session._sample_modulus,  # noqa: SLF001
        )
    )
    pipeline.enqueue_list_of_sqls(
        compute_comparison_vector_values_from_id_pairs_sqls(
            settings._columns_to_select_for_blocking,  # noqa: SLF001
            session.columns_to_select_for_comparison_vector_values,
            input_tablename_l="__splink__df_concat_with_tf",
            input_tablename_r="__splink__df_concat_with_tf",
            source_dataset_input_column=columns.source_dataset_input_column,
            unique_id_input_column=columns.unique_id_input_column,
        )
    )
    pipeline.enqueue_sql(
        pattern_counts_sql(session.core_model_settings, not session.estimate_without_term_frequencies),
        PATTERN_COUNTS,
    )
    return pipeline


def _handled_in_driver(training_fixed_probabilities: set[str], core_model_settings: Any) -> bool:
    weights_known = all(
        level._match_weight is not None  # noqa: SLF001
        for c in core_model_settings.comparisons
        for level in c.comparison_levels
    )
    return "u" in training_fixed_probabilities and weights_known


def pattern_expectation_maximisation(
    db_api,
    training_settings,
    estimate_without_term_frequencies: bool,
    core_model_settings,
    unique_id_input_columns,
    training_fixed_probabilities,
    df_comparison_vector_values,
):
    """splink.internals.expectation_maximisation.expectation_maximisation, same arguments and result (the
    parameter history), with the iterations over the pattern counts (`PatternCounts`) that
    `session_comparison_vectors` gave the session in place of its comparison vectors; Splink's own loop otherwise."""
    given_patterns = isinstance(df_comparison_vector_values, PatternCounts)

    def splinks_loop(settings):
        return splink_em.expectation_maximisation(
            db_api=db_api,
            training_settings=training_settings,
            estimate_without_term_frequencies=estimate_without_term_frequencies,
            core_model_settings=settings,
            unique_id_input_columns=unique_id_input_columns,
            training_fixed_probabilities=training_fixed_probabilities,
            # Splink's loop reads every pair's vector: computed now, the Splink way, when only counts were made.
            df_comparison_vector_values=(
                df_comparison_vector_values.comparison_vectors()
                if given_patterns
                else df_comparison_vector_values
            ),
        )

    # session_comparison_vectors counts patterns exactly when this test holds, with the same settings.
    if not given_patterns or not _handled_in_driver(training_fixed_probabilities, core_model_settings):
        return splinks_loop(core_model_settings)
    patterns = df_comparison_vector_values.rows
    gammas = {
        c._gamma_column_name: patterns[c._gamma_column_name].to_numpy(dtype=np.int64)  # noqa: SLF001
        for c in core_model_settings.comparisons
    }
    counts = patterns[COUNT].to_numpy(dtype=np.float64)
    tf_total = patterns[TF_TOTAL].to_numpy(dtype=np.float64)
    logger.info("EM over %d agreement patterns (%d pairs)", len(counts), int(counts.sum()))

    starting_settings = core_model_settings
    history = [core_model_settings.copy()]
    for iteration in range(1, training_settings.max_iterations + 1):
        probability = expectation(core_model_settings, gammas, tf_total)
        records = parameter_records(core_model_settings, gammas, counts, probability)
        core_model_settings = splink_em.maximisation_step(
            training_fixed_probabilities, core_model_settings, records
        )
        history.append(core_model_settings)
        change = splink_em._max_change_in_parameters_comparison_levels(history)  # noqa: SLF001
        logger.info("Iteration %d: %s", iteration, change["message"])
        if change["max_abs_change_value"] < training_settings.em_convergence:
            break
        if not _handled_in_driver(training_fixed_probabilities, core_model_settings):
            # A level the patterns never show has no weight now: start again in Splink's loop, which handles it.
            return splinks_loop(starting_settings)
    return history


_SPLINKS_COMPARISON_VECTORS = em_training_session.EMTrainingSession._comparison_vectors  # noqa: SLF001


@dataclass(frozen=True)
class PatternCounts:
    """An EM session's pattern counts, collected once, standing in for its comparison vectors: the session asks
    whether any pair was found (`as_record_list(limit=1)`) and EM reads the counts. Left as a Spark table, each of
    the two reads ran the whole query again. `comparison_vectors()` computes Splink's own, for Splink's loop."""

    rows: pd.DataFrame
    comparison_vectors: Callable[[], Any]

    def as_record_list(self, limit: int | None = None) -> list[dict[str, Any]]:
        return (self.rows if limit is None else self.rows.head(limit)).to_dict("records")


def session_comparison_vectors(session: Any) -> Any:
    """EMTrainingSession._comparison_vectors for a session whose EM runs over pattern counts: the counts, in one
    query (`pattern_counts_pipeline`), instead of every pair's comparison vector in three. The table found no pairs
    exactly when it is empty, which is what the session checks next. Other sessions get Splink's vectors.

    At 1M people the first session (5.0M sampled pairs) took 64.7 s, 45.8 s of it writing the comparison vectors
    (README, Scale)."""
    if not _handled_in_driver(session.training_fixed_probabilities, session.core_model_settings):
        return _SPLINKS_COMPARISON_VECTORS(session)
    session._training_log_message()  # noqa: SLF001
    session._ensure_em_sampling_settings()  # noqa: SLF001
    patterns_table = session.db_api.sql_pipeline_to_splink_dataframe(pattern_counts_pipeline(session))
    rows = patterns_table.as_pandas_dataframe()
    patterns_table.drop_table_from_database_and_remove_from_cache()
    return PatternCounts(rows, partial(_SPLINKS_COMPARISON_VECTORS, session))


@contextmanager
def em_over_pattern_counts() -> Iterator[None]:
    """Within the block, Splink's EM sessions count agreement patterns and iterate over them (the EM function the
    sessions call and the sessions' comparison vectors are swapped)."""
    session_class = em_training_session.EMTrainingSession
    original = em_training_session.expectation_maximisation
    em_training_session.expectation_maximisation = pattern_expectation_maximisation
    session_class._comparison_vectors = session_comparison_vectors  # noqa: SLF001
    try:
        yield
    finally:
        em_training_session.expectation_maximisation = original
        session_class._comparison_vectors = _SPLINKS_COMPARISON_VECTORS  # noqa: SLF001
