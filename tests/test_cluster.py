"""A job on a real Spark standalone cluster: a master and one worker on 127.0.0.1 (tests/standalone.py).

The link job is submitted in the background as soon as the session pipeline ends (tests/conftest.py);
this test reads what it left. Marked `cluster`; it runs in CI like every other test.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_link_runs_through_spark_submit_on_a_standalone_cluster(cluster_link, pipeline_run, spark):
    """The link job, the one that puts Splink's similarity jar, Delta and checkpointed iterations on executors,
    submitted to the cluster on the people the session's pipeline ingested, with the model it approved: the person
    keys come out identical to the local run's. (Every job starts Spark through the same session factory; a whole
    pipeline here would repeat the session's pipeline for minutes and test nothing more of the cluster.)"""
    assert pipeline_run.exit_code == 0, pipeline_run.stderr[-2000:]
    assert cluster_link.returncode == 0, f"spark-submit failed:\n{cluster_link.stderr[-3000:]}"
    assert "[link] done in" in cluster_link.stdout
    assert cluster_link.daemons_stopped  # the master and the worker were stopped after the job

    # The application really ran on the cluster: the worker launched executors for it.
    assert list(cluster_link.worker_dir.glob("app-*")), "the worker never ran an executor for the link job"
    columns = ["source_dataset", "source_record_id", "person_key"]
    on_cluster = spark.read.format("delta").load(str(cluster_link.lake / "restricted" / "person_spine"))
    local = spark.read.format("delta").load(str(pipeline_run.lake / "restricted" / "person_spine"))
    assert on_cluster.count() > 0
    assert sorted(on_cluster.select(columns).collect()) == sorted(local.select(columns).collect())
