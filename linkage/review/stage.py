"""The review-estimate stage, `run(ctx)`: accuracy estimated from the reviewed sample, logged to its own run and
added to the link run's headline."""

from __future__ import annotations

import time
from typing import Any

from mlflow.entities import Metric

from linkage.errors import InputError
from linkage.harness import JobContext, StageResult
from linkage.review.estimate import (
    HEADLINE_ESTIMATES,
    estimate_metrics,
    estimate_report,
    reviewed_sample,
    sample_counts,
    to_reviewed_pairs,
)


def run(ctx: JobContext) -> StageResult:
    """Estimate accuracy from the reviewed sample; log to this run and add the headline to the link run."""
    rows = reviewed_sample(ctx.spark, ctx.config).collect()
    counts = sample_counts(rows)
    if not counts["estimate.sample.reviewed"]:
        raise InputError(
            f"none of the {len(rows)} pairs of {ctx.config.paths.lake}/restricted/review_sample has a "
            "match or non_match decision yet: review some with `python -m jobs.review`"
        )
    link_run_id = rows[0]["run_id"]
    estimates = estimate_metrics(to_reviewed_pairs(rows))
    ctx.run.log_metrics({**estimates, **counts})
    ctx.run.log_params({"link_run_id": link_run_id, "sample_id": rows[0]["sample_id"]})
    try:
        link_run = ctx.run.client.get_run(link_run_id)
        link_metrics, link_name = dict(link_run.data.metrics), link_run.info.run_name
    except Exception:  # noqa: BLE001 - the link run may live in another store: estimate without its figures
        link_metrics, link_name = {}, f"link run {link_run_id}"
    ctx.run.log_text(
        estimate_report(estimates, counts, link_metrics, link_name), "qa/accuracy_estimates.html"
    )
    headline = {
        f"estimate.{name}{suffix}": estimates[f"estimate.{name}{suffix}"]
        for name in HEADLINE_ESTIMATES
        for suffix in ("", ".ci95_low", ".ci95_high")
    }
    headline["estimate.n.reviewed"] = counts["estimate.sample.reviewed"]
    if link_metrics:
        now = int(time.time() * 1000)
        # Beside the link run's own figures, so the runs table shows estimate and truth in one row.
        ctx.run.client.log_batch(
            link_run_id, metrics=[Metric(f"headline.{k}", float(v), now, 0) for k, v in headline.items()]
        )
    describe(ctx, estimates, counts, link_name)
    return StageResult(summary={"link_run_id": link_run_id, **headline, **counts})


def describe(ctx: JobContext, estimates: dict[str, Any], counts: dict[str, Any], link_name: str) -> None:
    """The run's name and description, and one printed line: the estimates with their 95% intervals."""
    precision, recall = (
        f"{estimates[f'estimate.{m}']:.4f} ({estimates[f'estimate.{m}.ci95_low']:.4f} to "
        f"{estimates[f'estimate.{m}.ci95_high']:.4f})"
        for m in ("precision", "recall")
    )
    reviewed = int(counts["estimate.sample.reviewed"])
    ctx.run.set_name(f"review estimate · {link_name}")
    ctx.run.set_description(
        f"**Accuracy estimated from {reviewed} reviewed pairs** of {link_name}: "
        f"precision {precision}, recall {recall} (95% CI).\n\n"
        f"[Report with charts]({ctx.run.artifact_link('qa/accuracy_estimates.html')})"
    )
    ctx.say(
        f"estimated precision {precision}, recall {recall} from {reviewed} "
        f"reviewed pairs ({int(counts['estimate.sample.unsure'])} unsure, "
        f"{int(counts['estimate.sample.undecided'])} undecided)"
    )
