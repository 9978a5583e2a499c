"""Derived demographics, computed one way everywhere: age at a date, age bands, IMD quintile, "Unknown".

Pseudonymise (pseudonymised/person), cohorts (age at index, summaries), link QA (truth metrics
by group) and review sampling (pair groups) all derive these from the same columns; a second
copy of a rule drifts. Inside a computation a missing value is null; the "Unknown" label is
applied at the edge, where a table or a metric name needs a category for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from pyspark.sql import Column
from pyspark.sql import functions as F

UNKNOWN = "Unknown"
# A birth month not released or not known is taken as July: mid-year, so the age is off by at
# most one year either way, as often up as down.
UNKNOWN_BIRTH_MONTH = 7
# Lower bounds of pseudonymised/person's age bands (0-4, 5-10, ..., 85+): a table shape fixed by
# the PERSON contract, and the default of cohorts.age_band_starts so cohort summaries match it.
PERSON_AGE_BAND_STARTS = (0, 5, 11, 16, 18, 26, 35, 45, 55, 65, 75, 85)


def birth_date(year: Column, month: Column | None = None) -> Column:
    """The 1st of the birth month (July when the month is null or not given); null without a plausible year."""
    month = F.lit(UNKNOWN_BIRTH_MONTH) if month is None else F.coalesce(month, F.lit(UNKNOWN_BIRTH_MONTH))
    # try_to_timestamp, not make_date: an out-of-range year gives null instead of failing the job.
    text = F.format_string("%04d-%02d-01", year, month)
    return F.to_date(F.try_to_timestamp(text, F.lit("yyyy-MM-dd")))


def age_at(birth: Column, on: Column) -> Column:
    """Whole years completed on `on` (a 29 February birthday falls on 1 March in other years); null if either is."""
    had_birthday = (F.month(on) * 100 + F.dayofmonth(on)) >= (F.month(birth) * 100 + F.dayofmonth(birth))
    return (F.year(on) - F.year(birth) - F.when(had_birthday, 0).otherwise(1)).cast("int")


def age_in_year(birth_year: Column, year: int) -> Column:
    """Age in `year` when only the birth year is known: both dates taken mid-year, so `year - birth_year`."""
    return age_at(birth_date(birth_year), F.lit(date(year, UNKNOWN_BIRTH_MONTH, 1)))


def age_band_labels(starts: Sequence[int]) -> list[str]:
    """'0-4', '5-10', ..., '85+' for the lower bounds (0, 5, 11, ..., 85)."""
    bounds = sorted(starts)
    return [f"{low}-{high - 1}" for low, high in zip(bounds, bounds[1:], strict=False)] + [f"{bounds[-1]}+"]


def age_band(age: Column, starts: Sequence[int]) -> Column:
    """The band (age_band_labels) holding the age; null for a null age or one below the lowest bound."""
    bounds = sorted(starts)
    band = F.lit(None).cast("string")
    for low, label in zip(
        bounds, age_band_labels(bounds), strict=True
    ):  # ascending: the highest reached wins
        band = F.when(age >= low, F.lit(label)).otherwise(band)
    return band


def imd_quintile(decile: Column) -> Column:
    """IMD quintile 1-5 (1 = most deprived) from the decile: deciles 1-2 -> 1, ..., 9-10 -> 5."""
    return F.ceil(decile / 2).cast("int")


def known(value: Column) -> Column:
    """The value, or null where it is the "Unknown" label: a missing value for any choice or comparison."""
    return F.when(value != UNKNOWN, value)


def or_unknown(value: Column) -> Column:
    """The value as text, "Unknown" where it is null: the label a table or metric shows for a missing value."""
    return F.coalesce(value.cast("string"), F.lit(UNKNOWN))
