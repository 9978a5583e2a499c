"""The ingest job end to end on a small inline extract with injected bad rows: reconciliation, line numbers,
reason codes, standardised values, idempotence, and the exit-2 errors for a missing file or column."""

from __future__ import annotations

import pytest
from builders import FILES, JOB_SETTINGS, RUN_DATE, latest_ingest_metrics, run_ingest_job, write_extract
from chispa import assert_df_equality
from pyspark.sql import functions as F

from linkage import lake, sources
from linkage.schemas import PEOPLE_STD, QUARANTINE

# Lines of builders.FILES (header = line 1).
EXPECTED_QUARANTINE = {
    ("gp_patients.csv", 4, "duplicate_id"),
    ("gp_patients.csv", 5, "duplicate_id"),
    ("gp_patients.csv", 6, "missing_mandatory_id"),
    ("gp_patients.csv", 7, "malformed_row"),
    ("gp_events.csv", 3, "impossible_date"),
    ("gp_events.csv", 4, "unparseable_date"),
    ("gp_events.csv", 5, "future_date"),
    ("gp_events.csv", 6, "unknown_code"),
    ("gp_events.csv", 8, "unparseable_date"),
    ("hospital_episodes.csv", 3, "unknown_code"),
    ("hospital_episodes.csv", 4, "duplicate_id"),
    ("hospital_episodes.csv", 5, "duplicate_id"),
    ("third_sector_contacts.csv", 3, "unknown_code"),
}
# Data rows per file (lines minus the header).
EXPECTED_READ = {
    "gp_patients": 8,
    "gp_events": 7,
    "hospital_patients": 1,
    "hospital_episodes": 4,
    "social_care_clients": 0,
    "social_care_events": 0,
    "third_sector_clients": 1,
    "third_sector_contacts": 2,
}


def without_run_id(df):
    return df.drop("run_id")


@pytest.mark.slow
def test_ingest_quarantines_bad_rows_reconciles_and_is_idempotent(
    spark, tmp_path, test_overrides, make_config
):
    write_extract(tmp_path / "raw")
    config = make_config(*JOB_SETTINGS)

    assert run_ingest_job(test_overrides) == 0

    quarantine = lake.read_table(spark, config.paths.lake, QUARANTINE)
    assert {
        (r.source_file, r.line_number, r.reason_code) for r in quarantine.collect()
    } == EXPECTED_QUARANTINE
    # The raw line is kept as read, e.g. the short row on gp line 7.
    assert (
        quarantine.where("source_file = 'gp_patients.csv' AND line_number = 7").first().raw_line
        == "G4,Dan,,Fox,1970-03-03,M"
    )

    metrics = latest_ingest_metrics(config)
    for source_file, read in EXPECTED_READ.items():
        source = next(
            s for s in ("social_care", "third_sector", "gp", "hospital") if source_file.startswith(s)
        )
        prefix = f"ingest.{source}.{source_file}"
        quarantined = sum(1 for q in EXPECTED_QUARANTINE if q[0] == f"{source_file}.csv")
        assert metrics[f"{prefix}.read"] == read, source_file
        assert metrics[f"{prefix}.quarantined"] == quarantined, source_file
        assert metrics[f"{prefix}.accepted"] == read - quarantined, source_file
    assert metrics["ingest.gp.gp_events.quarantined.unparseable_date"] == 2
    assert metrics["ingest.gp.activity.orphan_rows"] == 1  # G404 kept
    assert metrics["ingest.gp.people.nhs_number_invalid"] == 1  # G2

    people = lake.read_table(spark, config.paths.lake, PEOPLE_STD)
    assert {r.source_dataset: r["count"] for r in people.groupBy("source_dataset").count().collect()} == {
        "gp": 4,
        "hospital": 1,
        "third_sector": 1,
    }
    picked = people.where(F.col("source_record_id").isin("G1", "G2", "G5", "H1", "Carers Centre:R1")).select(
        "source_record_id",
        "forename_std",
        "surname_std",
        "surname_parts",
        "date_of_birth",
        "dob_is_valid",
        "dob_is_placeholder",
        "year_of_birth",
        "sex",
        "postcode_std",
        "nhs_number",
        "nhs_number_is_valid",
        "ethnic_group",
        "imd_decile",
    )
    expected = spark.createDataFrame(
        [
            (
                "G1",
                "ZOE",
                "ONEILL",
                ["ONEILL"],
                "1980-01-01",
                True,
                True,
                1980,
                "F",
                "LS1 4AB",
                "9434765919",
                True,
                "White",
                3,
            ),
            # Bad DOB and NHS number: nulled with a flag, the row kept; IMD 11 is out of range.
            (
                "G2",
                "BOB",
                "SMITH JONES",
                ["SMITH", "JONES"],
                None,
                False,
                None,
                None,
                "M",
                "LS1 4AB",
                None,
                False,
                "White",
                None,
            ),
            # Embedded comma and quotes parsed; NULL means missing (no flag).
            (
                "G5",
                "JO",
                "SMITH JR",
                ["SMITH", "JR"],
                "1965-08-07",
                True,
                False,
                1965,
                "M",
                None,
                None,
                None,
                "Unknown",
                None,
            ),
            (
                "H1",
                "ZOE",
                "ONEILL",
                ["ONEILL"],
                "1980-01-01",
                True,
                True,
                1980,
                "F",
                "LS1 4AB",
                "9434765919",
                True,
                "White",
                None,
            ),
            (
                "Carers Centre:R1",
                "KATE",
                "SMITH",
                ["SMITH"],
                None,
                None,
                None,
                1975,
                None,
                None,
                None,
                None,
                "Unknown",
                None,
            ),
        ],
        "source_record_id string, forename_std string, surname_std string, surname_parts array<string>, "
        "date_of_birth string, dob_is_valid boolean, dob_is_placeholder boolean, year_of_birth int, sex string, "
        "postcode_std string, nhs_number string, nhs_number_is_valid boolean, ethnic_group string, imd_decile int",
    ).withColumn("date_of_birth", F.to_date("date_of_birth"))
    assert_df_equality(picked, expected, ignore_row_order=True, ignore_nullable=True, ignore_metadata=True)

    hospital = lake.read_table(spark, config.paths.lake, sources.get("hospital").activity_std).first()
    assert (hospital.episode_id, hospital.primary_diagnosis, hospital.secondary_diagnoses) == (
        "E1",
        "J459",
        ["I10", "E119"],
    )
    contact = lake.read_table(spark, config.paths.lake, sources.get("third_sector").activity_std).first()
    assert (contact.source_record_id, str(contact.contact_date), contact.unpaid_carer) == (
        "Carers Centre:R1",
        "2021-03-04",
        True,
    )

    # Rerun on the same input: the same content (only run_id differs), one new version per table.
    contracts = [PEOPLE_STD, QUARANTINE, *sources.activity_std_contracts().values()]
    before = {
        c.name: without_run_id(lake.read_table(spark, config.paths.lake, c)).collect() for c in contracts
    }
    assert run_ingest_job(test_overrides) == 0
    for contract in contracts:
        after_df = without_run_id(lake.read_table(spark, config.paths.lake, contract))
        before_df = spark.createDataFrame(before[contract.name], after_df.schema)
        assert_df_equality(
            after_df, before_df, ignore_row_order=True, ignore_nullable=True, ignore_metadata=True
        )
        assert lake.table_version(spark, lake.table_path(config.paths.lake, contract)) == 1


def test_missing_file_fails_with_exit_2_naming_it(tmp_path, test_overrides, capsys):
    files = {name: text for name, text in FILES.items() if name != "hospital_episodes.csv"}
    write_extract(tmp_path / "raw", files)
    assert run_ingest_job(test_overrides) == 2
    err = capsys.readouterr().err
    assert "hospital_episodes.csv" in err


def test_missing_column_fails_with_exit_2_naming_it_and_no_values(tmp_path, test_overrides, capsys):
    files = dict(FILES)
    files["hospital_patients.csv"] = files["hospital_patients.csv"].replace(",surname,", ",family_name,")
    write_extract(tmp_path / "raw", files)
    assert run_ingest_job(test_overrides) == 2
    err = capsys.readouterr().err
    assert "hospital_patients.csv" in err and "'surname'" in err
    for value in ("ONeill", "Zoe", "9434765919", "LS1 4AB"):
        assert value not in err


PEOPLE_FILES = {
    "gp_patients.csv",
    "hospital_patients.csv",
    "social_care_clients.csv",
    "third_sector_clients.csv",
}


def expected_reasons(source_file: str, kind: str) -> set[str] | None:
    """Reason(s) ingest gives a generator's malformed row; None when the row is accepted with a flag."""
    if kind == "wrong_field_count":
        return {"malformed_row"}
    if kind == "blank_id":
        return {"missing_mandatory_id"}
    if source_file in PEOPLE_FILES:
        return None  # a bad date of birth is nulled with a flag, not quarantined
    # 31/02/2019 has the right shape but no such day: impossible rather than unparseable.
    return {"unparseable_date", "impossible_date"} if kind == "unparseable_date" else {kind}


@pytest.mark.slow
def test_generated_extract_reconciles_line_by_line(spark, tmp_path, test_overrides, make_config):
    import csv

    from linkage.synthetic import generate_extract

    settings = [f"ingest.run_date={RUN_DATE}", "synthetic.people=300", "synthetic.malformed_rows=4"]
    config = make_config(*settings)
    raw = tmp_path / "raw"
    generate_extract(config.synthetic, raw, config.cohorts.codelists)
    assert run_ingest_job(test_overrides, settings=settings) == 0

    metrics = latest_ingest_metrics(config)
    for csv_file in sorted(raw.glob("*_*.csv")):
        if csv_file.stem in ("truth", "truth_conditions", "malformed_rows"):
            continue
        source = next(
            s for s in ("social_care", "third_sector", "gp", "hospital") if csv_file.stem.startswith(s)
        )
        prefix = f"ingest.{source}.{csv_file.stem}"
        lines = len(csv_file.read_bytes().splitlines())
        assert metrics[f"{prefix}.read"] == lines - 1, csv_file.name
        assert metrics[f"{prefix}.accepted"] + metrics[f"{prefix}.quarantined"] == lines - 1, csv_file.name

    with open(raw / "malformed_rows.csv", newline="") as handle:
        injected = [(row["file"], int(row["line"]), row["kind"]) for row in csv.DictReader(handle)]
    assert injected, "the generator was asked for malformed rows"
    quarantined = {
        (r.source_file, r.line_number): r.reason_code
        for r in lake.read_table(spark, config.paths.lake, QUARANTINE).collect()
    }
    expected = {(f, line): expected_reasons(f, kind) for f, line, kind in injected}
    for key, reasons in expected.items():
        if reasons is None:
            assert key not in quarantined, key
        else:
            assert quarantined.get(key) in reasons, key
    # Nothing else in a clean generated extract is quarantined.
    assert set(quarantined) <= set(expected)
