"""Incremental linkage: only pairs holding a new or changed record are rescored; the rest are the last run's."""

from __future__ import annotations

import math
import shutil
from datetime import date

import pytest
from builders import PAIR_SCHEMA, people_frame, person, phonetic_people_frame, random_model, synthetic_people
from pyspark.sql import functions as F

from jobs import link as link_job
from linkage.lake import read_table
from linkage.link import incremental, spine
from linkage.link.model import model_input, splink_backend
from linkage.link.pairs import link_pairs
from linkage.link.scorer import materialised_scores
from linkage.link.stage import cluster, clusters_after_change
from linkage.schemas import LINK_PAIRS, PEOPLE_STD, PERSON_REGISTRY, PERSON_SPINE, SCORED_PAIRS

KEYS = ["source_dataset_l", "source_record_id_l", "source_dataset_r", "source_record_id_r", "match_key"]


def records(spark, rows):
    frame = phonetic_people_frame(spark, rows)
    return model_input(frame).cache()


def scores_by_pair(df) -> dict[tuple, float]:
    return {
        tuple(row[k] for k in KEYS): row["match_weight"] for row in df.select(*KEYS, "match_weight").collect()
    }


def test_an_incremental_link_rescores_exactly_the_pairs_holding_new_or_changed_records(spark, make_config):
    rows, _ = synthetic_people(seed=11)
    model = random_model(make_config())
    before = records(spark, rows)

    # The next extract: two records' surnames corrected, two records gone, two new records (copies of others
    # under new ids: duplicates the run must find), the rest as they were.
    changed_ids = [rows[5]["source_record_id"], rows[40]["source_record_id"]]
    gone_ids = [rows[7]["source_record_id"], rows[61]["source_record_id"]]
    new_rows = [
        {**rows[12], "source_record_id": "NEW-1"},
        {**rows[77], "source_record_id": "NEW-2", "forename_std": "ZED"},
    ]
    after_rows = [
        {**row, "surname_std": "QUINTERO"} if row["source_record_id"] in changed_ids else row
        for row in rows
        if row["source_record_id"] not in gone_ids
    ] + new_rows
    after = records(spark, after_rows)

    with splink_backend(spark, make_config(), "test-incremental"):
        previous_pairs, _ = materialised_scores(before, model)
        previous_spine = incremental.fingerprints(before)

        changed = incremental.changed_records(incremental.fingerprints(after), previous_spine)
        assert sorted(r["source_record_id"] for r in changed.collect()) == sorted(
            [*changed_ids, "NEW-1", "NEW-2"]
        )

        rescored, rescored_count = materialised_scores(after, model, changed)
        stale = incremental.stale_records(after, previous_spine, changed)
        reused = incremental.reusable_pairs(previous_pairs, stale)
        full, _ = materialised_scores(after, model)

        rescored_weights, reused_weights, full_weights = (
            scores_by_pair(rescored),
            scores_by_pair(reused),
            scores_by_pair(full),
        )
        previous_weights = scores_by_pair(previous_pairs)

    touched = {*changed_ids, "NEW-1", "NEW-2"}
    # The same candidate pairs, each found by the same first rule, as a full relink of the new extract.
    assert rescored_weights.keys() | reused_weights.keys() == full_weights.keys()
    assert not rescored_weights.keys() & reused_weights.keys()
    assert rescored_count == len(rescored_weights) > 0
    assert all(pair[1] in touched or pair[3] in touched for pair in rescored_weights)
    assert not any(pair[1] in touched or pair[3] in touched for pair in reused_weights)
    assert not any(pair[1] in gone_ids or pair[3] in gone_ids for pair in reused_weights)
    # Rescored pairs carry the full relink's weights; reused ones are the last run's, unchanged.
    assert all(abs(weight - full_weights[pair]) < 1e-9 for pair, weight in rescored_weights.items())
    assert all(weight == previous_weights[pair] for pair, weight in reused_weights.items())
    # A new copy of an existing record is scored against it.
    original = rows[12]["source_record_id"]
    assert any({"NEW-1", original} <= {pair[1], pair[3]} for pair in rescored_weights)


def test_an_incremental_link_falls_back_to_a_full_one_and_says_why(spark):
    pairs = spark.createDataFrame([("3",)], "model_version string")
    spine = spark.createDataFrame(
        [("gp", "1", "x")], "source_dataset string, source_record_id string, record_fingerprint string"
    )
    old_spine = spine.drop("record_fingerprint")
    assert incremental.fallback_reason(None, pairs, "3") == "no previous spine and scored pairs"
    assert (
        incremental.fallback_reason(old_spine, pairs, "3")
        == "the previous spine holds no record fingerprints"
    )
    assert (
        incremental.fallback_reason(spine, pairs, "4") == "the previous pairs were scored by model version 3"
    )
    assert incremental.fallback_reason(spine, pairs, "3") is None
    # A change of more than a fifth of the records links in full.
    assert incremental.too_large_a_change(200, 1000) is None
    assert (
        incremental.too_large_a_change(201, 1000) == "20.1% of the records are new or changed (more than 20%)"
    )


def test_a_record_fingerprint_changes_with_a_standardised_value_not_with_its_run_or_raw_text(spark):
    schema = "source_dataset string, source_record_id string, surname_raw string, surname_std string, run_id string"
    df = spark.createDataFrame(
        [
            ("gp", "1", " smith", "SMITH", "run-a"),
            ("gp", "1", "SMITH ", "SMITH", "run-b"),
            ("gp", "1", "smyth", "SMYTH", "run-a"),
        ],
        schema,
    )
    first, same, changed = [row[incremental.FINGERPRINT] for row in incremental.fingerprints(df).collect()]
    assert first == same and first != changed


@pytest.mark.slow
def test_link_incremental_after_a_change_gives_the_persons_of_a_full_relink(
    spark, pipeline_run, tmp_path, capsys
):
    """The link job on the session pipeline's lake after a change (one record's surname corrected, one record
    gone, one new duplicate): --incremental rescores only what the change touches and gives the same persons
    and keys as a full relink of the same lake."""
    assert pipeline_run.exit_code == 0, pipeline_run.stderr[-2000:]
    people = read_table(spark, str(pipeline_run.lake), PEOPLE_STD).orderBy(
        "source_dataset", "source_record_id"
    )
    first, second, third = people.limit(3).collect()
    next_extract = (
        people.where(F.col("source_record_id") != second["source_record_id"])
        .withColumn(
            "surname_std",
            F.when(F.col("source_record_id") == first["source_record_id"], F.lit("QUINTERO")).otherwise(
                F.col("surname_std")
            ),
        )
        .unionByName(
            people.where(F.col("source_record_id") == third["source_record_id"]).withColumn(
                "source_record_id", F.lit("NEW-1")
            )
        )
    )
    spines = {}
    for mode in ("full", "incremental"):
        lake = tmp_path / mode
        for contract in (PERSON_SPINE, PERSON_REGISTRY, SCORED_PAIRS, LINK_PAIRS):
            shutil.copytree(
                pipeline_run.lake / contract.zone / contract.name, lake / contract.zone / contract.name
            )
        next_extract.write.format("delta").save(str(lake / PEOPLE_STD.zone / PEOPLE_STD.name))
        argv = [part for setting in pipeline_run.settings(lake) for part in ("--set", setting)]
        assert link_job.main([*argv, *(["--incremental"] if mode == "incremental" else [])], {}) == 0
        spines[mode] = sorted(
            read_table(spark, str(lake), PERSON_SPINE)
            .select("source_dataset", "source_record_id", "person_key")
            .collect()
        )
        out = capsys.readouterr().out
        if mode == "incremental":
            assert "incremental: 2 new or changed records" in out
            assert "records in the components reclustered" in out
            assert "clusters every component" not in out
    assert spines["incremental"] == spines["full"]
    # The review sampling frame is the frame of this run's own scores, links and persons. (Not a full relink's: the
    # reused pairs keep the previous run's weights, where a full relink's term frequencies count the changed extract.)
    lake = tmp_path / "incremental"
    written = read_table(spark, str(lake), LINK_PAIRS).drop("run_id")
    direct_links = written.where("is_linked AND method != 'transitive'")
    assert sorted(written.collect()) == sorted(
        link_pairs(
            read_table(spark, str(lake), SCORED_PAIRS),
            direct_links,
            read_table(spark, str(lake), PERSON_SPINE),
        ).collect()
    )
    assert len(spines["full"]) == people.count()  # one record gone, one new


def predictions_frame(spark, rows):
    """Scored pairs from (left, right, probability), each record 'source:id'."""
    return spark.createDataFrame(
        [(*left.split(":"), *right.split(":"), math.log2(p / (1 - p)), p) for left, right, p in rows],
        PAIR_SCHEMA + ", match_weight double, match_probability double",
    )


def partition(clusters_df) -> set[frozenset[str]]:
    members: dict[str, set[str]] = {}
    for row in clusters_df.collect():
        members.setdefault(row.cluster_id, set()).add(f"{row.source_dataset}:{row.source_record_id}")
    return {frozenset(m) for m in members.values()}


def edge_set(edges_df) -> set[tuple]:
    return {
        (r.source_record_id_l, r.source_record_id_r, r.method, r.match_probability)
        for r in edges_df.collect()
    }


def test_reclustering_only_the_components_a_change_reaches_gives_the_clusters_of_clustering_all(
    spark, make_config
):
    config = make_config().linkage
    born = {"old": date(1950, 1, 1), "young": date(1990, 1, 1)}
    records = [
        *(person(*r.split(":")) for r in ("gp:g1", "hospital:h1", "social_care:s1")),  # A: s1 goes
        *(person(*r.split(":")) for r in ("gp:g2", "hospital:h2")),  # B: gains the new h7
        *(person(*r.split(":")) for r in ("gp:g3", "hospital:h3", "hospital:h4")),  # C: untouched
        # D: untouched, split: a parent's and a child's own NHS numbers chained through a record without one.
        person("gp", "g6", nhs_number="9434765919", date_of_birth=born["old"], forename_std="ANN"),
        person("hospital", "h6", date_of_birth=born["old"], forename_std="ANN"),
        person("social_care", "s6", nhs_number="4010232137", date_of_birth=born["young"], forename_std="ANN"),
        person("gp", "g5"),  # E: a singleton the new record is scored against
    ]
    before_pairs = [
        ("gp:g1", "hospital:h1", 0.999),
        ("gp:g1", "social_care:s1", 0.999),
        ("gp:g2", "hospital:h2", 0.999),
        ("gp:g3", "hospital:h3", 0.999),
        ("gp:g3", "hospital:h4", 0.3),
        ("gp:g6", "hospital:h6", 0.9995),
        ("hospital:h6", "social_care:s6", 0.996),  # the weakest link of the conflicted cluster: split off
        ("gp:g5", "hospital:h3", 0.2),
    ]
    no_nhs_links = spark.createDataFrame([], PAIR_SCHEMA)
    people_before = people_frame(spark, records)
    predictions_before = predictions_frame(spark, before_pairs)
    edges_before = spine.link_edges(no_nhs_links, predictions_before, config.thresholds)
    kept_before, clusters_before, removed_before = cluster(people_before, edges_before, config)
    previous_spine = spine.assign_person_keys(clusters_before, None)
    previous_link_pairs = link_pairs(predictions_before, kept_before, previous_spine)
    assert removed_before == 1
    # The split cluster's records keep the component they were split from.
    assert {
        r.source_record_id: r[incremental.COMPONENT]
        for r in previous_spine.where("source_record_id IN ('g6', 'h6', 's6')").collect()
    } == {"g6": "gp-__-g6", "h6": "gp-__-g6", "s6": "gp-__-g6"}

    # The next extract: s1 gone, h7 new (g2's duplicate, scored against g5 too).
    people_after = people_frame(
        spark, [r for r in records if r["source_record_id"] != "s1"] + [person("hospital", "h7")]
    )
    after_pairs = [p for p in before_pairs if "social_care:s1" not in p] + [
        ("gp:g2", "hospital:h7", 0.999),
        ("gp:g5", "hospital:h7", 0.1),
    ]
    predictions_after = predictions_frame(spark, after_pairs)
    rescored = predictions_frame(spark, after_pairs[-2:])
    changed = spark.createDataFrame([("hospital", "h7")], "source_dataset string, source_record_id string")
    stale = incremental.stale_records(people_after, previous_spine, changed)
    touched = incremental.touched_records(stale, rescored, predictions_before, None)
    assert sorted(r.source_record_id for r in touched.collect()) == ["g1", "g2", "g5", "h7", "s1"]

    edges_after = spine.link_edges(no_nhs_links, predictions_after, config.thresholds)
    full_edges, full_clusters, _ = cluster(people_after, edges_after, config)
    affected = incremental.affected_records(touched, edges_after, previous_spine, changed)
    edges, clusters, _ = clusters_after_change(
        people_after, edges_after, previous_spine, previous_link_pairs, affected, config
    )
    # Only A, B, E and the new record are clustered again (s1 is gone); C and D are kept as they were.
    assert sorted(r.source_record_id for r in affected.collect()) == [
        "g1",
        "g2",
        "g5",
        "h1",
        "h2",
        "h7",
        "s1",
    ]
    assert (
        partition(clusters)
        == partition(full_clusters)
        == {
            frozenset({"gp:g1", "hospital:h1"}),
            frozenset({"gp:g2", "hospital:h2", "hospital:h7"}),
            frozenset({"gp:g3", "hospital:h3"}),
            frozenset({"hospital:h4"}),
            frozenset({"gp:g6", "hospital:h6"}),
            frozenset({"social_care:s6"}),
            frozenset({"gp:g5"}),
        }
    )
    assert edge_set(edges) == edge_set(full_edges)
    assert {r.source_record_id: r[incremental.COMPONENT] for r in clusters.collect()} == {
        r.source_record_id: r[incremental.COMPONENT] for r in full_clusters.collect()
    }
    assert sorted(clusters.columns) == sorted(full_clusters.columns)
    # Keys: the kept clusters keep theirs without voting, and every record's key and cluster size are a full run's.
    keys = {
        r.source_record_id: (r.person_key, r.cluster_size)
        for r in incremental.keys_after_change(clusters, previous_spine, None, affected).collect()
    }
    assert keys == {
        r.source_record_id: (r.person_key, r.cluster_size)
        for r in spine.assign_person_keys(full_clusters, previous_spine, None).collect()
    }
    previous_keys = {r.source_record_id: r.person_key for r in previous_spine.collect()}
    assert keys["s6"][0] == previous_keys["s6"] and keys["h4"][0] == previous_keys["h4"]


def test_an_incremental_run_clusters_every_component_when_it_cannot_keep_them_and_says_why(
    spark, make_config
):
    config = make_config().linkage
    model = {"blocking_rules_to_generate_predictions": [{"blocking_rule": "l.x = r.x"}]}
    settings = incremental.link_settings(config, model, "3")
    schema = (
        "source_dataset string, source_record_id string, person_key string, link_component string, "
        "link_settings string, run_id string"
    )
    previous = spark.createDataFrame([("gp", "1", "P1", "gp-__-1", settings, "run-a")], schema)
    pairs = spark.createDataFrame([("run-a",)], "run_id string")
    assert incremental.recluster_reason(previous, pairs, settings) is None
    assert incremental.recluster_reason(previous, None, settings) == "no previous link_pairs"
    assert (
        incremental.recluster_reason(previous.drop(incremental.COMPONENT), pairs, settings)
        == "the previous spine holds no link components"
    )
    for other in (
        incremental.link_settings(config, model, "4"),
        incremental.link_settings(make_config("linkage.thresholds.upper=0.99").linkage, model, "3"),
        incremental.link_settings(config, {"blocking_rules_to_generate_predictions": []}, "3"),
    ):
        assert (
            incremental.recluster_reason(previous, pairs, other)
            == "the model or the linkage settings changed since the previous spine"
        )
    other_run = spark.createDataFrame([("run-b",)], "run_id string")
    assert (
        incremental.recluster_reason(previous, other_run, settings)
        == "the previous link_pairs were written by another run than the previous spine"
    )
