"""The compiled one-pass scorer against Splink's own predict on Spark: same candidate pairs, same match weights."""

from __future__ import annotations

import pytest
from builders import people_frame, person, phonetic_people_frame, random_model, synthetic_people
from pyspark.sql import functions as F

from linkage.link.model import (
    blocking_block_sizes,
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
    frame = phonetic_people_frame(spark, rows)
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


def test_block_sizes_equal_splinks_blocks_before_filter_conditions(spark, make_config, people):
    """What train logs per rule: Splink's comparisons before filter conditions (the sum of n_largest_blocks'
    block_count over every block) and its largest block, for symmetric rules and for the swapped-name and
    swapped-day-and-month rules, whose two sides are different columns."""
    from splink.blocking_analysis import n_largest_blocks

    with splink_backend(spark, make_config(), "test-block-sizes") as db_api:
        ours = blocking_block_sizes(people, BLOCKING_RULES_FOR_PREDICTION)
        tables = register_sources(db_api, people)
        splinks = []
        for rule in BLOCKING_RULES_FOR_PREDICTION:
            blocks = n_largest_blocks(
                tables, blocking_rule=rule, link_type="link_and_dedupe", n_largest=1_000_000
            ).as_pandas_dataframe()["block_count"]
            splinks.append((int(blocks.sum()), int(blocks.max()) if len(blocks) else 0))
    assert [(r["comparisons_before_filters"], r["largest_block_comparisons"]) for r in ours] == splinks
    swapped = [
        i
        for i, rule in enumerate(BLOCKING_RULES_FOR_PREDICTION)
        if "forename_std = r.surname_std" in str(ours[i]["rule"])
    ]
    assert swapped and any(ours[i]["comparisons_before_filters"] > 0 for i in swapped)
    assert all(r["largest_block_comparisons"] <= r["comparisons_before_filters"] for r in ours)


def test_name_rules_need_more_than_names_where_the_records_hold_more(spark):
    """Hand-built pairs for the two name rules. A swap of forename and surname pairs records only beside the same
    year of birth or postcode district, or where a year is missing; canonical names with the year pair records
    only where one lacks an NHS number (where both hold one, the NHS rule or the model's non-match evidence
    decides)."""
    import datetime

    from linkage.link.scorer import MATCH_KEY, UID, blocked_pairs, with_unique_id
    from linkage.link.settings import BLOCKING_RULES_FOR_PREDICTION as RULES

    def record(dataset, record_id, forename, surname, dob, district, nhs=None):
        born = None if dob is None else datetime.date.fromisoformat(dob)
        return person(
            dataset,
            record_id,
            forename_std=forename,
            surname_std=surname,
            forename_canonical=forename,
            surname_canonical=surname,
            date_of_birth=born,
            year_of_birth=None if born is None else born.year,
            postcode_district=district,
            nhs_number=nhs,
        )

    rows = [
        # Swapped names: (a1, a2) same year; (b1, b2) same district; (c1, c2) no year on one side; (d1, d2) neither.
        record("gp", "a1", "ALAW", "BRYN", "1970-01-02", "LS1"),
        record("hospital", "a2", "BRYN", "ALAW", "1970-06-07", "M1"),
        record("gp", "b1", "CERI", "DELYTH", "1971-01-02", "LS2"),
        record("hospital", "b2", "DELYTH", "CERI", "1981-06-07", "LS2"),
        record("gp", "c1", "EIRA", "FFION", "1972-01-02", "LS3"),
        record("third_sector", "c2", "FFION", "EIRA", None, "M3"),
        record("gp", "d1", "GWYN", "HEDD", "1973-01-02", "LS4"),
        record("hospital", "d2", "HEDD", "GWYN", "1983-06-07", "M4"),
        # Canonical names and year, dates differ: (e1, e2) one NHS number missing; (f1, f2) two valid, different.
        record("gp", "e1", "IFAN", "JONES", "1974-01-02", "LS5", "9434765811"),
        record("social_care", "e2", "IFAN", "JONES", "1974-03-04", "M5"),
        record("gp", "f1", "LOWRI", "MORGAN", "1975-01-02", "LS6", "9434765919"),
        record("hospital", "f2", "LOWRI", "MORGAN", "1975-03-04", "M6", "4010232137"),
    ]
    frame = people_frame(spark, rows).withColumns(
        {"forename_phonetic": F.soundex("forename_std"), "surname_phonetic": F.soundex("surname_std")}
    )
    records = with_unique_id(model_input(frame), (SOURCE_DATASET, UNIQUE_ID))
    rules = tuple(r.get_blocking_rule("spark").blocking_rule_sql for r in RULES)
    pairs = blocked_pairs(records, rules).select(MATCH_KEY, f"{UID}_l", f"{UID}_r").collect()
    found = {
        tuple(sorted(r[f"{UID}_{s}"].split("-__-")[1] for s in "lr")): rules[int(r[MATCH_KEY])] for r in pairs
    }
    assert set(found) == {("a1", "a2"), ("b1", "b2"), ("c1", "c2"), ("e1", "e2")}
    assert (
        "year_of_birth = r.year_of_birth" in found[("a1", "a2")]
        and "forename_std = r.surname_std" in found[("a1", "a2")]
    )
    assert "postcode_district" in found[("b1", "b2")]
    assert "year_of_birth IS NULL" in found[("c1", "c2")]
    assert "nhs_number IS NULL" in found[("e1", "e2")]
