"""Deterministic pass, stable person keys, registry events, review queue and pairwise QA on hand-built frames."""

from __future__ import annotations

import random
from datetime import date

from builders import PAIR_SCHEMA, people_frame, person
from chispa import assert_df_equality
from pyspark.sql import functions as F

from linkage.config import ThresholdsConfig
from linkage.link import deterministic, qa, spine

# ---------------------------------------------------------------------------------------------
# deterministic pass


def test_shared_nhs_number_links_on_exact_or_swapped_dob_and_flags_conflicts(spark):
    people = people_frame(
        spark,
        [
            person("gp", "1", nhs_number="9434765919", date_of_birth=date(1980, 3, 4), sex="F"),
            person(
                "hospital", "h1", nhs_number="9434765919", date_of_birth=date(1980, 4, 3), sex="F"
            ),  # day/month swapped
            person(
                "social_care", "s1", nhs_number="9434765919", date_of_birth=date(1980, 3, 4), sex=None
            ),  # sex unknown
            person("gp", "2", nhs_number="4010232137", date_of_birth=date(1950, 1, 1), sex="M"),
            person(
                "hospital", "h2", nhs_number="4010232137", date_of_birth=date(1957, 1, 1), sex="M"
            ),  # dob conflict
            person("gp", "3", nhs_number="4010232138x", date_of_birth=date(1990, 5, 6), sex="M"),
            person(
                "social_care", "s3", nhs_number="4010232138x", date_of_birth=date(1990, 5, 6), sex="F"
            ),  # sex conflict
            person("gp", "4", nhs_number="6000000000", date_of_birth=None, sex="M"),
            person(
                "hospital", "h4", nhs_number="6000000000", date_of_birth=date(2001, 2, 3), sex="M"
            ),  # dob missing: neither
            person(
                "gp", "5", nhs_number=None, date_of_birth=date(1980, 3, 4), sex="F"
            ),  # no NHS number: never paired
        ],
    )
    pairs = deterministic.nhs_number_pairs(people)
    expected_links = spark.createDataFrame(
        [
            ("gp", "1", "hospital", "h1"),
            ("gp", "1", "social_care", "s1"),
            ("hospital", "h1", "social_care", "s1"),
        ],
        PAIR_SCHEMA,
    )
    expected_conflicts = spark.createDataFrame(
        [("gp", "2", "hospital", "h2"), ("gp", "3", "social_care", "s3")], PAIR_SCHEMA
    )
    assert_df_equality(
        deterministic.deterministic_links(pairs), expected_links, ignore_row_order=True, ignore_nullable=True
    )
    assert_df_equality(
        deterministic.nhs_number_conflicts(pairs),
        expected_conflicts,
        ignore_row_order=True,
        ignore_nullable=True,
    )


# ---------------------------------------------------------------------------------------------
# keys, registry


def clusters(spark, assignment: dict[str, str]):
    """record 'gp:1' -> cluster id, as the clusters frame assign_person_keys takes."""
    rows = [
        (uid.split(":")[0], uid.split(":")[1], uid.replace(":", spine.UID_SEPARATOR), c)
        for uid, c in assignment.items()
    ]
    return spark.createDataFrame(
        rows, "source_dataset string, source_record_id string, record_uid string, cluster_id string"
    )


def keys_of(keyed_df) -> dict[str, str]:
    return {f"{r.source_dataset}:{r.source_record_id}": r.person_key for r in keyed_df.collect()}


def spine_of(keyed_df):
    return keyed_df.select("source_dataset", "source_record_id", "person_key")


def test_first_run_keys_are_deterministic_and_distinct_per_cluster(spark):
    first = keys_of(
        spine.assign_person_keys(clusters(spark, {"gp:1": "a", "hospital:9": "a", "gp:2": "b"}), None)
    )
    # Same records and clusters under other cluster ids: same keys (the key hashes the smallest record).
    again = keys_of(
        spine.assign_person_keys(clusters(spark, {"gp:1": "x", "hospital:9": "x", "gp:2": "y"}), None)
    )
    assert first == again
    assert first["gp:1"] == first["hospital:9"] != first["gp:2"]
    assert first["gp:1"].startswith("P") and len(first["gp:1"]) == 1 + spine.NEW_KEY_HEX_CHARS


def test_keys_carry_forward_when_a_record_joins_and_on_merge_and_split(spark):
    run1 = spine.assign_person_keys(
        clusters(
            spark,
            {
                "gp:1": "a",
                "hospital:1": "a",
                "gp:2": "b",
                "gp:3": "c",
                "gp:4": "d",
                "hospital:4": "d",
                "social_care:4": "d",
            },
        ),
        None,
    )
    k1 = keys_of(run1)
    # Run 2: a new record joins gp:1's person; gp:2 and gp:3 merge; person d splits 2 + 1.
    run2 = spine.assign_person_keys(
        clusters(
            spark,
            {
                "gp:1": "a",
                "hospital:1": "a",
                "third_sector:new": "a",
                "gp:2": "b",
                "gp:3": "b",
                "gp:4": "d",
                "hospital:4": "d",
                "social_care:4": "e",
            },
        ),
        spine_of(run1),
    )
    k2 = keys_of(run2)
    assert k2["third_sector:new"] == k2["gp:1"] == k1["gp:1"]  # carried forward to the new record
    assert (
        k2["gp:2"] == k2["gp:3"] == k1["gp:2"]
    )  # merge keeps the smallest record's key on a tie (1 vote each)
    assert k2["gp:4"] == k2["hospital:4"] == k1["gp:4"]  # the larger part of a split keeps the key
    assert k2["social_care:4"] not in set(k1.values())  # the split-off part gets a new key

    events = spine.registry_events(spine_of(run2), spine_of(run1)).select(
        "person_key", "event", "related_person_key", "record_count"
    )
    expected = spark.createDataFrame(
        [
            (k2["social_care:4"], "created", None, 1),
            (k2["gp:2"], "merged", k1["gp:3"], 2),
            (k2["social_care:4"], "split", k1["gp:4"], 1),
            (k1["gp:3"], "retired", None, 0),
        ],
        "person_key string, event string, related_person_key string, record_count int",
    )
    assert_df_equality(events, expected, ignore_row_order=True, ignore_nullable=True)


def test_rerun_on_the_same_clusters_changes_no_key_and_records_no_event(spark):
    run1 = spine.assign_person_keys(clusters(spark, {"gp:1": "a", "hospital:1": "a", "gp:2": "b"}), None)
    run2 = spine.assign_person_keys(
        clusters(spark, {"gp:1": "q", "hospital:1": "q", "gp:2": "r"}), spine_of(run1)
    )
    assert keys_of(run2) == keys_of(run1)
    assert spine.registry_events(spine_of(run2), spine_of(run1)).count() == 0


def test_new_key_never_reuses_a_key_issued_before(spark):
    # gp:1 was split off {gp:1, gp:2, gp:3}, whose key was hash(gp:1): gp:1 alone must not get that key back.
    run1 = spine.assign_person_keys(clusters(spark, {"gp:1": "a", "gp:2": "a", "gp:3": "a"}), None)
    run2 = spine.assign_person_keys(clusters(spark, {"gp:1": "x", "gp:2": "y", "gp:3": "y"}), spine_of(run1))
    k1, k2 = keys_of(run1), keys_of(run2)
    assert k2["gp:2"] == k1["gp:1"]
    assert k2["gp:1"] != k1["gp:1"]


def test_match_method_prefers_nhs_number_then_clerical_then_model(spark):
    keyed = spine.assign_person_keys(
        clusters(
            spark, {"gp:1": "a", "hospital:1": "a", "social_care:1": "a", "third_sector:1": "a", "gp:2": "b"}
        ),
        None,
    )
    edges = spark.createDataFrame(
        [
            ("gp", "1", "hospital", "1", "nhs_number"),
            ("gp", "1", "social_care", "1", "probabilistic"),
            ("hospital", "1", "third_sector", "1", "clerical"),
            ("social_care", "1", "third_sector", "1", "probabilistic"),
        ],
        PAIR_SCHEMA + ", method string",
    )
    methods = {
        f"{r.source_dataset}:{r.source_record_id}": (r.match_method, r.cluster_size)
        for r in spine.with_match_method(keyed, edges).collect()
    }
    assert methods == {
        "gp:1": ("nhs_number", 4),
        "hospital:1": ("nhs_number", 4),
        "social_care:1": ("probabilistic", 4),
        "third_sector:1": ("clerical", 4),
        "gp:2": ("singleton", 1),
    }


# ---------------------------------------------------------------------------------------------
# edges, decisions, review queue


def predictions(spark, rows):
    return spark.createDataFrame(rows, PAIR_SCHEMA + ", match_probability double, match_weight double")


def test_review_queue_holds_pairs_from_lower_up_to_but_not_including_upper(spark):
    thresholds = ThresholdsConfig(lower=0.5, upper=0.95)
    scored = predictions(
        spark,
        [
            ("gp", "1", "gp", "2", 0.4999, -0.1),
            ("gp", "1", "gp", "3", 0.5, 0.0),
            ("gp", "1", "gp", "4", 0.9499, 4.2),
            ("gp", "1", "gp", "5", 0.95, 4.25),
            ("hospital", "9", "gp", "6", 0.7, 1.2),  # right sorts first: swapped
            ("gp", "1", "gp", "7", None, None),
        ],
    )
    decided = spark.createDataFrame(
        [("gp", "4", "gp", "1", "non_match", "reviewer-1", None)],
        PAIR_SCHEMA + ", decision string, decided_by string, decided_at timestamp",
    )
    queue = spine.review_pairs(scored, thresholds, decided).select(*deterministic.PAIR_KEYS)
    expected = spark.createDataFrame([("gp", "1", "gp", "3"), ("gp", "6", "hospital", "9")], PAIR_SCHEMA)
    assert_df_equality(queue, expected, ignore_row_order=True, ignore_nullable=True)


def test_mutual_single_best_candidates_link_between_best_link_and_upper(spark):
    thresholds = ThresholdsConfig(lower=0.5, upper=0.99, best_link=0.8)
    scored = predictions(
        spark,
        [
            # t1 fits two GP records equally well: a tie links neither.
            ("gp", "g1", "third_sector", "t1", 0.9, 3.0),
            ("gp", "g2", "third_sector", "t1", 0.9, 3.0),
            # t2's best GP record is g3, and g3's best third-sector record is t2: mutual, links.
            ("gp", "g3", "third_sector", "t2", 0.85, 2.5),
            ("gp", "g4", "third_sector", "t2", 0.6, 0.5),
            # g5 is t3's best GP record, but g5's best third-sector record is t4 (linked on its own at 0.995).
            ("gp", "g5", "third_sector", "t3", 0.9, 3.2),
            ("gp", "g5", "third_sector", "t4", 0.995, 7.6),
            # Mutual best but below best_link.
            ("hospital", "h1", "social_care", "s1", 0.79, 1.9),
            # A candidate in another source does not compete: h2 is g3's best hospital record, g3 is h2's best GP record.
            ("gp", "g3", "hospital", "h2", 0.8, 2.0),
        ],
    )
    edges = spine.link_edges(spark.createDataFrame([], PAIR_SCHEMA), scored, thresholds)
    assert_edges(
        edges,
        [
            ("gp", "g3", "third_sector", "t2", 0.85, "probabilistic"),
            ("gp", "g5", "third_sector", "t4", 0.995, "probabilistic"),
            ("gp", "g3", "hospital", "h2", 0.8, "probabilistic"),
        ],
    )


def test_a_records_single_best_candidate_in_each_other_source_is_its_unique_highest_weight(spark):
    scored = predictions(
        spark,
        [
            # From g1: h1 and h2 tie at the top, h3 is lower: g1 has no best hospital record.
            ("gp", "g1", "hospital", "h1", 0.9, 3.0),
            ("gp", "g1", "hospital", "h2", 0.9, 3.0),
            ("gp", "g1", "hospital", "h3", 0.6, 0.5),
            # From g2: h4 is highest alone (the tie below it does not matter); its third-sector best is t1.
            ("gp", "g2", "hospital", "h4", 0.95, 4.0),
            ("gp", "g2", "hospital", "h5", 0.7, 1.0),
            ("gp", "g2", "hospital", "h6", 0.7, 1.0),
            ("gp", "g2", "third_sector", "t1", 0.5, -0.2),
            # Read from the right too: h1's best GP record is g1, h2's is g1, h4's is g2, h3's is g1 (its only one).
        ],
    )
    best = spine.single_best_candidates(scored, "match_probability").select(
        *deterministic.PAIR_KEYS, "match_probability", "match_weight"
    )
    expected = predictions(
        spark,
        [
            ("gp", "g2", "hospital", "h4", 0.95, 4.0),
            ("gp", "g2", "third_sector", "t1", 0.5, -0.2),
            ("hospital", "h1", "gp", "g1", 0.9, 3.0),
            ("hospital", "h2", "gp", "g1", 0.9, 3.0),
            ("hospital", "h3", "gp", "g1", 0.6, 0.5),
            ("hospital", "h4", "gp", "g2", 0.95, 4.0),
            ("hospital", "h5", "gp", "g2", 0.7, 1.0),
            ("hospital", "h6", "gp", "g2", 0.7, 1.0),
            ("third_sector", "t1", "gp", "g2", 0.5, -0.2),
        ],
    )
    assert_df_equality(best, expected, ignore_row_order=True, ignore_nullable=True)


def test_ranking_from_a_min_weight_finds_every_best_candidate_at_or_above_it_and_none_below(spark):
    draw = random.Random(7)
    # 80 GP records against 60 hospital records, about three candidates each, weights on a coarse grid: ties, pairs
    # exactly at the floor, and records whose best candidate is below it.
    grid = (-14.0, -12.0, -12.0, -10.0, -10.0, -8.0, -3.0, 0.0, 5.0)
    rows = sorted(
        {(f"g{draw.randrange(80)}", f"h{draw.randrange(60)}"): draw.choice(grid) for _ in range(200)}.items()
    )
    scored = predictions(spark, [("gp", g, "hospital", h, 0.5, w) for (g, h), w in rows])
    columns = (*deterministic.PAIR_KEYS, "match_probability", "match_weight")
    from_floor = spine.single_best_candidates(scored, "match_probability", min_weight=-10.0).select(*columns)
    every = spine.single_best_candidates(scored, "match_probability").select(*columns)
    assert_df_equality(
        from_floor, every.where(F.col("match_weight") >= -10.0), ignore_row_order=True, ignore_nullable=True
    )
    # The grid's low weights are somebody's best: so ranking from the floor does leave something out.
    assert every.where(F.col("match_weight") < -10.0).count() > 0


def assert_edges(edges, rows) -> None:
    """The edges are exactly these (pair, match_probability, method) rows, in any order."""
    expected = edges.sparkSession.createDataFrame(
        rows, PAIR_SCHEMA + ", match_probability double, method string"
    )
    assert_df_equality(edges, expected, ignore_row_order=True, ignore_nullable=True, ignore_column_order=True)


def test_a_best_link_joins_an_unlinked_record_never_two_persons(spark):
    # Person A: g1 + h1 at the upper threshold. Person B: g2 + s1 by NHS number. t9 is unlinked; g7 and h7 too.
    nhs = spark.createDataFrame([("gp", "g2", "social_care", "s1")], PAIR_SCHEMA)
    scored = predictions(
        spark,
        [
            ("gp", "g1", "hospital", "h1", 0.999, 10.0),
            # Mutual best, but both records are in persons of two: one borderline pair would merge four records.
            ("hospital", "h1", "social_care", "s1", 0.9, 3.2),
            # t9's best links: to person A (kept, its best) and to person B (refused: it would chain A and B).
            ("gp", "g1", "third_sector", "t9", 0.9, 3.2),
            ("social_care", "s1", "third_sector", "t9", 0.88, 2.9),
            # Two unlinked records, each the other's best: they link.
            ("gp", "g7", "hospital", "h7", 0.86, 2.6),
        ],
    )
    thresholds = ThresholdsConfig(lower=0.5, upper=0.995, best_link=0.85)
    expected = [
        ("gp", "g1", "hospital", "h1", 0.999, "probabilistic"),
        ("gp", "g2", "social_care", "s1", None, "nhs_number"),
        ("gp", "g1", "third_sector", "t9", 0.9, "probabilistic"),
        ("gp", "g7", "hospital", "h7", 0.86, "probabilistic"),
    ]
    assert_edges(spine.link_edges(nhs, scored, thresholds), expected)
    # The first release's rule: every mutual best pair links, and persons A and B become one.
    assert_edges(
        spine.link_edges(nhs, scored, thresholds.model_copy(update={"best_link_scope": "any"})),
        [
            *expected,
            ("hospital", "h1", "social_care", "s1", 0.9, "probabilistic"),
            ("social_care", "s1", "third_sector", "t9", 0.88, "probabilistic"),
        ],
    )


def test_a_best_link_to_persons_ignores_the_persons_own_records_unless_they_refute_it(spark):
    # Person A: g1 + h1 + g5 at the upper threshold; g2, unlinked, fits A's records at 0.87-0.9.
    # Person B: g3 + h3 by NHS number; g4, unlinked, fits h3 at 0.9 but g3 badly: a relative.
    nhs = spark.createDataFrame([("gp", "g3", "hospital", "h3")], PAIR_SCHEMA)
    scored = predictions(
        spark,
        [
            ("gp", "g1", "hospital", "h1", 0.999, 10.0),
            ("gp", "g1", "gp", "g5", 0.999, 10.0),
            ("gp", "g2", "hospital", "h1", 0.9, 3.2),
            ("gp", "g1", "gp", "g2", 0.88, 2.9),
            ("gp", "g2", "gp", "g5", 0.87, 2.7),
            ("gp", "g3", "hospital", "h3", 0.99, 6.6),
            ("gp", "g4", "hospital", "h3", 0.9, 3.2),
            ("gp", "g3", "gp", "g4", 0.2, -2.0),
        ],
    )
    strong = [
        ("gp", "g1", "hospital", "h1", 0.999, "probabilistic"),
        ("gp", "g1", "gp", "g5", 0.999, "probabilistic"),
        ("gp", "g3", "hospital", "h3", None, "nhs_number"),
    ]
    thresholds = ThresholdsConfig(lower=0.5, upper=0.995, best_link=0.85)
    assert thresholds.best_link_scope == "unlinked_records_to_persons"
    # Record to person: h1's best among the records not linked to it is g2, which fits g1 too (0.88): g2 joins A by its
    # best pair. h3's best such record is g4, but g4 fits g3, h3's GP record, at 0.2: refused.
    assert_edges(
        spine.link_edges(nhs, scored, thresholds),
        [*strong, ("gp", "g2", "hospital", "h1", 0.9, "probabilistic")],
    )
    # Record to record (the rule before): h1's best GP record is g1 and g1's is g5, so g2 is no one's best and stays
    # alone; so does g4 (h3's best GP record is g3).
    record_to_record = thresholds.model_copy(update={"best_link_scope": "unlinked_records"})
    assert_edges(spine.link_edges(nhs, scored, record_to_record), strong)


def test_clerical_match_links_and_non_match_cuts_whatever_the_model_said(spark):
    thresholds = ThresholdsConfig(lower=0.5, upper=0.95)
    nhs = spark.createDataFrame([("gp", "1", "hospital", "1")], PAIR_SCHEMA)
    scored = predictions(spark, [("gp", "2", "gp", "3", 0.99, 8.0), ("gp", "4", "gp", "5", 0.7, 1.0)])
    decisions = spark.createDataFrame(
        [
            ("gp", "5", "gp", "4", "match", "r1", None),  # reviewer's order differs from the model's
            ("hospital", "1", "gp", "1", "non_match", "r1", None),
            ("gp", "2", "gp", "3", "match", "r1", "2026-01-01 00:00:00"),
            ("gp", "3", "gp", "2", "non_match", "r2", "2026-02-01 00:00:00"),  # later decision wins
        ],
        PAIR_SCHEMA + ", decision string, decided_by string, decided_at string",
    ).withColumn("decided_at", F.to_timestamp("decided_at"))
    edges = spine.link_edges(nhs, scored, thresholds, decisions).drop("match_probability")
    expected = spark.createDataFrame([("gp", "4", "gp", "5", "clerical")], PAIR_SCHEMA + ", method string")
    assert_df_equality(edges, expected, ignore_row_order=True, ignore_nullable=True)


def test_unsure_neither_links_nor_cuts_and_keeps_the_pair_in_the_queue(spark):
    thresholds = ThresholdsConfig(lower=0.5, upper=0.95)
    nhs = spark.createDataFrame([("gp", "1", "hospital", "1")], PAIR_SCHEMA)
    scored = predictions(
        spark,
        [
            ("gp", "4", "gp", "5", 0.7, 1.0),
            ("gp", "6", "gp", "7", 0.6, 0.5),
            ("gp", "8", "gp", "9", 0.8, 2.0),
        ],
    )
    decisions = spark.createDataFrame(
        [
            ("hospital", "1", "gp", "1", "unsure", "r1", "2026-01-01 00:00:00"),  # the NHS-number link stands
            ("gp", "4", "gp", "5", "unsure", "r1", "2026-01-01 00:00:00"),  # no clerical link, still queued
            ("gp", "6", "gp", "7", "match", "r1", "2026-01-01 00:00:00"),
            ("gp", "7", "gp", "6", "unsure", "r2", "2026-02-01 00:00:00"),  # later unsure withdraws the match
            ("gp", "8", "gp", "9", "non_match", "r1", "2026-01-01 00:00:00"),  # settled: leaves the queue
        ],
        PAIR_SCHEMA + ", decision string, decided_by string, decided_at string",
    ).withColumn("decided_at", F.to_timestamp("decided_at"))
    edges = spine.link_edges(nhs, scored, thresholds, decisions).select(*deterministic.PAIR_KEYS, "method")
    assert_df_equality(
        edges,
        spark.createDataFrame([("gp", "1", "hospital", "1", "nhs_number")], PAIR_SCHEMA + ", method string"),
        ignore_nullable=True,
    )
    queue = spine.review_pairs(scored, thresholds, decisions).select(*deterministic.PAIR_KEYS)
    expected = spark.createDataFrame([("gp", "4", "gp", "5"), ("gp", "6", "gp", "7")], PAIR_SCHEMA)
    assert_df_equality(queue, expected, ignore_row_order=True, ignore_nullable=True)


def test_oversized_cluster_loses_only_its_weaker_model_links(spark):
    clustered = clusters(
        spark, {"gp:1": "big", "gp:2": "big", "gp:3": "big", "hospital:1": "small", "hospital:2": "small"}
    )
    edges = spark.createDataFrame(
        [
            ("gp", "1", "gp", "2", 0.96, "probabilistic"),  # weak, in the oversized cluster: dropped
            ("gp", "2", "gp", "3", 0.99999, "probabilistic"),  # strong: kept
            ("gp", "1", "gp", "3", None, "nhs_number"),  # NHS-number link: kept whatever its probability
            ("hospital", "1", "hospital", "2", 0.96, "probabilistic"),  # weak but its cluster is small: kept
        ],
        PAIR_SCHEMA + ", match_probability double, method string",
    )
    kept = spine.without_weak_edges_in_oversized_clusters(
        edges, clustered, max_size=2, strict_probability=0.9999
    )
    assert sorted((r.source_record_id_l, r.source_record_id_r, r.method) for r in kept.collect()) == [
        ("1", "2", "probabilistic"),
        ("1", "3", "nhs_number"),
        ("2", "3", "probabilistic"),
    ]
    assert kept.where("source_dataset_l = 'gp' AND source_record_id_r = '2'").count() == 0


# ---------------------------------------------------------------------------------------------
# pairwise QA


def test_pairwise_precision_recall_on_a_hand_checked_example(spark):
    # Truth: T1 = {a, b, c}, T2 = {d, e}; predicted: P1 = {a, b}, P2 = {c, d, e}.
    # true pairs: ab ac bc de = 4; predicted pairs: ab + cd ce de = 4; true positives: ab, de = 2.
    spine_df = spark.createDataFrame(
        [("gp", r, k) for r, k in [("a", "P1"), ("b", "P1"), ("c", "P2"), ("d", "P2"), ("e", "P2")]],
        "source_dataset string, source_record_id string, person_key string",
    )
    truth = spark.createDataFrame(
        [
            ("gp", r, t, g, "F", "Unknown", "Unknown")
            for r, t, g in [
                ("a", "T1", "Asian"),
                ("b", "T1", "Asian"),
                ("c", "T1", "Asian"),
                ("d", "T2", "White"),
                ("e", "T2", "White"),
                ("z", "T9", None),
            ]
        ],
        "source_dataset string, source_record_id string, true_person_id string, "
        "ethnic_group string, sex string, age_band string, imd_quintile string",
    )
    metrics = qa.truth_metrics(spine_df, truth)
    assert (metrics["pairs.true_positive"], metrics["pairs.predicted"], metrics["pairs.true"]) == (2, 4, 4)
    assert metrics["precision"] == 0.5 and metrics["recall"] == 0.5 and metrics["f1"] == 0.5
    # Asian: true ab ac bc, predicted ab (c's pairs with d, e cross groups), tp ab -> recall 1/3, precision 1.
    assert metrics["recall.ethnic_group.Asian"] == 1 / 3 and metrics["precision.ethnic_group.Asian"] == 1.0
    # White: true de, predicted de -> 1, 1.
    assert metrics["recall.ethnic_group.White"] == 1.0 and metrics["precision.ethnic_group.White"] == 1.0
    assert metrics["recall_gap.ethnic_group"] == 1 - 1 / 3


def test_spine_metrics_on_a_hand_checked_spine(spark):
    # P1 = gp a, gp b, hospital h1 (two NHS numbers, birth years 3 apart); P2 = gp c;
    # P3 = hospital h2, social care s1 (one NHS number, birth years 1 apart); P4 = social care s2.
    records = [
        ("gp", "a", "P1", "nhs_number", "9434765919", 1980),
        ("gp", "b", "P1", "probabilistic", "9434765870", 1980),
        ("hospital", "h1", "P1", "nhs_number", "9434765919", 1983),
        ("gp", "c", "P2", "unlinked", None, 1950),
        ("hospital", "h2", "P3", "probabilistic", "9434765862", 1990),
        ("social_care", "s1", "P3", "probabilistic", None, 1991),
        ("social_care", "s2", "P4", "unlinked", None, None),
    ]
    spine_df = spark.createDataFrame(
        [r[:4] for r in records],
        "source_dataset string, source_record_id string, person_key string, match_method string",
    )
    people_df = spark.createDataFrame(
        [(r[0], r[1], r[4], r[5]) for r in records],
        "source_dataset string, source_record_id string, nhs_number string, year_of_birth int",
    )
    metrics = qa.spine_metrics(spine_df, people_df)
    assert {k: v for k, v in metrics.items() if not k.startswith("cluster_size.p")} == {
        "records_by_method.nhs_number": 2,
        "records_by_method.probabilistic": 3,
        "records_by_method.unlinked": 2,
        "persons": 4,
        "records": 7,
        "records.gp": 3,
        "records.hospital": 2,
        "records.social_care": 2,
        "cluster_size.largest_1": 3,
        "cluster_size.largest_2": 2,
        "cluster_size.largest_3": 1,
        "cluster_size.largest_4": 1,
        # Two of gp's three records share a person with another gp record; no other source has a duplicate.
        "within_source_duplicate_rate.gp": 2 / 3,
        # gp a and b are with hospital h1; h1 with gp; h2 with social care s1 and s1 with h2.
        "link_rate.gp.hospital": 2 / 3,
        "link_rate.hospital.gp": 1 / 2,
        "link_rate.hospital.social_care": 1 / 2,
        "link_rate.social_care.hospital": 1 / 2,
        "conflict_clusters.two_valid_nhs_numbers": 1,
        "conflict_clusters.birth_years_apart": 1,
    }
    assert metrics["cluster_size.p50"] in (1, 2) and metrics["cluster_size.p99.9"] == 3


def test_precision_recall_with_nothing_predicted_or_true():
    assert qa.precision_recall_f1(0, 0, 0) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert qa.precision_recall_f1(0, 3, 2) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_truth_groups_age_band_and_imd_quintile(spark, tmp_path):
    path = tmp_path / "truth.csv"
    path.write_text(
        "source_dataset,source_record_id,true_person_id,ethnic_group,sex,birth_year,imd_decile\n"
        "gp,1,T1,White,F,2010,1\ngp,2,T2,,M,1960,10\ngp,3,T3,Black,,,\n",
        encoding="utf-8",
    )
    truth = {
        r.source_record_id: (r.ethnic_group, r.sex, r.age_band, r.imd_quintile)
        for r in qa.read_truth(spark, str(path), 2026).collect()
    }
    # 2026 - 2010 = 16 -> 16-24; decile 1 -> quintile 1; 2026 - 1960 = 66 -> 65-79; decile 10 -> quintile 5.
    assert truth == {
        "1": ("White", "F", "16-24", "1"),
        "2": ("Unknown", "M", "65-79", "5"),
        "3": ("Black", "Unknown", "Unknown", "Unknown"),
    }
