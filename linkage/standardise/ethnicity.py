"""Ethnicity -> NHS ethnic category code (A..S, Z not stated, 99 not known) and five groups.

Codes are the NHS Data Dictionary 'ethnic category' (2001 census) values; free text is
matched on its letters only (case, punctuation and spacing ignored), using the category
labels and the short forms seen in local authority files.
"""

from __future__ import annotations

from itertools import chain

from pyspark.sql import Column
from pyspark.sql import functions as F

from linkage.demographics import or_unknown

CODES = ("A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "R", "S", "Z", "99")

GROUPS = {
    "A": "White",
    "B": "White",
    "C": "White",
    "D": "Mixed",
    "E": "Mixed",
    "F": "Mixed",
    "G": "Mixed",
    "H": "Asian",
    "J": "Asian",
    "K": "Asian",
    "L": "Asian",
    "M": "Black",
    "N": "Black",
    "P": "Black",
    "R": "Other",
    "S": "Other",
}

# Free text (letters only, upper case, single spaces) -> code.
FREE_TEXT = {
    "WHITE BRITISH": "A",
    "BRITISH": "A",
    "WHITE ENGLISH": "A",
    "WHITE SCOTTISH": "A",
    "WHITE WELSH": "A",
    "WHITE IRISH": "B",
    "IRISH": "B",
    "WHITE OTHER": "C",
    "ANY OTHER WHITE BACKGROUND": "C",
    "OTHER WHITE": "C",
    "WHITE ANY OTHER WHITE BACKGROUND": "C",
    "WHITE AND BLACK CARIBBEAN": "D",
    "MIXED WHITE AND BLACK CARIBBEAN": "D",
    "WHITE AND BLACK AFRICAN": "E",
    "MIXED WHITE AND BLACK AFRICAN": "E",
    "WHITE AND ASIAN": "F",
    "MIXED WHITE AND ASIAN": "F",
    "ANY OTHER MIXED BACKGROUND": "G",
    "MIXED OTHER": "G",
    "OTHER MIXED": "G",
    "MIXED": "G",
    "MIXED ANY OTHER MIXED BACKGROUND": "G",
    "INDIAN": "H",
    "ASIAN INDIAN": "H",
    "ASIAN OR ASIAN BRITISH INDIAN": "H",
    "BRITISH INDIAN": "H",
    "PAKISTANI": "J",
    "ASIAN PAKISTANI": "J",
    "ASIAN OR ASIAN BRITISH PAKISTANI": "J",
    "BRITISH PAKISTANI": "J",
    "BANGLADESHI": "K",
    "ASIAN BANGLADESHI": "K",
    "ASIAN OR ASIAN BRITISH BANGLADESHI": "K",
    "BRITISH BANGLADESHI": "K",
    "ANY OTHER ASIAN BACKGROUND": "L",
    "ASIAN OTHER": "L",
    "OTHER ASIAN": "L",
    "ASIAN OR ASIAN BRITISH ANY OTHER ASIAN BACKGROUND": "L",
    "CARIBBEAN": "M",
    "BLACK CARIBBEAN": "M",
    "BLACK OR BLACK BRITISH CARIBBEAN": "M",
    "AFRICAN": "N",
    "BLACK AFRICAN": "N",
    "BLACK OR BLACK BRITISH AFRICAN": "N",
    "ANY OTHER BLACK BACKGROUND": "P",
    "BLACK OTHER": "P",
    "OTHER BLACK": "P",
    "BLACK OR BLACK BRITISH ANY OTHER BLACK BACKGROUND": "P",
    "CHINESE": "R",
    "OTHER ETHNIC GROUPS CHINESE": "R",
    "OTHER ETHNIC GROUP CHINESE": "R",
    "ANY OTHER ETHNIC GROUP": "S",
    "OTHER ETHNIC GROUP": "S",
    "OTHER": "S",
    "OTHER ETHNIC GROUPS ANY OTHER ETHNIC GROUP": "S",
    "NOT STATED": "Z",
    "DECLINED": "Z",
    "REFUSED": "Z",
    "PREFER NOT TO SAY": "Z",
    "NOT DISCLOSED": "Z",
    "NOT KNOWN": "99",
    "UNKNOWN": "99",
}


def _letters(col: Column) -> Column:
    """Upper case letters and digits with single spaces: 'White - British' -> 'WHITE BRITISH'."""
    spaced = F.regexp_replace(F.upper(F.trim(col)), r"[^A-Z0-9]+", " ")
    return F.trim(spaced)


def _map_of(items: dict[str, str]) -> Column:
    return F.create_map(*[F.lit(x) for x in chain.from_iterable(items.items())])


def ethnicity_code(col: Column) -> Column:
    """NHS ethnic category code from a code or free text; null when missing or not recognised."""
    text = _letters(col)
    as_code = F.when(text.isin(*CODES), text)
    return F.coalesce(as_code, F.try_element_at(_map_of(FREE_TEXT), text))


def ethnic_group(code_col: Column) -> Column:
    """White (A-C), Mixed (D-G), Asian (H-L), Black (M-P), Other (R-S); Unknown for Z, 99 or no code."""
    return or_unknown(F.try_element_at(_map_of(GROUPS), code_col))
