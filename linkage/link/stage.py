"""The link stage, `run(ctx)`: NHS-number pass, the approved model's compiled scorer, clustering, stable keys,
review queue, QA.

Writes restricted/person_spine, person_registry, review_queue and link_pairs (one Delta transaction each)
and logs aggregate QA to the run: nothing record-level goes to MLflow.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from linkage.config import LinkageConfig
from linkage.harness import JobContext, StageResult
from linkage.lake import TableWrite, read_table, table_exists, table_path, table_version, write_table
from linkage.link import components, deterministic, fields, incremental, qa, report, scorer, spine
from linkage.link.history import record_missing_history
from linkage.link.lineage import materialised
from linkage.link.model import model_input, splink_backend
from linkage.link.pairs import best_candidate_min_weight, link_pairs
from linkage.link.people import read_people
from linkage.link.registry import check_approval, load_model_json, version_to_use
from linkage.schemas import (
    LINK_PAIRS,
    PERSON_REGISTRY,
    PERSON_SPINE,
    REVIEW_DECISIONS,
    REVIEW_QUEUE,
    SCORED_PAIRS,
    TableContract,
)


def add_link_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-version",
        default=None,
        help="Registry version to link with (default: linkage.model_version, else the approved one).",
    )
    parser.add_argument(
        "--allow-unapproved",
        action="store_true",
        help="Outside local mode, link with a version that does not carry the approved alias "
        "(the run is tagged unapproved).",
    )
    parser.add_argument(
        "--incremental",
        action="store_true",
        help="Rescore only pairs holding a record that is new or changed since the last spine; reuse the "
        "last run's other scored pairs (falls back to a full link, and says why, when it cannot).",
    )


def clusters_of(people: DataFrame, edges: DataFrame, driver_max_edges: int) -> DataFrame:
    """Each record's cluster: connected components, in the driver up to driver_max_edges links, else in logarithmic
    Spark rounds (cluster_id is the smallest record_uid of the component, as Splink's)."""
    components_df = components.connected_components(
        spine.edges_for_clustering(edges),
        spine.nodes_for_clustering(people),
        src="record_uid_l",
        dst="record_uid_r",
        node="record_uid",
        driver_max_edges=driver_max_edges,
    ).withColumnRenamed("component", "cluster_id")
    return spine.clusters_from_components(people, components_df)


def _current(ctx: JobContext, contract: TableContract) -> tuple[DataFrame | None, int | None]:
    """The table pinned at its current version (so later overwrites cannot change what we read), or None."""
    lake = ctx.config.paths.lake
    if not table_exists(ctx.spark, lake, contract):
        return None, None
    version = table_version(ctx.spark, table_path(lake, contract))
    return read_table(ctx.spark, lake, contract, version=version), version


@dataclass(frozen=True)
class LinkInputs:
    """What one link run reads, each table pinned at the version current when the run started."""

    model_version: str
    model: dict[str, Any]
    people: DataFrame
    previous_spine: DataFrame | None
    previous_spine_version: int | None
    previous_registry: DataFrame | None
    decisions: DataFrame | None
    previous_pairs: DataFrame | None = None  # the last run's scored pairs, read for --incremental only
    previous_link_pairs: DataFrame | None = None  # the last run's link_pairs, read for --incremental only

    @property
    def known_keys(self) -> DataFrame | None:
        return self.previous_registry.select("person_key") if self.previous_registry is not None else None


@dataclass(frozen=True)
class Change:
    """What an incremental run rescored: the new or changed records, those and the gone ones (stale), and the
    pairs scored again."""

    changed: DataFrame
    stale: DataFrame
    rescored: DataFrame


@dataclass(frozen=True)
class Linked:
    """The run's scored pairs and each record's best candidates among them, the links kept after clustering, and
    the keyed spine (not yet written)."""

    predictions: DataFrame
    best_candidates: DataFrame  # linkage.link.spine.single_best_candidates of the predictions
    edges: DataFrame
    person_spine: DataFrame


def run(ctx: JobContext) -> StageResult:
    """Link restricted/people_std into persons; returns counts (and precision/recall/F1 when paths.truth is set)."""
    inputs = read_link_inputs(ctx)
    metrics: dict[str, float] = {}
    with splink_backend(ctx.spark, ctx.config, ctx.run.run_id):
        linked = link(ctx, inputs, metrics)
        with ctx.stage("write spine"):
            tables = write_link_tables(ctx, inputs, linked)
    with ctx.stage("qa"):
        # Read by a dozen small QA queries: cached once rather than read from Delta by each.
        new_spine = read_table(ctx.spark, ctx.config.paths.lake, PERSON_SPINE).persist(
            StorageLevel.MEMORY_AND_DISK
        )
        metrics["review_queue.pairs"] = tables[f"{REVIEW_QUEUE.zone}/{REVIEW_QUEUE.name}"].rows
        try:
            changes, truth = log_link_qa(ctx, inputs, new_spine, metrics)
        finally:
            new_spine.unpersist()
    summary = {
        "model_version": inputs.model_version,
        "records": metrics["records"],
        "persons": metrics["persons"],
        "review_queue_pairs": metrics["review_queue.pairs"],
        **changes,
    }
    if truth:
        summary.update({k: truth[k] for k in ("precision", "recall", "f1")})
        ctx.say(
            f"pairwise precision {truth['precision']:.4f}, recall {truth['recall']:.4f}, F1 {truth['f1']:.4f}"
        )
    return StageResult(tables=tables, summary=summary)


def read_link_inputs(ctx: JobContext) -> LinkInputs:
    """The model version to use (tagging the run when it is not approved), the model fitted to the fields this
    extract holds, people_std and the previous spine, registry and review decisions."""
    config, run = ctx.config, ctx.run
    version = version_to_use(config, getattr(ctx.args, "model_version", None))
    if not check_approval(config, version, getattr(ctx.args, "allow_unapproved", False)):
        run.set_tags({"unapproved": "true"})
        ctx.say(f"warning: model version {version} is not approved; this run is tagged unapproved")
    model = load_model_json(config, version)
    people = read_people(ctx)
    caught_up = record_missing_history(ctx.spark, config.paths.lake, run)
    if caught_up:
        ctx.say(
            f"recorded the key history of {caught_up} earlier link run(s) that wrote the spine but not the registry"
        )
    # Blocking rules on fields this extract does not hold would find nothing: drop them and say so.
    model, dropped_rules = fields.model_for_populated(
        model, fields.populated_columns(fields.populated_counts(people))
    )
    if dropped_rules:
        ctx.say(f"blocking rules dropped (no values in their fields): {'; '.join(dropped_rules)}")
    run.log_params({"model.blocking_rules_dropped": " | ".join(dropped_rules) or "none"})
    previous_spine, previous_spine_version = _current(ctx, PERSON_SPINE)
    previous_registry, _ = _current(ctx, PERSON_REGISTRY)
    decisions, _ = _current(ctx, REVIEW_DECISIONS)
    is_incremental = getattr(ctx.args, "incremental", False)
    previous_pairs = _current(ctx, SCORED_PAIRS)[0] if is_incremental else None
    previous_link_pairs = _current(ctx, LINK_PAIRS)[0] if is_incremental else None
    run.log_params(
        {
            "model_version": version,
            "previous_spine_version": previous_spine_version,
            "review_decisions_applied": decisions is not None,
        }
    )
    run.set_tags({"model_version": version})
    return LinkInputs(
        version,
        model,
        people,
        previous_spine,
        previous_spine_version,
        previous_registry,
        decisions,
        previous_pairs,
        previous_link_pairs,
    )


def link(ctx: JobContext, inputs: LinkInputs, metrics: dict[str, float]) -> Linked:
    """NHS-number pass, compiled scoring, clustering and stable keys; adds each step's counts to `metrics`."""
    people, thresholds = inputs.people, ctx.config.linkage.thresholds
    with ctx.stage("nhs number pass"):
        nhs_pairs = materialised(deterministic.nhs_number_pairs(people))
        nhs_links = deterministic.deterministic_links(nhs_pairs)
        metrics["nhs_number.pairs_linked"] = nhs_links.count()
        metrics["nhs_number.pairs_conflicting"] = deterministic.nhs_number_conflicts(nhs_pairs).count()
    # One definition for the two readers: changed records (--incremental) and the spine the next run compares.
    record_fingerprints = incremental.fingerprints(people)
    with ctx.stage("predict"):
        predictions, change = score(ctx, inputs, record_fingerprints, metrics)
        names = {
            str(i): f"{i}_{r['blocking_rule']}"
            for i, r in enumerate(inputs.model["blocking_rules_to_generate_predictions"])
        }
        metrics.update(qa.prediction_metrics(predictions, thresholds.upper, names))
    with ctx.stage("cluster and key"):
        with ctx.stage("cluster and key: edges"):
            # Ranked once over the scored pairs at or above the review floor; read by link_pairs, and by the
            # mutual-best links when best_link_scope ranks every candidate (unlinked_records, any).
            best_candidates = materialised(
                spine.single_best_candidates(
                    predictions,
                    "match_probability",
                    min_weight=best_candidate_min_weight(thresholds.best_link),
                )
            )
            edges = materialised(
                spine.link_edges(nhs_links, predictions, thresholds, inputs.decisions, best_candidates)
            )
            metrics.update(qa.count_by(edges, "method", "pairs_linked_by_method"))
            metrics["pairs_linked_as_mutual_best_below_upper"] = edges.where(
                (F.col("method") == "probabilistic") & (F.col("match_probability") < thresholds.upper)
            ).count()
        with ctx.stage("cluster and key: clusters"):
            settings = incremental.link_settings(ctx.config.linkage, inputs.model, inputs.model_version)
            affected = None  # the records reclustered, when the others' clusters are kept
            reason = (
                None
                if change is None
                else incremental.recluster_reason(inputs.previous_spine, inputs.previous_link_pairs, settings)
            )
            if change is not None and reason is None:
                edges, clusters, metrics["links_removed_splitting_conflicts"], affected = cluster_changed(
                    ctx, inputs, change, edges, metrics
                )
            else:
                if reason:
                    ctx.say(f"incremental link clusters every component ({reason})")
                edges, clusters, metrics["links_removed_splitting_conflicts"] = cluster(
                    people, edges, ctx.config.linkage
                )
        with ctx.stage("cluster and key: link patterns"):
            metrics.update(qa.link_pattern_metrics(edges, people))
        with ctx.stage("cluster and key: keys"):
            if affected is None:
                keyed = spine.assign_person_keys(clusters, inputs.previous_spine, inputs.known_keys)
            else:
                keyed = incremental.keys_after_change(
                    clusters, inputs.previous_spine, inputs.known_keys, affected
                )
            keyed = materialised(keyed)
            person_spine = (
                spine.with_match_method(keyed, edges)
                .drop("cluster_id", "record_uid")
                .join(record_fingerprints, list(spine.RECORD_JOIN_KEY), how="left")
                .withColumns({incremental.SETTINGS: F.lit(settings), "run_id": F.lit(ctx.run.run_id)})
            )
    return Linked(predictions, best_candidates, edges, person_spine)


def score(
    ctx: JobContext, inputs: LinkInputs, record_fingerprints: DataFrame, metrics: dict[str, float]
) -> tuple[DataFrame, Change | None]:
    """The approved model compiled to one Spark plan (linkage.link.scorer), computed once and kept: over every
    candidate pair, or (--incremental) over the pairs holding a new or changed record, with the last run's
    scores for the others (linkage.link.incremental, whose Change is returned too)."""
    records = model_input(inputs.people)
    changed, reason = None, None
    if getattr(ctx.args, "incremental", False):
        reason = incremental.fallback_reason(
            inputs.previous_spine, inputs.previous_pairs, inputs.model_version
        )
        if reason is None:
            with ctx.stage("predict: changed records"):
                changed = materialised(
                    incremental.changed_records(record_fingerprints, inputs.previous_spine)
                )
                changed_count = changed.count()
                reason = incremental.too_large_a_change(changed_count, inputs.people.count())
        if reason:
            ctx.say(f"incremental link not possible ({reason}): linking in full")
    ctx.run.log_params({"link.mode": "full" if changed is None or reason else "incremental"})
    if changed is None or reason:
        return scorer.materialised_scores(records, inputs.model)[0], None
    with ctx.stage("predict: rescored"):
        rescored, rescored_count = scorer.materialised_scores(records, inputs.model, changed)
    with ctx.stage("predict: reused"):
        stale = materialised(incremental.stale_records(inputs.people, inputs.previous_spine, changed))
        reused = incremental.reusable_pairs(inputs.previous_pairs, stale)
        predictions = materialised(rescored.select(*incremental.SCORED_PAIR_COLUMNS).unionByName(reused))
    metrics["incremental.records_changed"] = changed_count
    metrics["incremental.pairs_rescored"] = rescored_count
    metrics["incremental.pairs_reused"] = predictions.count() - rescored_count
    ctx.say(
        f"incremental: {metrics['incremental.records_changed']:.0f} new or changed records, "
        f"{rescored_count} pairs rescored, {metrics['incremental.pairs_reused']:.0f} reused"
    )
    return predictions, Change(changed, stale, rescored)


def cluster_changed(
    ctx: JobContext, inputs: LinkInputs, change: Change, edges: DataFrame, metrics: dict[str, float]
) -> tuple[DataFrame, DataFrame, int, DataFrame]:
    """`clusters_after_change` for an incremental run, on the records its change reaches (each step timed); returns
    those records too."""
    config = ctx.config.linkage
    with ctx.stage("cluster and key: clusters: reached"):
        touched = incremental.touched_records(
            change.stale, change.rescored, inputs.previous_pairs, inputs.decisions
        )
        affected = materialised(
            incremental.affected_records(
                touched, edges, inputs.previous_spine, change.changed, config.components_in_driver_max_edges
            )
        )
        metrics["incremental.records_reclustered"] = affected.count()
    ctx.say(
        f"incremental: {metrics['incremental.records_reclustered']:.0f} records in the components reclustered"
    )
    edges, clusters, removed = clusters_after_change(
        inputs.people, edges, inputs.previous_spine, inputs.previous_link_pairs, affected, config, ctx.stage
    )
    return edges, clusters, removed, affected


def clusters_after_change(
    people: DataFrame,
    edges: DataFrame,
    previous_spine: DataFrame,
    previous_link_pairs: DataFrame,
    affected: DataFrame,
    config: LinkageConfig,
    stage: Callable[[str], AbstractContextManager] = lambda name: nullcontext(),
) -> tuple[DataFrame, DataFrame, int]:
    """(edges kept, clusters, links removed splitting conflicts) after a change: the components the change reaches
    (`affected`, RECORD_KEY rows: linkage.link.incremental.affected_records) clustered as `cluster` does, every
    other one's clusters and links as the previous run left them. The links removed are the reclustered
    components' only. `stage(name)` times each step."""
    with stage("cluster and key: clusters: reclustered"):
        # Only what `cluster` reads of a record: its key, and the conflict rule's columns.
        part_people = materialised(
            people.select(*spine.RECORD_KEY, *spine.CONFLICT_COLUMNS).join(
                F.broadcast(affected), list(spine.RECORD_JOIN_KEY), how="left_semi"
            )
        )
        part_edges, part_clusters, removed = cluster(part_people, spine.edges_inside(edges, affected), config)
    with stage("cluster and key: clusters: kept"):
        clusters = materialised(
            part_clusters.unionByName(incremental.kept_clusters(people, previous_spine, affected))
        )
        kept_edges = incremental.kept_edges(previous_link_pairs, affected)
        return materialised(part_edges.unionByName(kept_edges)), clusters, removed


def cluster(people: DataFrame, edges: DataFrame, config: LinkageConfig) -> tuple[DataFrame, DataFrame, int]:
    """(edges kept, clusters, links removed splitting conflicts): components of the links; when a cluster is
    oversized, again without the weaker model links inside oversized clusters; then split at conflicts. Each
    record's cluster carries its component before all that (incremental.COMPONENT)."""
    driver_max_edges = config.components_in_driver_max_edges
    # Read by the size check, the conflict split and (after a split) the components' join below: computed once.
    components_df = materialised(clusters_of(people, edges, driver_max_edges))
    clusters, reclustered = components_df, False
    if clusters.groupBy("cluster_id").count().where(F.col("count") > config.max_cluster_size).count():
        edges = materialised(
            spine.without_weak_edges_in_oversized_clusters(
                edges, clusters, config.max_cluster_size, config.oversized_cluster_probability
            )
        )
        clusters, reclustered = clusters_of(people, edges, driver_max_edges), True
    edges, clusters, removed = spine.split_conflicting_clusters(
        edges,
        clusters,
        people,
        lambda kept, records: clusters_of(records, kept, driver_max_edges),
        config.conflict_split_rounds,
    )
    # Each record's component before the splits: what the next incremental run reclusters as a whole.
    if not (reclustered or removed):
        return edges, clusters.withColumn(incremental.COMPONENT, F.col("cluster_id")), removed
    component = components_df.select(*spine.RECORD_KEY, F.col("cluster_id").alias(incremental.COMPONENT))
    return edges, materialised(clusters.join(component, list(spine.RECORD_JOIN_KEY), how="inner")), removed


def write_link_tables(ctx: JobContext, inputs: LinkInputs, linked: Linked) -> dict[str, TableWrite]:
    """person_spine, then the registry's events against the spine as written, the review queue and link_pairs."""
    lake, run, thresholds = ctx.config.paths.lake, ctx.run, ctx.config.linkage.thresholds
    run_id = F.lit(run.run_id)
    tables = {}

    def write(contract: TableContract, df: DataFrame) -> None:
        with ctx.stage(f"write spine: {contract.name}"):
            tables[f"{contract.zone}/{contract.name}"] = write_table(df, lake, contract, run)

    write(PERSON_SPINE, linked.person_spine)
    new_spine = read_table(ctx.spark, lake, PERSON_SPINE)
    events = spine.registry_events(new_spine, inputs.previous_spine, inputs.known_keys).withColumn(
        "run_id", run_id
    )
    write(
        PERSON_REGISTRY,
        events if inputs.previous_registry is None else inputs.previous_registry.unionByName(events),
    )
    write(
        REVIEW_QUEUE,
        spine.review_pairs(linked.predictions, thresholds, inputs.decisions).withColumn("run_id", run_id),
    )
    # The frame clerical review samples are drawn from (accuracy estimates without truth).
    write(
        LINK_PAIRS,
        link_pairs(linked.predictions, linked.edges, new_spine, linked.best_candidates).withColumn(
            "run_id", run_id
        ),
    )
    # What the next incremental run reuses for pairs whose records do not change.
    write(
        SCORED_PAIRS,
        linked.predictions.select(*incremental.SCORED_PAIR_COLUMNS).withColumns(
            {"model_version": F.lit(inputs.model_version), "run_id": run_id}
        ),
    )
    return tables


def log_link_qa(
    ctx: JobContext, inputs: LinkInputs, new_spine: DataFrame, metrics: dict[str, float]
) -> tuple[dict[str, int], dict[str, float]]:
    """Spine and key-change metrics, truth metrics when paths.truth is set, the QA report and the run's name and
    description; returns (key changes, truth metrics)."""
    config, run, version = ctx.config, ctx.run, inputs.model_version
    metrics.update(qa.spine_metrics(new_spine, inputs.people))
    registry_now = read_table(ctx.spark, config.paths.lake, PERSON_REGISTRY).where(
        F.col("run_id") == run.run_id
    )
    changes = {f"keys.{k}": 0 for k in ("created", "merged", "split", "retired")}
    changes.update(qa.count_by(registry_now, "event", "keys"))
    metrics.update(changes)
    truth: dict[str, float] = {}
    if config.paths.truth:
        truth_df = qa.read_truth(ctx.spark, config.paths.truth, config.linkage.qa_reference_date.year)
        truth = qa.truth_metrics(new_spine, truth_df)
        metrics.update(truth)
    metrics.update(report.headline_metrics(metrics))
    run.log_metrics(metrics)
    run.log_dict(
        {"previous_spine_version": inputs.previous_spine_version, **changes},
        "qa/comparison_with_previous_run.json",
    )
    link_pairs_df = read_table(ctx.spark, config.paths.lake, LINK_PAIRS)
    charts = report.link_charts(link_pairs_df, new_spine, metrics, config.linkage.thresholds)
    run.log_text(report.link_report(metrics, truth, version, charts), "qa/linkage_report.html")
    run.log_text(report.chart_specs_json(charts), "qa/linkage_report_charts.json")
    run.set_name(report.link_run_name(config.pseudonymise.release_id, version))
    run.set_description(
        report.link_description(metrics, version, run.artifact_link("qa/linkage_report.html"))
    )
    return changes, truth
