"""Quarantine rules: one reason per row, in a fixed order; every copy of a duplicated id; closed code sets."""

from datetime import date

from chispa import assert_column_equality, assert_df_equality
from pyspark.sql import functions as F

from linkage import sources
from linkage.ingest.rules import DateRules, closed_code, with_reason
from linkage.ingest.stage import raw_line_of_quarantined_only

RULES = DateRules(1900, date(2026, 6, 30))


def test_each_row_gets_the_first_reason_that_applies(spark):
    columns = sources.get("hospital").activity.fields
    rows = [
        # line, malformed, episode_id, person id, setting, start_date, end_date -> expected reason, detail
        (2, False, "E1", "H1", "APC", "2020-01-01", None, None, None),
        (3, True, None, None, None, None, None, "malformed_row", "field count or quoting"),
        (
            4,
            False,
            None,
            "H1",
            "XX",
            "soon",
            None,
            "missing_mandatory_id",
            "episode_id",
        ),  # id before date/code
        (5, False, "E5", "H1", "XX", "soon", None, "unparseable_date", "start_date"),  # date before code
        (6, False, "E6", "H1", "op", "2020-01-01", "2020-02-30", "impossible_date", "end_date"),
        (7, False, "E7", "H1", "AE", None, None, "unparseable_date", "start_date (missing)"),
        (8, False, "E8", "H1", "XX", "2020-01-01", None, "unknown_code", "setting"),
        (9, False, "E9", "H1", "OP", "2020-01-01", "2027-01-01", "future_date", "end_date"),
        (10, False, "E10", "H1", "OP", "2020-01-01", None, "duplicate_id", "episode_id"),  # every copy,
        (11, False, " E10 ", "H2", "OP", "2020-01-01", None, "duplicate_id", "episode_id"),  # ids trimmed
    ]
    df = spark.createDataFrame(
        [(*row[:7], *([None] * (len(columns) - 5)), *row[7:]) for row in rows],
        "line_number long, is_malformed boolean, episode_id string, hospital_patient_id string, setting string, "
        "start_date string, end_date string, "
        + ", ".join(f"{name} string" for name in columns[5:])
        + ", expected_code string, expected_detail string",
    )
    actual = with_reason(df, sources.get("hospital").activity, RULES)
    assert_column_equality(actual, "reason_code", "expected_code")
    assert_column_equality(actual, "reason_detail", "expected_detail")


def test_closed_code_returns_the_canonical_spelling_or_null(spark):
    allowed = ("Service User", "Carer")
    df = spark.createDataFrame(
        [
            ("service  user", "Service User"),
            ("CARER", "Carer"),
            ("Cared for", None),
            ("", None),
            (None, None),
        ],
        "raw string, expected string",
    )
    assert_column_equality(df.withColumn("actual", closed_code(F.col("raw"), allowed)), "actual", "expected")


def test_only_quarantined_rows_keep_their_raw_line_for_the_cache(spark):
    classified = spark.createDataFrame(
        [(2, "line two", None), (3, "line three", "malformed_row"), (4, "line four", "duplicate_id")],
        "line_number long, raw_line string, reason_code string",
    )
    expected = spark.createDataFrame(
        [(2, None, None), (3, "line three", "malformed_row"), (4, "line four", "duplicate_id")],
        "line_number long, raw_line string, reason_code string",
    )
    assert_df_equality(raw_line_of_quarantined_only(classified), expected, ignore_nullable=True)


def test_third_sector_client_refs_are_unique_per_organisation(spark):
    # The same client ref at two organisations is two people; twice at one organisation is a duplicate.
    df = spark.createDataFrame(
        [
            (2, False, "R1", "Org A"),
            (3, False, "R1", "Org B"),
            (4, False, "R1", "Org A"),
            (5, False, "R2", None),
        ],
        "line_number long, is_malformed boolean, org_client_ref string, organisation string",
    )
    for name in sources.get("third_sector").people.fields[2:]:
        df = df.withColumn(name, F.lit(None).cast("string"))
    actual = with_reason(df, sources.get("third_sector").people, RULES).select("line_number", "reason_code")
    expected = spark.createDataFrame(
        [(2, "duplicate_id"), (3, None), (4, "duplicate_id"), (5, "missing_mandatory_id")],
        "line_number long, reason_code string",
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
