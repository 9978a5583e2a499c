"""Real extracts are read as they are: a blank line before the header, a quoted line break, bytes that
are not UTF-8; and a people file that would silently empty a source is refused."""

from __future__ import annotations

import pytest
from builders import FILES, latest_ingest_metrics, people_frame, run_ingest_job, write_extract
from chispa import assert_df_equality

from linkage import lake
from linkage.ingest.guards import emptied_sources
from linkage.ingest.reader import locate, quote_spans, read_header_at, read_rows, resolve_layout
from linkage.ingest.rules import DateRules, with_reason
from linkage.schemas import PEOPLE_STD
from linkage.tracking import RunContext

FIELDS = ("person_id", "name", "nhs_number")


def rows_of(spark, folder, stem="people"):
    raw = locate(spark, str(folder), stem, "gp", "people")
    header, header_line = read_header_at(spark, raw)
    return read_rows(spark, raw, resolve_layout(raw, header, FIELDS, {}, header_line))


def test_blank_lines_before_the_header_are_not_an_empty_file(spark, tmp_path):
    (tmp_path / "people.csv").write_text(
        "\n  \nperson_id,name,nhs_number\n1,Lee,9434765919\n", encoding="utf-8"
    )
    rows = [(r.line_number, r.is_malformed, r.person_id) for r in rows_of(spark, tmp_path).collect()]
    assert rows == [(4, False, "1")]


def test_a_quoted_line_break_is_one_record_and_lines_still_reconcile(spark, tmp_path):
    (tmp_path / "people.csv").write_text(
        "person_id,name,nhs_number\n"
        '1,"Lee\nsecond line",9434765919\n'  # lines 2-3: one record
        "2,Kay,\n"  # line 4
        '3,"unclosed,123\n',  # line 5: malformed, nothing to pair with
        encoding="utf-8",
    )
    actual = rows_of(spark, tmp_path).select("line_number", "is_malformed", *FIELDS, "continuation_lines")
    expected = spark.createDataFrame(
        [
            (2, False, "1", "Lee\nsecond line", "9434765919", 1),
            (4, False, "2", "Kay", None, 0),
            (5, True, "3", "unclosed,123", None, 0),
        ],
        "line_number long, is_malformed boolean, person_id string, name string, nhs_number string, "
        "continuation_lines int",
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_quote_spans_pair_odd_lines_in_order_and_leave_a_far_unclosed_quote_alone():
    assert quote_spans([]) == []
    assert quote_spans([2, 3, 7, 9]) == [(2, 3), (7, 9)]
    assert quote_spans([2, 500, 501], max_lines=100) == [(500, 501)]
    assert quote_spans([5]) == []


def test_invalid_utf8_is_quarantined_as_an_encoding_error(spark, tmp_path):
    (tmp_path / "people.csv").write_bytes(b"person_id,name,nhs_number\n1,Lee,\n2,Sm\xe9th,\n")
    rows_df = rows_of(spark, tmp_path)
    from linkage.ingest.fields import FileFields

    rules = FileFields(fields=FIELDS, mandatory_ids=("person_id",))
    reasons = {
        r.line_number: r.reason_code for r in with_reason(rows_df, rules, DateRules(1900, None)).collect()
    }
    assert reasons == {2: None, 3: "encoding_error"}


def test_emptied_sources_are_those_that_had_people_and_are_not_allowed():
    previous = {"gp": 10, "hospital": 4}
    assert emptied_sources({"gp": 0, "hospital": 0, "social_care": 0}, previous, ["hospital"]) == ["gp"]
    assert emptied_sources({"gp": 3, "hospital": 4}, previous, []) == []
    assert emptied_sources({"gp": 0}, {}, []) == []  # a first run has nothing to lose


@pytest.mark.slow
def test_a_header_only_people_file_for_a_source_that_had_people_is_refused(
    spark, tmp_path, test_overrides, make_config, capsys
):
    config = make_config()
    previous = people_frame(
        spark, [{"source_dataset": "hospital", "source_record_id": "H1", "run_id": "before"}]
    )
    lake.write_table(
        previous, config.paths.lake, PEOPLE_STD, RunContext("before", "ingest", "h", "t", "", "", None)
    )
    files = dict(FILES)
    files["hospital_patients.csv"] = FILES["hospital_patients.csv"].splitlines()[0] + "\n"  # header only
    files["gp_events.csv"] = "\n" + FILES["gp_events.csv"]  # blank first line
    # A quoted line break (lines 4-5: one record) read with an undecodable line (6): the first pass reads both
    # lines of the record as malformed rows, and the file is read again with its line breaks found.
    files["third_sector_contacts.csv"] += 'C3,R1,Carers Centre,2021-03-06,"Debt\nadvice",Y\n'
    files["third_sector_contacts.csv"] += "C9,R1,Carers Centre,2021-03-05,D\xe9bt,Y\n"
    write_extract(tmp_path / "raw", files)
    (tmp_path / "raw" / "third_sector_contacts.csv").write_bytes(
        files["third_sector_contacts.csv"].encode("utf-8").replace("D\xe9bt".encode(), b"D\xe9bt")
    )

    assert run_ingest_job(test_overrides) == 2
    err = capsys.readouterr().err
    assert "hospital_patients.csv" in err and "ingest.allow_empty_sources=[hospital]" in err
    people_path = lake.table_path(config.paths.lake, PEOPLE_STD)
    assert lake.table_version(spark, people_path) == 0  # nothing written

    assert run_ingest_job(test_overrides, "ingest.allow_empty_sources=[hospital]") == 0
    metrics = latest_ingest_metrics(config)
    assert metrics["ingest.hospital.hospital_patients.read"] == 0
    assert metrics["ingest.gp.gp_events.read"] == 7  # the blank first line is neither a row nor an empty file
    assert metrics["ingest.third_sector.third_sector_contacts.quarantined.encoding_error"] == 1
    assert metrics["ingest.third_sector.third_sector_contacts.quarantined.malformed_row"] == 0
    assert metrics["ingest.third_sector.third_sector_contacts.read"] == 4  # C1, C2, C3 (two lines), C9
    assert metrics["ingest.third_sector.third_sector_contacts.accepted"] == 2
