"""Incremental linkage: only pairs holding a new or changed record are rescored; the rest are the last run's."""

from __future__ import annotations

import shutil

import pytest
from builders import people_frame, random_model, synthetic_people
from pyspark.sql import functions as F

from jobs import link as link_job
from linkage.lake import read_table
from linkage.link import incremental
from linkage.link.model import model_input, splink_backend
from linkage.link.scorer import materialised_scores
from linkage.schemas import PEOPLE_STD, PERSON_REGISTRY, PERSON_SPINE, SCORED_PAIRS

KEYS = ["source_dataset_l", "source_record_id_l", "source_dataset_r", "source_record_id_r", "match_key"]


def records(spark, rows):
    frame = people_frame(spark, rows).withColumns(
        {
            "forename_phonetic": F.soundex("forename_canonical"),
            "surname_phonetic": F.soundex("surname_canonical"),
        }
    )
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
        for contract in (PERSON_SPINE, PERSON_REGISTRY, SCORED_PAIRS):
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
    assert spines["incremental"] == spines["full"]
    assert len(spines["full"]) == people.count()  # one record gone, one new
