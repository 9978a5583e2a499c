"""Stratified random samples of a link run's pairs, for clerical review and accuracy estimates without truth.

The frame is restricted/link_pairs of one link run: every pair put in one person (links) and
every scored candidate pair it did not put together (near misses). Strata:

- links by method (nhs_number, probabilistic, clerical, transitive) and match-weight band;
- near misses by whether the pair is a record's single best candidate, and match-weight band.

Scored pairs below `near_miss_floor` (match weight) and pairs never scored (outside blocking)
are not sampled: estimates assume they hold no matches. Each stratum's size and sample size
are stored with the sample, so every reviewed pair carries its inclusion probability and the
estimates (linkage.review.estimate) are unbiased. Allocation is Neyman's, with the model's
mean match probability in the stratum as its guess of the match rate: the design stays
unbiased whatever the model gets wrong; only the variance depends on the guess.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from linkage.config import AppConfig
from linkage.demographics import imd_quintile, known, or_unknown
from linkage.errors import InputError
from linkage.lake import read_table, table_exists, write_table
from linkage.link.deterministic import PAIR_KEYS
from linkage.link.pairs import REVIEW_FLOOR_WEIGHT
from linkage.link.qa import truth_age_band
from linkage.link.spine import RECORD_KEY
from linkage.schemas import LINK_PAIRS, PEOPLE_STD, REVIEW_SAMPLE
from linkage.tracking import RunContext

DEFAULT_SEED = 42
MIN_PER_STRATUM = 2  # two reviewed pairs at least, so each stratum has a variance
# Match weight; ~1 in 1000 odds: below, pairs are assumed non-matches. link_pairs flags best candidates among the
# pairs at or above it only, so a lower floor would put some near misses in the wrong stratum.
NEAR_MISS_FLOOR = REVIEW_FLOOR_WEIGHT
LINK_WEIGHT_BANDS = (20.0, 10.0)  # upper edges of bands, descending: w>=20, 10<=w<20, w<10
NEAR_MISS_WEIGHT_BANDS = (0.0, -5.0)  # w>=0 (the review band and above), -5<=w<0, floor<=w<-5
# Match-rate guesses are clipped so no stratum's allocation collapses to nothing on the model's word.
GUESS_RANGE = (0.01, 0.99)
# A linked pair with no model score (NHS number or clerical only, or joined through others).
UNSCORED_LINK_GUESS = 0.9
GROUPS = ("ethnic_group", "sex", "age_band", "imd_quintile")


def _fmt(edge: float) -> str:
    return f"{edge:g}"


def weight_band(weight: Column, edges: tuple[float, ...]) -> Column:
    """'w>=20', '10<=w<20', 'w<10' for edges (20, 10); 'unscored' for a null weight."""
    band = F.lit(f"w<{_fmt(edges[-1])}")
    for upper, lower in reversed(list(zip((None, *edges), edges, strict=False))):
        label = f"w>={_fmt(lower)}" if upper is None else f"{_fmt(lower)}<=w<{_fmt(upper)}"
        band = F.when(weight >= lower, F.lit(label)).otherwise(band)
    return F.when(weight.isNull(), F.lit("unscored")).otherwise(band)


def stratum(pairs_df: DataFrame, near_miss_floor: float = NEAR_MISS_FLOOR) -> Column:
    """The pair's stratum; 'below_floor' (never sampled) for near misses under the floor or never scored."""
    weight = F.col("match_weight")
    link = F.concat_ws("|", F.lit("link"), F.col("method"), weight_band(weight, LINK_WEIGHT_BANDS))
    kind = F.when(F.col("is_best_candidate"), F.lit("best_candidate")).otherwise(F.lit("other"))
    near_miss = F.concat_ws("|", F.lit("near_miss"), kind, weight_band(weight, NEAR_MISS_WEIGHT_BANDS))
    below = weight.isNull() | (weight < near_miss_floor)
    return F.when(F.col("is_linked"), link).when(below, F.lit("below_floor")).otherwise(near_miss)


def record_groups(people_df: DataFrame, reference_year: int) -> DataFrame:
    """(record key, ethnic_group, sex, age_band, imd_quintile) of each record; missing values are null.

    Age bands are the truth metrics' (linkage.link.qa), so estimates by group compare with them.
    """
    return people_df.select(
        *RECORD_KEY,
        known(F.col("ethnic_group")).alias("ethnic_group"),
        F.col("sex"),
        truth_age_band(F.col("year_of_birth"), reference_year).alias("age_band"),
        imd_quintile(F.col("imd_decile")).cast("string").alias("imd_quintile"),
    )


def with_pair_groups(pairs_df: DataFrame, groups_df: DataFrame) -> DataFrame:
    """Each group of the pair: the left record's known value, else the right's, else Unknown.

    The two records of a true match share the person's attributes; a source that does not hold
    one (IMD outside GP, ethnicity not stated) defers to the other.
    """

    def side(suffix: str) -> DataFrame:
        return groups_df.select(*[F.col(c).alias(f"{c}_{suffix}") for c in (*RECORD_KEY, *GROUPS)])

    joined = pairs_df.join(side("l"), ["source_dataset_l", "source_record_id_l"], how="left").join(
        side("r"), ["source_dataset_r", "source_record_id_r"], how="left"
    )
    return joined.select(
        *pairs_df.columns, *[or_unknown(F.coalesce(f"{g}_l", f"{g}_r")).alias(g) for g in GROUPS]
    )


def allocate(
    sizes: Mapping[str, int], guesses: Mapping[str, float], n: int, minimum: int = MIN_PER_STRATUM
) -> dict[str, int]:
    """Sample size per stratum: at least `minimum` (or all of a smaller stratum), the rest by Neyman allocation
    N_h * sqrt(p_h (1 - p_h)), never more than the stratum holds. Largest remainders settle the rounding."""
    take = {h: min(size, minimum) for h, size in sizes.items()}
    left = n - sum(take.values())
    while left > 0:
        open_strata = {h: sizes[h] - take[h] for h in sizes if sizes[h] > take[h]}
        if not open_strata:
            break
        score = {
            h: sizes[h] * math.sqrt(_clip(guesses.get(h, 0.5)) * (1 - _clip(guesses.get(h, 0.5))))
            for h in open_strata
        }
        total = sum(score.values())
        shares = {h: left * score[h] / total for h in open_strata}
        extra = {h: min(open_strata[h], math.floor(shares[h])) for h in open_strata}
        if sum(extra.values()) == 0:  # fewer pairs to place than strata: largest shares get one each
            for h in sorted(open_strata, key=lambda h: (-shares[h], h))[:left]:
                extra[h] = 1
        for h, k in extra.items():
            take[h] += k
        left -= sum(extra.values())
    return take


def _clip(p: float) -> float:
    return min(max(p, GUESS_RANGE[0]), GUESS_RANGE[1])


def frame(spark: SparkSession, config: AppConfig, near_miss_floor: float = NEAR_MISS_FLOOR) -> DataFrame:
    """The current link run's pairs with stratum and pair groups."""
    if near_miss_floor < REVIEW_FLOOR_WEIGHT:
        raise ValueError(
            f"near_miss_floor {near_miss_floor} is below {REVIEW_FLOOR_WEIGHT}, the lowest match weight at which "
            "restricted/link_pairs flags best candidates"
        )
    lake = config.paths.lake
    for contract in (LINK_PAIRS, PEOPLE_STD):
        if not table_exists(spark, lake, contract):
            raise InputError(
                f"{lake}/{contract.zone}/{contract.name} not found: run `python -m jobs.link` first"
            )
    pairs = read_table(spark, lake, LINK_PAIRS)
    groups = record_groups(read_table(spark, lake, PEOPLE_STD), config.linkage.qa_reference_date.year)
    return with_pair_groups(pairs.withColumn("stratum", stratum(pairs, near_miss_floor)), groups)


def stratum_sizes(frame_df: DataFrame) -> dict[str, dict[str, float]]:
    """Per stratum: pair count and the model's mean match probability (the allocation's guess)."""
    guess = F.coalesce(F.col("match_probability"), F.lit(UNSCORED_LINK_GUESS))
    rows = frame_df.groupBy("stratum").agg(F.count("*").alias("size"), F.avg(guess).alias("guess")).collect()
    return {r["stratum"]: {"size": int(r["size"]), "guess": float(r["guess"])} for r in rows}


def draw(frame_df: DataFrame, allocation: Mapping[str, int], seed: int) -> DataFrame:
    """Simple random sample without replacement in each stratum: the first n_h pairs in a seeded hash order."""
    sizes = F.create_map(*[x for h, k in allocation.items() for x in (F.lit(h), F.lit(k))])
    order = F.xxhash64(F.lit(seed), *[F.col(c) for c in PAIR_KEYS])
    in_stratum = Window.partitionBy("stratum").orderBy(order, *PAIR_KEYS)
    ranked = frame_df.where(F.col("stratum").isin(list(allocation))).withColumn(
        "rank", F.row_number().over(in_stratum)
    )
    return ranked.where(F.col("rank") <= sizes[F.col("stratum")]).drop("rank")


def draw_review_sample(
    spark: SparkSession,
    config: AppConfig,
    run: RunContext,
    n: int,
    seed: int = DEFAULT_SEED,
    near_miss_floor: float = NEAR_MISS_FLOOR,
) -> dict[str, Any]:
    """Draw about n pairs of the current link run into restricted/review_sample (replacing the previous sample).

    Returns counts: sample id, pairs drawn, link run, and per stratum its size and sample size.
    """
    if n < 1:
        raise InputError(f"--sample must be a positive number of pairs, got {n}")
    frame_df = frame(spark, config, near_miss_floor).persist()
    try:
        link_runs = [r["run_id"] for r in frame_df.select("run_id").distinct().collect()]
        if len(link_runs) != 1:
            raise InputError(
                f"{config.paths.lake}/restricted/link_pairs holds {len(link_runs)} link runs, expected one"
            )
        strata = stratum_sizes(frame_df)
        sampled = {h: s for h, s in strata.items() if h != "below_floor"}
        allocation = allocate(
            {h: int(s["size"]) for h, s in sampled.items()}, {h: s["guess"] for h, s in sampled.items()}, n
        )
        sample_id = f"{link_runs[0]}:s{seed}:n{n}"
        sizes = F.create_map(*[x for h, s in sampled.items() for x in (F.lit(h), F.lit(int(s["size"])))])
        taken = F.create_map(*[x for h, k in allocation.items() for x in (F.lit(h), F.lit(k))])
        sample = (
            draw(frame_df, allocation, seed)
            .withColumn("sample_id", F.lit(sample_id))
            .withColumn("stratum_size", sizes[F.col("stratum")].cast("long"))
            .withColumn("stratum_sample_size", taken[F.col("stratum")].cast("long"))
            .withColumn("inclusion_probability", F.col("stratum_sample_size") / F.col("stratum_size"))
            .withColumn("drawn_at", F.current_timestamp())
        )
        write_table(sample.select(*REVIEW_SAMPLE.column_names), config.paths.lake, REVIEW_SAMPLE, run)
    finally:
        frame_df.unpersist()
    drawn = sum(allocation.values())
    return {
        "sample_id": sample_id,
        "link_run_id": link_runs[0],
        "pairs": drawn,
        "strata": len(allocation),
        "below_floor_pairs": int(strata.get("below_floor", {}).get("size", 0)),
        "by_stratum": {
            h: {"size": int(sampled[h]["size"]), "sampled": k} for h, k in sorted(allocation.items())
        },
    }
