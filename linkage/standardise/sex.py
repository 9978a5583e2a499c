"""Sex codes of each source -> M, F or null (unknown, not specified, other, or not a code we know).

Each source's declaration (linkage.sources) names its function here.

Other/unknown become null rather than a third value: linkage compares M/F only, and the raw
code is kept beside it.
"""

from __future__ import annotations

from itertools import chain

from pyspark.sql import Column
from pyspark.sql import functions as F

GP_CODES = {"M": "M", "F": "F"}  # U (unknown) -> null
HOSPITAL_CODES = {
    "1": "M",
    "2": "F",
}  # NHS Data Dictionary person stated gender: 9 not specified, 0 not known
SOCIAL_CARE_CODES = {
    # Current coding, then free text seen in older files.
    "MALE": "M",
    "FEMALE": "F",
    "M": "M",
    "F": "F",
    "MAN": "M",
    "WOMAN": "F",
    "BOY": "M",
    "GIRL": "F",
}


def _lookup(col: Column, codes: dict[str, str]) -> Column:
    mapping = F.create_map(*[F.lit(x) for x in chain.from_iterable(codes.items())])
    # try_element_at: a key that is not in the map gives null, never an error.
    return F.try_element_at(mapping, F.upper(F.trim(col)))


def sex_std_gp(col: Column) -> Column:
    """GP: M, F, U -> M, F, null."""
    return _lookup(col, GP_CODES)


def sex_std_hospital(col: Column) -> Column:
    """Hospital: 1 male, 2 female, 9 not specified, 0 not known -> M, F, null, null."""
    return _lookup(col, HOSPITAL_CODES)


def sex_std_social_care(col: Column) -> Column:
    """Social care: Male, Female, Other, Unknown and older free text (m, woman, ...) -> M, F or null."""
    return _lookup(col, SOCIAL_CARE_CODES)


def sex_std_third_sector(col: Column) -> Column:
    """Third sector files carry no sex: always null (kept for a uniform per-source interface)."""
    return F.lit(None).cast("string")
