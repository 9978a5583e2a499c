"""From scored pairs to the person spine: edges, clusters, stable person keys, registry events, review queue.

`person_key` is carried forward from the previous spine: a cluster takes the previous key held
by most of its records (each previous key goes to at most one cluster: the one holding most of
its records); a cluster with no key to inherit gets a deterministic new key, a hash of its
smallest (source_dataset, source_record_id), so the same inputs always give the same keys.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from linkage.config import ThresholdsConfig
from linkage.link.deterministic import PAIR_JOIN_KEYS, PAIR_KEYS
from linkage.link.lineage import materialised
from linkage.schemas import RECORD_JOIN_KEY, RECORD_KEY

# Separator inside a record uid; cannot occur in a source name, so uids never collide.
UID_SEPARATOR = "-__-"
NEW_KEY_PREFIX = "P"
NEW_KEY_HEX_CHARS = 20  # 80 bits: collisions negligible at national scale

# A record joined by several kinds of edge reports the most certain one.
METHOD_PRIORITY = {"nhs_number": 1, "clerical": 2, "probabilistic": 3}
# Clerical decisions that settle a pair; `unsure` (the third) leaves it to the model.
SETTLING_DECISIONS = ("match", "non_match")


def record_uid(dataset: Column, record_id: Column) -> Column:
    """One string naming a source record (source names hold no separator)."""
    return F.concat_ws(UID_SEPARATOR, dataset, record_id)


def ordered_pairs(pairs_df: DataFrame) -> DataFrame:
    """Swap left and right where needed so the left record sorts first: one spelling per pair."""
    is_ordered = F.struct("source_dataset_l", "source_record_id_l") <= F.struct(
        "source_dataset_r", "source_record_id_r"
    )
    swapped = {
        "source_dataset_l": "source_dataset_r",
        "source_record_id_l": "source_record_id_r",
        "source_dataset_r": "source_dataset_l",
        "source_record_id_r": "source_record_id_l",
    }
    others = [c for c in pairs_df.columns if c not in swapped]
    return pairs_df.select(
        *[F.when(is_ordered, F.col(c)).otherwise(F.col(swapped[c])).alias(c) for c in PAIR_KEYS], *others
    )


def pair_ends(pairs_df: DataFrame) -> DataFrame:
    """(source_dataset, source_record_id) of every record named by a pair, once each."""
    left = pairs_df.select(*[F.col(f"{c}_l").alias(c) for c in RECORD_KEY])
    right = pairs_df.select(*[F.col(f"{c}_r").alias(c) for c in RECORD_KEY])
    return left.unionByName(right).distinct()


def both_directions(pairs_df: DataFrame, *carried: str) -> DataFrame:
    """Each pair as it is and with its two records exchanged, with `carried` columns: every record of a pair appears
    once on the left."""
    exchanged = pairs_df.select(
        *[F.col(f"{c}_{b}").alias(f"{c}_{a}") for a, b in (("l", "r"), ("r", "l")) for c in RECORD_KEY],
        *carried,
    )
    return pairs_df.select(*PAIR_KEYS, *carried).unionByName(exchanged)


def single_best_candidates(
    predictions_df: DataFrame, *carried: str, min_weight: float | None = None
) -> DataFrame:
    """For each record (as the left side) and each other source, the pair with its single best-weighted candidate
    there, with `carried` columns: both directions of every pair are ranked, so a pair appears once per end
    whose best it is. A tie for best is no one's best.

    With `min_weight`, only the pairs at or above it are ranked: a pair below can neither beat nor tie one above,
    so every pair at or above it is found exactly as when all are ranked, and none below is found. Most candidate
    pairs are far below any weight a reader of the result asks about (linkage.link.pairs.REVIEW_FLOOR_WEIGHT), and
    this ranking sorts every scored pair twice, once from each end."""
    if min_weight is not None:
        predictions_df = predictions_df.where(F.col("match_weight") >= min_weight)
    by_record_and_source = Window.partitionBy(
        "source_record_id_l", "source_dataset_l", "source_dataset_r"
    ).orderBy(F.col("match_weight").desc(), F.col("source_record_id_r"))
    ranked = both_directions(predictions_df, "match_weight", *carried).select(
        "*",
        F.row_number().over(by_record_and_source).alias("rank"),
        F.lead("match_weight").over(by_record_and_source).alias("next_weight"),
    )
    return ranked.where(
        (F.col("rank") == 1)
        & (F.col("next_weight").isNull() | (F.col("next_weight") < F.col("match_weight")))
    ).drop("rank", "next_weight")


def mutual_best_pairs(
    predictions_df: DataFrame, min_probability: float, best_candidates_df: DataFrame | None = None
) -> DataFrame:
    """Pairs at or above min_probability in which each record is the other's single best candidate in its source.

    Best means the highest match weight among the record's candidates from that source, with no tie: a
    third-sector record whose name and year of birth fit two GP patients equally well links to neither. A
    person's records in one source are mostly one record, so a clear best candidate is rarely someone else.
    `best_candidates_df` is `single_best_candidates(predictions_df, "match_probability")` when the caller has it
    (with a min_weight, if any, below min_probability's weight: linkage.link.pairs.best_candidate_min_weight).
    """
    best = (
        best_candidates_df
        if best_candidates_df is not None
        else single_best_candidates(predictions_df, "match_probability")
    )
    # A pair is mutual when it is best from both ends: it then appears twice among `best`, once per direction.
    mutual = (
        ordered_pairs(best.select(*PAIR_KEYS, "match_probability"))
        .groupBy(*PAIR_KEYS)
        .agg(F.count("*").alias("ends"), F.first("match_probability").alias("match_probability"))
    )
    return mutual.where((F.col("ends") == 2) & (F.col("match_probability") >= min_probability)).drop("ends")


def link_edges(
    deterministic_df: DataFrame,
    predictions_df: DataFrame,
    thresholds: ThresholdsConfig,
    decisions_df: DataFrame | None = None,
    best_candidates_df: DataFrame | None = None,
) -> DataFrame:
    """Pairs that link, with how: NHS number, the model (at or above the upper threshold, or at or above best_link
    between mutual single best candidates: with `best_link_scope` unlinked_records, only where one record has no
    other link, `best_links_of_unlinked_records`; with unlinked_records_to_persons, the same, where best means best
    among the records not linked to it and the lone record fits the other's linked records of its own source,
    `without_refuted_joins`), or a clerical match.

    A clerical non_match removes the pair whatever else says so (the two records can still meet
    through other links; the reviewer then sees them again in the QA conflicts). A pair's latest
    decision counts: an `unsure` one neither adds nor removes it (the model decides).
    """
    no_probability = F.lit(None).cast("double").alias("match_probability")
    strong = (
        ordered_pairs(deterministic_df.select(*PAIR_KEYS, no_probability))
        .withColumn("method", F.lit("nhs_number"))
        .unionByName(
            ordered_pairs(
                predictions_df.where(F.col("match_probability") >= thresholds.upper).select(
                    *PAIR_KEYS, "match_probability"
                )
            ).withColumn("method", F.lit("probabilistic"))
        )
    )
    non_matches = None
    if decisions_df is not None:
        decisions = latest_decisions(decisions_df)
        strong = strong.unionByName(
            decisions.where("decision = 'match'")
            .select(*PAIR_KEYS, no_probability)
            .withColumn("method", F.lit("clerical"))
        )
        non_matches = decisions.where("decision = 'non_match'").select(*PAIR_KEYS)
        strong = strong.join(non_matches, list(PAIR_JOIN_KEYS), how="left_anti")
    if thresholds.best_link_scope != "any":
        # Read several times below: stored once, so its plan (a scan of every scored pair) runs once.
        strong = materialised(strong)
    if thresholds.best_link_scope == "unlinked_records_to_persons":
        # Best among the records not yet linked to it: a record's strong partners (its own person's other records)
        # do not outrank the lone record that is best for it. Only pairs in [best_link, upper) can be that best. Where
        # one person holds several records of a source (FEBRL3's duplicates), a record's best in that source was
        # always a record of its own person, so its next duplicate was no one's best and stayed alone. Relinked on the
        # quality bench (README): FEBRL3 recall 0.7758 -> 0.7823 with no false pair; families, messy, default and
        # FEBRL4 unchanged. Without the fit to the other's linked records (without_refuted_joins) FEBRL4 gained 4
        # false pairs and families 8.
        # One scan of the scored pairs: every pair at best_link or above is strong or one of these.
        below_upper = materialised(
            ordered_pairs(
                predictions_df.where(
                    (F.col("match_probability") >= thresholds.best_link)
                    & (F.col("match_probability") < thresholds.upper)
                ).select(*PAIR_KEYS, "match_weight", "match_probability")
            )
        )
        candidates = below_upper.join(strong.select(*PAIR_KEYS), list(PAIR_JOIN_KEYS), how="left_anti")
        if non_matches is not None:
            candidates = candidates.join(non_matches, list(PAIR_JOIN_KEYS), how="left_anti")
        supported = below_upper.select(*PAIR_KEYS).unionByName(strong.select(*PAIR_KEYS))
        weak = without_refuted_joins(mutual_best_pairs(candidates, thresholds.best_link), strong, supported)
    else:
        weak = mutual_best_pairs(predictions_df, thresholds.best_link, best_candidates_df).where(
            F.col("match_probability") < thresholds.upper
        )
        if non_matches is not None:
            weak = weak.join(non_matches, list(PAIR_JOIN_KEYS), how="left_anti")
    weak = weak.withColumn("method", F.lit("probabilistic"))
    if thresholds.best_link_scope != "any":
        # Weak is read twice below (by each end): stored, its plan (a window over every scored pair) runs once. With
        # strong stored above, at 1M people link_edges 18.5 s -> 9.9 s, the same links.
        weak = best_links_of_unlinked_records(strong, materialised(weak))
    # Columns in PAIR_KEYS order again: a join on PAIR_JOIN_KEYS puts its keys first in that order.
    return strong.unionByName(weak).distinct().select(*PAIR_KEYS, "match_probability", "method")


def without_refuted_joins(weak_df: DataFrame, strong_df: DataFrame, supported_df: DataFrame) -> DataFrame:
    """Weak links whose each record fits every record of the other's person in its own source: for a weak pair
    (a, b), every strong partner c of b from a's source (and the reverse) must pair with a at best_link or above
    (`supported_df`, ordered pairs). A person's other record in a's source that a does not resemble says a is a
    relative or a namesake, not one more duplicate."""
    # (a record on the left, one of its strong partners on the right)
    partners = both_directions(strong_df.select(*PAIR_KEYS)).alias("partner")
    pairs = weak_df.select(*PAIR_KEYS).alias("weak")

    def required(near: str, far: str) -> DataFrame:
        """(the weak pair, the pair of its `near` record with each strong partner of its `far` one in near's source)."""
        joined = pairs.join(
            partners,
            [F.col(f"weak.{c}_{far}") == F.col(f"partner.{c}_l") for c in RECORD_JOIN_KEY]
            + [F.col(f"weak.source_dataset_{near}") == F.col("partner.source_dataset_r")],
        ).where(F.col(f"weak.source_record_id_{near}") != F.col("partner.source_record_id_r"))
        return ordered_pairs(
            joined.select(
                *[F.col(f"weak.{k}").alias(f"weak_{k}") for k in PAIR_KEYS],
                *[F.col(f"weak.{c}_{near}").alias(f"{c}_l") for c in RECORD_KEY],
                *[F.col(f"partner.{c}_r").alias(f"{c}_r") for c in RECORD_KEY],
            )
        )

    needs = required("l", "r").unionByName(required("r", "l"))
    # An anti-join: the supporting pairs need not be distinct.
    refuted = needs.join(supported_df, list(PAIR_JOIN_KEYS), how="left_anti").select(
        *[F.col(f"weak_{k}").alias(k) for k in PAIR_KEYS]
    )
    return weak_df.join(refuted, list(PAIR_JOIN_KEYS), how="left_anti")


def best_links_of_unlinked_records(strong_df: DataFrame, weak_df: DataFrame) -> DataFrame:
    """The weak links (mutual best, below upper) that join a record with no strong link (NHS number, upper
    threshold, clerical match): each such record's single best one (highest probability; ties by the other record).

    A weak link says two records are each other's best candidate; it says nothing about the other records of
    either person. Joining two persons of several records on it asserts every pair across them, so it is refused:
    each weak link kept is one unlinked record's own, and a path between two persons through unlinked records would
    need one more weak link than it has unlinked records. Relinked on the quality bench's profiles at 100,000
    people (README, Quality bench): false pairs 156 -> 150 on families (chosen on), 56 -> 32 on default and
    181 -> 134 on messy, with no true pair lost on families and default and 20 of 62,686 on messy.
    """

    def end(df: DataFrame, side: str, *carried: Column | str) -> DataFrame:
        return df.select(*[F.col(f"{c}_{side}").alias(c) for c in RECORD_KEY], *carried)

    def seen_from(side: str, other: str) -> DataFrame:
        """Each weak link from its `side` record, with the other record (to break ties) and the pair."""
        other_record = [F.col(f"{c}_{other}").alias(f"other_{c}") for c in RECORD_KEY]
        return end(weak_df, side, *other_record, *PAIR_KEYS, "match_probability")

    ends = seen_from("l", "r").unionByName(seen_from("r", "l"))
    # Only the weak links' records need asking whether they are linked: a few percent of the strong links' ends
    # (at 1M people 16,549 weak links against a million strong ones), so the strong ends are filtered to them
    # rather than made distinct (best_links 9.2 / 8.3 s -> 5.5 / 5.0 s there, the same links kept).
    linked = (
        end(strong_df, "l")
        .unionByName(end(strong_df, "r"))
        .join(ends.select(*RECORD_KEY), list(RECORD_JOIN_KEY), how="left_semi")
    )
    best_first = Window.partitionBy(*RECORD_JOIN_KEY).orderBy(
        F.col("match_probability").desc(), *[F.col(f"other_{c}") for c in RECORD_KEY]
    )
    kept = (
        ends.join(linked, list(RECORD_JOIN_KEY), how="left_anti")
        .withColumn("rank", F.row_number().over(best_first))
        .where("rank = 1")
        .select(*PAIR_KEYS)
        .distinct()
    )
    return weak_df.join(kept, list(PAIR_JOIN_KEYS), how="left_semi")


def without_weak_edges_in_oversized_clusters(
    edges_df: DataFrame, clusters_df: DataFrame, max_size: int, strict_probability: float
) -> DataFrame:
    """Drop model edges below strict_probability inside clusters of more than max_size records.

    Connected components chain: a few borderline links between people sharing a common name can
    join dozens of them into one cluster. NHS-number and clerical links are kept.
    """
    sizes = clusters_df.groupBy("cluster_id").agg(F.count("*").alias("size"))
    in_oversized = clusters_df.join(sizes.where(F.col("size") > max_size), "cluster_id", how="inner").select(
        F.col("source_dataset").alias("source_dataset_l"),
        F.col("source_record_id").alias("source_record_id_l"),
        F.lit(True).alias("is_oversized"),
    )
    flagged = edges_df.join(in_oversized, ["source_dataset_l", "source_record_id_l"], how="left")
    is_weak = (F.col("method") == "probabilistic") & (F.col("match_probability") < strict_probability)
    return flagged.where(~(F.coalesce(F.col("is_oversized"), F.lit(False)) & is_weak)).drop("is_oversized")


# Dates of birth further apart than this (days) are two people: a wrong year digit keeps the day and month, and the
# model's date-of-birth comparison already forgives a swap or a placeholder within the year.
YEARS_APART_DAYS = 366


# Two NHS numbers further apart than this (edit distance) are two people's own numbers: a wrong number that still
# passes modulus 11 differs from the right one in two digits (one digit and its check digit).
NHS_NUMBERS_APART = 2


# The people columns `conflicting_clusters` reads.
CONFLICT_COLUMNS = ("nhs_number", "date_of_birth", "forename_std")


def conflicting_clusters(clusters_df: DataFrame, people_df: DataFrame) -> DataFrame:
    """cluster_id of each cluster holding two records with different valid NHS numbers and either dates of birth
    years apart, or numbers more than two digits apart with forenames that are not equal.

    Such a cluster is two people chained together (a parent and child, siblings, twins), whatever links joined them.
    A person's records rarely hold two numbers this far apart (a relative's number copied onto one record), and
    then the forenames are equal.
    """
    holders = clusters_df.select("cluster_id", *RECORD_KEY).join(
        people_df.select(*RECORD_KEY, *CONFLICT_COLUMNS).where(F.col("nhs_number").isNotNull()),
        list(RECORD_JOIN_KEY),
        how="inner",
    )
    left, right = (
        holders.select(
            "cluster_id",
            F.col("nhs_number").alias(f"nhs_{side}"),
            F.col("date_of_birth").alias(f"dob_{side}"),
            F.col("forename_std").alias(f"forename_{side}"),
        )
        for side in "lr"
    )
    years_apart = F.abs(F.datediff("dob_l", "dob_r")) > YEARS_APART_DAYS
    twins = (F.levenshtein("nhs_l", "nhs_r") > NHS_NUMBERS_APART) & (
        F.col("forename_l") != F.col("forename_r")
    )
    return (
        left.join(right, "cluster_id", how="inner")
        .where((F.col("nhs_l") < F.col("nhs_r")) & F.coalesce(years_apart | twins, F.lit(False)))
        .select("cluster_id")
        .distinct()
    )


def without_weakest_edges(edges_df: DataFrame, clusters_df: DataFrame, conflicted_df: DataFrame) -> DataFrame:
    """Edges less, in each conflicted cluster, its weakest model link (lowest probability; ties all go).

    NHS-number and clerical links are never removed: a reviewer's match stands, and an NHS-number link needs
    agreeing dates of birth.
    """
    ends = clusters_df.join(conflicted_df, "cluster_id", how="inner").select(
        "cluster_id",
        F.col("source_dataset").alias("source_dataset_l"),
        F.col("source_record_id").alias("source_record_id_l"),
    )
    is_model = F.col("method") == "probabilistic"
    flagged = edges_df.join(ends, ["source_dataset_l", "source_record_id_l"], how="left")
    weakest = (
        flagged.where(is_model & F.col("cluster_id").isNotNull())
        .groupBy("cluster_id")
        .agg(F.min("match_probability").alias("weakest"))
    )
    flagged = flagged.join(weakest, "cluster_id", how="left")
    drop = is_model & (F.col("match_probability") <= F.col("weakest"))
    return flagged.where(~F.coalesce(drop, F.lit(False))).drop("cluster_id", "weakest")


def split_conflicting_clusters(
    edges_df: DataFrame,
    clusters_df: DataFrame,
    people_df: DataFrame,
    recluster: Callable[[DataFrame], DataFrame],
    rounds: int,
) -> tuple[DataFrame, DataFrame, int]:
    """Refuse chains: while a cluster holds two people's valid NHS numbers (`conflicting_clusters`), drop its weakest
    model link and cluster again (at most `rounds` times). Returns the edges, the clusters and the links removed.

    recluster(edges, records) -> clusters is the caller's connected components of `records` (RECORD_KEY columns)
    over `edges`. Only the conflicted clusters lose links, so only they can split, each into parts of itself, and
    only those parts can conflict again: the rounds run on the conflicted clusters' records, people and edges
    alone, and their result replaces those clusters and edges once (the same clusters as clustering everything
    again each round). At 1M people the rounds over every cluster and edge took 50-53 s for 114 links removed
    from 75 clusters, and 18-19 s on those clusters alone (README, Blocking rules and Spark tuning).
    """
    if rounds == 0:
        return edges_df, clusters_df, 0
    conflicted = materialised(conflicting_clusters(clusters_df, people_df))
    if conflicted.isEmpty():
        return edges_df, clusters_df, 0
    part_clusters = materialised(clusters_df.join(conflicted, "cluster_id", how="left_semi"))
    part_records = part_clusters.select(*RECORD_KEY)
    part_edges = materialised(edges_inside(edges_df, part_records))
    part_people = materialised(people_df.join(part_records, list(RECORD_JOIN_KEY), how="left_semi"))
    kept_edges, split_clusters, removed = split_rounds(
        part_edges, part_clusters, part_people, conflicted, recluster, rounds
    )
    if not removed:
        return edges_df, clusters_df, 0
    edges = materialised(edges_inside(edges_df, part_records, how="left_anti").unionByName(kept_edges))
    clusters = materialised(with_clusters_replaced(clusters_df, conflicted, split_clusters))
    return edges, clusters, removed


def edges_inside(edges_df: DataFrame, records_df: DataFrame, how: str = "left_semi") -> DataFrame:
    """The edges inside the clusters of `records_df` (RECORD_KEY columns, whole clusters), or with how="left_anti"
    every other edge. An edge inside a cluster has both ends in it, so its left end tells which cluster it is in."""
    left_ends = records_df.select(*[F.col(c).alias(f"{c}_l") for c in RECORD_KEY])
    return edges_df.join(left_ends, [f"{c}_l" for c in RECORD_JOIN_KEY], how=how)


def with_clusters_replaced(clusters_df: DataFrame, replaced_df: DataFrame, parts_df: DataFrame) -> DataFrame:
    """clusters_df with the clusters listed in replaced_df (cluster_id) replaced by parts_df, their records'
    clusters now."""
    return clusters_df.join(replaced_df, "cluster_id", how="left_anti").unionByName(
        parts_df.select(*clusters_df.columns)
    )


def split_rounds(
    edges_df: DataFrame,
    clusters_df: DataFrame,
    people_df: DataFrame,
    conflicted: DataFrame,
    recluster: Callable[[DataFrame], DataFrame],
    rounds: int,
) -> tuple[DataFrame, DataFrame, int]:
    """The rounds of `split_conflicting_clusters`, from the first round's `conflicted` clusters. Each round's edges
    and clusters are stored (linkage.link.lineage.materialised): a round's plan builds on the last round's."""
    removed = 0
    for round_number in range(rounds):
        if round_number:
            conflicted = materialised(conflicting_clusters(clusters_df, people_df))
            if conflicted.isEmpty():
                break
        kept = materialised(without_weakest_edges(edges_df, clusters_df, conflicted))
        dropped = edges_df.count() - kept.count()
        if not dropped:  # only NHS-number or clerical links hold them: left for review
            break
        removed += dropped
        records = clusters_df.join(conflicted, "cluster_id", how="left_semi").select(*RECORD_KEY)
        clusters_df = materialised(
            with_clusters_replaced(clusters_df, conflicted, recluster(edges_inside(kept, records), records))
        )
        edges_df = kept
    return edges_df, clusters_df, removed


def latest_decisions(decisions_df: DataFrame) -> DataFrame:
    """One decision per pair (in canonical order): the most recent wins when a pair was reviewed twice."""
    latest_first = Window.partitionBy(*PAIR_JOIN_KEYS).orderBy(
        F.col("decided_at").desc_nulls_last(), F.col("decision")
    )
    return (
        ordered_pairs(decisions_df.select(*PAIR_KEYS, "decision", "decided_at"))
        .withColumn("rank", F.row_number().over(latest_first))
        .where("rank = 1")
        .drop("rank")
    )


def edges_for_clustering(edges_df: DataFrame) -> DataFrame:
    """Edges as uid pairs, the shape Splink's connected components expects."""
    return edges_df.select(
        record_uid(F.col("source_dataset_l"), F.col("source_record_id_l")).alias("record_uid_l"),
        record_uid(F.col("source_dataset_r"), F.col("source_record_id_r")).alias("record_uid_r"),
    ).distinct()


def nodes_for_clustering(people_df: DataFrame) -> DataFrame:
    return people_df.select(
        record_uid(F.col("source_dataset"), F.col("source_record_id")).alias("record_uid")
    )


def clusters_from_components(people_df: DataFrame, components_df: DataFrame) -> DataFrame:
    """Records with their cluster id (a record uid), from connected components over record uids."""
    keyed = people_df.select(
        *RECORD_KEY, record_uid(F.col("source_dataset"), F.col("source_record_id")).alias("record_uid")
    )
    return keyed.join(components_df.select("record_uid", "cluster_id"), "record_uid", how="left").select(
        *RECORD_KEY, "record_uid", F.coalesce("cluster_id", "record_uid").alias("cluster_id")
    )


def new_person_key(seed: Column, salt: int = 0) -> Column:
    return F.concat(
        F.lit(NEW_KEY_PREFIX),
        F.substring(F.sha2(F.concat(seed, F.lit(f"#{salt}")), 256), 1, NEW_KEY_HEX_CHARS),
    )


def assign_person_keys(
    clusters_df: DataFrame, previous_spine_df: DataFrame | None, known_keys_df: DataFrame | None = None
) -> DataFrame:
    """Add person_key to (source_dataset, source_record_id, record_uid, cluster_id) rows.

    known_keys_df (one column person_key) lists every key ever issued, so a new key never
    reuses a retired one.
    """
    sizes = clusters_df.groupBy("cluster_id").agg(
        F.min("record_uid").alias("min_uid"), F.count("*").alias("size")
    )
    if previous_spine_df is None:
        inherited = sizes.select("cluster_id", F.lit(None).cast("string").alias("person_key")).limit(0)
    else:
        previous = previous_spine_df.select(*RECORD_KEY, F.col("person_key").alias("previous_key"))
        votes = (
            clusters_df.join(previous, list(RECORD_JOIN_KEY), how="inner")
            .groupBy("cluster_id", "previous_key")
            .agg(F.count("*").alias("votes"))
            .join(sizes, "cluster_id", how="inner")
        )
        # Each previous key goes to the cluster holding most of its records (ties: smallest record).
        by_key = Window.partitionBy("previous_key").orderBy(F.col("votes").desc(), F.col("min_uid"))
        won = votes.withColumn("rank", F.row_number().over(by_key)).where("rank = 1")
        # A cluster that won several keys (a merge) keeps the one most of its records held (ties: smallest key).
        by_cluster = Window.partitionBy("cluster_id").orderBy(F.col("votes").desc(), F.col("previous_key"))
        inherited = (
            won.withColumn("rank", F.row_number().over(by_cluster))
            .where("rank = 1")
            .select("cluster_id", F.col("previous_key").alias("person_key"))
        )
    keyed = sizes.join(inherited, "cluster_id", how="left")
    taken = known_keys_df.select("person_key").distinct() if known_keys_df is not None else None
    if previous_spine_df is not None:
        previous_keys = previous_spine_df.select("person_key").distinct()
        taken = previous_keys if taken is None else taken.unionByName(previous_keys).distinct()
    fresh = new_person_key(F.col("min_uid"), 0)
    if taken is not None:
        # Salt once more when the first candidate was issued before (e.g. a split-off record's old key).
        taken_flag = taken.select(F.col("person_key").alias("candidate"), F.lit(True).alias("is_taken"))
        keyed = (
            keyed.withColumn("candidate", fresh)
            .join(taken_flag, "candidate", how="left")
            .withColumn(
                "fresh_key",
                F.when(F.col("is_taken"), new_person_key(F.col("min_uid"), 1)).otherwise(F.col("candidate")),
            )
            .drop("candidate", "is_taken")
        )
    else:
        keyed = keyed.withColumn("fresh_key", fresh)
    keyed = keyed.select(
        "cluster_id",
        F.coalesce("person_key", "fresh_key").alias("person_key"),
        F.col("size").cast("int").alias("cluster_size"),
    )
    return clusters_df.join(keyed, "cluster_id", how="inner")


def method_priority(method: Column) -> Column:
    """An edge method's METHOD_PRIORITY (lower is more certain)."""
    return F.create_map(*[F.lit(x) for kv in METHOD_PRIORITY.items() for x in kv])[method]


def method_of_priority(priority: Column) -> Column:
    """The edge method with this METHOD_PRIORITY (method_priority's inverse)."""
    return F.create_map(*[F.lit(x) for kv in METHOD_PRIORITY.items() for x in reversed(kv)])[priority]


def with_match_method(keyed_df: DataFrame, edges_df: DataFrame) -> DataFrame:
    """match_method per record: the most certain kind of edge that touches it, or singleton."""
    ends = edges_df.select(
        F.col("source_dataset_l").alias("source_dataset"),
        F.col("source_record_id_l").alias("source_record_id"),
        "method",
    ).unionByName(
        edges_df.select(
            F.col("source_dataset_r").alias("source_dataset"),
            F.col("source_record_id_r").alias("source_record_id"),
            "method",
        )
    )
    best = (
        ends.withColumn("priority", method_priority(F.col("method")))
        .groupBy(*RECORD_KEY)
        .agg(F.min_by("method", "priority").alias("edge_method"))
    )
    return (
        keyed_df.join(best, list(RECORD_JOIN_KEY), how="left")
        .withColumn(
            "match_method",
            F.when(F.col("cluster_size") == 1, F.lit("singleton")).otherwise(
                F.coalesce("edge_method", F.lit("probabilistic"))
            ),
        )
        .drop("edge_method")
    )


def registry_events(
    spine_df: DataFrame, previous_spine_df: DataFrame | None, known_keys_df: DataFrame | None = None
) -> DataFrame:
    """This run's key history: created, merged (a vanished key's records now under another), split, retired."""
    current = spine_df.groupBy("person_key").agg(F.count("*").cast("int").alias("record_count"))
    known = known_keys_df.select("person_key").distinct() if known_keys_df is not None else None
    if previous_spine_df is not None:
        previous_keys = previous_spine_df.select("person_key").distinct()
        known = previous_keys if known is None else known.unionByName(previous_keys).distinct()
    created = current if known is None else current.join(known, "person_key", how="left_anti")
    events = created.select(
        "person_key",
        F.lit("created").alias("event"),
        F.lit(None).cast("string").alias("related_person_key"),
        "record_count",
    )
    if previous_spine_df is None:
        return events
    moves = (
        spine_df.select(*RECORD_KEY, "person_key")
        .join(
            previous_spine_df.select(*RECORD_KEY, F.col("person_key").alias("related_person_key")),
            list(RECORD_JOIN_KEY),
            how="inner",
        )
        .where(F.col("person_key") != F.col("related_person_key"))
        .select("person_key", "related_person_key")
        .distinct()
    )
    survivors = current.select(
        F.col("person_key").alias("related_person_key"), F.lit(True).alias("still_exists")
    )
    moved = (
        moves.join(survivors, "related_person_key", how="left")
        .join(current, "person_key", how="inner")
        .select(
            "person_key",
            F.when(F.col("still_exists"), F.lit("split")).otherwise(F.lit("merged")).alias("event"),
            "related_person_key",
            "record_count",
        )
    )
    retired = previous_keys.join(current, "person_key", how="left_anti").select(
        "person_key",
        F.lit("retired").alias("event"),
        F.lit(None).cast("string").alias("related_person_key"),
        F.lit(0).alias("record_count"),
    )
    return events.unionByName(moved).unionByName(retired)


def review_pairs(
    predictions_df: DataFrame, thresholds: ThresholdsConfig, decisions_df: DataFrame | None = None
) -> DataFrame:
    """Pairs with lower <= probability < upper that no reviewer has settled yet.

    A pair whose latest decision is `unsure` stays in the queue: the model still decides it, and
    another reviewer should look.
    """
    queue = ordered_pairs(
        predictions_df.where(
            (F.col("match_probability") >= thresholds.lower) & (F.col("match_probability") < thresholds.upper)
        ).select(*PAIR_KEYS, "match_probability", "match_weight")
    )
    if decisions_df is not None:
        settled = latest_decisions(decisions_df).where(F.col("decision").isin(*SETTLING_DECISIONS))
        queue = queue.join(settled.select(*PAIR_KEYS), list(PAIR_JOIN_KEYS), how="left_anti")
    return queue
