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
