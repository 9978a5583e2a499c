"""Postcode, NHS number, sex and ethnicity standardisers, with nulls and every bad-input class."""

from chispa import assert_column_equality
from pyspark.sql import functions as F

from linkage.standardise.ethnicity import ethnic_group, ethnicity_code
from linkage.standardise.nhs_number import is_valid_nhs_number, nhs_number_std
from linkage.standardise.postcode import is_valid_postcode, postcode_district, postcode_sector, postcode_std
from linkage.standardise.sex import sex_std_gp, sex_std_hospital, sex_std_social_care, sex_std_third_sector


def test_postcode_is_normalised_split_and_shape_checked(spark):
    df = spark.createDataFrame(
        [
            ("ls14ab", "LS1 4AB", "LS1 4", "LS1", True),  # lower case, no space
            (" LS1  4AB ", "LS1 4AB", "LS1 4", "LS1", True),  # extra spaces
            ("SW1A1AA", "SW1A 1AA", "SW1A 1", "SW1A", True),  # AA9A outward code
            ("M1 1AE", "M1 1AE", "M1 1", "M1", True),  # A9 outward code
            ("LS1 4A", None, None, None, False),  # too short
            ("12345", None, None, None, False),  # digits only
            ("LS1 4AB X", None, None, None, False),
            ("", None, None, None, None),  # none supplied
            (None, None, None, None, None),
        ],
        "raw string, std string, sector string, district string, is_valid boolean",
    )
    actual = (
        df.withColumn("a_std", postcode_std(F.col("raw")))
        .withColumn("a_sector", postcode_sector(F.col("a_std")))
        .withColumn("a_district", postcode_district(F.col("a_std")))
        .withColumn("a_valid", is_valid_postcode(F.col("raw")))
    )
    for expected in ("std", "sector", "district", "is_valid"):
        assert_column_equality(actual, f"a_{expected.removeprefix('is_')}", expected)


def test_nhs_number_modulus_11(spark):
    df = spark.createDataFrame(
        [
            ("9434765919", "9434765919", True),  # valid check digit
            ("9434765918", None, False),  # one digit wrong
            ("943 476 5919", "9434765919", True),  # spaces as printed on letters
            ("943-476-5919", "9434765919", True),
            ("943476591", None, False),  # nine digits
            ("94347659190", None, False),  # eleven digits
            ("94347659A9", None, False),  # a letter
            ("1111111111", None, False),  # passes the arithmetic but is a placeholder
            ("2000000010", "2000000010", True),  # 2*10 + 1*2 = 22, 22 mod 11 = 0: check 11 becomes 0
            ("1234567890", None, False),  # weighted sum 210 gives check 10: no valid number
            ("0123456789", "0123456789", True),  # a leading zero: sum 156, 156 mod 11 = 2, check 9
            ("0123456788", None, False),
            ("", None, None),  # none supplied
            (None, None, None),
        ],
        "raw string, std string, is_valid boolean",
    )
    actual = df.withColumn("a_std", nhs_number_std(F.col("raw"))).withColumn(
        "a_valid", is_valid_nhs_number(F.col("raw"))
    )
    assert_column_equality(actual, "a_std", "std")
    assert_column_equality(actual, "a_valid", "is_valid")


def test_sex_codes_of_each_source_map_to_m_f_or_null(spark):
    df = spark.createDataFrame(
        [
            ("gp", "M", "M"),
            ("gp", " f ", "F"),
            ("gp", "U", None),
            ("gp", "X", None),
            ("gp", None, None),
            ("hospital", "1", "M"),
            ("hospital", "2", "F"),
            ("hospital", "9", None),
            ("hospital", "0", None),
            ("hospital", "M", None),  # not a hospital code
            ("social_care", "Male", "M"),
            ("social_care", "FEMALE", "F"),
            ("social_care", "Other", None),
            ("social_care", "Unknown", None),
            ("social_care", "woman", "F"),
            ("social_care", "m", "M"),
            ("social_care", "", None),
            ("social_care", None, None),
            ("third_sector", "Female", None),  # third sector records no sex
        ],
        "source string, raw string, expected string",
    )
    by_source = {
        "gp": sex_std_gp,
        "hospital": sex_std_hospital,
        "social_care": sex_std_social_care,
        "third_sector": sex_std_third_sector,
    }
    actual_col = F.lit(None).cast("string")
    for source, function in by_source.items():
        actual_col = F.when(F.col("source") == source, function(F.col("raw"))).otherwise(actual_col)
    assert_column_equality(df.withColumn("actual", actual_col), "actual", "expected")


def test_ethnicity_codes_and_free_text_map_to_categories_and_five_groups(spark):
    df = spark.createDataFrame(
        [
            ("A", "A", "White"),
            ("c", "C", "White"),
            ("White British", "A", "White"),
            ("White - Irish", "B", "White"),
            ("Mixed: White and Asian", "F", "Mixed"),
            ("G", "G", "Mixed"),
            ("Pakistani", "J", "Asian"),
            ("L", "L", "Asian"),
            ("Black African", "N", "Black"),
            ("P", "P", "Black"),
            ("Chinese", "R", "Other"),
            ("S", "S", "Other"),
            ("Z", "Z", "Unknown"),
            ("Not stated", "Z", "Unknown"),
            ("99", "99", "Unknown"),
            ("I", None, "Unknown"),  # not an NHS category letter (I, O, Q are unused)
            ("Martian", None, "Unknown"),  # unrecognised free text
            ("", None, "Unknown"),
            (None, None, "Unknown"),
        ],
        "raw string, code string, group string",
    )
    actual = df.withColumn("a_code", ethnicity_code(F.col("raw"))).withColumn(
        "a_group", ethnic_group(F.col("a_code"))
    )
    assert_column_equality(actual, "a_code", "code")
    assert_column_equality(actual, "a_group", "group")
