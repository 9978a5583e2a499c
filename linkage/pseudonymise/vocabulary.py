"""Free-text activity fields reach the pseudonymised zone only as values of a controlled vocabulary.

A source's `contact_reason` or `service_type` is typed by a person: it can hold a note such as
"daughter Jane O'Neill called". Only values listed in conf/vocabularies/<field>.csv are
published (in the listed spelling); any other supplied value becomes `Other` and is counted.
Which fields are free text is part of each source's declaration (linkage.sources).
"""

from __future__ import annotations

import csv
from pathlib import Path

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from linkage import sources
from linkage.errors import ConfigError
from linkage.ingest.rules import closed_code

OTHER = "Other"


def read_vocabularies(folder: str | Path) -> dict[str, tuple[str, ...]]:
    """Field -> allowed values, from <folder>/<field>.csv (a `value` column); ConfigError naming a missing file."""
    vocabularies = {}
    for field in sources.free_text_fields():
        path = Path(folder) / f"{field}.csv"
        if not path.exists():
            raise ConfigError(
                f"{path}: controlled vocabulary of '{field}' not found (pseudonymise.vocabularies)"
            )
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.DictReader(handle))
        if rows and "value" not in rows[0]:
            raise ConfigError(f"{path}: needs a 'value' column")
        vocabularies[field] = tuple(row["value"].strip() for row in rows if row["value"].strip())
    return vocabularies


def controlled(col: Column, allowed: tuple[str, ...]) -> Column:
    """The listed spelling of an allowed value; `Other` for any other supplied value; null stays null."""
    return F.when(col.isNotNull() & (F.trim(col) != ""), F.coalesce(closed_code(col, allowed), F.lit(OTHER)))


def with_controlled_vocabulary(
    df: DataFrame, fields: tuple[str, ...], vocabularies: dict[str, tuple[str, ...]]
) -> DataFrame:
    for field in fields:
        df = df.withColumn(field, controlled(F.col(field), vocabularies[field]))
    return df


def other_counts(df: DataFrame, table: str, fields: tuple[str, ...]) -> dict[str, int]:
    """Rows published as `Other`, per field (one aggregate query)."""
    if not fields:
        return {}
    row = df.agg(*[F.count_if(F.col(field) == OTHER).alias(field) for field in fields]).first()
    return {f"vocabulary_other.{table}.{field}": int(row[field] or 0) for field in fields}
