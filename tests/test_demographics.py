"""Derived demographics: age at a date, age bands, IMD quintile and the Unknown label."""

from __future__ import annotations

from datetime import date

from chispa import assert_df_equality
from pyspark.sql import functions as F

from linkage.demographics import (
    PERSON_AGE_BAND_STARTS,
    age_at,
    age_band,
    age_band_labels,
    age_in_year,
    birth_date,
    imd_quintile,
    known,
    or_unknown,
)
from linkage.link.qa import TRUTH_AGE_BAND_STARTS


def test_age_counts_whole_years_completed_on_the_date(spark):
    df = spark.createDataFrame(
        [(date(2009, 6, 30),), (date(2009, 7, 1),), (date(2008, 2, 29),), (None,)], "birth date"
    )
    got = df.select(
        "birth",
        age_at(F.col("birth"), F.lit(date(2026, 6, 30))).alias("age"),
        age_at(F.col("birth"), F.lit(date(2026, 2, 28))).alias("age_feb28"),
    )
    # 17th birthday on the day; one day short of it; a leap-day birthday is reached on 1 March only.
    expected = spark.createDataFrame(
        [
            (date(2009, 6, 30), 17, 16),
            (date(2009, 7, 1), 16, 16),
            (date(2008, 2, 29), 18, 17),
            (None, None, None),
        ],
        "birth date, age int, age_feb28 int",
    )
    assert_df_equality(got, expected, ignore_row_order=True)


def test_birth_date_is_the_first_of_the_month_and_july_when_the_month_is_unknown(spark):
    df = spark.createDataFrame([(1990, 3), (1990, None), (None, 3), (99999, 1)], "year int, month int")
    got = df.select("year", "month", birth_date(F.col("year"), F.col("month")).alias("birth"))
    # A five-digit year is no date: null, not a failed job.
    expected = spark.createDataFrame(
        [(1990, 3, date(1990, 3, 1)), (1990, None, date(1990, 7, 1)), (None, 3, None), (99999, 1, None)],
        "year int, month int, birth date",
    )
    assert_df_equality(got, expected, ignore_row_order=True)


def test_a_birthday_in_the_index_month_counts_as_passed(spark):
    # Only year and month of birth are released: born March 2000, on 1 March 2026 is 26, on 28 February 25.
    df = spark.createDataFrame([(2000, 3), (2000, None)], "year int, month int")
    born = birth_date(F.col("year"), F.col("month"))
    got = df.select(
        "year",
        "month",
        age_at(born, F.lit(date(2026, 3, 1))).alias("on_mar1"),
        age_at(born, F.lit(date(2026, 2, 28))).alias("on_feb28"),
    )
    # Unknown month = July: not yet 26 on either date.
    expected = spark.createDataFrame(
        [(2000, 3, 26, 25), (2000, None, 25, 25)], "year int, month int, on_mar1 int, on_feb28 int"
    )
    assert_df_equality(got, expected, ignore_row_order=True)


def test_age_in_a_year_is_the_difference_of_years(spark):
    df = spark.createDataFrame([(2010,), (1960,), (2026,), (None,)], "birth_year int")
    got = df.select("birth_year", age_in_year(F.col("birth_year"), 2026).alias("age"))
    expected = spark.createDataFrame(
        [(2010, 16), (1960, 66), (2026, 0), (None, None)], "birth_year int, age int"
    )
    assert_df_equality(got, expected, ignore_row_order=True)


def test_band_labels_run_from_each_start_to_the_next_minus_one():
    assert age_band_labels(PERSON_AGE_BAND_STARTS) == [
        "0-4",
        "5-10",
        "11-15",
        "16-17",
        "18-25",
        "26-34",
        "35-44",
        "45-54",
        "55-64",
        "65-74",
        "75-84",
        "85+",
    ]
    assert age_band_labels(TRUTH_AGE_BAND_STARTS) == ["0-15", "16-24", "25-44", "45-64", "65-79", "80+"]
    assert age_band_labels([16, 0, 65]) == ["0-15", "16-64", "65+"]  # order given does not matter


def test_age_bands_follow_the_starts_given(spark):
    ages = [0, 4, 5, 10, 11, 15, 16, 17, 18, 25, 26, 84, 85, 103, -1, None]
    df = spark.createDataFrame([(a,) for a in ages], "age int")
    got = df.select(
        "age",
        age_band(F.col("age"), PERSON_AGE_BAND_STARTS).alias("person"),
        age_band(F.col("age"), TRUTH_AGE_BAND_STARTS).alias("truth"),
    )
    person = [
        "0-4",
        "0-4",
        "5-10",
        "5-10",
        "11-15",
        "11-15",
        "16-17",
        "16-17",
        "18-25",
        "18-25",
        "26-34",
        "75-84",
        "85+",
        "85+",
        None,
        None,
    ]
    truth = ["0-15"] * 6 + ["16-24"] * 3 + ["25-44", "25-44", "80+", "80+", "80+", None, None]
    # A negative age (born after the date) is in no band.
    expected = spark.createDataFrame(
        list(zip(ages, person, truth, strict=True)), "age int, person string, truth string"
    )
    assert_df_equality(got, expected, ignore_row_order=True)


def test_imd_quintile_pairs_deciles(spark):
    df = spark.createDataFrame([(1,), (2,), (3,), (9,), (10,), (None,)], "decile int")
    got = df.select("decile", imd_quintile(F.col("decile")).alias("quintile"))
    expected = spark.createDataFrame(
        [(1, 1), (2, 1), (3, 2), (9, 5), (10, 5), (None, None)], "decile int, quintile int"
    )
    assert_df_equality(got, expected, ignore_row_order=True)


def test_unknown_is_null_inside_and_a_label_at_the_edge(spark):
    df = spark.createDataFrame([("Asian",), ("Unknown",), (None,)], "group string")
    got = df.select(
        "group",
        known(F.col("group")).alias("known"),
        or_unknown(known(F.col("group"))).alias("shown"),
        or_unknown(F.lit(3)).alias("number"),
    )
    expected = spark.createDataFrame(
        [("Asian", "Asian", "Asian", "3"), ("Unknown", None, "Unknown", "3"), (None, None, "Unknown", "3")],
        "group string, known string, shown string, number string",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
