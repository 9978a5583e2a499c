"""Reading raw files: CSV field counting and quoting, missing values, line numbering across blocks, Parquet."""

from __future__ import annotations

import pandas as pd
import pytest
from chispa import assert_column_equality, assert_df_equality
from pyspark.sql import functions as F

from linkage.errors import InputError
from linkage.ingest.reader import (
    files_with_odd_quote_lines,
    locate,
    missing_to_null,
    number_lines,
    read_header,
    read_rows,
    resolve_layout,
)

FIELDS = ("person_id", "name", "nhs_number")


def _rows(spark, folder, stem, fields=FIELDS, mapping=None):
    raw = locate(spark, str(folder), stem, "gp", "people")
    layout = resolve_layout(raw, read_header(spark, raw), fields, mapping or {})
    return raw, read_rows(spark, raw, layout)


def test_csv_rows_keep_physical_line_numbers_and_flag_malformed_rows(spark, tmp_path):
    (tmp_path / "people.csv").write_text(
        "\ufeffPerson_ID,NHS_NUMBER,Name\n"  # BOM, any case, any order
        '001,0123456789,"Smith, ""Jr"""\n'  # 2: embedded comma and doubled quotes; leading zeros kept
        "002,NULL,\n"  # 3: NULL and empty are missing
        "003,123,Lee,extra\n"  # 4: too many fields
        "004,123\n"  # 5: too few
        "\n"  # 6: blank line
        '005,123,"unbalanced\n'  # 7: quote never closed
        "006, ,Kay\n",  # 8: blank means missing
        encoding="utf-8",
    )
    _, rows_df = _rows(spark, tmp_path, "people")
    expected = spark.createDataFrame(
        [
            (2, False, "001", 'Smith, "Jr"', "0123456789"),
            (3, False, "002", None, None),
            (4, True, "003", "Lee", "123"),
            (5, True, "004", None, "123"),
            (6, True, None, None, None),
            (7, True, "005", "unbalanced", "123"),
            (8, False, "006", "Kay", None),
        ],
        "line_number long, is_malformed boolean, person_id string, name string, nhs_number string",
    )
    actual = rows_df.select("line_number", "is_malformed", *FIELDS)
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    assert rows_df.where("line_number = 4").first().raw_line == "003,123,Lee,extra"


def test_header_only_and_empty_files_give_no_rows(spark, tmp_path):
    (tmp_path / "header.csv").write_text("person_id,name,nhs_number\n", encoding="utf-8")
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    assert _rows(spark, tmp_path, "header")[1].count() == 0
    assert _rows(spark, tmp_path, "empty")[1].count() == 0


def test_missing_file_and_column_errors_name_them(spark, tmp_path):
    with pytest.raises(InputError, match="nowhere.csv"):
        locate(spark, str(tmp_path), "nowhere", "gp", "people")
    (tmp_path / "people.csv").write_text("person_id,name\n1,Zoe\n", encoding="utf-8")
    with pytest.raises(InputError, match="'nhs_number'") as error:
        _rows(spark, tmp_path, "people")
    assert "Zoe" not in str(error.value)


def test_a_site_column_mapping_renames_and_an_empty_mapping_means_not_supplied(spark, tmp_path):
    (tmp_path / "people.csv").write_text("PatID,name\n7,Lee\n", encoding="utf-8")
    _, rows_df = _rows(spark, tmp_path, "people", mapping={"person_id": "patid", "nhs_number": ""})
    assert rows_df.select(*FIELDS).collect()[0].asDict() == {
        "person_id": "7",
        "name": "Lee",
        "nhs_number": None,
    }


def test_missing_to_null(spark):
    df = spark.createDataFrame(
        [
            ("a", "a"),
            ("", None),
            ("  ", None),
            ("NULL", None),
            ("null", None),
            ("NULLS", "NULLS"),
            (None, None),
        ],
        "raw string, expected string",
    )
    assert_column_equality(df.withColumn("actual", missing_to_null(F.col("raw"))), "actual", "expected")


def test_line_numbers_continue_across_file_blocks(spark):
    # Two blocks (byte offsets 0 and 4096) arriving out of order: block 0's rows come first. Each block's
    # orders are consecutive, as the row ids of one block read by one task are.
    df = spark.createDataFrame(
        [(4096, 10, "d"), (0, 4, "b"), (4096, 11, "e"), (0, 3, "a"), (0, 5, "c")],
        "block long, order long, value string",
    )
    expected = spark.createDataFrame(
        [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)], "value string, line_number long"
    )
    actual = number_lines(df, "block", "order").select("value", "line_number")
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_only_files_with_a_line_of_odd_quotes_are_searched_for_quoted_line_breaks(spark, tmp_path):
    (tmp_path / "plain.csv").write_text('id,name\n1,"Lee, Jo"\n2,Kay\n', encoding="utf-8")
    (tmp_path / "broken.csv").write_text('id,name\n1,"Lee\nJo"\n', encoding="utf-8")  # a quoted line break
    # Not valid UTF-8 and no quote: decoded, its length may change, so it is searched (never missed).
    (tmp_path / "bytes.csv").write_bytes(b"id,name\n1,L\xe2\x80e\n")
    paths = {index: str(tmp_path / f"{stem}.csv") for index, stem in enumerate(("plain", "broken", "bytes"))}
    assert files_with_odd_quote_lines(spark, paths) - {2} == {1}


def test_parquet_rows_are_numbered_and_identifiers_read_as_strings(spark, tmp_path):
    pd.DataFrame(
        {"PERSON_ID": [101, 102], "Name": ["Zoe", None], "nhs_number": ["0123456789", ""]}
    ).to_parquet(tmp_path / "people.parquet")
    raw, rows_df = _rows(spark, tmp_path, "people")
    assert raw.format == "parquet" and raw.name == "people.parquet"
    expected = spark.createDataFrame(
        [(1, "101", "Zoe", "0123456789"), (2, "102", None, None)],
        "line_number long, person_id string, name string, nhs_number string",
    )
    assert_df_equality(
        rows_df.select("line_number", *FIELDS), expected, ignore_row_order=True, ignore_nullable=True
    )
    assert '"PERSON_ID":101' in rows_df.where("line_number = 1").first().raw_line


def test_windows_line_endings_are_not_part_of_the_last_field(spark, tmp_path):
    (tmp_path / "people.csv").write_bytes(b"person_id,name,nhs_number\r\n1,Lee,9434765919\r\n2,Kay,\r\n")
    _, rows_df = _rows(spark, tmp_path, "people")
    actual = [
        (r.line_number, r.is_malformed, r.nhs_number, r.raw_line)
        for r in rows_df.orderBy("line_number").collect()
    ]
    assert actual == [(2, False, "9434765919", "1,Lee,9434765919"), (3, False, None, "2,Kay,")]
