"""Precision, recall, false-match and missed-match counts estimated from a reviewed stratified sample.

Method (stated in the README's QA guide):

- Each reviewed pair i in stratum h stands for N_h / m_h pairs, where N_h is the stratum's size
  and m_h its pairs reviewed `match` or `non_match` (`unsure` and undecided pairs are left out
  and counted; the reviewed ones are taken as a random subsample of the stratum's sample).
- Totals are Horvitz-Thompson sums of these weights: linked pairs P, true matches among them TP,
  false matches FP = P - TP, and matches among the near misses FN (missed matches).
- precision = TP / P and recall = TP / (TP + FN) are ratio estimators; their variances come from
  Taylor linearisation with the stratified-sampling variance (finite population correction).
- The 95% interval is Wilson's score interval on the effective sample size p(1-p)/var, capped at
  the reviewed pairs (Korn and Graubard's interval for complex samples), so a sample in which every link was confirmed
  still gives a lower bound below 1; false-match and missed-match counts take the intervals of
  precision and recall.
- By group (ethnic group, sex, age band, IMD quintile): the same estimators over the pairs of the
  group (domain estimation: the group's pairs in each stratum are a random subsample of it).
- Pairs never scored (outside blocking) and scored pairs below the sampling floor are assumed
  to hold no matches: missed matches among them are not counted, so recall is an upper bound
  to that extent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from linkage.config import AppConfig
from linkage.errors import InputError
from linkage.lake import read_table, table_exists
from linkage.link.deterministic import PAIR_KEYS
from linkage.link.spine import latest_decisions
from linkage.review.sampling import GROUPS
from linkage.schemas import REVIEW_DECISIONS, REVIEW_SAMPLE

Z95 = 1.959963984540054
DECIDED = ("match", "non_match")


@dataclass(frozen=True)
class ReviewedPair:
    stratum: str
    stratum_size: int
    is_linked: bool
    is_match: bool | None  # None: not reviewed yet, or unsure
    groups: Mapping[str, str]


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class Estimates:
    precision: Interval
    recall: Interval
    false_matches: Interval
    missed_matches: Interval
    linked_pairs: float  # estimated (exact overall: the strata sizes add up to it)
    true_positives: float
    reviewed_links: int  # reviewed pairs behind precision
    reviewed_matches: int  # reviewed pairs found to be matches, behind recall
    reviewed: int

    def as_metrics(self, prefix: str) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for name in ("precision", "recall", "false_matches", "missed_matches"):
            interval: Interval = getattr(self, name)
            metrics[f"{prefix}{name}"] = interval.estimate
            metrics[f"{prefix}{name}.ci95_low"] = interval.low
            metrics[f"{prefix}{name}.ci95_high"] = interval.high
        metrics[f"{prefix}n.links_reviewed"] = self.reviewed_links
        metrics[f"{prefix}n.matches_reviewed"] = self.reviewed_matches
        metrics[f"{prefix}n.reviewed"] = self.reviewed
        return metrics


def wilson(p: float, n_effective: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion p seen on n_effective trials; (0, 1) when there are none."""
    if n_effective <= 0:
        return 0.0, 1.0
    denominator = 1 + z * z / n_effective
    centre = (p + z * z / (2 * n_effective)) / denominator
    half = z * math.sqrt(p * (1 - p) / n_effective + z * z / (4 * n_effective * n_effective)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def stratified_variance(values: Mapping[str, Sequence[float]], sizes: Mapping[str, int]) -> float:
    """Variance of the estimated total sum_h N_h * mean_h(values): sum_h N_h^2 (1 - m_h/N_h) s_h^2 / m_h."""
    variance = 0.0
    for stratum, xs in values.items():
        m, size = len(xs), sizes[stratum]
        if m < 2:
            continue
        mean = sum(xs) / m
        s2 = sum((x - mean) ** 2 for x in xs) / (m - 1)
        variance += size * size * (1 - m / size) * s2 / m
    return variance


def ratio_interval(
    numerator: Sequence[float],
    denominator: Sequence[float],
    strata: Sequence[str],
    sizes: Mapping[str, int],
    weights: Sequence[float],
    units: int,
) -> Interval:
    """Ratio R = sum w y / sum w x with a Wilson interval on its linearised stratified variance.

    units: reviewed pairs behind the denominator; the effective sample size never exceeds it.
    """
    total_y = sum(w * y for w, y in zip(weights, numerator, strict=True))
    total_x = sum(w * x for w, x in zip(weights, denominator, strict=True))
    if total_x <= 0:
        return Interval(float("nan"), 0.0, 1.0)
    ratio = total_y / total_x
    residuals: dict[str, list[float]] = {}
    for stratum, y, x in zip(strata, numerator, denominator, strict=True):
        residuals.setdefault(stratum, []).append((y - ratio * x) / total_x)
    variance = stratified_variance(residuals, sizes)
    # Capped at the reviewed pairs (Korn and Graubard's truncation): uncapped, a stratum of rare matches (the
    # weak near misses) made the recall interval too narrow (89.5% coverage in the simulation of the tests).
    n_effective = ratio * (1 - ratio) / variance if variance > 0 else units
    low, high = wilson(ratio, min(n_effective, units))
    return Interval(ratio, min(low, ratio), max(high, ratio))


def estimate(pairs: Iterable[ReviewedPair], domain: tuple[str, str] | None = None) -> Estimates:
    """Estimates over all pairs, or over one group's pairs (domain = (group, value))."""
    all_pairs = list(pairs)
    sizes = {p.stratum: p.stratum_size for p in all_pairs}
    reviewed = [p for p in all_pairs if p.is_match is not None]
    per_stratum: dict[str, int] = {}
    for p in reviewed:
        per_stratum[p.stratum] = per_stratum.get(p.stratum, 0) + 1
    strata = [p.stratum for p in reviewed]
    weights = [sizes[p.stratum] / per_stratum[p.stratum] for p in reviewed]
    in_domain = [1.0 if domain is None or p.groups.get(domain[0]) == domain[1] else 0.0 for p in reviewed]
    linked = [d * p.is_linked for d, p in zip(in_domain, reviewed, strict=True)]
    match = [d * bool(p.is_match) for d, p in zip(in_domain, reviewed, strict=True)]
    true_positive = [x * y for x, y in zip(linked, match, strict=True)]
    links_reviewed = int(sum(linked))
    matches_reviewed = int(sum(match))
    precision = ratio_interval(true_positive, linked, strata, sizes, weights, links_reviewed)
    recall = ratio_interval(true_positive, match, strata, sizes, weights, matches_reviewed)
    linked_total = sum(w * x for w, x in zip(weights, linked, strict=True))
    tp_total = sum(w * x for w, x in zip(weights, true_positive, strict=True))
    false_matches = Interval(
        linked_total - tp_total, linked_total * (1 - precision.high), linked_total * (1 - precision.low)
    )
    missed_total = sum(w * (y - x) for w, x, y in zip(weights, true_positive, match, strict=True))

    def missed(r: float) -> float:
        return tp_total * (1 - r) / r if r > 0 else float("inf")

    missed_matches = Interval(
        missed_total, min(missed(recall.high), missed_total), max(missed(recall.low), missed_total)
    )
    return Estimates(
        precision,
        recall,
        false_matches,
        missed_matches,
        linked_total,
        tp_total,
        links_reviewed,
        matches_reviewed,
        int(sum(in_domain)),
    )


def reviewed_sample(spark: SparkSession, config: AppConfig) -> DataFrame:
    """restricted/review_sample with each pair's latest decision (null when none)."""
    lake = config.paths.lake
    if not table_exists(spark, lake, REVIEW_SAMPLE):
        raise InputError(
            f"{lake}/restricted/review_sample not found: draw one with "
            "`python -m jobs.review --sample N` first"
        )
    sample = read_table(spark, lake, REVIEW_SAMPLE)
    if not table_exists(spark, lake, REVIEW_DECISIONS):
        return sample.withColumn("decision", F.lit(None).cast("string"))
    decisions = latest_decisions(read_table(spark, lake, REVIEW_DECISIONS)).select(*PAIR_KEYS, "decision")
    return sample.join(decisions, list(PAIR_KEYS), how="left")


def to_reviewed_pairs(rows: Iterable[Any]) -> list[ReviewedPair]:
    """Collected review_sample rows (with `decision`) as ReviewedPair; unsure counts as not reviewed."""
    return [
        ReviewedPair(
            r["stratum"],
            int(r["stratum_size"]),
            bool(r["is_linked"]),
            (r["decision"] == "match") if r["decision"] in DECIDED else None,
            {g: r[g] for g in GROUPS},
        )
        for r in rows
    ]


def estimate_metrics(pairs: Sequence[ReviewedPair], min_group_reviewed: int = 1) -> dict[str, float]:
    """`estimate.*` metrics overall and `estimate.<group>.<value>.*` by group value (with the counts behind each)."""
    metrics = estimate(pairs).as_metrics("estimate.")
    for group in GROUPS:
        for value in sorted({p.groups[group] for p in pairs}):
            group_estimates = estimate(pairs, (group, value))
            if group_estimates.reviewed >= min_group_reviewed:
                metrics.update(group_estimates.as_metrics(f"estimate.{group}.{value}."))
    return metrics


def sample_counts(rows: Sequence[Any]) -> dict[str, float]:
    """Sample size, reviewed, unsure and undecided counts, and strata without a reviewed pair."""
    decided: dict[str, int] = {}
    for r in rows:
        decided.setdefault(r["stratum"], 0)
        if r["decision"] in DECIDED:
            decided[r["stratum"]] += 1
    return {
        "estimate.sample.pairs": len(rows),
        "estimate.sample.reviewed": sum(1 for r in rows if r["decision"] in DECIDED),
        "estimate.sample.unsure": sum(1 for r in rows if r["decision"] == "unsure"),
        "estimate.sample.undecided": sum(1 for r in rows if r["decision"] is None),
        "estimate.sample.strata": len(decided),
        "estimate.sample.strata_without_review": sum(1 for k in decided.values() if k == 0),
    }


# ---------------------------------------------------------------------------------------------
# the `review_estimate` job

HEADLINE_ESTIMATES = ("precision", "recall", "false_matches", "missed_matches")
MODEL_FIGURES = {
    "model.expected_false_matches": "false_matches",
    "model.expected_missed_matches_in_candidates": "missed_matches",
}


def comparison_rows(
    estimates: Mapping[str, float], link_metrics: Mapping[str, float]
) -> dict[str, dict[str, str]]:
    """The report's table: for each figure, the review estimate with its interval, the model's own and the truth."""

    def interval(name: str) -> str:
        if f"estimate.{name}" not in estimates:
            return "-"
        value, low, high = (estimates[f"estimate.{name}{s}"] for s in ("", ".ci95_low", ".ci95_high"))
        digits = 4 if name in ("precision", "recall") else 1
        return f"{value:.{digits}f} ({low:.{digits}f} to {high:.{digits}f})"

    model = {
        figure: f"{link_metrics[key]:.1f}" for key, figure in MODEL_FIGURES.items() if key in link_metrics
    }
    truth = {name: f"{link_metrics[name]:.4f}" for name in ("precision", "recall") if name in link_metrics}
    if "pairs.predicted" in link_metrics and "pairs.true_positive" in link_metrics:
        truth["false_matches"] = (
            f"{link_metrics['pairs.predicted'] - link_metrics['pairs.true_positive']:.0f}"
        )
        truth["missed_matches"] = f"{link_metrics['pairs.true'] - link_metrics['pairs.true_positive']:.0f}"
    return {
        name: {
            "review estimate (95% CI)": interval(name),
            "model's own estimate": model.get(name, "-"),
            "truth": truth.get(name, "-"),
        }
        for name in HEADLINE_ESTIMATES
    }


def estimate_report(
    estimates: Mapping[str, float],
    counts: Mapping[str, float],
    link_metrics: Mapping[str, float],
    link_run_name: str,
) -> str:
    """Offline HTML: headline, accuracy-by-group chart (estimates with intervals beside truth), tables."""
    from linkage.link import report

    rows = report.accuracy_rows(estimates, "estimate", GROUPS) + report.accuracy_rows(
        link_metrics, "truth", GROUPS
    )
    overall = [
        {
            "group": "all",
            "value": "all",
            "metric": m,
            "kind": "estimate (95% CI)",
            "estimate": estimates[f"estimate.{m}"],
            "low": estimates[f"estimate.{m}.ci95_low"],
            "high": estimates[f"estimate.{m}.ci95_high"],
        }
        for m in ("precision", "recall")
    ]
    overall += [
        {
            "group": "all",
            "value": "all",
            "metric": m,
            "kind": "truth",
            "estimate": link_metrics[m],
            "low": link_metrics[m],
            "high": link_metrics[m],
        }
        for m in ("precision", "recall")
        if m in link_metrics
    ]
    table = comparison_rows(estimates, link_metrics)
    sections: dict[str, dict[str, float | str]] = {
        "Estimates beside the model's own and the truth": {
            f"{name} · {column}": value
            for name, columns in table.items()
            for column, value in columns.items()
        },
        "Sample": dict(counts),
        "By group (review estimates)": {k: v for k, v in estimates.items() if k.count(".") >= 3},
    }
    headline = (
        f"{link_run_name}: precision {table['precision']['review estimate (95% CI)']}, "
        f"recall {table['recall']['review estimate (95% CI)']} from {int(counts['estimate.sample.reviewed'])} "
        "reviewed pairs (stratified sample; pairs outside blocking assumed non-matches)"
    )
    charts = [
        ("Accuracy by group: review estimates (95% CI) and truth", report.accuracy_chart(overall + rows))
    ]
    return report.page("Linkage accuracy estimated from clerical review", headline, charts, sections)
