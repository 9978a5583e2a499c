"""Activity files -> rows of restricted/<source>_activity_std (accepted rows only; see rules.py for quarantine).

Activity rows whose person id is not in the people file are kept: the person may have been
quarantined (e.g. a duplicated id) or the files cut at slightly different times, and
dropping the activity would lose it for good. They are counted (`orphan_rows`) and simply
find no person when the linkage spine is joined.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from linkage.ingest.fields import ACTIVITY
from linkage.ingest.people import source_record_id
from linkage.ingest.rules import closed_code
from linkage.standardise.dates import date_parse


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


def _code(source: str, name: str) -> Column:
    return closed_code(F.col(name), ACTIVITY[source].closed_codes[name]).alias(name)


def _date(name: str) -> Column:
    return date_parse(F.col(name)).alias(name)


def _key(source: str) -> list[Column]:
    return [F.lit(source).alias("source_dataset"), source_record_id(source).alias("source_record_id")]


def standardise_gp_activity(df: DataFrame) -> DataFrame:
    return df.select(
        *_key("gp"), _date("event_date"), _code("gp", "code_system"), _trimmed("code"),
        F.trim(F.col("value")).try_cast("double").alias("value"),
    )


def standardise_hospital_activity(df: DataFrame) -> DataFrame:
    return df.select(
        _trimmed("episode_id"), *_key("hospital"), _code("hospital", "setting"),
        _date("start_date"), _date("end_date"), _trimmed("admission_method"),
        icd10_std(F.col("primary_diagnosis")).alias("primary_diagnosis"),
        icd10_list_std(F.col("secondary_diagnoses")).alias("secondary_diagnoses"),
        _trimmed("treatment_specialty"), F.upper(F.trim(F.col("referral_source"))).alias("referral_source"),
    )


def standardise_social_care_activity(df: DataFrame) -> DataFrame:
    return df.select(
        _trimmed("event_id"), *_key("social_care"), _code("social_care", "client_type"),
        _code("social_care", "event_type"), _trimmed("service_type"), _trimmed("primary_support_reason"),
        _date("start_date"), _date("end_date"),
    )


def standardise_third_sector_activity(df: DataFrame) -> DataFrame:
    return df.select(
        _trimmed("contact_id"), *_key("third_sector"), _trimmed("organisation"), _date("contact_date"),
        _trimmed("contact_reason"),
        (closed_code(F.col("unpaid_carer"), ("Y", "N")) == "Y").alias("unpaid_carer"),
    )


STANDARDISE_ACTIVITY = {
    "gp": standardise_gp_activity,
    "hospital": standardise_hospital_activity,
    "social_care": standardise_social_care_activity,
    "third_sector": standardise_third_sector_activity,
}
