"""EM over agreement-pattern counts gives Splink's own EM estimates (same session, same starting values)."""

from __future__ import annotations

import pytest
from builders import phonetic_people_frame, synthetic_people, with_random_parameters

from linkage.link import em
from linkage.link.model import build_linker, model_input, register_sources, splink_backend
from linkage.link.settings import EM_BLOCKING_RULES, build_settings


def starting_model(config) -> dict:
    """The project's settings with random starting m and fixed-for-EM random u (so term-frequency levels count)."""
    model = build_settings(config.linkage).get_settings("spark").as_dict()
    model = with_random_parameters(model, 5, (0.05, 0.9), (1e-4, 0.3), 1e-2)
    # Five iterations compare the two loops step by step as well as twenty-five would; each Splink iteration
    # on Spark is a job over every pair (seconds), which the test would otherwise pay up to 25 times.
    model["max_iterations"] = 5
    return model


def trained(db_api, people, model, rule, max_pairs=None):
    linker = build_linker(register_sources(db_api, people), model)
    # The probe that estimates the rule's pairs reads every record: a 1% probe of a test extract finds none.
    session = linker.training.estimate_parameters_using_expectation_maximisation(
        rule, max_pairs=max_pairs, record_sample_proportion=1.0
    )
    settings = session.core_model_settings
    levels = {
        (c.output_column_name, level.comparison_vector_value): (level.m_probability, level.u_probability)
        for c in settings.comparisons
        for level in c._comparison_levels_excluding_null
    }
    history = len(session._core_model_settings_history)
    return levels, settings.probability_two_random_records_match, history, session._sample_threshold


# None: every blocked pair; 100: Splink samples records so the session sees about 100 of the extract's pairs, and
# the counts (one query of Splink's SQL) must hold the same sample as Splink's stored comparison vectors.
@pytest.mark.parametrize("max_pairs", [None, 100])
def test_em_over_pattern_counts_gives_splink_estimates(spark, make_config, max_pairs):
    rows, _ = synthetic_people(seed=11)
    people = model_input(phonetic_people_frame(spark, rows))
    config = make_config()
    model = starting_model(config)
    rule = EM_BLOCKING_RULES[
        1
    ]  # date of birth and district: the name comparisons (with term frequencies) are estimated
    with splink_backend(spark, config, "test-em") as db_api:
        splink_levels, splink_prior, splink_iterations, sampled = trained(
            db_api, people, model, rule, max_pairs
        )
        with em.em_over_pattern_counts():
            pattern_levels, pattern_prior, pattern_iterations, _ = trained(
                db_api, people, model, rule, max_pairs
            )

    assert (sampled is not None) == (max_pairs is not None)
    assert splink_iterations > 2  # EM moved the starting values over several iterations
    assert pattern_iterations == splink_iterations
    assert pattern_prior == pytest.approx(splink_prior, abs=1e-6)
    assert pattern_levels.keys() == splink_levels.keys()
    for key, (m, u) in splink_levels.items():
        assert pattern_levels[key][0] == pytest.approx(m, abs=1e-6), key
        assert pattern_levels[key][1] == pytest.approx(u, abs=1e-6), key
    starting_m = {
        round(level["m_probability"], 12)
        for c in model["comparisons"]
        for level in c["comparison_levels"]
        if "m_probability" in level
    }
    assert any(round(m, 12) not in starting_m for m, _ in splink_levels.values() if m is not None)
    assert (
        em.em_training_session.expectation_maximisation is not em.pattern_expectation_maximisation
    )  # restored
    assert em.em_training_session.EMTrainingSession._comparison_vectors is not em.session_comparison_vectors


def test_match_probability_is_splinks_two_branch_formula():
    import numpy as np

    probability = em.match_probability(np.array([0.0, 10.0, -10.0, 2000.0, -2000.0]))
    assert probability.tolist() == pytest.approx([0.5, 1024 / 1025, 1 / 1025, 1.0, 0.0])
