"""Linkage QA: aggregate metrics of a link run, truth evaluation, and a one-page HTML report.

Everything here returns counts, rates and quantiles: nothing record-level leaves the
restricted zone through MLflow. Pairwise precision and recall count the pairs of records put
in the same person (predicted) against the pairs that are truly the same person.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from linkage.demographics import UNKNOWN, age_band, age_in_year, imd_quintile, or_unknown
from linkage.link.deterministic import PAIR_KEYS
from linkage.link.spine import NHS_NUMBERS_APART, RECORD_JOIN_KEY, RECORD_KEY, YEARS_APART_DAYS

TRUTH_SCHEMA = (
    "source_dataset string, source_record_id string, true_person_id string, ethnic_group string, "
    "sex string, birth_year int, imd_decile int"
)
CLUSTER_SIZE_QUANTILES = (0.5, 0.9, 0.99, 0.999)
LARGEST_CLUSTERS = 5
# Lower bounds of the fairness metrics' age bands (0-15, 16-24, 25-44, 45-64, 65-79, 80+): children, young
# adults, working age, older people. Coarser than the person table's: each band needs true pairs to say much.
TRUTH_AGE_BAND_STARTS = (0, 16, 25, 45, 65, 80)
TRUTH_GROUPS = ("ethnic_group", "sex", "age_band", "imd_quintile")


def n_pairs(n: Column) -> Column:
    return n * (n - 1) / 2


def read_truth(spark: SparkSession, path: str, reference_year: int) -> DataFrame:
    """truth.csv with the grouping columns QA reports by (age band in the reference year, IMD quintile);
    a missing value is the group Unknown."""
    truth = spark.read.csv(path, header=True, schema=TRUTH_SCHEMA, mode="PERMISSIVE")
    return truth.select(
        *RECORD_KEY,
        "true_person_id",
        or_unknown(F.col("ethnic_group")).alias("ethnic_group"),
        or_unknown(F.col("sex")).alias("sex"),
        or_unknown(truth_age_band(F.col("birth_year"), reference_year)).alias("age_band"),
        or_unknown(imd_quintile(F.col("imd_decile"))).alias("imd_quintile"),
    )


def truth_age_band(birth_year: Column, reference_year: int) -> Column:
    """The fairness metrics' age band (TRUTH_AGE_BAND_STARTS) in the reference year; null without a birth year."""
    return age_band(age_in_year(birth_year, reference_year), TRUTH_AGE_BAND_STARTS)


def pairwise_counts(
    spine_df: DataFrame, truth_df: DataFrame, groups: tuple[str, ...] = TRUTH_GROUPS
) -> dict[tuple[str, str], dict[str, int]]:
    """True positive, predicted and true pair counts, overall (key ('all', 'all')) and per value of each truth group.

    Per group, a predicted pair counts when both records are in the group: pairs joining two
    groups are false matches counted in the overall precision only.

    The records are first counted per cell (person, true person and group values), computed once and kept: every
    count below is a sum over cells. Read as three branches of one union, each branch read the truth file and
    joined it to the spine again (36 s of a 1M-person link's QA).
    """
    cells = (
        spine_df.select(*RECORD_KEY, "person_key")
        .join(truth_df, list(RECORD_JOIN_KEY), how="inner")
        .groupBy("person_key", "true_person_id", *groups)
        .agg(F.count("*").alias("n"))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    labels = [F.struct(F.lit("all").alias("name"), F.lit("all").alias("value"))]
    labels += [F.struct(F.lit(g).alias("name"), F.col(g).cast("string").alias("value")) for g in groups]
    exploded = cells.select("person_key", "true_person_id", "n", F.explode(F.array(*labels)).alias("group"))

    def pairs(kind: str, *by: str) -> DataFrame:
        return (
            exploded.groupBy("group", *by)
            .agg(F.sum("n").alias("n"))
            .groupBy("group")
            .agg(F.sum(n_pairs(F.col("n"))).cast("long").alias("pairs"))
            .withColumn("kind", F.lit(kind))
        )

    frames = (
        pairs("true_positive", "person_key", "true_person_id")
        .unionByName(pairs("predicted", "person_key"))
        .unionByName(pairs("true", "true_person_id"))
    )
    counts: dict[tuple[str, str], dict[str, int]] = {}
    try:
        rows = frames.collect()
    finally:
        cells.unpersist()
    for row in rows:
        key = (row["group"]["name"], row["group"]["value"])
        counts.setdefault(key, {"true_positive": 0, "predicted": 0, "true": 0})[row["kind"]] = int(
            row["pairs"] or 0
        )
    return counts


def precision_recall_f1(true_positive: int, predicted: int, true: int) -> dict[str, float]:
    """Pairwise precision, recall and F1; an empty denominator counts as perfect (nothing to get wrong)."""
    precision = true_positive / predicted if predicted else 1.0
    recall = true_positive / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def truth_metrics(spine_df: DataFrame, truth_df: DataFrame) -> dict[str, float]:
    """precision/recall/f1 overall, and by ethnic group, sex, age band and IMD quintile (`recall.sex.F`, ...)."""
    counts = pairwise_counts(spine_df, truth_df)
    overall = counts.pop(("all", "all"), {"true_positive": 0, "predicted": 0, "true": 0})
    metrics: dict[str, float] = dict(precision_recall_f1(**overall))
    metrics.update({f"pairs.{k}": v for k, v in overall.items()})
    for (group, value), group_counts in sorted(counts.items()):
        for name, score in precision_recall_f1(**group_counts).items():
            metrics[f"{name}.{group}.{value}"] = score
        metrics[f"true_pairs.{group}.{value}"] = group_counts["true"]
    for group in TRUTH_GROUPS:
        # Groups with no true pairs (recall 1 by definition) and Unknown say nothing about fairness.
        recalls = [
            metrics[f"recall.{g}.{v}"]
            for (g, v), c in counts.items()
            if g == group and v != UNKNOWN and c["true"]
        ]
        if recalls:
            metrics[f"recall_gap.{group}"] = max(recalls) - min(recalls)
    return metrics


def person_summaries(spine_df: DataFrame, people_df: DataFrame, sources: list[str]) -> DataFrame:
    """One row per person: `size`, `records_<i>` (its records in sources[i]), and whether it holds two valid NHS
    numbers or birth years more than a year apart.

    Plain counts, minima and maxima only: two distinct NHS numbers are a minimum and a maximum that differ. Sets
    of numbers and a map of sources per person (collect_set, map_from_entries) cannot use Spark's hash aggregation
    and took twice as long at 1M people."""
    identifiers = spine_df.select(*RECORD_KEY, "person_key").join(
        people_df.select(*RECORD_KEY, "nhs_number", "year_of_birth"), list(RECORD_JOIN_KEY), how="left"
    )
    return identifiers.groupBy("person_key").agg(
        F.count("*").alias("size"),
        *[
            F.count_if(F.col("source_dataset") == F.lit(source)).alias(f"records_{i}")
            for i, source in enumerate(sources)
        ],
        (F.min("nhs_number") != F.max("nhs_number")).alias("has_two_nhs_numbers"),
        ((F.max("year_of_birth") - F.min("year_of_birth")) > 1).alias("has_birth_years_apart"),
    )


def spine_metrics(spine_df: DataFrame, people_df: DataFrame) -> dict[str, float]:
    """Records per source and match method, persons, cluster size quantiles and largest sizes, within- and
    cross-source link rates, clusters holding two valid NHS numbers or dates of birth years apart.

    Person-level figures come from one row per person (person_summaries), computed once and kept: as a query each
    over the spine they took 23 s of a 1M-person link's QA."""
    metrics: dict[str, float] = {}
    totals: dict[str, int] = {}
    for row in spine_df.groupBy("source_dataset", "match_method").count().collect():
        method = f"records_by_method.{row['match_method']}"
        metrics[method] = metrics.get(method, 0) + row["count"]
        totals[row["source_dataset"]] = totals.get(row["source_dataset"], 0) + row["count"]
    metrics.update({f"records.{source}": n for source, n in totals.items()})
    metrics["records"] = sum(totals.values())
    sources = sorted(totals)
    persons = person_summaries(spine_df, people_df, sources).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        metrics.update(person_metrics(persons, sources, totals))
    finally:
        persons.unpersist()
    return metrics


def person_metrics(persons: DataFrame, sources: list[str], totals: Mapping[str, int]) -> dict[str, float]:
    """spine_metrics' person-level figures from person_summaries: one aggregation, the quantiles and the largest."""
    records = [F.col(f"records_{i}") for i in range(len(sources))]
    # (metric, the source whose records it is a share of, those records counted)
    rates = [
        # Link rate: share of a source's records whose person also has a record in the other source.
        (f"link_rate.{source}.{other}", source, F.sum(F.when(records[j] > 0, records[i])))
        for i, source in enumerate(sources)
        for j, other in enumerate(sources)
        if i != j
    ] + [
        (f"within_source_duplicate_rate.{source}", source, F.sum(F.when(records[i] > 1, records[i])))
        for i, source in enumerate(sources)
    ]
    overall = persons.agg(
        F.count("*").alias("persons"),
        F.count_if("has_two_nhs_numbers").alias("two_nhs"),
        F.count_if("has_birth_years_apart").alias("years_apart"),
        *[counted.alias(f"rate_{k}") for k, (_, _, counted) in enumerate(rates)],
    ).first()
    metrics: dict[str, float] = {"persons": overall["persons"]}
    for q, value in zip(
        CLUSTER_SIZE_QUANTILES,
        persons.approxQuantile("size", list(CLUSTER_SIZE_QUANTILES), 0.0),
        strict=True,
    ):
        metrics[f"cluster_size.p{q * 100:g}"] = value
    for rank, row in enumerate(
        persons.orderBy(F.col("size").desc()).limit(LARGEST_CLUSTERS).collect(), start=1
    ):
        metrics[f"cluster_size.largest_{rank}"] = row["size"]
    # A rate of zero is left out: a source pair with no link between them has no rate.
    for k, (name, source, _) in enumerate(rates):
        if overall[f"rate_{k}"]:
            metrics[name] = overall[f"rate_{k}"] / totals[source]
    metrics["conflict_clusters.two_valid_nhs_numbers"] = overall["two_nhs"]
    metrics["conflict_clusters.birth_years_apart"] = overall["years_apart"]
    return metrics


# Link patterns that, on data with truth, are where false links concentrate (relatives: parents and children,
# siblings sharing a household and often a forename). Counting them needs no truth, so QA sees them on real data.
PATTERN_COLUMNS = ("surname_std", "postcode_std", "nhs_number", "date_of_birth", "forename_std")


def with_pair_values(
    pairs_df: DataFrame, people_df: DataFrame, columns: tuple[str, ...] = PATTERN_COLUMNS
) -> DataFrame:
    """Pairs (PAIR_KEYS) with both records' `columns` (by default PATTERN_COLUMNS) as <column>_l and <column>_r."""
    values = people_df.select(*RECORD_KEY, *columns)
    for side in ("l", "r"):
        pairs_df = pairs_df.join(
            values.select(*[F.col(c).alias(f"{c}_{side}") for c in (*RECORD_KEY, *columns)]),
            [f"{c}_{side}" for c in RECORD_JOIN_KEY],
            how="left",
        )
    return pairs_df


def pair_patterns() -> dict[str, Column]:
    """Boolean pattern columns over a frame from `with_pair_values` (null-safe: a missing value never matches)."""
    years_apart = F.abs(F.datediff("date_of_birth_l", "date_of_birth_r")) > YEARS_APART_DAYS
    # One household as the model's household correction defines it: one postcode, and a surname or a forename shared
    # (a child may carry the other parent's surname and this parent's forename).
    household = (F.col("postcode_std_l") == F.col("postcode_std_r")) & (
        (F.col("surname_std_l") == F.col("surname_std_r"))
        | (F.col("forename_std_l") == F.col("forename_std_r"))
    )
    two_numbers = F.col("nhs_number_l") != F.col("nhs_number_r")
    # Two people's own numbers (not a wrong-but-valid copy, two digits apart) and forenames not equal: twins.
    twins = (F.levenshtein("nhs_number_l", "nhs_number_r") > NHS_NUMBERS_APART) & (
        F.col("forename_std_l") != F.col("forename_std_r")
    )
    patterns = {
        "household_dob_years_apart": household & years_apart,
        "two_valid_nhs_numbers": two_numbers,
        "two_valid_nhs_numbers_dob_years_apart": two_numbers & years_apart,
        "two_nhs_numbers_apart_forenames_differ": twins,
    }
    return {name: F.coalesce(condition, F.lit(False)) for name, condition in patterns.items()}


def link_pattern_metrics(edges_df: DataFrame, people_df: DataFrame) -> dict[str, float]:
    """Links by false-pair-prone pattern (`link_patterns.<pattern>`): inside a household with dates of birth years
    apart, between two different valid NHS numbers, both, and between two numbers more than two digits apart whose
    forenames are not equal (twins)."""
    valued = with_pair_values(edges_df.select(*PAIR_KEYS).distinct(), people_df)
    sums = valued.agg(
        *[F.sum(condition.cast("int")).alias(name) for name, condition in pair_patterns().items()]
    ).first()
    return {f"link_patterns.{name}": int(sums[name] or 0) for name in pair_patterns()}


def prediction_metrics(
    predictions_df: DataFrame, upper: float, blocking_rule_names: Mapping[str, str]
) -> dict[str, float]:
    """Pairs per blocking rule and the model's own estimate of matches, false matches and missed matches."""
    metrics: dict[str, float] = {}
    for row in predictions_df.groupBy("match_key").count().collect():
        name = blocking_rule_names.get(str(row["match_key"]), f"rule_{row['match_key']}")
        metrics[f"pairs_by_blocking_rule.{name}"] = row["count"]
    p = F.col("match_probability")
    sums = predictions_df.agg(
        F.count("*").alias("pairs"),
        F.sum(p).alias("expected_matches"),
        F.sum(F.when(p >= upper, 1).otherwise(0)).alias("linked_pairs"),
        F.sum(F.when(p >= upper, 1 - p).otherwise(0)).alias("expected_false_matches"),
        F.sum(F.when(p < upper, p).otherwise(0)).alias("expected_missed_matches"),
    ).first()
    metrics["candidate_pairs"] = sums["pairs"]
    metrics["model.expected_matches"] = sums["expected_matches"] or 0.0
    metrics["model.pairs_at_or_above_upper"] = sums["linked_pairs"] or 0
    metrics["model.expected_false_matches"] = sums["expected_false_matches"] or 0.0
    metrics["model.expected_missed_matches_in_candidates"] = sums["expected_missed_matches"] or 0.0
    return metrics


def count_by(df: DataFrame, column: str, prefix: str) -> dict[str, float]:
    return {f"{prefix}.{row[column]}": row["count"] for row in df.groupBy(column).count().collect()}


def report_html(title: str, sections: Mapping[str, Mapping[str, float | str]]) -> str:
    """One page: a table per section of aggregate metrics (names and numbers only)."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse;"
        "margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
        "td.n{text-align:right;font-variant-numeric:tabular-nums}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for section, values in sections.items():
        parts.append(f"<h2>{html.escape(section)}</h2><table><tr><th>metric</th><th>value</th></tr>")
        for key, value in values.items():
            shown = (
                f"{value:.4f}"
                if isinstance(value, float) and not float(value).is_integer()
                else str(int(value) if isinstance(value, float) else value)
            )
            parts.append(f"<tr><td>{html.escape(str(key))}</td><td class='n'>{html.escape(shown)}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
