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

Sessions that estimate u, or whose model has a level with no weight yet, are left to Splink's own loop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from splink.internals import em_training_session
from splink.internals import expectation_maximisation as splink_em
from splink.internals.misc import prob_to_match_weight
from splink.internals.pipeline import CTEPipeline

logger = logging.getLogger(__name__)

COUNT, TF_TOTAL = "__pattern_count", "__tf_adjustment_total"


def pattern_counts_sql(core_model_settings: Any, with_term_frequencies: bool) -> str:
    """Distinct (gammas, total term-frequency adjustment in bits) with their pair counts, from the comparison vectors.

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
    parameter history), with the iterations over pattern counts."""

    def splinks_loop(settings):
        return splink_em.expectation_maximisation(
            db_api=db_api,
            training_settings=training_settings,
            estimate_without_term_frequencies=estimate_without_term_frequencies,
            core_model_settings=settings,
            unique_id_input_columns=unique_id_input_columns,
            training_fixed_probabilities=training_fixed_probabilities,
            df_comparison_vector_values=df_comparison_vector_values,
        )

    if not _handled_in_driver(training_fixed_probabilities, core_model_settings):
        return splinks_loop(core_model_settings)
    pipeline = CTEPipeline([df_comparison_vector_values])
    pipeline.enqueue_sql(
        pattern_counts_sql(core_model_settings, not estimate_without_term_frequencies),
        "__splink__em_pattern_counts",
    )
    patterns_table = db_api.sql_pipeline_to_splink_dataframe(pipeline)
    patterns = patterns_table.as_pandas_dataframe()
    patterns_table.drop_table_from_database_and_remove_from_cache()
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


@contextmanager
def em_over_pattern_counts() -> Iterator[None]:
    """Within the block, Splink's EM sessions iterate over pattern counts (the one function they call is swapped)."""
    original = em_training_session.expectation_maximisation
    em_training_session.expectation_maximisation = pattern_expectation_maximisation
    try:
        yield
    finally:
        em_training_session.expectation_maximisation = original
