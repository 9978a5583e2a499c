"""The model's fixed corrections, evaluated by Spark on hand-built record pairs."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F
from splink.backends.spark import SparkAPI

from linkage.link import settings

PAIR_COLUMNS = ("forename_std", "forename_phonetic", "surname_std", "postcode_std", "nhs_number")
PAIR_SCHEMA = ", ".join(f"{c}_{side} string" for c in PAIR_COLUMNS for side in "lr") + ", case string"


def level_labels(comparison_dict: dict) -> list[tuple[str, str]]:
    """(SQL condition, label) of each level, in the order Splink tries them."""
    return [
        (level["sql_condition"], level.get("label_for_charts", "null"))
        for level in comparison_dict["comparison_levels"]
    ]


def first_level(levels: list[tuple[str, str]]):
    """The label of the first level whose condition holds, as Splink's CASE statement picks it."""
    expression = F.lit(None).cast("string")
    for condition, label in reversed(levels):
        holds = F.lit(True) if condition.strip().upper() == "ELSE" else F.expr(condition)
        expression = F.when(holds, F.lit(label)).otherwise(expression)
    return expression


@pytest.fixture(scope="module")
def spark_with_splink_functions(spark):
    SparkAPI(spark_session=spark)  # registers jaro_winkler and Splink's other similarity functions
    return spark


def test_family_correction_fires_for_twins_and_siblings_only(spark_with_splink_functions):
    spark = spark_with_splink_functions

    def pair(f, fp, s, pc, nhs, case):
        return (*f, *fp, *s, *pc, *nhs, case)

    rows = [
        pair(
            ("AMELIA", "GRACE"),
            ("A54", "G62"),
            ("KHAN", "KHAN"),
            ("E1 6AN", "E1 6AN"),
            (None, None),
            "twins, no NHS numbers",
        ),
        pair(
            ("OMAR", "ZAINAB"),
            ("O56", "Z515"),
            ("ALI", "ALI"),
            ("N1 9GU", "M1 1AE"),
            ("9434765919", "4010232137"),
            "siblings, different numbers, moved",
        ),
        pair(
            ("JON", "JOHN"),
            ("J5", "J5"),
            ("SMITH", "SMITH"),
            ("E1 6AN", "E1 6AN"),
            ("9434765919", "4010232137"),
            "same person, a relative's number, forename alike",
        ),
        pair(
            ("SMITH", "JOHN"),
            ("S53", "J5"),
            ("JOHN", "SMITH"),
            ("E1 6AN", "E1 6AN"),
            (None, None),
            "same person, names swapped",
        ),
        pair(
            ("AMELIA", "GRACE"),
            ("A54", "G62"),
            ("KHAN", "JONES"),
            ("E1 6AN", "N1 9GU"),
            (None, None),
            "strangers: ordinary weights, no correction",
        ),
    ]
    pairs = spark.createDataFrame(rows, PAIR_SCHEMA)
    family = settings.with_corrections({"comparisons": []})["comparisons"][0]
    found = {
        row["case"]: row["level"]
        for row in pairs.select("case", first_level(level_labels(family)).alias("level")).collect()
    }
    correction, none = family["comparison_levels"][1]["label_for_charts"], "no correction"
    assert found == {
        "twins, no NHS numbers": correction,
        "siblings, different numbers, moved": correction,
        "same person, a relative's number, forename alike": none,
        "same person, names swapped": none,
        "strangers: ordinary weights, no correction": none,
    }


def test_corrections_are_fixed_and_added_once():
    family = settings.with_corrections({"comparisons": []})["comparisons"]
    twice = settings.with_corrections({"comparisons": family})["comparisons"]
    assert [c["output_column_name"] for c in twice] == ["family", "relatives"]
    correction = family[0]["comparison_levels"][1]
    assert correction["m_probability"] / correction["u_probability"] == 2**settings.FAMILY_CORRECTION_BITS
    assert correction["fix_m_probability"] and correction["fix_u_probability"]


def test_a_name_swap_is_weighed_once_in_the_forename_comparison():
    comparisons = [c.get_comparison("spark").as_dict() for c in settings.COMPARISONS]
    surname = next(c for c in comparisons if c["output_column_name"] == "surname")
    swapped = next(
        level for level in surname["comparison_levels"] if "swapped" in level.get("label_for_charts", "")
    )
    assert swapped["m_probability"] == swapped["u_probability"]
    assert swapped["fix_m_probability"] and swapped["fix_u_probability"]


def test_exact_1_january_date_has_a_fixed_small_u():
    # Random sampling never sees this level; Splink's default u (0.23) would make an exact 1 January date of birth
    # count against a match.
    comparisons = [c.get_comparison("spark").as_dict() for c in settings.COMPARISONS]
    dob = next(c for c in comparisons if c["output_column_name"] == "date_of_birth")
    first_january = next(
        level for level in dob["comparison_levels"] if level.get("label_for_charts") == "exact, 1 January"
    )
    assert first_january["fix_u_probability"] and first_january["u_probability"] < 1e-5


RELATIVE_COLUMNS = ("forename_std", "surname_std", "postcode_std", "nhs_number", "date_of_birth")
RELATIVE_SCHEMA = (
    ", ".join(
        f"{c}_{side} {'date' if c == 'date_of_birth' else 'string'}"
        for c in RELATIVE_COLUMNS
        for side in "lr"
    )
    + ", case string"
)


def test_relatives_correction_levels_on_hand_built_pairs(spark_with_splink_functions):
    from datetime import date

    spark = spark_with_splink_functions

    def pair(f, s, pc, nhs, dob, case):
        return (*f, *s, *pc, *nhs, *dob, case)

    same = lambda v: (v, v)  # noqa: E731
    rows = [
        pair(
            ("AMELIA", "AMELIE"),
            same("KHAN"),
            same("E1 6AN"),
            ("9434765919", "4010232137"),
            same(date(2012, 3, 4)),
            "twins: one date of birth, two numbers",
        ),
        pair(
            ("AMELIA", "AMELIA"),
            same("KHAN"),
            same("E1 6AN"),
            ("9434765919", "4010232137"),
            same(date(2012, 3, 4)),
            "true duplicate, a relative's number on one record",
        ),
        # 9434765919 with its 4th digit changed and the check digit recomputed: wrong but valid, two digits apart.
        pair(
            ("AMELIA", "AMELIE"),
            same("KHAN"),
            same("E1 6AN"),
            ("9434765919", "9435765912"),
            same(date(2012, 3, 4)),
            "true duplicate, a wrong-but-valid number and a forename typo",
        ),
        pair(
            same("JOHN"),
            same("OKAFOR"),
            same("E1 6AN"),
            ("9434765919", "4010232137"),
            (date(1975, 5, 6), date(2004, 9, 1)),
            "parent and child with one forename, two numbers",
        ),
        # A baby registered under the mother's number, or a parent's number on the child's record.
        pair(
            same("JOHN"),
            same("OKAFOR"),
            same("E1 6AN"),
            same("9434765919"),
            (date(1975, 5, 6), date(2004, 9, 1)),
            "parent and child with one forename, a shared number",
        ),
        pair(
            same("GRACE"),
            same("MENSAH"),
            same("LS1 4AP"),
            same("9434765919"),
            (date(1990, 1, 2), date(1996, 8, 15)),
            "true duplicate, a date of birth some years out",
        ),
        pair(
            same("JOHN"),
            same("OKAFOR"),
            same("E1 6AN"),
            (None, None),
            (date(1975, 5, 6), date(2004, 9, 1)),
            "parent and child with one forename, no numbers",
        ),
        # A mother and son at one address with one forename, the son under his father's surname.
        pair(
            same("ALEX"),
            ("WILSON", "BOATENG"),
            same("E1 6AN"),
            (None, None),
            (date(1975, 5, 6), date(2004, 9, 1)),
            "parent and child with one forename, two surnames, no numbers",
        ),
        # Neighbours in one block (one postcode), years apart, sharing no name: not the household level.
        pair(
            ("ALEX", "MARIA"),
            ("WILSON", "BOATENG"),
            same("E1 6AN"),
            (None, None),
            (date(1975, 5, 6), date(2004, 9, 1)),
            "neighbours, no name shared",
        ),
        pair(
            ("OMAR", "ZAINAB"),
            same("ALI"),
            ("N1 9GU", "M1 1AE"),
            ("9434765919", "4010232137"),
            (date(2001, 2, 3), date(2004, 7, 8)),
            "siblings with different numbers, moved",
        ),
        # A one-digit NHS typo fails modulus 11: standardisation leaves that record's number null.
        pair(
            same("GRACE"),
            same("MENSAH"),
            same("LS1 4AP"),
            ("9434765919", None),
            same(date(1990, 1, 2)),
            "true duplicate, one-digit NHS typo",
        ),
        pair(
            same("GRACE"),
            same("MENSAH"),
            same("LS1 4AP"),
            same("9434765919"),
            (date(1990, 1, 2), date(1991, 1, 2)),
            "true duplicate, one year digit wrong",
        ),
        pair(
            same("GRACE"),
            same("MENSAH"),
            same("LS1 4AP"),
            ("9434765919", "4010232137"),
            (date(1990, 1, 2), None),
            "no date of birth: cannot tell",
        ),
    ]
    pairs = spark.createDataFrame(rows, RELATIVE_SCHEMA)
    relatives = next(
        c
        for c in settings.with_corrections({"comparisons": []})["comparisons"]
        if c["output_column_name"] == "relatives"
    )
    labels = level_labels(relatives)
    found = {
        row["case"]: row["level"]
        for row in pairs.select("case", first_level(labels).alias("level")).collect()
    }
    null, joint, shared, twins, household, none = (label for _, label in labels)
    assert found == {
        "twins: one date of birth, two numbers": twins,
        "true duplicate, a relative's number on one record": none,
        "true duplicate, a wrong-but-valid number and a forename typo": none,
        "parent and child with one forename, two numbers": joint,
        "parent and child with one forename, a shared number": shared,
        "true duplicate, a date of birth some years out": none,
        "parent and child with one forename, no numbers": household,
        "parent and child with one forename, two surnames, no numbers": household,
        "neighbours, no name shared": none,
        "siblings with different numbers, moved": joint,
        "true duplicate, one-digit NHS typo": none,
        "true duplicate, one year digit wrong": none,
        "no date of birth: cannot tell": null,
    }
    weights = [
        level.get("m_probability", 1) / level.get("u_probability", 1)
        for level in relatives["comparison_levels"]
    ]
    assert weights[1:5] == [
        2**settings.RELATIVES_CORRECTION_BITS,
        2**settings.SHARED_NUMBER_CORRECTION_BITS,
        2**settings.TWINS_CORRECTION_BITS,
        2**settings.HOUSEHOLD_CORRECTION_BITS,
    ]
    assert all(level.get("fix_m_probability") for level in relatives["comparison_levels"][1:])


def test_source_comparison_sets_pairs_inside_one_source_apart(spark_with_splink_functions):
    spark = spark_with_splink_functions
    records = spark.createDataFrame(
        [("gp", "1"), ("gp", "2"), ("hospital", "1")], "source_dataset string, source_record_id string"
    ).withColumn(settings.RECORD_SOURCE, F.col("source_dataset"))
    left = records.select(*[F.col(c).alias(f"{c}_l") for c in records.columns])
    right = records.select(*[F.col(c).alias(f"{c}_r") for c in records.columns])
    pairs = left.crossJoin(right).where(
        F.struct("source_dataset_l", "source_record_id_l")
        < F.struct("source_dataset_r", "source_record_id_r")
    )
    source = next(
        c
        for c in settings.COMPARISONS
        if c.get_comparison("spark").as_dict()["output_column_name"] == "source"
    )
    levels = level_labels(source.get_comparison("spark").as_dict())
    found = {
        (
            row["source_dataset_l"],
            row["source_record_id_l"],
            row["source_dataset_r"],
            row["source_record_id_r"],
        ): row["level"]
        for row in pairs.select("*", first_level(levels).alias("level")).collect()
    }
    same, different = levels[1][1], levels[2][1]
    assert found == {
        ("gp", "1", "gp", "2"): same,
        ("gp", "1", "hospital", "1"): different,
        ("gp", "2", "hospital", "1"): different,
    }


def test_names_swapped_with_a_typo_are_weighed_once_as_a_swap(spark_with_splink_functions):
    spark = spark_with_splink_functions
    columns = ("forename_std", "surname_std", "forename_canonical", "surname_canonical")
    columns += ("forename_phonetic", "surname_phonetic")
    schema = ", ".join(f"{c}_{side} string" for c in columns for side in "lr") + ", case string"

    def pair(left: tuple[str, str], right: tuple[str, str], case: str) -> tuple:
        # Canonical forms as the names themselves; phonetic forms that never agree by accident.
        names = {"forename": (left[0], right[0]), "surname": (left[1], right[1])}
        values = [v for c in ("forename", "surname") for v in names[c]]
        values += [v for c in ("forename", "surname") for v in names[c]]
        values += [
            f"{side}{v}" for c in ("forename", "surname") for side, v in zip("lr", names[c], strict=True)
        ]
        return (*values, case)

    pairs = spark.createDataFrame(
        [
            pair(("JOHN", "SMITH"), ("SMITH", "JOHN"), "swapped"),
            pair(("JOHN", "SMITH"), ("SMITH", "JOHHN"), "swapped, one misspelt"),
            pair(("JOHN", "SMITH"), ("SMITHE", "JON"), "swapped, both misspelt"),
            pair(("JOHN", "SMITH"), ("MARY", "JONES"), "strangers"),
            pair(("JOHN", "SMITH"), ("JOHN", "SMITHE"), "surname misspelt, not swapped"),
        ],
        schema,
    ).withColumns({f"surname_parts_{side}": F.split(f"surname_std_{side}", " ") for side in "lr"})
    comparisons = {
        c["output_column_name"]: c
        for c in (c.get_comparison("spark").as_dict() for c in settings.COMPARISONS)
    }
    found = {
        row["case"]: (row["forename"], row["surname"])
        for row in pairs.select(
            "case",
            first_level(level_labels(comparisons["forename"])).alias("forename"),
            first_level(level_labels(comparisons["surname"])).alias("surname"),
        ).collect()
    }
    fuzzy = (
        "forename and surname swapped, one misspelt",
        "surname and forename swapped, one misspelt (weighed in forename)",
    )
    assert found["swapped"] == (
        "forename and surname swapped",
        "surname and forename swapped (weighed in forename)",
    )
    assert found["swapped, one misspelt"] == fuzzy
    assert found["swapped, both misspelt"] == fuzzy
    else_labels = tuple(level_labels(comparisons[c])[-1][1] for c in ("forename", "surname"))
    assert found["strangers"] == else_labels
    assert found["surname misspelt, not swapped"][0] != fuzzy[0]
    assert found["surname misspelt, not swapped"][1] not in fuzzy
    # The swap with a typo counts once: its surname level adds nothing.
    surname_level = next(
        level
        for level in comparisons["surname"]["comparison_levels"]
        if level.get("label_for_charts") == fuzzy[1]
    )
    assert surname_level["m_probability"] == surname_level["u_probability"]
    assert surname_level["fix_m_probability"] and surname_level["fix_u_probability"]
