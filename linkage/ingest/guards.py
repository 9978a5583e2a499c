"""Refuse an extract that would silently empty a source: checked after counting, before any table is written.

A people file that is empty, holds only its header, or yields no accepted row, for a source whose
people the previous run did ingest, is far more often a failed export than a service that closed:
writing it would drop every one of those people from the spine and the cohorts.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from pyspark.sql import SparkSession

from linkage.errors import InputError
from linkage.lake import read_table, table_exists
from linkage.schemas import PEOPLE_STD


def previous_people_counts(spark: SparkSession, lake: str) -> dict[str, int]:
    """People records per source in the last written people_std ({} before the first run)."""
    if not table_exists(spark, lake, PEOPLE_STD):
        return {}
    rows = read_table(spark, lake, PEOPLE_STD).groupBy("source_dataset").count().collect()
    return {row["source_dataset"]: int(row["count"]) for row in rows}


def emptied_sources(
    accepted_now: Mapping[str, int], previous: Mapping[str, int], allowed: Collection[str]
) -> list[str]:
    """Sources with no accepted people row now that had rows last time and are not allowed to be empty. Pure."""
    return sorted(
        source
        for source, now in accepted_now.items()
        if now == 0 and previous.get(source, 0) > 0 and source not in allowed
    )


def refuse_emptied_sources(
    accepted_now: Mapping[str, int],
    files: Mapping[str, str],
    previous: Mapping[str, int],
    allowed: Collection[str],
) -> None:
    """InputError (exit 2) naming each emptied source's people file; nothing is written after it."""
    emptied = emptied_sources(accepted_now, previous, allowed)
    if emptied:
        described = "; ".join(
            f"{files[source]} gives no people rows but the previous run had {previous[source]}"
            for source in emptied
        )
        raise InputError(
            f"{described}: an empty, header-only or unreadable people file is refused so a failed "
            f"export cannot empty a source. If the source really has no records now, set "
            f"ingest.allow_empty_sources=[{', '.join(emptied)}]"
        )
