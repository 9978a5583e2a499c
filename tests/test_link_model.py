"""train -> register -> approve -> link on a few hundred synthetic-ish people_std rows, in-process on the test session."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest
from builders import as_argv, synthetic_people, write_people, write_truth
from mlflow.tracking import MlflowClient
from pyspark.sql import functions as F
from splink.internals.html_utils import chart_html

from jobs import approve as approve_job
from jobs import link as link_job
from jobs import train as train_job
from linkage.lake import read_table
from linkage.link import approved_version, linking
from linkage.link.registry import load_model_json
from linkage.schemas import PERSON_REGISTRY, PERSON_SPINE, REVIEW_QUEUE


@pytest.mark.slow
def test_train_approve_link_end_to_end(spark, make_config, test_overrides, tmp_path, capsys, monkeypatch):
    rows, truth = synthetic_people()
    truth_path = tmp_path / "truth.csv"
    write_truth(truth_path, truth)
    overrides = [*test_overrides, f"paths.truth={truth_path}", f"tracking.registered_model=linkage-test-{tmp_path.name}",
                 "linkage.u_max_pairs=20000", "linkage.em_max_iterations=10"]
    config = make_config(*overrides[len(test_overrides):])
    write_people(spark, config, rows)
    argv = as_argv(overrides)

    # No approved model yet: link refuses with exit 2 before doing any work.
    assert link_job.main(argv, {}) == 2
    assert "approve one with `python -m jobs.approve --version N`" in capsys.readouterr().err

    assert train_job.main(argv, {}) == 0
    version = re.search(r"version (\d+); approve it", capsys.readouterr().out).group(1)
    assert approved_version(config) is None

    # Outside local mode an unapproved version needs --allow-unapproved, and such a run is tagged.
    cluster_argv = [*argv, "--set", "environment=cluster", "--model-version", version]
    assert link_job.main(cluster_argv, {}) == 2
    assert "--allow-unapproved" in capsys.readouterr().err
    # With the flag the run goes ahead, tagged; it fails here (injected) right after reading the model, which keeps
    # the test short. (A run that dies between the spine and the registry: tests/test_link_history.py.)
    def failing_read(ctx):
        raise RuntimeError("injected failure after tagging")

    monkeypatch.setattr(linking, "read_people", failing_read)
    assert link_job.main([*cluster_argv, "--allow-unapproved"], {}) == 1
    monkeypatch.undo()
    unapproved_run = latest_run(config, "link")
    assert unapproved_run.data.tags.get("unapproved") == "true"

    assert approve_job.main([*argv, "--version", version], {"LINKAGE_REVIEWER": "qa.reviewer", "USER": "svc"}) == 0
    assert approved_version(config) == version
    tags = MlflowClient(config.tracking_uri).get_model_version(config.tracking.registered_model, version).tags
    assert tags["approved_by"] == "qa.reviewer" and tags["approved_at"].startswith(str(date.today().year))

    assert link_job.main(argv, {}) == 0, capsys.readouterr().err[-2000:]
    out = capsys.readouterr().out
    f1 = float(re.search(r"F1 (\d\.\d{4})", out).group(1))
    assert f1 >= 0.9, f"F1 {f1} on easy synthetic data"

    spine_v1 = read_table(spark, config.paths.lake, PERSON_SPINE)
    assert spine_v1.count() == len(rows)
    methods = {r.match_method for r in spine_v1.select("match_method").distinct().collect()}
    assert {"nhs_number", "probabilistic", "singleton"} <= methods
    keys_v1 = {(r.source_dataset, r.source_record_id): r.person_key for r in spine_v1.collect()}
    queue = read_table(spark, config.paths.lake, REVIEW_QUEUE)
    thresholds = config.linkage.thresholds
    assert queue.where((F.col("match_probability") < thresholds.lower)
                       | (F.col("match_probability") >= thresholds.upper)).count() == 0
    # The registered model carries the fixed family correction that training left out.
    family = next(c for c in load_model_json(config, version)["comparisons"] if c["output_column_name"] == "family")
    assert [level.get("fix_m_probability", False) for level in family["comparison_levels"]] == [False, True, True]

    # Every key is new, recorded once under the run that made it.
    # (Reruns keeping keys are covered on hand-built clusters in test_link_spine.)
    registry = read_table(spark, config.paths.lake, PERSON_REGISTRY)
    assert {r.event for r in registry.select("event").distinct().collect()} == {"created"}
    assert registry.count() == len(set(keys_v1.values()))
    assert {r.run_id for r in registry.select("run_id").distinct().collect()} == {latest_run(config, "link").info.run_id}

    artifacts_hold_no_identifiers(config, rows)


def latest_run(config, job: str):
    client = MlflowClient(config.tracking_uri)
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    return client.search_runs([experiment.experiment_id], f"tags.job = '{job}'", order_by=["start_time DESC"],
                              max_results=1)[0]


def artifacts_hold_no_identifiers(config, rows) -> None:
    """Every artifact and parameter of every run in the store is scanned for the test's names, NHS numbers, postcodes."""
    client = MlflowClient(config.tracking_uri)
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    identifiers = set()
    for row in rows:
        identifiers |= {row.get(k) for k in ("forename_std", "surname_std", "nhs_number", "postcode_std")}
    identifiers.discard(None)
    texts = []
    for run in client.search_runs([experiment.experiment_id]):
        if run.data.tags.get("job") not in ("train", "link"):
            continue
        texts.append(json.dumps(run.data.params) + json.dumps(run.data.metrics))
        stack = [None]
        while stack:
            for item in client.list_artifacts(run.info.run_id, stack.pop()):
                if item.is_dir:
                    stack.append(item.path)
                elif item.path.endswith((".json", ".html", ".txt", ".yaml", "MLmodel")):
                    local = client.download_artifacts(run.info.run_id, item.path)
                    texts.append(Path(local).read_text(encoding="utf-8", errors="replace"))
    def tokens_of(text: str) -> set[str]:
        return set(re.findall(r"[A-Z0-9]+(?: [0-9][A-Z]{2})?", text.upper()))

    # Chart pages bundle the Vega libraries, whose words (e.g. the colour 'brown') are not data; the chart
    # specs themselves are scanned in full (charts/*.json).
    library = tokens_of(chart_html({}, inline=True, fullhtml=True))
    tokens = set()
    for text in texts:
        tokens |= tokens_of(text) - library if text.lstrip().lower().startswith("<!doctype") and "vega" in text else tokens_of(text)
    leaked = sorted(identifiers & tokens)
    assert not leaked, f"{len(leaked)} identifying value(s) found in MLflow artifacts or params"


def test_approving_a_version_that_does_not_exist_exits_2(make_config, test_overrides, capsys):
    argv = as_argv([*test_overrides, "tracking.registered_model=linkage-never-trained"])
    assert approve_job.main([*argv, "--version", "7"], {}) == 2
    assert "has no version 7" in capsys.readouterr().err
