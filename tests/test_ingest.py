"""The ingest job end to end on a small inline extract with injected bad rows: reconciliation, line numbers,
reason codes, standardised values, idempotence, and the exit-2 errors for a missing file or column."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality
from mlflow.tracking import MlflowClient
from pyspark.sql import functions as F

from jobs import ingest as ingest_job
from linkage import lake
from linkage.schemas import ACTIVITY_STD, PEOPLE_STD, QUARANTINE

BOM = "\ufeff"
RUN_DATE = "2026-06-30"

# Physical lines matter: the expected quarantine below names them (header = line 1).
FILES = {
    # Upper-case, reordered header with a BOM; G3 twice; a blank id; a short row; an embedded comma and quote.
    "gp_patients.csv": BOM + (
        "GP_PATIENT_ID,Forename,middle_names,Surname,date_of_birth,sex,postcode,nhs_number,practice_code,"
        "registration_start,registration_end,ethnicity,imd_decile\n"
        "G1,Zoë,,O'Neill,1980-01-01,F,ls14ab,9434765919,B86001,2001-01-01,,A,3\n"        # 2 ok
        "G2,Bob,Mary Jane,Smith-Jones,31/02/1990,M,LS1 4AB,9434765918,B86001,,,White British,11\n"  # 3 ok, flags
        "G3,Ann,,Lee,1990-05-05,U,LS2 7EW,,B86001,,,,\n"                                  # 4 duplicate_id
        "G3,Anne,,Lee,1990-05-05,F,LS2 7EW,,B86001,,,,\n"                                 # 5 duplicate_id
        ",Cat,,Ray,1970-03-03,F,LS3 1AA,,B86001,,,,\n"                                    # 6 missing id
        "G4,Dan,,Fox,1970-03-03,M\n"                                                      # 7 malformed
        'G5,Jo,,"Smith, ""Jr""",07/08/1965,M,,NULL,B86001,,,,\n'                          # 8 ok
        "G6,Eve,,Kay,,F,,,B86001,,,Z,\n"                                                  # 9 ok
    ),
    "gp_events.csv": (
        "gp_patient_id,event_date,code_system,code,value\n"
        "G1,2020-01-01,SNOMED,38341003,140.5\n"    # 2 ok
        "G1,2020-02-30,SNOMED,38341003,\n"         # 3 impossible_date
        "G1,soon,SNOMED,38341003,\n"               # 4 unparseable_date
        "G1,2099-01-01,SNOMED,38341003,\n"         # 5 future_date
        "G1,2020-01-01,READ,G20..,\n"              # 6 unknown_code
        "G404,01/02/2020,dmd,3214911000001105,\n"  # 7 ok: person not in the people file is kept
        "G2,,SNOMED,38341003,\n"                   # 8 unparseable_date (missing)
    ),
    "hospital_patients.csv": (
        "hospital_patient_id,nhs_number,forename,surname,date_of_birth,sex,postcode,ethnicity\n"
        "H1,943 476 5919,Zoe,ONeill,01/01/1980,2,LS1 4AB,A\n"
    ),
    "hospital_episodes.csv": (
        "episode_id,hospital_patient_id,setting,start_date,end_date,admission_method,primary_diagnosis,"
        "secondary_diagnoses,treatment_specialty,referral_source\n"
        "E1,H1,APC,2020-01-01,2020-01-03,21,j45.9,I10|E11.9,300,\n"   # 2 ok
        "E2,H1,XX,2020-01-01,,,,,,\n"                                 # 3 unknown_code
        "E3,H1,op,2020-03-01,,,,,,2WW\n"                               # 4 duplicate_id
        "E3,H1,OP,2020-03-02,,,,,,\n"                                  # 5 duplicate_id
    ),
    "social_care_clients.csv": "",  # an empty file is valid
    "social_care_events.csv": (
        "event_id,la_client_id,client_type,event_type,service_type,primary_support_reason,start_date,end_date\n"
    ),
    # This site calls org_client_ref "ClientRef": configuration, not code (see the --set below).
    "third_sector_clients.csv": (
        "ClientRef,organisation,forename,surname,date_of_birth,year_of_birth,postcode\n"
        "R1,Carers Centre,Kate,Smith,,1975,\n"
    ),
    "third_sector_contacts.csv": (
        "contact_id,org_client_ref,organisation,contact_date,contact_reason,unpaid_carer\n"
        "C1,R1,Carers Centre,04/03/2021,Debt,Y\n"     # 2 ok
        "C2,R1,Carers Centre,2021-03-04,Debt,maybe\n"  # 3 unknown_code
    ),
}

EXPECTED_QUARANTINE = {
    ("gp_patients.csv", 4, "duplicate_id"), ("gp_patients.csv", 5, "duplicate_id"),
    ("gp_patients.csv", 6, "missing_mandatory_id"), ("gp_patients.csv", 7, "malformed_row"),
    ("gp_events.csv", 3, "impossible_date"), ("gp_events.csv", 4, "unparseable_date"),
    ("gp_events.csv", 5, "future_date"), ("gp_events.csv", 6, "unknown_code"),
    ("gp_events.csv", 8, "unparseable_date"),
    ("hospital_episodes.csv", 3, "unknown_code"), ("hospital_episodes.csv", 4, "duplicate_id"),
    ("hospital_episodes.csv", 5, "duplicate_id"),
    ("third_sector_contacts.csv", 3, "unknown_code"),
}
# Data rows per file (lines minus the header).
EXPECTED_READ = {"gp_patients": 8, "gp_events": 7, "hospital_patients": 1, "hospital_episodes": 4,
                 "social_care_clients": 0, "social_care_events": 0, "third_sector_clients": 1,
                 "third_sector_contacts": 2}
JOB_SETTINGS = [f"ingest.run_date={RUN_DATE}", "ingest.sources.third_sector.people_columns.org_client_ref=ClientRef"]


def write_extract(folder, files=FILES):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")


def run_ingest_job(test_overrides, *extra, settings=JOB_SETTINGS):
    argv = [arg for item in [*test_overrides, *settings, *extra] for arg in ("--set", item)]
    return ingest_job.main(argv, {})


def latest_ingest_metrics(config):
    client = MlflowClient(config.tracking_uri)
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    run = client.search_runs([experiment.experiment_id], "tags.job = 'ingest'", order_by=["start_time DESC"],
                             max_results=1)[0]
    return run.data.metrics


def without_run_id(df):
    return df.drop("run_id")


@pytest.mark.slow
def test_ingest_quarantines_bad_rows_reconciles_and_is_idempotent(spark, tmp_path, test_overrides, make_config):
    write_extract(tmp_path / "raw")
    config = make_config(*JOB_SETTINGS)

    assert run_ingest_job(test_overrides) == 0

    quarantine = lake.read_table(spark, config.paths.lake, QUARANTINE)
    assert {(r.source_file, r.line_number, r.reason_code) for r in quarantine.collect()} == EXPECTED_QUARANTINE
    # The raw line is kept as read, e.g. the short row on gp line 7.
    assert quarantine.where("source_file = 'gp_patients.csv' AND line_number = 7").first().raw_line == \
        "G4,Dan,,Fox,1970-03-03,M"

    metrics = latest_ingest_metrics(config)
    for source_file, read in EXPECTED_READ.items():
        source = next(s for s in ("social_care", "third_sector", "gp", "hospital") if source_file.startswith(s))
        prefix = f"ingest.{source}.{source_file}"
        quarantined = sum(1 for q in EXPECTED_QUARANTINE if q[0] == f"{source_file}.csv")
        assert metrics[f"{prefix}.read"] == read, source_file
        assert metrics[f"{prefix}.quarantined"] == quarantined, source_file
        assert metrics[f"{prefix}.accepted"] == read - quarantined, source_file
    assert metrics["ingest.gp.gp_events.quarantined.unparseable_date"] == 2
    assert metrics["ingest.gp.activity.orphan_rows"] == 1          # G404 kept
    assert metrics["ingest.gp.people.nhs_number_invalid"] == 1     # G2

    people = lake.read_table(spark, config.paths.lake, PEOPLE_STD)
    assert {r.source_dataset: r["count"] for r in people.groupBy("source_dataset").count().collect()} == \
        {"gp": 4, "hospital": 1, "third_sector": 1}
    picked = people.where(F.col("source_record_id").isin("G1", "G2", "G5", "H1", "Carers Centre:R1")).select(
        "source_record_id", "forename_std", "surname_std", "surname_parts", "date_of_birth", "dob_is_valid",
        "dob_is_placeholder", "year_of_birth", "sex", "postcode_std", "nhs_number", "nhs_number_is_valid",
        "ethnic_group", "imd_decile")
    expected = spark.createDataFrame([
        ("G1", "ZOE", "ONEILL", ["ONEILL"], "1980-01-01", True, True, 1980, "F", "LS1 4AB", "9434765919", True,
         "White", 3),
        # Bad DOB and NHS number: nulled with a flag, the row kept; IMD 11 is out of range.
        ("G2", "BOB", "SMITH JONES", ["SMITH", "JONES"], None, False, None, None, "M", "LS1 4AB", None, False,
         "White", None),
        # Embedded comma and quotes parsed; NULL means missing (no flag).
        ("G5", "JO", "SMITH JR", ["SMITH", "JR"], "1965-08-07", True, False, 1965, "M", None, None, None,
         "Unknown", None),
        ("H1", "ZOE", "ONEILL", ["ONEILL"], "1980-01-01", True, True, 1980, "F", "LS1 4AB", "9434765919", True,
         "White", None),
        ("Carers Centre:R1", "KATE", "SMITH", ["SMITH"], None, None, None, 1975, None, None, None, None,
         "Unknown", None),
    ], "source_record_id string, forename_std string, surname_std string, surname_parts array<string>, "
       "date_of_birth string, dob_is_valid boolean, dob_is_placeholder boolean, year_of_birth int, sex string, "
       "postcode_std string, nhs_number string, nhs_number_is_valid boolean, ethnic_group string, imd_decile int"
    ).withColumn("date_of_birth", F.to_date("date_of_birth"))
    assert_df_equality(picked, expected, ignore_row_order=True, ignore_nullable=True, ignore_metadata=True)

    hospital = lake.read_table(spark, config.paths.lake, ACTIVITY_STD["hospital"]).first()
    assert (hospital.episode_id, hospital.primary_diagnosis, hospital.secondary_diagnoses) == ("E1", "J459",
                                                                                               ["I10", "E119"])
    contact = lake.read_table(spark, config.paths.lake, ACTIVITY_STD["third_sector"]).first()
    assert (contact.source_record_id, str(contact.contact_date), contact.unpaid_carer) == \
        ("Carers Centre:R1", "2021-03-04", True)

    # Rerun on the same input: the same content (only run_id differs), one new version per table.
    contracts = [PEOPLE_STD, QUARANTINE, *ACTIVITY_STD.values()]
    before = {c.name: without_run_id(lake.read_table(spark, config.paths.lake, c)).collect() for c in contracts}
    assert run_ingest_job(test_overrides) == 0
    for contract in contracts:
        after_df = without_run_id(lake.read_table(spark, config.paths.lake, contract))
        before_df = spark.createDataFrame(before[contract.name], after_df.schema)
        assert_df_equality(after_df, before_df, ignore_row_order=True, ignore_nullable=True, ignore_metadata=True)
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


PEOPLE_FILES = {"gp_patients.csv", "hospital_patients.csv", "social_care_clients.csv", "third_sector_clients.csv"}


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
        source = next(s for s in ("social_care", "third_sector", "gp", "hospital") if csv_file.stem.startswith(s))
        prefix = f"ingest.{source}.{csv_file.stem}"
        lines = len(csv_file.read_bytes().splitlines())
        assert metrics[f"{prefix}.read"] == lines - 1, csv_file.name
        assert metrics[f"{prefix}.accepted"] + metrics[f"{prefix}.quarantined"] == lines - 1, csv_file.name

    with open(raw / "malformed_rows.csv", newline="") as handle:
        injected = [(row["file"], int(row["line"]), row["kind"]) for row in csv.DictReader(handle)]
    assert injected, "the generator was asked for malformed rows"
    quarantined = {(r.source_file, r.line_number): r.reason_code
                   for r in lake.read_table(spark, config.paths.lake, QUARANTINE).collect()}
    expected = {(f, line): expected_reasons(f, kind) for f, line, kind in injected}
    for key, reasons in expected.items():
        if reasons is None:
            assert key not in quarantined, key
        else:
            assert quarantined.get(key) in reasons, key
    # Nothing else in a clean generated extract is quarantined.
    assert set(quarantined) <= set(expected)
