"""train -> register -> approve -> link: the approval gate in-process, and what the session pipeline's train and link wrote."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest
import splink
from builders import as_argv, synthetic_people, write_people
from mlflow.tracking import MlflowClient
from pyspark.sql import functions as F
from splink.internals.html_utils import chart_html

from jobs import approve as approve_job
from jobs import link as link_job
from linkage.config import AppConfig
from linkage.lake import read_table
from linkage.link import approved_version
from linkage.link import stage as link_stage
from linkage.link.registry import load_model_json, register_model
from linkage.schemas import PEOPLE_STD, PERSON_REGISTRY, PERSON_SPINE, REVIEW_QUEUE
from linkage.standardise.ethnicity import GROUPS as ETHNIC_GROUPS
from linkage.tracking import tracking_run


def pipeline_config(pipeline_run) -> AppConfig:
    """The configuration the session's pipeline ran with (its overrides are pairs of "--set", "key=value")."""
    return pipeline_run.config()


@pytest.mark.slow
def test_link_needs_an_approved_model_and_approval_records_who_and_when(
    spark, make_config, test_overrides, tmp_path, capsys, monkeypatch, pipeline_run
):
    """Registered (as train registers, here the pipeline's trained model) -> refused -> approved -> accepted."""
    assert pipeline_run.exit_code == 0, pipeline_run.stderr[-2000:]
    overrides = [*test_overrides, f"tracking.registered_model=linkage-test-{tmp_path.name}"]
    config = make_config(*overrides[len(test_overrides) :])
    rows, _ = synthetic_people()
    write_people(spark, config, rows)
    argv = as_argv(overrides)

    # No approved model yet: link refuses with exit 2 before doing any work.
    assert link_job.main(argv, {}) == 2
    assert "approve one with `python -m jobs.approve --version N`" in capsys.readouterr().err

    trained = pipeline_config(pipeline_run)
    model = load_model_json(
        trained, approved_version(trained)
    )  # from the pipeline's store, before our run opens
    with tracking_run(config, "train") as run:
        version = register_model(config, run, model)
    assert approved_version(config) is None

    # Outside local mode an unapproved version needs --allow-unapproved, and such a run is tagged.
    cluster_argv = [*argv, "--set", "environment=cluster", "--model-version", version]
    assert link_job.main(cluster_argv, {}) == 2
    assert "--allow-unapproved" in capsys.readouterr().err

    # With the flag the run goes ahead, tagged; it fails here (injected) right after reading the model, which keeps
    # the test short. (A run that dies between the spine and the registry: tests/test_link_history.py.)
    def failing_read(ctx):
        raise RuntimeError("injected failure after tagging")

    monkeypatch.setattr(link_stage, "read_people", failing_read)
    assert link_job.main([*cluster_argv, "--allow-unapproved"], {}) == 1
    monkeypatch.undo()
    unapproved_run = latest_run(config, "link")
    assert unapproved_run.data.tags.get("unapproved") == "true"

    assert (
        approve_job.main([*argv, "--version", version], {"LINKAGE_REVIEWER": "qa.reviewer", "USER": "svc"})
        == 0
    )
    assert approved_version(config) == version
    tags = MlflowClient(config.tracking_uri).get_model_version(config.tracking.registered_model, version).tags
    assert tags["approved_by"] == "qa.reviewer" and tags["approved_at"].startswith(str(date.today().year))
    # Approved, the same cluster-mode command passes the approval check (and fails only at the injected read).
    monkeypatch.setattr(link_stage, "read_people", failing_read)
    assert link_job.main(cluster_argv, {}) == 1
    assert "--allow-unapproved" not in capsys.readouterr().err
    assert "unapproved" not in latest_run(config, "link").data.tags


@pytest.mark.slow
def test_the_pipelines_train_registers_a_model_and_its_link_writes_new_keys(spark, pipeline_run):
    """train -> register -> approve (local mode) -> link, as the session's pipeline ran them on its extract."""
    assert pipeline_run.exit_code == 0, pipeline_run.stderr[-2000:]
    config = pipeline_config(pipeline_run)
    version = re.search(
        r"^\[train\] registered '[^']+' version (\d+); approve it with", pipeline_run.stdout, re.M
    ).group(1)
    assert approved_version(config) == version  # local mode approves the model it trained
    f1 = float(
        re.search(r"^\[link\] pairwise precision .* F1 (\d\.\d{4})$", pipeline_run.stdout, re.M).group(1)
    )
    assert f1 >= 0.9, f"F1 {f1} on easy synthetic data"

    people = read_table(spark, config.paths.lake, PEOPLE_STD)
    spine = read_table(spark, config.paths.lake, PERSON_SPINE)
    assert spine.count() == people.count()
    methods = {r.match_method for r in spine.select("match_method").distinct().collect()}
    assert {"nhs_number", "probabilistic", "singleton"} <= methods
    queue = read_table(spark, config.paths.lake, REVIEW_QUEUE)
    thresholds = config.linkage.thresholds
    assert queue.count() > 0
    assert (
        queue.where(
            (F.col("match_probability") < thresholds.lower) | (F.col("match_probability") >= thresholds.upper)
        ).count()
        == 0
    )
    # The registered model carries the fixed family correction that training left out.
    family = next(
        c for c in load_model_json(config, version)["comparisons"] if c["output_column_name"] == "family"
    )
    assert [level.get("fix_m_probability", False) for level in family["comparison_levels"]] == [
        False,
        True,
        True,
    ]

    # The source comparison is estimated from the extract, not fixed: a true pair lies inside one source (a duplicate
    # registration) far less often than two random records do, so that level weighs against a match.
    source = next(
        c for c in load_model_json(config, version)["comparisons"] if c["output_column_name"] == "source"
    )
    same_source = source["comparison_levels"][1]
    assert not same_source.get("fix_m_probability") and not same_source.get("fix_u_probability")
    assert same_source["m_probability"] < same_source["u_probability"]

    # Every key is new, recorded once under the run that made it.
    # (Reruns keeping keys are covered on hand-built clusters in test_link_spine.)
    registry = read_table(spark, config.paths.lake, PERSON_REGISTRY)
    link_run_ids = {r.run_id for r in spine.select("run_id").distinct().collect()}
    assert len(link_run_ids) == 1
    assert {r.event for r in registry.select("event").distinct().collect()} == {"created"}
    assert registry.count() == spine.select("person_key").distinct().count()
    assert {r.run_id for r in registry.select("run_id").distinct().collect()} == link_run_ids

    train_run_id = (
        MlflowClient(config.tracking_uri).get_model_version(config.tracking.registered_model, version).run_id
    )
    identifiers = [
        r.asDict()
        for r in people.select("forename_std", "surname_std", "nhs_number", "postcode_std").collect()
    ]
    artifacts_hold_no_identifiers(config, identifiers, [train_run_id, *link_run_ids])


def latest_run(config, job: str):
    client = MlflowClient(config.tracking_uri)
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    return client.search_runs(
        [experiment.experiment_id], f"tags.job = '{job}'", order_by=["start_time DESC"], max_results=1
    )[0]


def artifacts_hold_no_identifiers(config, rows, run_ids) -> None:
    """Every artifact, parameter and metric of the runs is scanned for the rows' names, NHS numbers, postcodes."""
    client = MlflowClient(config.tracking_uri)
    identifiers = set()
    for row in rows:
        identifiers |= {row.get(k) for k in ("forename_std", "surname_std", "nhs_number", "postcode_std")}
    identifiers.discard(None)
    texts = []
    for run in (client.get_run(run_id) for run_id in run_ids):
        texts.append(json.dumps(run.data.params) + json.dumps(run.data.metrics))
        stack = [None]
        while stack:
            for item in client.list_artifacts(run.info.run_id, stack.pop()):
                if item.is_dir:
                    stack.append(item.path)
                elif item.path.endswith((".json", ".html", ".txt", ".yaml", "MLmodel")):
                    local = client.download_artifacts(run.info.run_id, item.path)
                    texts.append(Path(local).read_text(encoding="utf-8", errors="replace"))
    tokens = set()
    for text in texts:
        tokens |= tokens_of(text)
    not_data = words_that_are_not_data()
    # Counts only, computed outside the asserts: pytest would print the sets' values (names) in a failure.
    checked, values = len(identifiers - not_data), len(identifiers)
    assert checked > 0.9 * values  # nearly every value is checked
    leaked = len((identifiers & tokens) - not_data)
    assert leaked == 0, f"{leaked} identifying value(s) found in MLflow artifacts or params"


def tokens_of(text: str) -> set[str]:
    return set(re.findall(r"[A-Z0-9]+(?: [0-9][A-Z]{2})?", text.upper()))


def words_that_are_not_data() -> set[str]:
    """Words the artifacts hold whatever the data: the Vega libraries bundled in chart pages (e.g. the colour
    'brown'), Splink's chart templates ('green') and the QA's group labels ('White'). A surname that is also one of
    these words cannot be told from it by a scan of words, so it is not checked; every other value is."""
    templates = Path(splink.__file__).parent / "internals" / "files" / "chart_defs"
    words = tokens_of(chart_html({}, inline=True, fullhtml=True)) | tokens_of(
        " ".join(ETHNIC_GROUPS.values())
    )
    for template in templates.glob("*.json"):
        words |= tokens_of(template.read_text(encoding="utf-8"))
    return words


def test_approving_a_version_that_does_not_exist_exits_2(make_config, test_overrides, capsys):
    argv = as_argv([*test_overrides, "tracking.registered_model=linkage-never-trained"])
    assert approve_job.main([*argv, "--version", "7"], {}) == 2
    assert "has no version 7" in capsys.readouterr().err
