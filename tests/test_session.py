"""The job session factory: a job stops only a Spark it started itself."""

from conftest import TEST_SPARK

from linkage.session import spark_session


def test_a_job_leaves_running_the_spark_its_caller_started_even_without_an_active_session(spark):
    # The JVM keeps the active session per thread; a caller's thread can lose it (py4j may serve the
    # thread from a new JVM thread). The job must still see that Spark was running before it, and not
    # stop it: a test that ran a job after that used to find its session stopped.
    spark._jvm.SparkSession.clearActiveSession()
    with spark_session(TEST_SPARK) as job_spark:
        assert job_spark.range(3).count() == 3
    assert spark.range(2).count() == 2  # the caller's session still runs


def _final_join_strategies(df) -> set[str]:
    """The joins of df's plan as adaptive execution last ran it (df collected first)."""
    plan = df._jdf.queryExecution().executedPlan().toString()
    assert "isFinalPlan=true" in plan
    final = plan.split("== Initial Plan ==")[0]
    return {name for name in ("ShuffledHashJoin", "SortMergeJoin", "BroadcastHashJoin") if name in final}


def test_an_equality_join_of_small_shuffled_partitions_hashes_one_side_instead_of_sorting_both(spark):
    from linkage.session import SHUFFLED_HASH_JOIN_MAX_PARTITION, session_settings

    key = "spark.sql.adaptive.maxShuffledHashJoinLocalMapThreshold"
    # The factory sets it for every job; the test session was built by the same factory.
    assert session_settings(TEST_SPARK)[key] == SHUFFLED_HASH_JOIN_MAX_PARTITION
    assert spark.conf.get(key) == SHUFFLED_HASH_JOIN_MAX_PARTITION
    # Three input partitions: the join must shuffle them (one input partition would already satisfy it).
    records = spark.range(0, 200, 1, 3).selectExpr("id % 7 AS block", "id AS record")
    broadcast_limit = spark.conf.get("spark.sql.autoBroadcastJoinThreshold")
    # A blocking rule's self-join at scale: both sides far above the broadcast limit, so both are shuffled.
    spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")
    try:
        chosen = {}
        for threshold in (SHUFFLED_HASH_JOIN_MAX_PARTITION, "0"):
            spark.conf.set(key, threshold)
            pairs = records.alias("l").join(records.alias("r"), "block").where("l.record < r.record")
            assert len(pairs.collect()) == sum(n * (n - 1) // 2 for n in (29, 29, 29, 29, 28, 28, 28))
            chosen[threshold] = _final_join_strategies(pairs)
    finally:
        spark.conf.set(key, SHUFFLED_HASH_JOIN_MAX_PARTITION)
        spark.conf.set("spark.sql.autoBroadcastJoinThreshold", broadcast_limit)
    assert chosen == {SHUFFLED_HASH_JOIN_MAX_PARTITION: {"ShuffledHashJoin"}, "0": {"SortMergeJoin"}}
