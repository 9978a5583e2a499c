"""The experiment as QA meets it: a model-training experiment with a saved runs-table view, and named runs."""

from __future__ import annotations

import json

from mlflow.tracking import MlflowClient

from linkage.link.report import headline_metrics, link_description, link_run_name
from linkage.mlflow_ui import QA_VIEW_ID, QA_VIEW_NAME, VIEW_TAG_PREFIX
from linkage.tracking import configure_mlflow, tracking_run


def test_experiment_is_a_model_training_experiment_with_the_saved_qa_view(make_config):
    config = make_config("tracking.experiment=qa-view-test")
    experiment_id = configure_mlflow(config)
    tags = MlflowClient(config.tracking_uri).get_experiment(experiment_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    envelope = json.loads(tags[VIEW_TAG_PREFIX + QA_VIEW_ID])
    assert envelope["name"] == QA_VIEW_NAME and isinstance(envelope["createdAt"], int)
    state = json.loads(envelope["state"])
    assert "metrics.`headline.persons`" in state["selectedColumns"]
    assert state["searchFilter"].startswith("attributes.run_name LIKE 'link")
    # A second job leaves the view as QA may have edited it.
    MlflowClient(config.tracking_uri).set_experiment_tag(
        experiment_id, VIEW_TAG_PREFIX + QA_VIEW_ID, "edited"
    )
    configure_mlflow(config)
    assert (
        MlflowClient(config.tracking_uri).get_experiment(experiment_id).tags[VIEW_TAG_PREFIX + QA_VIEW_ID]
        == "edited"
    )


def test_link_run_name_description_and_headline_columns(make_config):
    metrics = {
        "records": 463.0,
        "persons": 301.0,
        "review_queue.pairs": 12.0,
        "model.expected_false_matches": 1.25,
        "model.expected_missed_matches_in_candidates": 4.0,
        "precision": 0.99517,
        "recall": 0.97,
        "f1": 0.9824,
    }
    headline = headline_metrics(metrics)
    assert headline == {
        "headline.records": 463.0,
        "headline.persons": 301.0,
        "headline.review_queue_pairs": 12.0,
        "headline.model_expected_false_matches": 1.25,
        "headline.model_expected_missed_matches": 4.0,
        "headline.truth_precision": 0.99517,
        "headline.truth_recall": 0.97,
        "headline.truth_f1": 0.9824,
    }
    with tracking_run(make_config(), job="link") as run:
        run.set_name(link_run_name("R7", "3"))
        run.set_description(link_description(metrics, "3", run.artifact_link("qa/linkage_report.html")))
    logged = MlflowClient(run.tracking_uri).get_run(run.run_id)
    assert logged.info.run_name == "link · release R7 · model v3"
    note = logged.data.tags["mlflow.note.content"]
    assert "463 records into 301 persons" in note and "precision 0.9952, recall 0.9700" in note
    assert f"(#/experiments/{run.experiment_id}/runs/{run.run_id}/artifacts/qa/linkage_report.html)" in note
