"""The compiled one-pass scorer against Splink's own predict on Spark: same candidate pairs, same match weights."""

from __future__ import annotations

import pytest
from builders import people_frame, random_model, synthetic_people
from pyspark.sql import functions as F

from linkage.link.model import (
    blocking_pair_counts,
    build_linker,
    model_input,
    register_sources,
    splink_backend,
)
from linkage.link.scorer import compile_model, materialised_scores
from linkage.link.settings import BLOCKING_RULES_FOR_PREDICTION, SOURCE_DATASET, UNIQUE_ID

PAIR = ["source_dataset_l", "source_record_id_l", "source_dataset_r", "source_record_id_r"]


@pytest.fixture(scope="module")
def people(spark):
    rows, _ = synthetic_people(seed=11)
    frame = people_frame(spark, rows).withColumns(
        {
            "forename_phonetic": F.soundex("forename_canonical"),
            "surname_phonetic": F.soundex("surname_canonical"),
        }
    )
    return model_input(frame).cache()


def test_compiled_scorer_gives_splink_predict_pairs_and_weights(spark, make_config, people):
    config = make_config()
    model = random_model(config)
    with splink_backend(spark, config, "test-scorer") as db_api:
        expected = (
            build_linker(register_sources(db_api, people), model).inference.predict().as_spark_dataframe()
        )
        expected_rows = {tuple(r[c] for c in PAIR): r for r in expected.collect()}
        scores, scores_count = materialised_scores(people, model)  # what the link stage scores with
        actual_rows = {tuple(r[c] for c in PAIR): r for r in scores.collect()}

    assert len(expected_rows) > 200  # the extract exercises every rule and level below
    assert set(actual_rows) == set(expected_rows)
    assert scores_count == len(expected_rows)
    # Every column the link stage reads from Splink's predictions, plus each comparison's gamma.
    gammas = {f"gamma_{c['output_column_name']}" for c in model["comparisons"]}
    assert {*gammas, *expected.columns} <= set(next(iter(actual_rows.values())).asDict())
    for pair, want in expected_rows.items():
        got = actual_rows[pair]
        assert got["match_key"] == want["match_key"], pair
        assert got["match_weight"] == pytest.approx(want["match_weight"], abs=1e-9), pair
        assert got["match_probability"] == pytest.approx(want["match_probability"], abs=1e-12), pair
    # The model adjusts for term frequencies and the extract exercises several rules.
    compiled = compile_model(model)
    assert compiled.tf_columns and {r["match_key"] for r in expected_rows.values()} >= {"0", "1", "5"}


def test_compiled_model_reads_levels_weights_and_rules_from_the_json(make_config):
    model = random_model(make_config())
    compiled = compile_model(model)
    # The appended corrections are scored too, after the trained comparisons.
    assert [c.name for c in compiled.comparisons][-2:] == ["family", "relatives"]
    family = compiled.comparisons[-2]
    assert [level.gamma for level in family.levels] == [-1, 1, 0]
    assert family.levels[1].match_weight == pytest.approx(-13.0)  # log2(2^-13 / 1)
    sex = next(c for c in compiled.comparisons if c.name == "sex")
    m, u = (
        (
            sex_levels := next(c for c in model["comparisons"] if c["output_column_name"] == "sex")[
                "comparison_levels"
            ]
        )[1]["m_probability"],
        sex_levels[1]["u_probability"],
    )
    assert sex.levels[1].match_weight == pytest.approx(__import__("math").log2(m / u))
    assert compiled.prior_match_weight == pytest.approx(__import__("math").log2(1e-3 / (1 - 1e-3)))
    assert len(compiled.blocking_rules) == len(model["blocking_rules_to_generate_predictions"])


def test_blocking_pair_counts_equal_splinks_blocking_analysis(spark, make_config, people):
    from splink.blocking_analysis import count_comparisons_from_blocking_rules

    with splink_backend(spark, make_config(), "test-blocking-counts") as db_api:
        ours = blocking_pair_counts(people, BLOCKING_RULES_FOR_PREDICTION)
        splinks = count_comparisons_from_blocking_rules(
            register_sources(db_api, people),
            blocking_rules=list(BLOCKING_RULES_FOR_PREDICTION),
            link_type="link_and_dedupe",
            unique_id_column_name=UNIQUE_ID,
            source_dataset_column_name=SOURCE_DATASET,
            record_sample_proportion=1.0,
        )
    assert [(r["marginal_pairs"], r["cumulative_pairs"]) for r in ours] == [
        (r["marginal_comparison_count"], r["cumulative_comparison_count"]) for r in splinks
    ]
    assert ours[-1]["cumulative_pairs"] > 200 and sum(r["marginal_pairs"] > 0 for r in ours) >= 3
