"""Accuracy without truth, validated against truth: the link run's pair frame, a stratified sample reviewed by an
oracle (labels from the synthetic truth file), and estimates whose 95% intervals must cover the true figures."""

from __future__ import annotations

import html
import io
import re
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import functions as F

from jobs import review_estimate as review_estimate_job
from linkage.config import load_config
from linkage.lake import read_table, write_table
from linkage.link.deterministic import PAIR_KEYS
from linkage.link.pairs import REVIEW_FLOOR_WEIGHT
from linkage.link.qa import TRUTH_SCHEMA
from linkage.review.sampling import draw_review_sample
from linkage.schemas import LINK_PAIRS, PEOPLE_STD, PERSON_SPINE, REVIEW_DECISIONS, REVIEW_SAMPLE
from linkage.tracking import tracking_run

pytestmark = pytest.mark.slow
ORACLE_SAMPLE = 150  # fewer than the frame's pairs, so the sample is a real sample, not a census
ORACLE_SEED = 11


def link_run_metrics(pipeline_run, run_id: str) -> dict[str, float]:
    return dict(MlflowClient(pipeline_run.tracking_uri).get_run(run_id).data.metrics)


def test_link_writes_every_same_person_pair_and_scored_candidate(pipeline_run, spark):
    assert pipeline_run.exit_code == 0, pipeline_run.stderr[-2000:]
    pairs = read_table(spark, str(pipeline_run.lake), LINK_PAIRS)
    run_ids = [r["run_id"] for r in pairs.select("run_id").distinct().collect()]
    assert len(run_ids) == 1
    metrics = link_run_metrics(pipeline_run, run_ids[0])
    # The linked pairs are exactly the pairs the truth metrics count as predicted (pairs within a person).
    assert pairs.where("is_linked").count() == metrics["pairs.predicted"]
    assert pairs.where("match_weight is not null").count() == metrics["candidate_pairs"]
    methods = {r["method"] for r in pairs.select("method").distinct().collect()}
    assert (
        methods <= {None, "nhs_number", "probabilistic", "clerical", "transitive"} and "nhs_number" in methods
    )
    assert pairs.where("is_linked and method is null or not is_linked and method is not null").count() == 0
    # The job ranks best candidates from the review floor: some are flagged, none below it.
    assert pairs.where("is_best_candidate").count() > 0
    assert pairs.where(f"is_best_candidate and match_weight < {REVIEW_FLOOR_WEIGHT}").count() == 0
    # Each linked pair's records share a person_key.
    spine = read_table(spark, str(pipeline_run.lake), PERSON_SPINE).select(
        "source_dataset", "source_record_id", "person_key"
    )
    left = spine.toDF("source_dataset_l", "source_record_id_l", "key_l")
    right = spine.toDF("source_dataset_r", "source_record_id_r", "key_r")
    split = (
        pairs.where("is_linked")
        .join(left, ["source_dataset_l", "source_record_id_l"])
        .join(right, ["source_dataset_r", "source_record_id_r"])
        .where("key_l != key_r")
    )
    assert split.count() == 0


def test_link_run_is_named_described_and_logs_headline_figures(pipeline_run, spark):
    run_id = read_table(spark, str(pipeline_run.lake), LINK_PAIRS).select("run_id").first()["run_id"]
    run = MlflowClient(pipeline_run.tracking_uri).get_run(run_id)
    assert re.fullmatch(r"link · release \S+ · model v\d+", run.info.run_name)
    note = run.data.tags["mlflow.note.content"]
    assert f"runs/{run_id}/artifacts/qa/linkage_report.html" in note and "precision" in note
    assert run.data.metrics["headline.persons"] == run.data.metrics["persons"]
    assert run.data.metrics["headline.truth_precision"] == run.data.metrics["precision"]
    experiment = MlflowClient(pipeline_run.tracking_uri).get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_link_report_is_an_offline_page_of_charts(pipeline_run, spark, tmp_path):
    run_id = read_table(spark, str(pipeline_run.lake), LINK_PAIRS).select("run_id").first()["run_id"]
    client = MlflowClient(pipeline_run.tracking_uri)
    page = Path(client.download_artifacts(run_id, "qa/linkage_report.html", str(tmp_path))).read_text(
        encoding="utf-8"
    )
    assert (
        "cdn.jsdelivr" not in page and "https://vega.github.io/schema" in page
    )  # runtime inline; the URL is a name
    assert (
        page.count("vegaEmbed('#chart") == 4
    )  # weights, cluster sizes, link rates, accuracy by group (truth)
    assert "Match weight of scored pairs (thresholds marked)" in page and '"best_link"' in page


def oracle_decisions(spark, pipeline_run, sample):
    """The oracle reviewer: match when truth gives both records the same person."""
    truth = spark.read.csv(str(pipeline_run.raw / "truth.csv"), header=True, schema=TRUTH_SCHEMA)
    person = truth.select("source_dataset", "source_record_id", "true_person_id")
    decided = (
        sample.select(*PAIR_KEYS)
        .join(
            person.toDF("source_dataset_l", "source_record_id_l", "person_l"),
            ["source_dataset_l", "source_record_id_l"],
            "left",
        )
        .join(
            person.toDF("source_dataset_r", "source_record_id_r", "person_r"),
            ["source_dataset_r", "source_record_id_r"],
            "left",
        )
        .withColumn(
            "decision", F.when(F.col("person_l") == F.col("person_r"), "match").otherwise("non_match")
        )
        .withColumn("decided_by", F.lit("oracle"))
        .withColumn("decided_at", F.current_timestamp())
    )
    # Columns other reviewers' tools add to the contract (e.g. a note) stay null here.
    return decided.select(
        *[
            F.col(c.name) if c.name in decided.columns else F.lit(None).cast(c.type).alias(c.name)
            for c in REVIEW_DECISIONS.columns
        ]
    )


def test_oracle_reviewed_sample_gives_intervals_that_cover_the_true_precision_and_recall(
    pipeline_run, spark, tmp_path
):
    lake = tmp_path / "lake"
    for contract in (
        LINK_PAIRS,
        PEOPLE_STD,
    ):  # a copy: the shared pipeline lake stays as the pipeline left it
        shutil.copytree(
            pipeline_run.lake / contract.zone / contract.name, lake / contract.zone / contract.name
        )
    settings = pipeline_run.settings(lake)
    overrides = [arg for setting in settings for arg in ("--set", setting)]
    config = load_config(None, overrides=settings)
    with tracking_run(config, job="review_sample") as run:
        counts = draw_review_sample(spark, config, run, ORACLE_SAMPLE, seed=ORACLE_SEED)
    frame_pairs = sum(s["size"] for s in counts["by_stratum"].values())
    assert counts["pairs"] == ORACLE_SAMPLE < frame_pairs
    sample = read_table(spark, str(lake), REVIEW_SAMPLE)
    assert sample.count() == ORACLE_SAMPLE
    assert sample.where("inclusion_probability <= 0 or inclusion_probability > 1").count() == 0
    assert {r["stratum"].split("|")[0] for r in sample.select("stratum").distinct().collect()} == {
        "link",
        "near_miss",
    }
    with tracking_run(config, job="oracle_review") as run:
        write_table(oracle_decisions(spark, pipeline_run, sample), str(lake), REVIEW_DECISIONS, run)

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = review_estimate_job.main(overrides, {})
    assert code == 0, err.getvalue()[-2000:]
    estimate_run_id = re.search(r"\(MLflow run (\w+)\)", out.getvalue()).group(1)
    client = MlflowClient(pipeline_run.tracking_uri)
    estimates = client.get_run(estimate_run_id).data.metrics
    truth = link_run_metrics(pipeline_run, counts["link_run_id"])
    print(
        f"precision truth {truth['precision']:.4f} estimate {estimates['estimate.precision']:.4f} "
        f"[{estimates['estimate.precision.ci95_low']:.4f}, {estimates['estimate.precision.ci95_high']:.4f}]; "
        f"recall truth {truth['recall']:.4f} estimate {estimates['estimate.recall']:.4f} "
        f"[{estimates['estimate.recall.ci95_low']:.4f}, {estimates['estimate.recall.ci95_high']:.4f}]"
    )
    for name in ("precision", "recall"):
        assert (
            estimates[f"estimate.{name}.ci95_low"] <= truth[name] <= estimates[f"estimate.{name}.ci95_high"]
        ), name
    assert estimates["estimate.sample.reviewed"] == ORACLE_SAMPLE
    assert estimates["estimate.n.links_reviewed"] > 0
    assert any(k.startswith("estimate.sex.") and k.endswith(".precision.ci95_low") for k in estimates)
    assert any(k.startswith("estimate.age_band.") for k in estimates)
    # The headline estimates also land on the link run, beside its truth figures.
    assert "headline.estimate.precision" in link_run_metrics(pipeline_run, counts["link_run_id"])
    page = html.unescape(
        Path(
            client.download_artifacts(estimate_run_id, "qa/accuracy_estimates.html", str(tmp_path))
        ).read_text(encoding="utf-8")
    )  # model&#x27;s
    assert "model's own estimate" in page and "truth" in page and "vegaEmbed('#chart0'" in page
