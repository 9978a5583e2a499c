"""Tiny hand-built pseudonymised tables for the cohort tests (person ids p1, p2, ... are not HMACs)."""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame, SparkSession

from linkage import sources

TABLES = {contract.name: contract for contract in sources.pseudonymised_tables()}


def frame(spark: SparkSession, table: str, rows: list[dict]) -> DataFrame:
    """A table of the contract's schema; columns a row leaves out are null."""
    contract = TABLES[table]
    return spark.createDataFrame(
        [tuple(row.get(name) for name in contract.column_names) for row in rows], contract.schema
    )


def person(
    person_id: str,
    year: int | None,
    month: int | None = 1,
    sex: str | None = "F",
    ethnic_group: str | None = "White",
    imd_decile: int | None = 3,
) -> dict:
    return {
        "person_id": person_id,
        "year_of_birth": year,
        "month_of_birth": month,
        "sex": sex,
        "ethnic_group": ethnic_group,
        "imd_decile": imd_decile,
        "run_id": "test",
    }


def gp(person_id: str, when: date | None, code: str, code_system: str = "SNOMED") -> dict:
    return {
        "person_id": person_id,
        "event_date": when,
        "code": code,
        "code_system": code_system,
        "run_id": "test",
    }


def tables(
    spark: SparkSession, people: list[dict], gp_events=(), hospital=(), social_care=(), third_sector=()
):
    """All five inputs by table name, as build_cohort takes them."""
    return {
        "person": frame(spark, "person", people),
        "gp_events": frame(spark, "gp_events", list(gp_events)),
        "hospital_episodes": frame(spark, "hospital_episodes", list(hospital)),
        "social_care_events": frame(spark, "social_care_events", list(social_care)),
        "third_sector_contacts": frame(spark, "third_sector_contacts", list(third_sector)),
    }
