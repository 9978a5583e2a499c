"""Activity files -> rows of restricted/<source>_activity_std (accepted rows only; see rules.py for quarantine).

Each standardiser takes the accepted rows and the source's declaration (linkage.sources), which
names it; it returns the columns of the declaration's activity_std contract, in order (without
run_id). A source whose activity needs nothing special uses `standardise_by_contract`.

Activity rows whose person id is not in the people file are kept: the person may have been
quarantined (e.g. a duplicated id) or the files cut at slightly different times, and
dropping the activity would lose it for good. They are counted (`orphan_rows`) and simply
find no person when the linkage spine is joined.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from linkage.ingest.rules import closed_code
from linkage.standardise.dates import date_parse

if TYPE_CHECKING:
    from linkage.sources import SourceDeclaration


def icd10_std(col: Column) -> Column:
    """ICD-10 code upper case without the dot or spaces ('j45.9' -> 'J459'); null when empty."""
    code = F.upper(F.regexp_replace(col, r"[.\s]", ""))
    return F.when(code != "", code)


def icd10_list_std(col: Column) -> Column:
    """'|'-separated ICD-10 codes -> array of standardised codes (empty array when none)."""
    parts = F.split(F.coalesce(col, F.lit("")), r"\|")
    return F.filter(F.transform(parts, icd10_std), lambda code: code.isNotNull())


def _trimmed(name: str) -> Column:
    return F.trim(F.col(name)).alias(name)


def _code(source: SourceDeclaration, name: str) -> Column:
    return closed_code(F.col(name), source.activity.closed_codes[name]).alias(name)


def _date(name: str) -> Column:
    return date_parse(F.col(name)).alias(name)


def _key(source: SourceDeclaration) -> list[Column]:
    return [F.lit(source.name).alias("source_dataset"), source.record_id().alias("source_record_id")]


def standardise_gp_activity(df: DataFrame, source: SourceDeclaration) -> DataFrame:
    return df.select(
        *_key(source),
        _date("event_date"),
        _code(source, "code_system"),
        _trimmed("code"),
        F.trim(F.col("value")).try_cast("double").alias("value"),
    )


def standardise_hospital_activity(df: DataFrame, source: SourceDeclaration) -> DataFrame:
    return df.select(
        _trimmed("episode_id"),
        *_key(source),
        _code(source, "setting"),
        _date("start_date"),
        _date("end_date"),
        _trimmed("admission_method"),
        icd10_std(F.col("primary_diagnosis")).alias("primary_diagnosis"),
        icd10_list_std(F.col("secondary_diagnoses")).alias("secondary_diagnoses"),
        _trimmed("treatment_specialty"),
        F.upper(F.trim(F.col("referral_source"))).alias("referral_source"),
    )


def standardise_social_care_activity(df: DataFrame, source: SourceDeclaration) -> DataFrame:
    return df.select(
        _trimmed("event_id"),
        *_key(source),
        _code(source, "client_type"),
        _code(source, "event_type"),
        _trimmed("service_type"),
        _trimmed("primary_support_reason"),
        _date("start_date"),
        _date("end_date"),
    )


def standardise_third_sector_activity(df: DataFrame, source: SourceDeclaration) -> DataFrame:
    return df.select(
        _trimmed("contact_id"),
        *_key(source),
        _trimmed("organisation"),
        _date("contact_date"),
        _trimmed("contact_reason"),
        (closed_code(F.col("unpaid_carer"), ("Y", "N")) == "Y").alias("unpaid_carer"),
    )


def standardise_by_contract(df: DataFrame, source: SourceDeclaration) -> DataFrame:
    """The generic standardiser: each column of the activity_std contract, in order, from the accepted rows.

    source_dataset and source_record_id are the key; a date column is parsed; a closed-code field takes
    its canonical spelling; any other field is trimmed text cast to the contract's type.
    """
    columns = []
    for column in source.activity_std.columns:
        if column.name == "run_id":
            continue
        if column.name == "source_dataset":
            columns.append(F.lit(source.name).alias("source_dataset"))
        elif column.name == "source_record_id":
            columns.append(source.record_id().alias("source_record_id"))
        elif column.type == "date":
            columns.append(_date(column.name))
        elif column.name in source.activity.closed_codes:
            columns.append(_code(source, column.name))
        elif column.type == "string":
            columns.append(_trimmed(column.name))
        else:
            columns.append(F.trim(F.col(column.name)).try_cast(column.type).alias(column.name))
    return df.select(*columns)
