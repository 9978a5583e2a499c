"""UK postcodes: 'LS1 4AB' form, sector 'LS1 4', district 'LS1', and a shape check.

Shape only (outward code A9, A99, AA9, AA99, A9A or AA9A; inward code 9AA): whether the
postcode exists needs the ONS postcode directory, which the project does not hold.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

UK_POSTCODE_SHAPE = r"^[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][A-Z]{2}$"


def postcode_spaced(col: Column) -> Column:
    """Upper case, spaces removed, then one space before the last three characters (not yet shape-checked)."""
    squashed = F.upper(F.regexp_replace(col, r"\s+", ""))
    return F.regexp_replace(squashed, r"^(.+)(.{3})$", "$1 $2")


def postcode_std(col: Column) -> Column:
    """Upper case with one space before the inward code; null when missing or not a UK postcode shape."""
    return postcode_std_of_spaced(postcode_spaced(col))


def postcode_std_of_spaced(spaced: Column) -> Column:
    """postcode_std given spaced = postcode_spaced(col): read twice, so best a column computed once."""
    return F.when(spaced.rlike(UK_POSTCODE_SHAPE), spaced)


def is_valid_postcode(col: Column) -> Column:
    """True when the supplied postcode has a UK shape, false when not, null when none was supplied."""
    return is_valid_spaced_postcode(col, postcode_spaced(col))


def is_valid_spaced_postcode(col: Column, spaced: Column) -> Column:
    """is_valid_postcode given spaced = postcode_spaced(col) already computed."""
    supplied = col.isNotNull() & (F.trim(col) != "")
    return F.when(supplied, F.coalesce(spaced.rlike(UK_POSTCODE_SHAPE), F.lit(False)))


def postcode_district(std_col: Column) -> Column:
    """Outward code of a standardised postcode: 'LS1 4AB' -> 'LS1'."""
    return F.substring_index(std_col, " ", 1)


def postcode_sector(std_col: Column) -> Column:
    """Outward code plus the first inward digit: 'LS1 4AB' -> 'LS1 4'."""
    return F.regexp_replace(std_col, r"[A-Z]{2}$", "")
