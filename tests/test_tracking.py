"""One MLflow run per job: logged, tagged, parameterised from config, and readable back."""

import json

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from linkage.errors import ConfigError
from linkage.link.registry import latest_version
from linkage.tracking import configure_mlflow, tracking_run


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


def test_the_latest_model_version_comes_from_the_configured_store_whatever_the_process_last_used(
    make_config, tmp_path
):
    # The bench runs each size with its own store in one process: after one size's jobs pointed MLflow's registry at
    # their store, the next size's version was looked up there, and the bench stopped with no version to approve.
    first, second = (
        make_config(f"tracking.uri=sqlite:///{tmp_path / name}.db", "tracking.registered_model=sized")
        for name in ("first", "second")
    )
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    try:
        for config, versions in ((first, 3), (second, 1)):
            configure_mlflow(config)
            client = MlflowClient(config.tracking_uri, registry_uri=config.tracking_uri)
            client.create_registered_model("sized")
            for _ in range(versions):
                client.create_model_version("sized", source=str(tmp_path / "model"))
        assert mlflow.get_registry_uri() == second.tracking_uri
        assert latest_version(first) == "3"
        assert latest_version(second) == "1"
        unregistered = make_config(
            f"tracking.uri={first.tracking_uri}", "tracking.registered_model=unregistered"
        )
        with pytest.raises(ConfigError, match="no version"):
            latest_version(unregistered)
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
