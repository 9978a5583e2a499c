"""`link`: NHS-number pass, Splink predict with the approved model, cluster, stable keys, review queue, QA.

Writes restricted/person_spine, person_registry and review_queue (one Delta transaction each)
and logs aggregate QA to the run: nothing record-level goes to MLflow.
"""

from __future__ import annotations

import argparse
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from linkage.harness import JobContext
from linkage.lake import read_table, table_exists, table_path, table_version, write_table
from linkage.link import components, deterministic, fields, qa, report, scorer, spine
from linkage.link.history import record_missing_history
from linkage.link.lineage import materialised
from linkage.link.model import model_input, splink_backend
from linkage.link.pairs import link_pairs
from linkage.link.registry import check_approval, load_model_json, version_to_use
from linkage.link.training import read_people
from linkage.schemas import (
    LINK_PAIRS,
    PERSON_REGISTRY,
    PERSON_SPINE,
    REVIEW_DECISIONS,
    REVIEW_QUEUE,
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


def connected_components(db_api, people_df: DataFrame, edges_df: DataFrame) -> DataFrame:
    """(record_uid, cluster_id) for every record: connected components in logarithmic rounds (cluster_id is the
    smallest record_uid of the component, as Splink's). db_api is unused: the backend's checkpoint folder is."""
    return components.connected_components(
        spine.edges_for_clustering(edges_df),
        spine.nodes_for_clustering(people_df),
        src="record_uid_l",
        dst="record_uid_r",
        node="record_uid",
    ).withColumnRenamed("component", "cluster_id")


def _current(ctx: JobContext, contract: TableContract) -> tuple[DataFrame | None, int | None]:
    """The table pinned at its current version (so later overwrites cannot change what we read), or None."""
    lake = ctx.config.paths.lake
    if not table_exists(ctx.spark, lake, contract):
        return None, None
    version = table_version(ctx.spark, table_path(lake, contract))
    return read_table(ctx.spark, lake, contract, version=version), version


def run_link(ctx: JobContext) -> dict[str, Any]:
    """Link restricted/people_std into persons; returns counts (and precision/recall/F1 when paths.truth is set)."""
    config, run = ctx.config, ctx.run
    thresholds = config.linkage.thresholds
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
    known_keys = previous_registry.select("person_key") if previous_registry is not None else None
    run.log_params(
        {
            "model_version": version,
            "previous_spine_version": previous_spine_version,
            "review_decisions_applied": decisions is not None,
        }
    )
    run.set_tags({"model_version": version})
    metrics: dict[str, float] = {}

    with splink_backend(ctx.spark, config, run.run_id) as db_api:
        with ctx.stage("nhs number pass"):
            nhs_pairs = materialised(deterministic.nhs_number_pairs(people))
            nhs_links = deterministic.deterministic_links(nhs_pairs)
            metrics["nhs_number.pairs_linked"] = nhs_links.count()
            metrics["nhs_number.pairs_conflicting"] = deterministic.nhs_number_conflicts(nhs_pairs).count()
        with ctx.stage("predict"):
            # The approved Splink model compiled to one Spark plan (linkage.link.scorer), computed once and kept.
            predictions, _ = scorer.materialised_scores(model_input(people), model)
            names = {
                str(i): f"{i}_{r['blocking_rule']}"
                for i, r in enumerate(model["blocking_rules_to_generate_predictions"])
            }
            metrics.update(qa.prediction_metrics(predictions, thresholds.upper, names))
        with ctx.stage("cluster and key"):
            edges = materialised(spine.link_edges(nhs_links, predictions, thresholds, decisions))
            metrics.update(qa.count_by(edges, "method", "pairs_linked_by_method"))
            metrics["pairs_linked_as_mutual_best_below_upper"] = edges.where(
                (F.col("method") == "probabilistic") & (F.col("match_probability") < thresholds.upper)
            ).count()
            clusters = spine.clusters_from_components(people, connected_components(db_api, people, edges))
            linkage_config = config.linkage
            if (
                clusters.groupBy("cluster_id")
                .count()
                .where(F.col("count") > linkage_config.max_cluster_size)
                .count()
            ):
                # Second pass: re-cluster with the weaker model links inside oversized clusters removed.
                edges = materialised(
                    spine.without_weak_edges_in_oversized_clusters(
                        edges,
                        clusters,
                        linkage_config.max_cluster_size,
                        linkage_config.oversized_cluster_probability,
                    )
                )
                clusters = spine.clusters_from_components(people, connected_components(db_api, people, edges))
            edges, clusters, metrics["links_removed_splitting_conflicts"] = spine.split_conflicting_clusters(
                edges,
                clusters,
                people,
                lambda kept: spine.clusters_from_components(
                    people, connected_components(db_api, people, kept)
                ),
                linkage_config.conflict_split_rounds,
            )
            metrics.update(qa.link_pattern_metrics(edges, people))
            keyed = spine.assign_person_keys(clusters, previous_spine, known_keys)
            person_spine = (
                spine.with_match_method(keyed, edges)
                .drop("cluster_id", "record_uid")
                .withColumn("run_id", F.lit(run.run_id))
            )
        with ctx.stage("write spine"):
            write_table(person_spine, config.paths.lake, PERSON_SPINE, run)
            new_spine = read_table(ctx.spark, config.paths.lake, PERSON_SPINE)
            events = spine.registry_events(new_spine, previous_spine, known_keys).withColumn(
                "run_id", F.lit(run.run_id)
            )
            registry = events if previous_registry is None else previous_registry.unionByName(events)
            write_table(registry, config.paths.lake, PERSON_REGISTRY, run)
            queue = spine.review_pairs(predictions, thresholds, decisions).withColumn(
                "run_id", F.lit(run.run_id)
            )
            queue_pairs = write_table(queue, config.paths.lake, REVIEW_QUEUE, run).rows
            # The frame clerical review samples are drawn from (accuracy estimates without truth).
            write_table(
                link_pairs(predictions, edges, new_spine).withColumn("run_id", F.lit(run.run_id)),
                config.paths.lake,
                LINK_PAIRS,
                run,
            )

    with ctx.stage("qa"):
        metrics.update(qa.spine_metrics(new_spine, people))
        metrics["review_queue.pairs"] = queue_pairs
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
            {"previous_spine_version": previous_spine_version, **changes},
            "qa/comparison_with_previous_run.json",
        )
        charts = report.link_charts(
            read_table(ctx.spark, config.paths.lake, LINK_PAIRS), new_spine, metrics, thresholds
        )
        run.log_text(_report(metrics, truth, version, charts), "qa/linkage_report.html")
        run.log_text(report.chart_specs_json(charts), "qa/linkage_report_charts.json")
        run.set_name(report.link_run_name(config.pseudonymise.release_id, version))
        run.set_description(
            report.link_description(metrics, version, run.artifact_link("qa/linkage_report.html"))
        )

    summary = {
        "model_version": version,
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
    return summary


def _report(
    metrics: dict[str, float], truth: dict[str, float], version: str, charts: list[tuple[str, dict[str, Any]]]
) -> str:
    def section(*prefixes: str) -> dict[str, float]:
        return {k: v for k, v in metrics.items() if k.startswith(prefixes)}

    sections = {
        "Records and persons": section("records", "persons", "within_source"),
        "Matches by method": section(
            "nhs_number.", "pairs_linked_by_method.", "pairs_linked_as_mutual_best", "records_by_method."
        ),
        "Blocking and model estimates": section("candidate_pairs", "pairs_by_blocking_rule.", "model."),
        "Cluster sizes": section("cluster_size."),
        "Link rate between sources": section("link_rate."),
        "Conflicts for review": section(
            "conflict_clusters.", "review_queue.", "link_patterns.", "links_removed_splitting"
        ),
        "Comparison with the previous run": section("keys."),
    }
    if truth:
        sections["Against truth (pairwise)"] = {
            k: truth[k]
            for k in ("precision", "recall", "f1", "pairs.true_positive", "pairs.predicted", "pairs.true")
        }
        sections["By group (pairwise)"] = {
            k: v for k, v in truth.items() if k.startswith(("precision.", "recall.", "f1.", "recall_gap."))
        }
    return report.page(
        f"Linkage QA: model version {version}", report.headline_text(metrics), charts, sections
    )
