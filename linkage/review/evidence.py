"""The model's evidence for one pair: each comparison's level and match weight (a waterfall).

The approved model (Splink's JSON, written for Spark) is translated to DuckDB's SQL dialect, as
the benchmark does, and Splink scores the two records in-process: no Spark job per page. Term
frequencies come with the records (computed over all of people_std by the store), so the
weights are those the link run used. The link run's own score is shown beside the total, so a
reviewer can see that they agree.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from linkage.link.duckdb_model import model_for_duckdb
from linkage.link.settings import MODEL_COLUMNS, RECORD_SOURCE, SOURCE_DATASET


@dataclass(frozen=True)
class Step:
    """One bar of the waterfall."""

    comparison: str
    level: str
    match_weight: float
    is_term_frequency: bool = False


@dataclass(frozen=True)
class Waterfall:
    steps: tuple[Step, ...]
    match_weight: float
    match_probability: float


def term_frequency_columns(model: Mapping[str, Any]) -> list[str]:
    """Columns whose term frequencies the model's levels adjust on."""
    columns = {
        level["tf_adjustment_column"]
        for comparison in model["comparisons"]
        for level in comparison["comparison_levels"]
        if level.get("tf_adjustment_column")
    }
    return sorted(columns)


def model_frame(records: Iterable[Mapping[str, Any]], tf_columns: Iterable[str]) -> pd.DataFrame:
    """The records as the model reads them: its columns and the term frequency columns, one row each."""
    columns = [*MODEL_COLUMNS, *[f"tf_{c}" for c in tf_columns]]
    frame = pd.DataFrame([{c: record.get(c) for c in columns} for record in records], columns=columns)
    # The source again under the source comparison's name, as linkage.link.model.model_input adds it.
    return frame.assign(**{RECORD_SOURCE: frame[SOURCE_DATASET]})


def waterfall_from_splink(rows: list[Mapping[str, Any]]) -> Waterfall:
    """Splink's waterfall records of one pair (prior, each comparison and its tf adjustment, final) as Steps."""
    steps, final = [], None
    for row in rows:
        if row["column_name"] == "Final score":
            final = row["log2_bayes_factor"]
            continue
        if row["term_frequency_adjustment"] and not row["log2_bayes_factor"]:
            continue  # a comparison with tf adjustments whose level here has none: a zero bar
        steps.append(
            Step(
                row["column_name"],
                row["label_for_charts"],
                float(row["log2_bayes_factor"]),
                bool(row["term_frequency_adjustment"]),
            )
        )
    weight = float(final if final is not None else sum(s.match_weight for s in steps))
    return Waterfall(tuple(steps), weight, 2**weight / (1 + 2**weight))


class EvidenceModel:
    """Scores pairs of records held by the review store with the approved model, on DuckDB."""

    def __init__(self, model: Mapping[str, Any], records: Iterable[Mapping[str, Any]]) -> None:
        from splink import DuckDBAPI, Linker

        self.tf_columns = term_frequency_columns(model)
        frame = model_frame(records, self.tf_columns)
        self._db_api = DuckDBAPI()
        self._lock = threading.Lock()  # one DuckDB connection: one pair at a time
        tables = (
            [
                self._db_api.register(
                    part.reset_index(drop=True),
                    dataset_display_name=source,
                    table_name=f"review_input_{source}",
                )
                for source, part in frame.groupby(SOURCE_DATASET)
            ]
            if len(frame)
            else []
        )
        if not tables:  # Splink needs an input table; an empty queue still gets a working model
            tables = [
                self._db_api.register(frame.head(0), dataset_display_name="none", table_name="review_input")
            ]
        # Splink's waterfall reads each comparison's intermediate columns, which a link run need not keep.
        settings = {
            **model_for_duckdb(dict(model)),
            "retain_matching_columns": True,
            "retain_intermediate_calculation_columns": True,
        }
        self._linker = Linker(tables, settings)
        logging.getLogger("splink").setLevel(logging.WARNING)

    def waterfall(self, left: Mapping[str, Any], right: Mapping[str, Any]) -> Waterfall:
        pair = model_frame([left, right], self.tf_columns)
        with self._lock:
            scored = self._linker.inference.score_pair(pair.iloc[0].to_dict(), pair.iloc[1].to_dict())
            records = scored.as_record_list()
            chart = self._linker.visualisations.waterfall_chart(records, filter_nulls=False)
        return waterfall_from_splink(_chart_rows(chart))


def _chart_rows(chart: Any) -> list[Mapping[str, Any]]:
    """The data rows of Splink's waterfall chart spec."""
    spec = chart.chart_dict if hasattr(chart, "chart_dict") else chart.to_dict()
    data = spec.get("data", {})
    if isinstance(data, dict) and "values" in data:
        return data["values"]
    datasets = spec.get("datasets", {})
    return next(iter(datasets.values())) if datasets else []


def probability(weight: float) -> float:
    return 2**weight / (1 + 2**weight) if math.isfinite(weight) else float(weight > 0)
