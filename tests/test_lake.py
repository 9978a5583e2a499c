"""Delta round trip through the contract: one transaction per write, stamps, time travel, history."""

import json
from pathlib import Path

import pytest
from chispa import assert_df_equality

from linkage import lake
from linkage.schemas import Column, TableContract
from linkage.tracking import tracking_run

TOY = TableContract(
    "restricted",
    "toy",
    "A toy table.",
    (
        Column("id", "string", "Row id."),
        Column("n", "int", "A number."),
    ),
)


def test_write_then_time_travel_and_history(spark, make_config):
    config = make_config()
    first = spark.createDataFrame([("a", 1), ("b", None)], "id string, n int")
    second = spark.createDataFrame([("c", 3)], "id string, n int")
    with tracking_run(config, job="test-lake") as run:
        written = [
            lake.write_table(first, config.paths.lake, TOY, run),
            lake.write_table(second, config.paths.lake, TOY, run),
        ]
    # Each write says its version and the rows it committed (from the commit, not a count of the table).
    assert written == [lake.TableWrite(version=0, rows=2), lake.TableWrite(version=1, rows=1)]
    assert_df_equality(
        lake.read_table(spark, config.paths.lake, TOY), second, ignore_row_order=True, ignore_metadata=True
    )
    assert_df_equality(
        lake.read_table(spark, config.paths.lake, TOY, version=0),
        first,
        ignore_row_order=True,
        ignore_metadata=True,
    )

    history = (
        spark.sql(f"DESCRIBE HISTORY delta.`{lake.table_path(config.paths.lake, TOY)}`")
        .orderBy("version")
        .collect()
    )
    assert [row.version for row in history] == [0, 1]
    stamps = [json.loads(row.userMetadata) for row in history]
    assert {s["run_id"] for s in stamps} == {run.run_id}
    assert all(s["config_hash"] == config.config_hash() for s in stamps)


def test_column_comments_and_description_are_stored(spark, make_config):
    config = make_config()
    with tracking_run(config, job="test-lake") as run:
        lake.write_table(spark.createDataFrame([("a", 1)], "id string, n int"), config.paths.lake, TOY, run)
    path = lake.table_path(config.paths.lake, TOY)
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()
    assert detail.description == "A toy table."
    comments = {
        f.name: f.metadata.get("comment") for f in lake.read_table(spark, config.paths.lake, TOY).schema
    }
    assert comments == {"id": "Row id.", "n": "A number."}


def _file_statistics(path) -> list[dict]:
    """The per-file statistics of every file a table's log adds."""
    return [
        json.loads(json.loads(line)["add"]["stats"])
        for log in sorted((path / "_delta_log").glob("*.json"))
        for line in log.read_text().splitlines()
        if '"add"' in line
    ]


def test_statistics_are_kept_on_the_contracts_stats_columns_only(spark, make_config):
    config = make_config()
    keyed = TableContract("restricted", "keyed", "Statistics on id only.", TOY.columns, stats_columns=("id",))
    frame = spark.createDataFrame([("a", 1), ("b", 2)], "id string, n int")
    with tracking_run(config, job="test-lake") as run:
        lake.write_table(frame, config.paths.lake, keyed, run)
        lake.write_table(frame, config.paths.lake, TOY, run)
    keyed_stats = _file_statistics(Path(lake.table_path(config.paths.lake, keyed)))
    default_stats = _file_statistics(Path(lake.table_path(config.paths.lake, TOY)))
    assert keyed_stats and all(set(s["minValues"]) == {"id"} for s in keyed_stats)
    assert default_stats and all(set(s["minValues"]) == {"id", "n"} for s in default_stats)


def test_write_refuses_frames_that_break_the_contract(spark, make_config):
    config = make_config()
    extra_column = spark.createDataFrame([("a", 1, "x")], "id string, n int, surname string")
    with tracking_run(config, job="test-lake") as run, pytest.raises(lake.ContractError, match="unexpected"):
        lake.write_table(extra_column, config.paths.lake, TOY, run)
    assert not lake.table_exists(spark, config.paths.lake, TOY)


def test_failed_write_keeps_the_last_good_version(spark, make_config):
    from pyspark.sql import functions as F

    config = make_config()
    good = spark.createDataFrame([("a", 1)], "id string, n int")
    # A frame whose computation fails at execution time (ANSI cast error), after the write started.
    bad = spark.createDataFrame([("b", "not a number")], "id string, n string").withColumn(
        "n", F.col("n").cast("int")
    )
    with tracking_run(config, job="test-lake") as run:
        lake.write_table(good, config.paths.lake, TOY, run)
        with pytest.raises(Exception):  # noqa: B017 - any Spark failure will do
            lake.write_table(bad, config.paths.lake, TOY, run)
    assert_df_equality(lake.read_table(spark, config.paths.lake, TOY), good, ignore_metadata=True)
