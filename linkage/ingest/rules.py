"""Which rows are quarantined, and why: one reason per row, the first that applies in a fixed order.

Order: encoding_error, malformed_row, missing_mandatory_id, duplicate_id, unparseable_date, impossible_date,
future_date, unknown_code. A duplicated id quarantines every copy: with two rows under one
local id there is no telling which one the source's activity rows mean, and keeping the
first would make the result depend on file order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from linkage.ingest.fields import FileFields
from linkage.standardise.dates import date_iso_text, date_problem_of, iso_text_date

ENCODING_ERROR = "encoding_error"
MALFORMED_ROW = "malformed_row"
# Spark reads text as bytes: a line that is not valid UTF-8 fails is_valid_utf8; one decoded upstream with
# replacement characters has lost its values already. Either way its values cannot be trusted.
REPLACEMENT_CHARACTER = "\ufffd"
MISSING_MANDATORY_ID = "missing_mandatory_id"
DUPLICATE_ID = "duplicate_id"
UNPARSEABLE_DATE = "unparseable_date"
UNKNOWN_CODE = "unknown_code"
REASON_CODES = (
    ENCODING_ERROR,
    MALFORMED_ROW,
    MISSING_MANDATORY_ID,
    DUPLICATE_ID,
    UNPARSEABLE_DATE,
    "impossible_date",
    "future_date",
    UNKNOWN_CODE,
)


@dataclass(frozen=True)
class DateRules:
    """Plausible dates: not before 1 January of `earliest_year`, not after `latest` (run date + allowance)."""

    earliest_year: int
    latest: date


def _reason(code: str | Column, detail: str) -> Column:
    code_col = F.lit(code) if isinstance(code, str) else code
    return F.struct(code_col.alias("reason_code"), F.lit(detail).alias("reason_detail"))


def closed_code(col: Column, allowed: tuple[str, ...]) -> Column:
    """The allowed value in its canonical spelling, matched ignoring case and spacing; null when not allowed."""
    key = F.upper(F.regexp_replace(F.trim(col), r"\s+", " "))
    result = F.lit(None).cast("string")
    for value in reversed(allowed):
        result = F.when(key == value.upper(), F.lit(value)).otherwise(result)
    return result


def with_reason(df: DataFrame, rules: FileFields, dates: DateRules) -> DataFrame:
    """Add `reason_code` and `reason_detail` (null for rows that are accepted). Details name columns, never values."""
    checks: list[Column] = []
    if "raw_line" in df.columns:
        checks.append(
            F.when(
                ~F.is_valid_utf8("raw_line") | F.col("raw_line").contains(REPLACEMENT_CHARACTER),
                _reason(ENCODING_ERROR, "not valid UTF-8"),
            )
        )
    checks.append(F.when(F.col("is_malformed"), _reason(MALFORMED_ROW, "field count or quoting")))
    for name in rules.mandatory_ids:
        checks.append(F.when(F.col(name).isNull(), _reason(MISSING_MANDATORY_ID, name)))
    if rules.unique_key:
        key_present = ~F.col("is_malformed")
        for name in rules.unique_key:
            key_present = key_present & F.col(name).isNotNull()
        copies = F.count(F.lit(1)).over(
            Window.partitionBy(*[F.trim(F.col(n)) for n in rules.unique_key], key_present)
        )
        checks.append(F.when(key_present & (copies > 1), _reason(DUPLICATE_ID, "+".join(rules.unique_key))))
    for name in rules.mandatory_dates:
        checks.append(F.when(F.col(name).isNull(), _reason(UNPARSEABLE_DATE, f"{name} (missing)")))
    # Each date's ISO text and parsed value are columns computed once (dropped below): the problem reads them
    # several times, and nested in when() each read ran the regexes and the parse again.
    date_columns = {}
    for name in (*rules.mandatory_dates, *rules.optional_dates):
        iso_text, parsed = f"_iso_text_{name}", f"_parsed_{name}"
        date_columns[iso_text] = date_iso_text(F.col(name))
        date_columns[parsed] = iso_text_date(F.col(iso_text))
        problem = date_problem_of(
            F.col(name), F.col(iso_text), F.col(parsed), dates.earliest_year, dates.latest
        )
        checks.append(F.when(problem.isNotNull(), _reason(problem, name)))
    for name, allowed in rules.closed_codes.items():
        supplied = F.col(name).isNotNull()
        bad = supplied & closed_code(F.col(name), allowed).isNull()
        if name not in rules.optional_codes:
            bad = bad | ~supplied
        checks.append(F.when(bad, _reason(UNKNOWN_CODE, name)))
    reason = F.coalesce(*checks)
    for name, column in date_columns.items():  # in order: a parsed value reads its ISO text
        df = df.withColumn(name, column)
    return (
        df.withColumn("_reason", reason)
        .withColumn("reason_code", F.col("_reason.reason_code"))
        .withColumn("reason_detail", F.col("_reason.reason_detail"))
        .drop("_reason", *date_columns)
    )


def quarantine_rows(df: DataFrame, source: str, file_name: str) -> DataFrame:
    """The quarantined rows in the quarantine table's shape (run_id added at write)."""
    return df.where(F.col("reason_code").isNotNull()).select(
        F.lit(source).alias("source_dataset"),
        F.lit(file_name).alias("source_file"),
        "line_number",
        "reason_code",
        "reason_detail",
        "raw_line",
    )


def accepted_rows(df: DataFrame) -> DataFrame:
    return df.where(F.col("reason_code").isNull()).drop("reason_code", "reason_detail")
