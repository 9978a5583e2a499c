"""The train stage, `run(ctx)`: estimate the Splink model on restricted/people_std, log it with its charts, register it in MLflow."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame

from linkage.harness import JobContext, StageResult
from linkage.link.fields import (
    ModelPlan,
    plan_model,
    populated_columns,
    populated_counts,
    populated_metrics,
    rule_sql,
)
from linkage.link.match_free_u import UChange
from linkage.link.model import blocking_block_sizes, chart_html, splink_backend, train_model
from linkage.link.people import read_people
from linkage.link.prior import PriorRecall
from linkage.link.registry import register_model


def run(ctx: JobContext) -> StageResult:
    """Train, log (model JSON, parameters, charts) and register; returns the registry version and counts."""
    config = ctx.config
    people = read_people(ctx)
    populated = populated_counts(people)
    counts = {f"records.{source}": per_source["records"] for source, per_source in populated.items()}
    ctx.run.log_metrics(counts)
    # Fit the model to the fields this extract holds (no postcodes, no NHS numbers, ...), and say what changed.
    plan = plan_model(populated_columns(populated))
    ctx.run.log_metrics(populated_metrics(populated))
    ctx.say(f"model fields: {plan.describe()}")
    ctx.run.log_params(plan_params(plan))
    with splink_backend(ctx.spark, config, ctx.run.run_id) as db_api:
        with ctx.stage("block sizes"):
            log_block_sizes(ctx, people, plan)
        with ctx.stage("train model"):
            trained_model = train_model(db_api, people, config.linkage, plan, populated, stage=ctx.stage)
        model = trained_model.model
        log_training(ctx, plan, trained_model.prior_recall, trained_model.u_changes)
        with ctx.stage("log and register model"):
            ctx.run.log_dict(model, "model/splink_model.json")
            for name, page in chart_html(trained_model.trained, trained_model.scoring).items():
                ctx.run.log_text(page, f"charts/{name}")
            ctx.run.log_metrics(
                {"model.probability_two_random_records_match": model["probability_two_random_records_match"]}
            )
            version = register_model(config, ctx.run, model)
    ctx.run.set_tags({"model_version": version})
    ctx.say(
        f"registered '{config.tracking.registered_model}' version {version}; approve it with "
        f"`python -m jobs.approve --version {version}`"
    )
    return StageResult(summary={"model_version": version, "records": sum(counts.values())})


def log_block_sizes(ctx: JobContext, people: DataFrame, plan: ModelPlan) -> None:
    """Each prediction rule's blocks, to check before linking (a rule meeting a common value grows fastest); the
    pairs each rule adds beyond the others are counted by the link run, from the pairs it scores."""
    blocking = blocking_block_sizes(people, plan.prediction_rules)
    ctx.run.log_dict(blocking, "model/blocking_block_sizes.json")
    ctx.run.log_metrics(
        {
            f"blocking.{measure}.rule_{i}": r[measure]
            for i, r in enumerate(blocking)
            for measure in ("comparisons_before_filters", "largest_block_comparisons")
        }
    )


def log_training(
    ctx: JobContext, plan: ModelPlan, prior_recall: PriorRecall, u_changes: Sequence[UChange]
) -> None:
    """What training adapted (EM sessions skipped, the prior's recall, u freed of the sample's matches) in the
    job's output and the MLflow run."""
    ctx.say(f"prior: rules' recall {prior_recall.describe()}")
    ctx.run.log_params(
        {"model.prior_recall": f"{prior_recall.recall:.4f}", "model.prior_recall_source": prior_recall.source}
    )
    for change in u_changes:
        ctx.say(f"u without the sample's matches: {change.describe()}")
    ctx.run.log_dict(
        [{**change._asdict(), "bits": change.bits} for change in u_changes], "model/match_free_u.json"
    )
    ctx.run.log_metrics({"model.u_levels_moved": len(u_changes)})
    if plan.dropped.get("em_sessions"):
        ctx.say(f"EM sessions dropped or skipped (no pairs): {'; '.join(plan.dropped['em_sessions'])}")
    ctx.run.log_dict(plan.summary(), "model/fields_adaptation.json")
    ctx.run.log_metrics({f"model.dropped.{kind}": len(items) for kind, items in plan.dropped.items()})


def plan_params(plan: ModelPlan) -> dict[str, str]:
    """The model's rules as fitted to this extract's fields, for the run's parameters."""
    return {
        "model.blocking_rules_for_prediction": " | ".join(rule_sql(r) for r in plan.prediction_rules),
        "model.em_blocking_rules": " | ".join(rule_sql(r) for r in plan.em_rules),
        "model.prior_rules": " | ".join(rule_sql(r) for r in plan.prior_rules),
        "model.missing_fields": ", ".join(plan.missing_columns) or "none",
    }
