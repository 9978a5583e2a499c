"""A link run that dies between writing the spine and the registry loses no key history."""

from __future__ import annotations

from builders import contract_frame

from linkage.lake import read_table, write_table
from linkage.link.history import record_missing_history, unrecorded_spine_versions
from linkage.schemas import PERSON_REGISTRY, PERSON_SPINE
from linkage.tracking import RunContext


def run_context(run_id: str) -> RunContext:
    return RunContext(run_id, "link", "hash", "test", "", "", client=None)


def spine_rows(spark, keys: dict[str, str], run_id: str):
    rows = [
        {
            "source_dataset": "gp",
            "source_record_id": record,
            "person_key": key,
            "match_method": "singleton",
            "cluster_size": 1,
            "run_id": run_id,
        }
        for record, key in keys.items()
    ]
    return contract_frame(spark, PERSON_SPINE, rows)


def test_unrecorded_versions_start_after_the_last_recorded_write():
    writes = [(0, "a"), (1, "b"), (3, "c")]
    assert unrecorded_spine_versions(writes, {"a", "b", "c"}) == []
    assert unrecorded_spine_versions(writes, {"a"}) == [(0, 1, "b"), (1, 3, "c")]
    assert unrecorded_spine_versions(writes, set()) == [(None, 0, "a"), (0, 1, "b"), (1, 3, "c")]


def test_next_run_records_the_merge_and_retirement_a_failed_run_left_out(spark, lake):
    lake = str(lake)
    # Run A: two persons, spine and registry both written.
    write_table(spine_rows(spark, {"1": "K1", "2": "K2"}, "A"), lake, PERSON_SPINE, run_context("A"))
    created = spark.createDataFrame(
        [("K1", "created", None, 1, "A"), ("K2", "created", None, 1, "A")], PERSON_REGISTRY.schema
    )
    write_table(created, lake, PERSON_REGISTRY, run_context("A"))
    # Run B merges them, writes the spine and dies before the registry.
    write_table(spine_rows(spark, {"1": "K1", "2": "K1"}, "B"), lake, PERSON_SPINE, run_context("B"))

    assert record_missing_history(spark, lake, run_context("C")) == 1
    events = {
        tuple(r)
        for r in read_table(spark, lake, PERSON_REGISTRY)
        .select("person_key", "event", "related_person_key", "run_id")
        .collect()
    }
    assert events == {
        ("K1", "created", None, "A"),
        ("K2", "created", None, "A"),
        ("K1", "merged", "K2", "B"),
        ("K2", "retired", None, "B"),
    }
    # Caught up: a second look records nothing twice.
    assert record_missing_history(spark, lake, run_context("D")) == 0
    assert read_table(spark, lake, PERSON_REGISTRY).count() == 4


def test_a_first_run_that_failed_gets_its_keys_recorded_as_created(spark, lake):
    lake = str(lake)
    write_table(spine_rows(spark, {"1": "K1", "2": "K2"}, "A"), lake, PERSON_SPINE, run_context("A"))
    assert record_missing_history(spark, lake, run_context("B")) == 1
    events = {
        tuple(r)
        for r in read_table(spark, lake, PERSON_REGISTRY).select("person_key", "event", "run_id").collect()
    }
    assert events == {("K1", "created", "A"), ("K2", "created", "A")}
