"""Dates: both supplied forms, impossible and future dates, placeholders, year-only births."""

from datetime import date

from chispa import assert_column_equality
from pyspark.sql import functions as F

from linkage.standardise.dates import (
    date_parse,
    date_problem,
    dob_is_placeholder,
    dob_is_valid,
    dob_parse,
    year_parse,
)

EARLIEST, LATEST = 1900, date(2026, 6, 30)


def test_date_parse_reads_both_forms_and_rejects_the_rest(spark):
    df = spark.createDataFrame(
        [
            ("1980-05-17", date(1980, 5, 17)),
            ("17/05/1980", date(1980, 5, 17)),
            (" 2020-02-29 ", date(2020, 2, 29)),  # leap day, surrounding spaces
            ("2021-02-29", None),  # no such day
            ("31/02/2019", None),
            ("1900-02-29", None),  # a century year that is not a leap year
            ("29/02/2000", date(2000, 2, 29)),  # one that is
            ("2023-04-31", None),  # a 30-day month
            ("2023-13-01", None),  # no month 13
            ("2023-00-10", None),  # no month 0
            ("2023-01-00", None),  # no day 0
            ("1980-5-17", None),  # not either shape
            ("17.05.1980", None),
            ("not known", None),
            (None, None),
        ],
        "raw string, expected date",
    )
    assert_column_equality(df.withColumn("actual", date_parse(F.col("raw"))), "actual", "expected")


def test_date_problem_names_the_reason_class(spark):
    df = spark.createDataFrame(
        [
            ("2020-01-01", None),
            ("not known", "unparseable_date"),
            ("00/00/0000", "impossible_date"),  # right shape, no such date
            ("2019-13-45", "impossible_date"),
            ("1899-12-31", "impossible_date"),  # before earliest_birth_year
            ("2026-06-30", None),  # the latest plausible day itself
            ("01/07/2026", "future_date"),
            ("", None),  # missing is not a problem here
            (None, None),
        ],
        "raw string, expected string",
    )
    actual = df.withColumn("actual", date_problem(F.col("raw"), EARLIEST, LATEST))
    assert_column_equality(actual, "actual", "expected")


def test_invalid_dob_becomes_null_with_a_flag(spark):
    df = spark.createDataFrame(
        [
            ("1980-01-01", date(1980, 1, 1), True, True),  # valid, and the 1 January placeholder
            ("02/01/1980", date(1980, 1, 2), True, False),
            ("31/02/1980", None, False, None),
            ("2099-01-01", None, False, None),  # future
            ("rubbish", None, False, None),
            (None, None, None, None),  # none supplied: no flag either way
        ],
        "raw string, dob date, is_valid boolean, is_placeholder boolean",
    )
    actual = (
        df.withColumn("actual_dob", dob_parse(F.col("raw"), EARLIEST, LATEST))
        .withColumn("actual_valid", dob_is_valid(F.col("raw"), EARLIEST, LATEST))
        .withColumn("actual_placeholder", dob_is_placeholder(F.col("actual_dob")))
    )
    assert_column_equality(actual, "actual_dob", "dob")
    assert_column_equality(actual, "actual_valid", "is_valid")
    assert_column_equality(actual, "actual_placeholder", "is_placeholder")


def test_year_of_birth_only_accepts_plausible_four_digit_years(spark):
    df = spark.createDataFrame(
        [
            ("1975", 1975),
            (" 1975 ", 1975),
            ("1850", None),
            ("2030", None),
            ("75", None),
            ("19x5", None),
            (None, None),
        ],
        "raw string, expected int",
    )
    assert_column_equality(
        df.withColumn("actual", year_parse(F.col("raw"), EARLIEST, LATEST)), "actual", "expected"
    )
