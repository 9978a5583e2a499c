"""Incremental linkage: rescore only the pairs that hold a new or changed record.

A full link scores every candidate pair of the blocking rules. Between two runs most records are as
they were, and so are the pairs among them. `link --incremental`:

1. fingerprints each people_std record over the columns linkage reads (`record_fingerprint`; the
   spine keeps each record's fingerprint), and takes as changed every record whose key and
   fingerprint are not on the previous spine: new records and records whose identifiers changed;
2. scores, with the approved model, only the candidate pairs holding a changed record (changed x
   all and unchanged x changed: `linkage.link.scorer.rescored_scores`);
3. takes every other pair from the previous run's scored pairs (`restricted/scored_pairs`), minus
   pairs holding a record that is gone;
4. reclusters only the link components the change reaches (`affected_records`), and keeps every other
   component's clusters, links and keys as the previous run left them (`kept_clusters`, `kept_edges`,
   `keys_after_change`); then writes as a full link does.

So person keys, the registry's events and reviewer decisions keep their meaning. The one
difference from a full relink is stated, not hidden: a reused pair keeps the term-frequency
adjustment of the run that scored it, where a full relink would recompute the frequencies over the
new extract (a name a few records more or less common). The bench measures the spines' difference.
An incremental run falls back to a full link, and says why, when there is no previous spine or
scored pairs, or the previous pairs were scored by another model version; it clusters every component, and says
why, when the previous spine holds no link components or was clustered under other settings.

Why reclustering the reached components gives a full relink's clusters. A pair's link (NHS number, model above
upper, mutual best, a reviewer's decision) depends on the pair, its two records and each record's other pairs and
links. A record is *touched* (`touched_records`) when any of those may have changed: it is new, changed or gone, it
is an end of a rescored pair or of a previous pair that held a stale record, or an end of a reviewed pair. Between
two untouched records a link is as it was. The reached records are the closure of the touched ones under this run's
links and the previous run's components. A component outside them has no touched record and no link to one, so its
links are the previous run's, it was a component of the previous run too, and the oversized-cluster and conflict
rules (which read only a component's links and records) split it as they did then.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from linkage.config import LinkageConfig
from linkage.link.components import COMPONENT as LABEL
from linkage.link.components import DRIVER_MAX_EDGES, NODE, connected_components
from linkage.link.deterministic import PAIR_KEYS
from linkage.link.lineage import materialised
from linkage.link.spine import (
    RECORD_JOIN_KEY,
    RECORD_KEY,
    assign_person_keys,
    edges_inside,
    pair_ends,
    record_uid,
)

FINGERPRINT = "record_fingerprint"
# Not part of what a record says: the run that wrote it, and the values as supplied (linkage reads the
# standardised ones).
NOT_FINGERPRINTED = ("run_id",)
# What the next incremental run reuses of a pair: the columns every later step reads.
SCORED_PAIR_COLUMNS = (*PAIR_KEYS, "match_weight", "match_probability", "match_key")


def record_fingerprint(people_df: DataFrame) -> Column:
    """SHA-256 of the record's standardised columns (every people_std column but the raw values and run_id)."""
    columns = sorted(c for c in people_df.columns if c not in NOT_FINGERPRINTED and not c.endswith("_raw"))
    return F.sha2(F.to_json(F.struct(*[F.col(c) for c in columns])), 256)


def fingerprints(people_df: DataFrame) -> DataFrame:
    """(source_dataset, source_record_id, record_fingerprint) of every record."""
    return people_df.select(*RECORD_KEY, record_fingerprint(people_df).alias(FINGERPRINT))


def changed_records(fingerprints_df: DataFrame, previous_spine_df: DataFrame) -> DataFrame:
    """Keys of the records (`fingerprints` of this extract) that are new, or whose fingerprint differs from the one
    on the previous spine."""
    previous = previous_spine_df.select(*RECORD_KEY, FINGERPRINT)
    return fingerprints_df.join(previous, [*RECORD_JOIN_KEY, FINGERPRINT], how="left_anti").select(
        *RECORD_KEY
    )


def stale_records(people_df: DataFrame, previous_spine_df: DataFrame, changed_df: DataFrame) -> DataFrame:
    """Keys whose previous pairs cannot be reused: the changed records and the records that are gone."""
    gone = previous_spine_df.select(*RECORD_KEY).join(
        people_df.select(*RECORD_KEY), list(RECORD_JOIN_KEY), how="left_anti"
    )
    return changed_df.select(*RECORD_KEY).unionByName(gone)


def reusable_pairs(previous_pairs_df: DataFrame, stale_df: DataFrame) -> DataFrame:
    """The previous run's scored pairs holding no stale record (`stale_records`).

    The stale keys are a small share of the records (a larger change links in full, `too_large_a_change`), so
    they are broadcast: the pairs are filtered where they are read, not shuffled against all the records."""
    pairs = previous_pairs_df.select(*SCORED_PAIR_COLUMNS)
    for side in ("l", "r"):
        stale = F.broadcast(stale_df.select(*[F.col(c).alias(f"{c}_{side}") for c in RECORD_KEY]))
        pairs = pairs.join(stale, [f"{c}_{side}" for c in RECORD_JOIN_KEY], how="left_anti")
    return pairs


# Above this share of changed records an incremental link does most of a full link's scoring anyway, and
# broadcasting the changed records to every blocking join stops being cheap: link in full.
MAX_CHANGED_SHARE = 0.2


def too_large_a_change(changed: int, records: int) -> str | None:
    """Why a change is too large to link incrementally, or None."""
    if records and changed > MAX_CHANGED_SHARE * records:
        return (
            f"{changed / records:.1%} of the records are new or changed (more than {MAX_CHANGED_SHARE:.0%})"
        )
    return None


def fallback_reason(
    previous_spine_df: DataFrame | None, previous_pairs_df: DataFrame | None, model_version: str
) -> str | None:
    """Why an incremental run must link in full, or None when it can reuse the previous run's pairs."""
    if previous_spine_df is None or previous_pairs_df is None:
        return "no previous spine and scored pairs"
    if FINGERPRINT not in previous_spine_df.columns:
        return "the previous spine holds no record fingerprints"
    versions = [row[0] for row in previous_pairs_df.select("model_version").distinct().limit(2).collect()]
    if versions and versions != [model_version]:
        return f"the previous pairs were scored by model version {', '.join(map(str, versions))}"
    return None


# Spine columns an incremental run reads to keep the components a change does not reach.
COMPONENT = "link_component"
SETTINGS = "link_settings"
UID = "record_uid"
# Stands for "touched" in the component graph of `affected_records`: sorts before every component id (a record uid),
# so the components it reaches are labelled with it.
TOUCHED = ""


def link_settings(config: LinkageConfig, model: dict[str, Any], model_version: str) -> str:
    """SHA-256 of what turns scored pairs into clusters: the model version and the blocking rules it ran with, the
    thresholds and the cluster limits. A component's clusters are kept only under the same."""
    settings = {
        "model_version": model_version,
        "blocking_rules": [r["blocking_rule"] for r in model["blocking_rules_to_generate_predictions"]],
        "thresholds": config.thresholds.model_dump(mode="json"),
        "max_cluster_size": config.max_cluster_size,
        "oversized_cluster_probability": config.oversized_cluster_probability,
        "conflict_split_rounds": config.conflict_split_rounds,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def recluster_reason(
    previous_spine_df: DataFrame, previous_link_pairs_df: DataFrame | None, settings: str
) -> str | None:
    """Why an incremental run must cluster every component, or None when it can keep the unreached ones: the
    previous spine must hold link components, clustered under the same settings, and the previous link_pairs must
    come from the run that wrote that spine (their direct links are the kept components' links)."""
    if previous_link_pairs_df is None:
        return "no previous link_pairs"
    if COMPONENT not in previous_spine_df.columns or SETTINGS not in previous_spine_df.columns:
        return "the previous spine holds no link components"
    spine_row = previous_spine_df.select(SETTINGS, "run_id").limit(1).collect()
    if not spine_row or spine_row[0][SETTINGS] is None:
        return "the previous spine holds no link components"
    if spine_row[0][SETTINGS] != settings:
        return "the model or the linkage settings changed since the previous spine"
    pairs_row = previous_link_pairs_df.select("run_id").limit(1).collect()
    if pairs_row and pairs_row[0]["run_id"] != spine_row[0]["run_id"]:
        return "the previous link_pairs were written by another run than the previous spine"
    return None


def holding_any(pairs_df: DataFrame, records_df: DataFrame) -> DataFrame:
    """The pairs holding at least one of `records_df` (RECORD_KEY rows, few: broadcast)."""
    held = None
    for side in ("l", "r"):
        keys = F.broadcast(records_df.select(*[F.col(c).alias(f"{c}_{side}") for c in RECORD_KEY]))
        found = pairs_df.join(keys, [f"{c}_{side}" for c in RECORD_JOIN_KEY], how="left_semi")
        held = found if held is None else held.unionByName(found)
    return held.distinct()


def touched_records(
    stale_df: DataFrame, rescored_df: DataFrame, previous_pairs_df: DataFrame, decisions_df: DataFrame | None
) -> DataFrame:
    """RECORD_KEY of the records whose links may differ from the previous run's: the stale ones (new, changed,
    gone); both ends of every rescored pair and of every previous pair holding a stale record (each end gained or
    lost a candidate, so its best candidates may differ); both ends of every reviewed pair (a decision may be new)."""
    touched = (
        stale_df.select(*RECORD_KEY)
        .unionByName(pair_ends(rescored_df))
        .unionByName(pair_ends(holding_any(previous_pairs_df.select(*PAIR_KEYS), stale_df)))
    )
    if decisions_df is not None:
        touched = touched.unionByName(pair_ends(decisions_df))
    return touched.distinct()


def _uid(side: str = "") -> Column:
    return record_uid(F.col(f"source_dataset{side}"), F.col(f"source_record_id{side}"))


def affected_records(
    touched_df: DataFrame,
    edges_df: DataFrame,
    previous_spine_df: DataFrame,
    changed_df: DataFrame,
    driver_max_edges: int = DRIVER_MAX_EDGES,
) -> DataFrame:
    """RECORD_KEY of the records to cluster again: every record of a previous component (`COMPONENT` on the
    previous spine; a new record is its own) that this run's links (`edges_df`) join, at any distance, to a
    component holding a touched record.

    A link inside one previous component reaches nothing new, so only the links between two (few: each holds a
    touched record) are kept; with one edge from TOUCHED to each touched record's component they make a small
    graph, whose connected components (in the driver up to driver_max_edges) label every component reached from
    TOUCHED with it."""
    new_records = changed_df.join(
        previous_spine_df.select(*RECORD_KEY), list(RECORD_JOIN_KEY), how="left_anti"
    )
    component_of = materialised(
        previous_spine_df.select(*RECORD_KEY, _uid().alias(UID), COMPONENT).unionByName(
            new_records.select(*RECORD_KEY, _uid().alias(UID), _uid().alias(COMPONENT))
        )
    )

    def component_at(side: str) -> DataFrame:
        return component_of.select(
            F.col(UID).alias(f"{UID}_{side}"), F.col(COMPONENT).alias(f"component_{side}")
        )

    links = edges_df.select(_uid("_l").alias(f"{UID}_l"), _uid("_r").alias(f"{UID}_r"))
    across = (
        links.join(component_at("l"), f"{UID}_l", how="inner")
        .join(component_at("r"), f"{UID}_r", how="inner")
        .where(F.col("component_l") != F.col("component_r"))
        .select(F.col("component_l").alias("src"), F.col("component_r").alias("dst"))
    )
    seeds = component_of.join(touched_df.select(*RECORD_KEY), list(RECORD_JOIN_KEY), how="left_semi").select(
        F.lit(TOUCHED).alias("src"), F.col(COMPONENT).alias("dst")
    )
    labels = connected_components(across.unionByName(seeds), driver_max_edges=driver_max_edges)
    reached = labels.where((F.col(LABEL) == TOUCHED) & (F.col(NODE) != TOUCHED)).select(
        F.col(NODE).alias(COMPONENT)
    )
    return component_of.join(F.broadcast(reached), COMPONENT, how="left_semi").select(*RECORD_KEY)


def kept_clusters(people_df: DataFrame, previous_spine_df: DataFrame, affected_df: DataFrame) -> DataFrame:
    """The clusters of the records not affected: the previous run's, in the shape the link step's clusters take
    (RECORD_KEY, record_uid, cluster_id, and the record's previous COMPONENT). cluster_id is the previous person key:
    one per previous cluster, and never a record uid (a uid holds the separator a key lacks), so it names no
    reclustered cluster too."""
    kept = people_df.select(*RECORD_KEY).join(affected_df, list(RECORD_JOIN_KEY), how="left_anti")
    previous = previous_spine_df.select(*RECORD_KEY, F.col("person_key").alias("cluster_id"), COMPONENT)
    return kept.join(previous, list(RECORD_JOIN_KEY), how="inner").select(
        *RECORD_KEY, _uid().alias(UID), "cluster_id", COMPONENT
    )


def kept_edges(previous_link_pairs_df: DataFrame, affected_df: DataFrame) -> DataFrame:
    """The links the previous run kept (after its splits: link_pairs' direct links) outside the affected records,
    in the shape of `linkage.link.spine.link_edges` (an NHS-number or clerical link carries no probability)."""
    direct = previous_link_pairs_df.where(F.col("is_linked") & (F.col("method") != "transitive"))
    return edges_inside(direct, F.broadcast(affected_df), how="left_anti").select(
        *PAIR_KEYS,
        F.when(F.col("method") == "probabilistic", F.col("match_probability")).alias("match_probability"),
        "method",
    )


def keys_after_change(
    clusters_df: DataFrame,
    previous_spine_df: DataFrame,
    known_keys_df: DataFrame | None,
    affected_df: DataFrame,
) -> DataFrame:
    """`linkage.link.spine.assign_person_keys` of an incremental run's clusters, with the votes of the reclustered
    records (`affected_df`) alone.

    A kept cluster is a previous cluster whole (`kept_clusters`: its cluster_id is the previous person key), and no
    other cluster holds a record of that key, so it wins the key outright, as every record voting would give; its
    size is its records'. The reclustered clusters vote with the previous keys of their own records, which no kept
    record holds; a new key still avoids every key the registry or the previous spine ever held."""
    reached = F.broadcast(affected_df.select(*RECORD_KEY))
    previous_keys = previous_spine_df.select("person_key")
    taken = previous_keys if known_keys_df is None else known_keys_df.unionByName(previous_keys)
    reclustered = assign_person_keys(
        clusters_df.join(reached, list(RECORD_JOIN_KEY), how="left_semi"),
        previous_spine_df.join(reached, list(RECORD_JOIN_KEY), how="left_semi"),
        taken,
    )
    kept = clusters_df.join(reached, list(RECORD_JOIN_KEY), how="left_anti").select(
        *clusters_df.columns,
        F.col("cluster_id").alias("person_key"),
        F.count("*").over(Window.partitionBy("cluster_id")).cast("int").alias("cluster_size"),
    )
    return reclustered.unionByName(kept.select(*reclustered.columns))
