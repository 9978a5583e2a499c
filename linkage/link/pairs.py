"""The link run's pairs, kept for clerical review sampling (restricted/link_pairs).

Accuracy without truth is estimated from a sample of pairs, so the sampling frame must hold
every pair the run put in one person (precision is over these) and every scored candidate pair
it did not (missed matches are found among these). Pairs never scored (outside blocking) are
not in the frame: the estimates assume they hold no matches, and the README says so.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from linkage.link.deterministic import PAIR_KEYS
from linkage.link.spine import METHOD_PRIORITY, RECORD_KEY, ordered_pairs, single_best_candidates


def same_person_pairs(spine_df: DataFrame) -> DataFrame:
    """Every pair of records sharing a person_key, left record sorting first."""
    left = spine_df.select(*[F.col(c).alias(f"{c}_l") for c in RECORD_KEY], "person_key")
    right = spine_df.select(*[F.col(c).alias(f"{c}_r") for c in RECORD_KEY], "person_key")
    left_first = F.struct("source_dataset_l", "source_record_id_l") < F.struct(
        "source_dataset_r", "source_record_id_r"
    )
    return left.join(right, "person_key", how="inner").where(left_first).select(*PAIR_KEYS)


def best_candidate_pairs(predictions_df: DataFrame) -> DataFrame:
    """Pairs that are, for at least one of their records, its single best-weighted candidate in the other's source.

    Ties are no one's best (as for mutual best links): a record fitting two candidates equally has none.
    """
    best = single_best_candidates(predictions_df)
    return ordered_pairs(best.select(*PAIR_KEYS)).distinct()


def edge_methods(edges_df: DataFrame) -> DataFrame:
    """One method per direct edge: the most certain when a pair was linked several ways."""
    priority = F.create_map(*[x for kv in METHOD_PRIORITY.items() for x in (F.lit(kv[0]), F.lit(kv[1]))])
    return (
        ordered_pairs(edges_df.select(*PAIR_KEYS, "method"))
        .groupBy(*PAIR_KEYS)
        .agg(F.min_by("method", priority[F.col("method")]).alias("edge_method"))
    )


def link_pairs(predictions_df: DataFrame, edges_df: DataFrame, spine_df: DataFrame) -> DataFrame:
    """The frame: same-person pairs and scored candidate pairs, with weight, method, linked and best-candidate flags."""
    scored = (
        ordered_pairs(predictions_df.select(*PAIR_KEYS, "match_weight", "match_probability"))
        .groupBy(*PAIR_KEYS)
        .agg(
            F.max("match_weight").alias("match_weight"), F.max("match_probability").alias("match_probability")
        )
    )
    linked = same_person_pairs(spine_df).withColumn("is_linked", F.lit(True))
    best = best_candidate_pairs(predictions_df).withColumn("is_best_candidate", F.lit(True))
    keys = list(PAIR_KEYS)
    return (
        scored.join(linked, keys, how="full")
        .join(best, keys, how="left")
        .join(edge_methods(edges_df), keys, how="left")
        .select(
            *PAIR_KEYS,
            "match_weight",
            "match_probability",
            F.when(F.col("is_linked"), F.coalesce("edge_method", F.lit("transitive"))).alias("method"),
            F.coalesce("is_linked", F.lit(False)).alias("is_linked"),
            F.coalesce("is_best_candidate", F.lit(False)).alias("is_best_candidate"),
        )
    )
