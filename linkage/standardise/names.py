"""Names: upper case A-Z, diacritics and punctuation removed, parts kept, canonical and phonetic forms.

Spark has no unaccent function, so diacritics are removed with `F.translate` over a mapping
table of accented letters (the NFD decomposition of each letter, base letter kept); the few
letters that decompose to two letters (ß, Æ, Œ) are replaced first.
"""

from __future__ import annotations

import csv
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from linkage.errors import ConfigError

# Accented letter -> base letter, upper and lower case, Latin-1 and Latin Extended-A.
_ACCENTED = (
    "ÀÁÂÃÄÅĀĂĄàáâãäåāăą"
    "ÇĆĈĊČçćĉċč"
    "ĎĐÐďđð"
    "ÈÉÊËĒĔĖĘĚèéêëēĕėęě"
    "ĜĞĠĢĝğġģ"
    "ĤĦĥħ"
    "ÌÍÎÏĨĪĬĮİìíîïĩīĭįı"
    "Ĵĵ"
    "Ķķ"
    "ĹĻĽĿŁĺļľŀł"
    "ÑŃŅŇñńņň"
    "ÒÓÔÕÖØŌŎŐòóôõöøōŏő"
    "ŔŖŘŕŗř"
    "ŚŜŞŠśŝşš"
    "ŢŤŦţťŧ"
    "ÙÚÛÜŨŪŬŮŰŲùúûüũūŭůűų"
    "Ŵŵ"
    "ÝŸŶýÿŷ"
    "ŹŻŽźżž"
)
_BASE = (
    "AAAAAAAAAaaaaaaaaa"
    "CCCCCccccc"
    "DDDddd"
    "EEEEEEEEEeeeeeeeee"
    "GGGGgggg"
    "HHhh"
    "IIIIIIIIIiiiiiiiii"
    "Jj"
    "Kk"
    "LLLLLlllll"
    "NNNNnnnn"
    "OOOOOOOOOooooooooo"
    "RRRrrr"
    "SSSSssss"
    "TTTttt"
    "UUUUUUUUUUuuuuuuuuuu"
    "Ww"
    "YYYyyy"
    "ZZZzzz"
)
assert len(_ACCENTED) == len(_BASE), "diacritic mapping table must pair each letter with its base"

# Letters whose base form is two letters: translate maps one character to one.
_LIGATURES = {"ß": "SS", "Æ": "AE", "æ": "AE", "Œ": "OE", "œ": "OE", "Þ": "TH", "þ": "TH"}

# Apostrophes (straight ', typographic ’ ‘, backtick `, modifier ʼ) join the parts: O'Neill -> ONEILL. name_std
# drops them with every other character that is not a letter or a space, so they need no step of their own.
# Hyphens, dots, commas, slashes, underscores separate parts: Smith-Jones -> SMITH JONES.
_SEPARATORS = "-‐‑–—.,/_"

NICKNAME_KINDS = {"nickname": "forename", "transliteration": "forename", "surname_transliteration": "surname"}


def _without_ligatures(col: Column) -> Column:
    replaced = col
    for ligature, letters in _LIGATURES.items():
        replaced = F.replace(replaced, F.lit(ligature), F.lit(letters))
    return replaced


def strip_diacritics(col: Column) -> Column:
    """Replace accented letters by their base letter (Zoë -> Zoe) and ligatures by two letters."""
    return F.translate(_without_ligatures(col), _ACCENTED, _BASE)


def name_std(col: Column) -> Column:
    """Upper case A-Z and single spaces: diacritics removed, apostrophes dropped, hyphens to spaces; null if empty."""
    # One translate both strips diacritics and turns separators into spaces: a character-for-character map, far
    # cheaper per row than a regular expression (the two sets share no character, so the order does not matter).
    letters = F.upper(
        F.translate(_without_ligatures(col), _ACCENTED + _SEPARATORS, _BASE + " " * len(_SEPARATORS))
    )
    letters = F.regexp_replace(letters, r"[^A-Z\s]", "")
    # nullif reads the squashed name once; when(squashed != "", squashed) computed it twice per row.
    return F.nullif(F.trim(F.regexp_replace(letters, r"\s+", " ")), F.lit(""))


def name_parts(std_col: Column) -> Column:
    """Parts of a standardised name (hyphenated and double surnames); null when the name is null."""
    return F.split(std_col, " ")


def name_phonetic(std_col: Column) -> Column:
    """Soundex of a standardised name (native in Spark); null when the name is null."""
    return F.when(std_col.isNotNull(), F.soundex(std_col))


def read_nicknames(spark: SparkSession, path: str) -> DataFrame:
    """The variant -> canonical list (conf/names/nicknames.csv) as a small DataFrame, checked for clashes."""
    file = Path(path)
    if not file.exists():
        raise ConfigError(f"{path}: nickname list not found (ingest.nicknames_file)")
    rows: dict[tuple[str, str], str] = {}
    with file.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if set(reader.fieldnames or ()) != {"variant", "canonical", "kind", "source"}:
            raise ConfigError(f"{path}: header must be variant,canonical,kind,source")
        for line, row in enumerate(reader, start=2):
            kind = row["kind"].strip()
            if kind not in NICKNAME_KINDS:
                raise ConfigError(f"{path}: line {line}: kind must be one of {sorted(NICKNAME_KINDS)}")
            applies_to = NICKNAME_KINDS[kind]
            variant, canonical = _py_name_std(row["variant"]), _py_name_std(row["canonical"])
            if not variant or not canonical:
                raise ConfigError(f"{path}: line {line}: variant and canonical must both be names")
            key = (applies_to, variant)
            if rows.get(key, canonical) != canonical:
                # One variant must map to one canonical name, or the join would duplicate records.
                raise ConfigError(f"{path}: line {line}: variant listed twice with different canonical names")
            rows[key] = canonical
    return spark.createDataFrame(
        [(applies_to, variant, canonical) for (applies_to, variant), canonical in sorted(rows.items())],
        "applies_to string, variant string, canonical string",
    )


def _py_name_std(text: str) -> str:
    """The list is typed by people: standardise it the way name_std does (plain ASCII letters expected)."""
    cleaned = "".join(ch if ch.isalpha() or ch == " " else " " for ch in text.replace("'", "").upper())
    return " ".join(cleaned.split())


def with_canonical_name(
    df: DataFrame, std_column: str, canonical_column: str, nicknames_df: DataFrame, applies_to: str
) -> DataFrame:
    """Add `canonical_column`: the listed canonical form of `std_column`, or the name itself (broadcast join)."""
    mapping = F.broadcast(
        nicknames_df.where(F.col("applies_to") == applies_to).select(
            F.col("variant").alias("_variant"), F.col("canonical").alias("_canonical")
        )
    )
    joined = df.join(mapping, F.col(std_column) == F.col("_variant"), how="left")
    return joined.withColumn(canonical_column, F.coalesce("_canonical", std_column)).drop(
        "_variant", "_canonical"
    )
