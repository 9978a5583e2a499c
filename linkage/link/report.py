"""The linkage QA report as one offline HTML page: Vega-Lite charts beside the tables of aggregate metrics.

Charts are Vega-Lite specs built here from aggregates only (histogram bins, counts, rates,
estimates); the Vega runtime Splink ships is inlined once, so the page opens with no network.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from splink.internals.html_utils import json_for_html, load_chart_libraries

from linkage.config import ThresholdsConfig

VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
WEIGHT_BIN = 1.0  # match-weight histogram bin width (bits)
PAGE_STYLE = (
    "body{font-family:sans-serif;max-width:64em;margin:2em auto;padding:0 1em}table{border-collapse:collapse;"
    "margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}.chart{margin:1em 0 2em}"
    ".headline{font-size:1.1em;background:#f4f6f8;padding:.6em 1em;border-radius:4px}"
)


def probability_to_weight(p: float) -> float:
    """Splink's match weight (log2 odds, prior included) at a match probability."""
    return math.log2(p / (1 - p))


def weight_histogram(pairs_df: DataFrame, bin_width: float = WEIGHT_BIN) -> list[dict[str, Any]]:
    """Scored pairs per match-weight bin, split by whether the run linked them (from restricted/link_pairs)."""
    start = F.floor(F.col("match_weight") / bin_width) * bin_width
    rows = (
        pairs_df.where(F.col("match_weight").isNotNull())
        .groupBy(start.alias("bin_start"), F.col("is_linked"))
        .count()
        .collect()
    )
    return sorted(
        (
            {
                "bin_start": float(r["bin_start"]),
                "bin_end": float(r["bin_start"]) + bin_width,
                "linked": "linked" if r["is_linked"] else "not linked",
                "pairs": int(r["count"]),
            }
            for r in rows
        ),
        key=lambda d: (d["bin_start"], d["linked"]),
    )


def cluster_size_counts(spine_df: DataFrame) -> list[dict[str, int]]:
    """Persons per cluster size."""
    sizes = spine_df.groupBy("person_key").count().groupBy(F.col("count").alias("size")).count().collect()
    return sorted(
        ({"size": int(r["size"]), "persons": int(r["count"])} for r in sizes), key=lambda d: d["size"]
    )


def weight_chart(histogram: Sequence[Mapping[str, Any]], thresholds: ThresholdsConfig) -> dict[str, Any]:
    marks = [
        {"name": name, "weight": round(probability_to_weight(p), 2), "label": f"{name} p={p:g}"}
        for name, p in (
            ("lower", thresholds.lower),
            ("best_link", thresholds.best_link),
            ("upper", thresholds.upper),
        )
    ]
    return {
        "$schema": VEGA_LITE_SCHEMA,
        "width": 640,
        "height": 260,
        "title": "Match weight of scored pairs (thresholds marked)",
        "layer": [
            {
                "data": {"values": list(histogram)},
                "mark": "bar",
                "encoding": {
                    "x": {
                        "field": "bin_start",
                        "type": "quantitative",
                        "bin": {"binned": True, "step": WEIGHT_BIN},
                        "title": "match weight (bits)",
                    },
                    "x2": {"field": "bin_end"},
                    "y": {
                        "field": "pairs",
                        "type": "quantitative",
                        "stack": True,
                        "scale": {"type": "symlog"},
                        "title": "pairs (symlog scale)",
                    },
                    "color": {"field": "linked", "type": "nominal", "title": ""},
                    "tooltip": [
                        {"field": "bin_start", "title": "from"},
                        {"field": "linked"},
                        {"field": "pairs"},
                    ],
                },
            },
            {
                "data": {"values": marks},
                "mark": {"type": "rule", "strokeDash": [4, 3], "color": "#c0392b"},
                "encoding": {
                    "x": {"field": "weight", "type": "quantitative"},
                    "tooltip": [{"field": "label"}],
                },
            },
            {
                "data": {"values": marks},
                "mark": {
                    "type": "text",
                    "angle": 270,
                    "align": "left",
                    "dx": 4,
                    "dy": -4,
                    "color": "#c0392b",
                },
                "encoding": {
                    "x": {"field": "weight", "type": "quantitative"},
                    "y": {"value": 4},
                    "text": {"field": "name"},
                },
            },
        ],
    }


def cluster_chart(sizes: Sequence[Mapping[str, int]]) -> dict[str, Any]:
    return {
        "$schema": VEGA_LITE_SCHEMA,
        "width": 640,
        "height": 220,
        "title": "Persons by number of records",
        "data": {"values": list(sizes)},
        "mark": "bar",
        "encoding": {
            "x": {"field": "size", "type": "ordinal", "title": "records in the person's cluster"},
            "y": {
                "field": "persons",
                "type": "quantitative",
                "scale": {"type": "symlog"},
                "title": "persons (symlog scale)",
            },
            "tooltip": [{"field": "size"}, {"field": "persons"}],
        },
    }


def link_rate_chart(metrics: Mapping[str, float]) -> dict[str, Any]:
    rates = [
        {"source": k.split(".")[1], "also_in": k.split(".")[2], "rate": v}
        for k, v in metrics.items()
        if k.startswith("link_rate.") and k.count(".") == 2
    ]
    return {
        "$schema": VEGA_LITE_SCHEMA,
        "title": "Share of a source's records whose person is also in another source",
        "data": {"values": rates},
        "encoding": {
            "x": {"field": "also_in", "type": "nominal", "title": "also in"},
            "y": {"field": "source", "type": "nominal", "title": "records of"},
        },
        "layer": [
            {
                "mark": "rect",
                "encoding": {
                    "color": {
                        "field": "rate",
                        "type": "quantitative",
                        "scale": {"domain": [0, 1], "scheme": "blues"},
                    }
                },
            },
            {
                "mark": {"type": "text"},
                "encoding": {"text": {"field": "rate", "type": "quantitative", "format": ".1%"}},
            },
        ],
        "width": 360,
        "height": 200,
    }


def accuracy_rows(metrics: Mapping[str, float], kind: str, groups: Sequence[str]) -> list[dict[str, Any]]:
    """Rows for the accuracy chart from `precision.<group>.<value>` (kind 'truth') or
    `estimate.<group>.<value>.precision` with `.ci95_low/high` (kind 'estimate')."""
    rows = []
    for key, value in metrics.items():
        parts = key.split(".")
        if kind == "truth" and len(parts) == 3 and parts[0] in ("precision", "recall") and parts[1] in groups:
            rows.append(
                {
                    "group": parts[1],
                    "value": parts[2],
                    "metric": parts[0],
                    "kind": "truth",
                    "estimate": value,
                    "low": value,
                    "high": value,
                }
            )
        if (
            kind == "estimate"
            and len(parts) == 4
            and parts[0] == "estimate"
            and parts[1] in groups
            and parts[3] in ("precision", "recall")
        ):
            prefix = key
            rows.append(
                {
                    "group": parts[1],
                    "value": parts[2],
                    "metric": parts[3],
                    "kind": "estimate (95% CI)",
                    "estimate": value,
                    "low": metrics.get(f"{prefix}.ci95_low", value),
                    "high": metrics.get(f"{prefix}.ci95_high", value),
                }
            )
    return rows


def accuracy_chart(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Precision and recall by group value: estimates with their 95% intervals, truth as diamonds."""
    return {
        "$schema": VEGA_LITE_SCHEMA,
        "title": "Accuracy by group",
        "data": {"values": list(rows)},
        "facet": {
            "row": {"field": "group", "type": "nominal", "title": None},
            "column": {"field": "metric", "type": "nominal", "title": None},
        },
        "resolve": {"scale": {"y": "independent"}},
        "spec": {
            "width": 280,
            "encoding": {
                "y": {"field": "value", "type": "nominal", "title": None},
                "color": {"field": "kind", "type": "nominal", "title": ""},
            },
            "layer": [
                {
                    "mark": {"type": "rule"},
                    "encoding": {
                        "x": {
                            "field": "low",
                            "type": "quantitative",
                            "scale": {"zero": False},
                            "title": None,
                        },
                        "x2": {"field": "high"},
                    },
                },
                {
                    "mark": {"type": "point", "filled": True},
                    "encoding": {
                        "x": {"field": "estimate", "type": "quantitative"},
                        "shape": {"field": "kind", "type": "nominal", "title": ""},
                        "tooltip": [
                            {"field": "group"},
                            {"field": "value"},
                            {"field": "kind"},
                            {"field": "estimate", "format": ".4f"},
                            {"field": "low", "format": ".4f"},
                            {"field": "high", "format": ".4f"},
                        ],
                    },
                },
            ],
        },
    }


def _shown(value: float | str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not float(value).is_integer():
        return f"{value:.4f}"
    return str(int(value))


def page(
    title: str,
    headline: str,
    charts: Sequence[tuple[str, dict[str, Any]]],
    sections: Mapping[str, Mapping[str, float | str]],
) -> str:
    """One self-contained page: headline, charts (Vega runtime inlined once), then the metric tables."""
    libraries = load_chart_libraries()
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{PAGE_STYLE}</style>",
        *[f"<script>{libraries[name]}</script>" for name in ("vega", "vega-lite", "vega-embed")],
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='headline'>{html.escape(headline)}</p>",
    ]
    for index, (caption, spec) in enumerate(charts):
        parts.append(f"<h2>{html.escape(caption)}</h2><div class='chart' id='chart{index}'></div>")
        parts.append(
            f"<script>vegaEmbed('#chart{index}', {json_for_html(spec)}, {{actions: false}})"
            f".catch(function (e) {{ document.getElementById('chart{index}').textContent = String(e); }});"
            "</script>"
        )
    for section, values in sections.items():
        if not values:
            continue
        parts.append(f"<h2>{html.escape(section)}</h2><table><tr><th>metric</th><th>value</th></tr>")
        parts.extend(
            f"<tr><td>{html.escape(str(k))}</td><td class='n'>{html.escape(_shown(v))}</td></tr>"
            for k, v in values.items()
        )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def chart_specs_json(charts: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """The specs alone, logged beside the page for reuse."""
    return json.dumps({caption: spec for caption, spec in charts}, indent=1, default=str)


TRUTH_GROUPS = ("ethnic_group", "sex", "age_band", "imd_quintile")
HEADLINE_FROM = {  # headline metric -> the link run metric it repeats
    "headline.records": "records",
    "headline.persons": "persons",
    "headline.review_queue_pairs": "review_queue.pairs",
    "headline.model_expected_false_matches": "model.expected_false_matches",
    "headline.model_expected_missed_matches": "model.expected_missed_matches_in_candidates",
    "headline.conflict_clusters": "conflict_clusters.two_valid_nhs_numbers",
    "headline.truth_precision": "precision",
    "headline.truth_recall": "recall",
    "headline.truth_f1": "f1",
}


def headline_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """The few figures QA reads first, under one prefix so they are the columns to pick in the runs table."""
    return {headline: metrics[source] for headline, source in HEADLINE_FROM.items() if source in metrics}


def link_run_name(release_id: str, model_version: str) -> str:
    return f"link · release {release_id} · model v{model_version}"


def headline_text(metrics: Mapping[str, float]) -> str:
    parts = [
        f"{int(metrics['records'])} records into {int(metrics['persons'])} persons",
        f"{int(metrics.get('review_queue.pairs', 0))} pairs for review",
        f"model's expected false matches {metrics.get('model.expected_false_matches', 0):.1f}, "
        f"missed among candidates {metrics.get('model.expected_missed_matches_in_candidates', 0):.1f}",
    ]
    if "precision" in metrics:
        parts.append(
            f"against truth: precision {metrics['precision']:.4f}, recall {metrics['recall']:.4f}, "
            f"F1 {metrics['f1']:.4f}"
        )
    return "; ".join(parts)


def link_description(metrics: Mapping[str, float], version: str, report_link: str) -> str:
    """The link run's description (markdown): headline figures and a link to the QA report."""
    return (
        f"**Link with model version {version}.** {headline_text(metrics)}.\n\n"
        f"[QA report (charts)]({report_link}) · accuracy estimates without truth: "
        "`python -m jobs.review_estimate` after clerical review of a sample (README, QA guide)."
    )


def link_charts(
    pairs_df: DataFrame | None,
    spine_df: DataFrame,
    metrics: Mapping[str, float],
    thresholds: ThresholdsConfig,
) -> list[tuple[str, dict[str, Any]]]:
    """The link report's charts: match weights, cluster sizes, link rates and, with truth, accuracy by group."""
    charts = []
    if pairs_df is not None:
        charts.append(("Match weights", weight_chart(weight_histogram(pairs_df), thresholds)))
    charts.append(("Cluster sizes", cluster_chart(cluster_size_counts(spine_df))))
    charts.append(("Link rates between sources", link_rate_chart(metrics)))
    truth_rows = accuracy_rows(metrics, "truth", TRUTH_GROUPS)
    if truth_rows:
        charts.append(("Accuracy by group (truth)", accuracy_chart(truth_rows)))
    return charts


def link_report(
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
    return page(f"Linkage QA: model version {version}", headline_text(metrics), charts, sections)
