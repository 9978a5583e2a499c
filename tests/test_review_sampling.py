"""The sampling frame and strata on tiny inline data."""

from __future__ import annotations

import pytest

from linkage.link.pairs import REVIEW_FLOOR_WEIGHT, link_pairs
from linkage.link.spine import single_best_candidates
from linkage.review import sampling
from linkage.review.sampling import draw, stratum, with_pair_groups

PAIR = (
    "source_dataset_l string, source_record_id_l string, source_dataset_r string, source_record_id_r string"
)


def test_frame_holds_same_person_pairs_and_scored_candidates_with_method_and_best_candidate(spark):
    # person A: gp1, h1, s1 (gp1-h1 scored and an edge; h1-s1 by NHS number; gp1-s1 only through them)
    # person B: gp2 alone; h2 alone. Scored but not linked: gp2-h1 (w -3) and gp2-h2 (w 1).
    predictions = spark.createDataFrame(
        [
            ("gp", "1", "hospital", "1", 25.0, 0.999),
            ("gp", "2", "hospital", "1", -3.0, 0.1),
            ("hospital", "2", "gp", "2", 1.0, 0.66),
        ],
        f"{PAIR}, match_weight double, match_probability double",
    )
    edges = spark.createDataFrame(
        [("gp", "1", "hospital", "1", "probabilistic"), ("hospital", "1", "social_care", "1", "nhs_number")],
        f"{PAIR}, method string",
    )
    spine = spark.createDataFrame(
        [
            ("gp", "1", "A"),
            ("hospital", "1", "A"),
            ("social_care", "1", "A"),
            ("gp", "2", "B"),
            ("hospital", "2", "C"),
        ],
        "source_dataset string, source_record_id string, person_key string",
    )
    rows = {(r[0], r[1], r[2], r[3]): r for r in link_pairs(predictions, edges, spine).collect()}
    assert set(rows) == {
        ("gp", "1", "hospital", "1"),
        ("gp", "2", "hospital", "1"),
        ("gp", "2", "hospital", "2"),
        ("hospital", "1", "social_care", "1"),
        ("gp", "1", "social_care", "1"),
    }
    linked = rows[("gp", "1", "hospital", "1")]
    assert (linked["method"], linked["is_linked"], linked["match_weight"], linked["is_best_candidate"]) == (
        "probabilistic",
        True,
        25.0,
        True,
    )
    assert rows[("hospital", "1", "social_care", "1")]["method"] == "nhs_number"
    transitive = rows[("gp", "1", "social_care", "1")]
    assert (transitive["method"], transitive["match_weight"]) == ("transitive", None)
    near = rows[("gp", "2", "hospital", "2")]  # swapped into order; h2's only candidate, gp2's best
    assert (near["method"], near["is_linked"], near["is_best_candidate"]) == (None, False, True)
    other = rows[("gp", "2", "hospital", "1")]  # neither gp2's best (w 1 beats -3) nor h1's (25 beats -3)
    assert (other["is_linked"], other["is_best_candidate"]) == (False, False)


def test_a_pair_linked_several_ways_reports_the_most_certain_and_precomputed_best_candidates_agree(spark):
    predictions = spark.createDataFrame(
        [("gp", "1", "hospital", "1", 25.0, 0.999), ("hospital", "2", "gp", "1", 2.0, 0.8)],
        f"{PAIR}, match_weight double, match_probability double",
    )
    # The same pair as a model link and, spelt the other way round, a clerical match: clerical is more certain.
    edges = spark.createDataFrame(
        [("gp", "1", "hospital", "1", "probabilistic"), ("hospital", "1", "gp", "1", "clerical")],
        f"{PAIR}, method string",
    )
    spine = spark.createDataFrame(
        [("gp", "1", "A"), ("hospital", "1", "A"), ("hospital", "2", "B")],
        "source_dataset string, source_record_id string, person_key string",
    )
    frame = link_pairs(predictions, edges, spine)
    rows = {(r[0], r[1], r[2], r[3]): r.asDict() for r in frame.collect()}
    assert rows[("gp", "1", "hospital", "1")]["method"] == "clerical"
    assert rows[("gp", "1", "hospital", "2")] == {
        "source_dataset_l": "gp",
        "source_record_id_l": "1",
        "source_dataset_r": "hospital",
        "source_record_id_r": "2",
        "match_weight": 2.0,
        "match_probability": 0.8,
        "method": None,
        "is_linked": False,
        "is_best_candidate": True,  # h2's only candidate
    }
    best = single_best_candidates(predictions, "match_probability")
    assert sorted(link_pairs(predictions, edges, spine, best).collect()) == sorted(frame.collect())


def test_a_candidate_below_the_review_floor_is_no_ones_best(spark):
    # g1's only hospital candidate is below the floor; g2's are above it, h3 the higher.
    predictions = spark.createDataFrame(
        [
            ("gp", "1", "hospital", "1", REVIEW_FLOOR_WEIGHT - 2.0, 0.0002),
            ("gp", "2", "hospital", "2", REVIEW_FLOOR_WEIGHT, 0.001),
            ("gp", "2", "hospital", "3", -4.0, 0.06),
        ],
        f"{PAIR}, match_weight double, match_probability double",
    )
    edges = spark.createDataFrame([], f"{PAIR}, method string")
    spine = spark.createDataFrame(
        [
            ("gp", "1", "A"),
            ("gp", "2", "B"),
            ("hospital", "1", "C"),
            ("hospital", "2", "D"),
            ("hospital", "3", "E"),
        ],
        "source_dataset string, source_record_id string, person_key string",
    )
    best = {(r[1], r[3]): r["is_best_candidate"] for r in link_pairs(predictions, edges, spine).collect()}
    # h2's only candidate is g2, at the floor itself; g2's best is h3.
    assert best == {("1", "1"): False, ("2", "2"): True, ("2", "3"): True}
    # Ranked by the link job (from the floor, or from lower when best_link's weight is lower) or by link_pairs
    # itself: the same flags.
    for min_weight in (REVIEW_FLOOR_WEIGHT, REVIEW_FLOOR_WEIGHT - 5.0):
        ranked = single_best_candidates(predictions, "match_probability", min_weight=min_weight)
        assert sorted(link_pairs(predictions, edges, spine, ranked).collect()) == sorted(
            link_pairs(predictions, edges, spine).collect()
        )


def test_a_near_miss_floor_below_the_best_candidate_floor_is_refused(spark, make_config):
    with pytest.raises(ValueError, match="below"):
        sampling.frame(spark, make_config(), near_miss_floor=REVIEW_FLOOR_WEIGHT - 10.0)


def test_strata_bands_groups_and_seeded_draw(spark):
    pairs = spark.createDataFrame(
        [
            ("gp", "1", "hospital", "1", 25.0, True, "probabilistic", True),
            ("gp", "1", "hospital", "2", 12.0, True, "probabilistic", False),
            ("gp", "1", "social_care", "1", None, True, "transitive", False),
            ("gp", "2", "hospital", "1", 1.0, False, None, True),
            ("gp", "2", "hospital", "3", -7.0, False, None, False),
            ("gp", "3", "hospital", "3", -12.0, False, None, False),
        ],
        f"{PAIR}, match_weight double, is_linked boolean, method string, is_best_candidate boolean",
    )
    strata = [r["s"] for r in pairs.select(stratum(pairs).alias("s")).collect()]
    assert strata == [
        "link|probabilistic|w>=20",
        "link|probabilistic|10<=w<20",
        "link|transitive|unscored",
        "near_miss|best_candidate|w>=0",
        "near_miss|other|w<-5",
        "below_floor",
    ]
    groups = spark.createDataFrame(
        [("gp", "1", None, "F", "25-44", "3"), ("hospital", "1", "Asian", None, None, None)],
        "source_dataset string, source_record_id string, ethnic_group string, sex string, "
        "age_band string, imd_quintile string",
    )
    grouped = with_pair_groups(pairs.limit(1), groups).first()
    assert (grouped["ethnic_group"], grouped["sex"], grouped["age_band"], grouped["imd_quintile"]) == (
        "Asian",
        "F",
        "25-44",
        "3",
    )
    many = spark.range(50).selectExpr(
        "'gp' as source_dataset_l",
        "cast(id as string) as source_record_id_l",
        "'hospital' as source_dataset_r",
        "'x' as source_record_id_r",
        "if(id < 40, 'a', 'b') as stratum",
    )
    first = {r["source_record_id_l"] for r in draw(many, {"a": 5, "b": 10}, seed=3).collect()}
    again = {r["source_record_id_l"] for r in draw(many, {"a": 5, "b": 10}, seed=3).collect()}
    other_seed = {r["source_record_id_l"] for r in draw(many, {"a": 5, "b": 10}, seed=4).collect()}
    assert first == again and len(first) == 15 and first != other_seed
    assert len({i for i in first if int(i) >= 40}) == 10  # all of stratum b
