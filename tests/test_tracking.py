"""One MLflow run per job: logged, tagged, parameterised from config, and readable back."""

import json

import mlflow
from mlflow.tracking import MlflowClient

from linkage.tracking import tracking_run


def test_run_is_logged_and_read_back(make_config):
    config = make_config("spark.shuffle_partitions=3")
    with tracking_run(config, job="test-job") as run:
        run.log_metrics({"records_in.gp": 12, "skipped": None})
        run.log_dict({"a": 1}, "extra/a.json")
    client = MlflowClient(config.tracking_uri)
    logged = client.get_run(run.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.tags["job"] == "test-job"
    assert logged.data.tags["config_hash"] == config.config_hash()
    assert logged.data.tags["git_commit"]
    assert logged.data.params["spark.shuffle_partitions"] == "3"
    assert logged.data.metrics == {"records_in.gp": 12.0}
    config_artifact = json.loads(mlflow.artifacts.load_text(f"runs:/{run.run_id}/config.json"))
    assert config_artifact["spark"]["shuffle_partitions"] == 3


def test_job_run_nests_under_an_active_parent_run(make_config):
    config = make_config()
    with tracking_run(config, job="pipeline") as parent, tracking_run(config, job="ingest") as child:
        pass
    child_run = MlflowClient(config.tracking_uri).get_run(child.run_id)
    assert child_run.data.tags["mlflow.parentRunId"] == parent.run_id


def test_failed_job_marks_the_run_failed(make_config):
    config = make_config()
    try:
        with tracking_run(config, job="boom") as run:
            raise RuntimeError("stage failed")
    except RuntimeError:
        pass
    assert MlflowClient(config.tracking_uri).get_run(run.run_id).info.status == "FAILED"
