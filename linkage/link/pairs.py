"""The link run's pairs, kept for clerical review sampling (restricted/link_pairs).

Accuracy without truth is estimated from a sample of pairs, so the sampling frame must hold
every pair the run put in one person (precision is over these) and every scored candidate pair
it did not (missed matches are found among these). Pairs never scored (outside blocking) are
not in the frame: the estimates assume they hold no matches, and the README says so.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from splink.internals.misc import prob_to_match_weight

from linkage.link.deterministic import PAIR_KEYS
from linkage.link.spine import (
    RECORD_KEY,
    method_of_priority,
    method_priority,
    ordered_pairs,
    single_best_candidates,
)

# Review never samples a scored pair below this match weight (about 1 in 1,000 odds; linkage.review.sampling's
# near-miss floor), and the best-candidate flag only sorts the near misses above it into strata: so only the pairs
# at or above it are ranked for it (`single_best_candidates`' min_weight). At 1M people most candidate pairs are
# below it.
REVIEW_FLOOR_WEIGHT = -10.0


def best_candidate_min_weight(best_link: float) -> float:
    """The lowest match weight the link job's best-candidate ranking must see: the review floor, or a bit below
    the weight of the best_link probability when that is lower (mutual-best links, ranked among all candidates
    under best_link_scope unlinked_records and any, are at or above best_link)."""
    return min(REVIEW_FLOOR_WEIGHT, prob_to_match_weight(best_link) - 1.0)


def same_person_pairs(spine_df: DataFrame) -> DataFrame:
    """Every pair of records sharing a person_key, left record sorting first."""
    left = spine_df.select(*[F.col(c).alias(f"{c}_l") for c in RECORD_KEY], "person_key")
    right = spine_df.select(*[F.col(c).alias(f"{c}_r") for c in RECORD_KEY], "person_key")
    left_first = F.struct("source_dataset_l", "source_record_id_l") < F.struct(
        "source_dataset_r", "source_record_id_r"
    )
    return left.join(right, "person_key", how="inner").where(left_first).select(*PAIR_KEYS)


def best_candidate_pairs(predictions_df: DataFrame, best_candidates_df: DataFrame | None = None) -> DataFrame:
    """Pairs that are, for at least one of their records, its single best-weighted candidate in the other's source.

    Ties are no one's best (as for mutual best links): a record fitting two candidates equally has none. Only pairs
    at or above REVIEW_FLOOR_WEIGHT are ranked, and none below it is flagged, also when `best_candidates_df` was
    ranked from lower (the link job ranks from below best_link's weight when that is lower). `best_candidates_df` is
    `single_best_candidates(predictions_df, min_weight=...)` (or with carried columns, and a min_weight at or below
    the floor) when the caller has it.
    """
    best = (
        best_candidates_df
        if best_candidates_df is not None
        else single_best_candidates(predictions_df, min_weight=REVIEW_FLOOR_WEIGHT)
    )
    return ordered_pairs(
        best.where(F.col("match_weight") >= REVIEW_FLOOR_WEIGHT).select(*PAIR_KEYS)
    ).distinct()


def link_pairs(
    predictions_df: DataFrame,
    edges_df: DataFrame,
    spine_df: DataFrame,
    best_candidates_df: DataFrame | None = None,
) -> DataFrame:
    """The frame: same-person pairs and scored candidate pairs, with weight, method, linked and best-candidate flags.

    One shuffle: the four kinds of row (scored, same person, best candidate, direct edge) are put in one frame and
    grouped by pair, where joining them took four shuffles of every scored pair (135 s of a 1M link's 201 s of
    writes). A pair is in the frame when it was scored or its records share a person.
    """
    nothing = {
        "match_weight": F.lit(None).cast("double"),
        "match_probability": F.lit(None).cast("double"),
        "is_scored": F.lit(False),
        "is_linked": F.lit(False),
        "is_best_candidate": F.lit(False),
        "method_priority": F.lit(None).cast("int"),
    }

    def rows(pairs: DataFrame, **columns: Column) -> DataFrame:
        return pairs.select(
            *PAIR_KEYS, *[columns.get(name, value).alias(name) for name, value in nothing.items()]
        )

    every_row = (
        rows(
            ordered_pairs(predictions_df.select(*PAIR_KEYS, "match_weight", "match_probability")),
            match_weight=F.col("match_weight"),
            match_probability=F.col("match_probability"),
            is_scored=F.lit(True),
        )
        .unionByName(rows(same_person_pairs(spine_df), is_linked=F.lit(True)))
        .unionByName(
            rows(best_candidate_pairs(predictions_df, best_candidates_df), is_best_candidate=F.lit(True))
        )
        .unionByName(
            rows(
                ordered_pairs(edges_df.select(*PAIR_KEYS, "method")),
                method_priority=method_priority(F.col("method")),
            )
        )
    )
    grouped = every_row.groupBy(*PAIR_KEYS).agg(
        F.max("match_weight").alias("match_weight"),
        F.max("match_probability").alias("match_probability"),
        F.bool_or("is_scored").alias("is_scored"),
        F.bool_or("is_linked").alias("is_linked"),
        F.bool_or("is_best_candidate").alias("is_best_candidate"),
        F.min("method_priority").alias("method_priority"),
    )
    return grouped.where(F.col("is_scored") | F.col("is_linked")).select(
        *PAIR_KEYS,
        "match_weight",
        "match_probability",
        F.when(
            F.col("is_linked"), F.coalesce(method_of_priority(F.col("method_priority")), F.lit("transitive"))
        ).alias("method"),
        "is_linked",
        "is_best_candidate",
    )
