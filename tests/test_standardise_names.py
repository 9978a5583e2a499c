"""Names: case, whitespace, diacritics, apostrophes, hyphenated surnames, nicknames, phonetic codes."""

import pytest
from chispa import assert_column_equality, assert_df_equality
from pyspark.sql import functions as F

from linkage.errors import ConfigError
from linkage.standardise.names import name_parts, name_phonetic, name_std, read_nicknames, with_canonical_name


def test_name_std_handles_case_space_diacritics_and_punctuation(spark):
    df = spark.createDataFrame(
        [
            ("  zoë ", "ZOE"),  # case, surrounding space, diacritic (NFD-like)
            ("O'Neill", "ONEILL"),  # apostrophe joins the parts
            ("O’Brien", "OBRIEN"),  # typographic apostrophe too
            ("Smith-Jones", "SMITH JONES"),  # hyphen separates parts
            ("de  la   Cruz", "DE LA CRUZ"),  # runs of spaces collapse
            ("Ðurić", "DURIC"),  # Latin Extended-A letters
            ("Strauß", "STRAUSS"),  # ß has a two-letter base form
            ("St. John", "ST JOHN"),  # dots separate
            ("J0hn3", "JHN"),  # digits are not name letters
            ("'-.", None),  # nothing left -> null
            ("", None),
            (None, None),
        ],
        "raw string, expected string",
    )
    assert_column_equality(df.withColumn("actual", name_std(F.col("raw"))), "actual", "expected")


def test_name_parts_keeps_each_part_of_a_double_surname(spark):
    df = spark.createDataFrame(
        [("Smith-Jones", ["SMITH", "JONES"]), ("Lee", ["LEE"]), (None, None)],
        "raw string, expected array<string>",
    )
    assert_column_equality(df.withColumn("actual", name_parts(name_std(F.col("raw")))), "actual", "expected")


def test_phonetic_code_is_soundex_and_null_for_null(spark):
    # Soundex: ROBERT and RUPERT share R163; a null name has no code (not an empty string).
    df = spark.createDataFrame(
        [("ROBERT", "R163"), ("RUPERT", "R163"), (None, None)], "name string, expected string"
    )
    assert_column_equality(df.withColumn("actual", name_phonetic(F.col("name"))), "actual", "expected")


def _write(tmp_path, text):
    path = tmp_path / "nicknames.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_canonical_name_comes_from_the_list_for_the_right_kind_only(spark, tmp_path):
    nicknames_df = read_nicknames(
        spark,
        _write(
            tmp_path,
            (
                "variant,canonical,kind,source\n"
                "Bob,Robert,nickname,test\n"
                "Mohammed,Muhammad,transliteration,test\n"
                "McDonald,MacDonald,surname_transliteration,test\n"
            ),
        ),
    )
    people_df = spark.createDataFrame(
        [(1, "BOB", "MCDONALD"), (2, "MOHAMMED", "BOB"), (3, "ANN", None), (4, None, "LEE")],
        "id int, forename_std string, surname_std string",
    )
    actual = people_df.transform(
        with_canonical_name, "forename_std", "forename_canonical", nicknames_df, "forename"
    ).transform(with_canonical_name, "surname_std", "surname_canonical", nicknames_df, "surname")
    expected = spark.createDataFrame(
        [
            (1, "BOB", "MCDONALD", "ROBERT", "MACDONALD"),
            (2, "MOHAMMED", "BOB", "MUHAMMAD", "BOB"),  # a forename nickname does not apply to surnames
            (3, "ANN", None, "ANN", None),  # not listed -> itself
            (4, None, "LEE", None, "LEE"),
        ],
        "id int, forename_std string, surname_std string, forename_canonical string, surname_canonical string",
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_a_variant_with_two_canonical_names_is_refused(spark, tmp_path):
    path = _write(
        tmp_path, "variant,canonical,kind,source\nAlex,Alexander,nickname,t\nAlex,Alexandra,nickname,t\n"
    )
    with pytest.raises(ConfigError, match="line 3"):
        read_nicknames(spark, path)


def test_project_nickname_list_loads_and_maps_each_variant_once(spark, make_config):
    nicknames_df = read_nicknames(spark, make_config().ingest.nicknames_file)
    assert nicknames_df.count() > 100
    assert nicknames_df.groupBy("applies_to", "variant").count().where("count > 1").count() == 0
    assert nicknames_df.where("variant = 'KATE'").first().canonical == "CATHERINE"
