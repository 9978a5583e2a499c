"""The quality bench's FEBRL mapping and entry point (the bench itself takes many minutes and is not a test)."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

from linkage import quality_bench
from linkage.config import PROJECT_ROOT

FEBRL_HEADER = (
    "rec_id, given_name, surname, street_number, address_1, address_2, suburb, postcode, state, "
    "date_of_birth, soc_sec_id"
)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_febrl4_maps_to_a_gp_and_a_hospital_file_with_names_dates_and_truth(tmp_path, monkeypatch):
    febrl = tmp_path / "febrl"
    febrl.mkdir()
    (febrl / "dataset4a.csv").write_text(
        f"{FEBRL_HEADER}\nrec-7-org, ann, lee, 1, a st, , x, 2119, nsw, 19560409, 1804974\n", encoding="utf-8"
    )
    (febrl / "dataset4b.csv").write_text(
        f"{FEBRL_HEADER}\nrec-7-dup-0, anne, lee, 1, a st, , x, 2119, nsw, 19560931, 1804974\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(quality_bench, "febrl_dir", lambda: febrl)
    raw = tmp_path / "raw"
    assert quality_bench.write_febrl_extract("febrl4", raw) == 2
    gp, hospital = read_rows(raw / "gp_patients.csv"), read_rows(raw / "hospital_patients.csv")
    assert gp == [
        {
            **dict.fromkeys(quality_bench.PEOPLE_HEADERS["gp_patients"], ""),
            "gp_patient_id": "rec-7-org",
            "forename": "ann",
            "surname": "lee",
            "date_of_birth": "1956-04-09",
            "postcode": "2119",
        }
    ]
    # An impossible FEBRL date is passed on for ingest to null, as it would a site's.
    assert (
        hospital[0]["date_of_birth"] == "1956-09-31"
        and hospital[0]["nhs_number"] == ""
        and hospital[0]["sex"] == ""
    )
    assert read_rows(raw / "social_care_clients.csv") == [] and read_rows(raw / "gp_events.csv") == []
    truth = read_rows(raw / "truth.csv")
    assert [(t["source_dataset"], t["true_person_id"]) for t in truth] == [("gp", "7"), ("hospital", "7")]


def test_bench_entry_point_runs_bare_and_nothing_in_the_library_imports_it():
    done = subprocess.run(
        [sys.executable, "-m", "linkage.quality_bench", "--help"],
        cwd=PROJECT_ROOT,
        env={},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "--people" in done.stdout
    # An import statement, not a mention: settings.py's comments point readers at the bench.
    imports_bench = re.compile(
        r"^\s*(from\s+linkage(\.quality_bench)?\s+import\s+.*quality_bench|import\s+linkage\.quality_bench"
        r"|from\s+linkage\.quality_bench\s+import|import\s+recordlinkage|from\s+recordlinkage)",
        re.M,
    )
    importers = [
        p
        for p in (PROJECT_ROOT / "linkage").rglob("*.py")
        if p.name != "quality_bench.py" and imports_bench.search(p.read_text(encoding="utf-8"))
    ]
    assert importers == []


def test_true_pair_reach_counts_candidates_and_pairs_with_names_alone(spark):
    """Person p has three records (three true pairs), q two (one true pair); blocking found two of the four."""
    truth = spark.createDataFrame(
        [
            ("gp", "1", "p"),
            ("hospital", "1", "p"),
            ("third_sector", "1", "p"),
            ("gp", "2", "q"),
            ("gp", "3", "q"),
        ],
        "source_dataset string, source_record_id string, true_person_id string",
    )
    people = spark.createDataFrame(
        [
            ("gp", "1", None, 1980, None, "9434765919"),
            ("hospital", "1", None, None, "LS1 1AA", "9434765919"),
            ("third_sector", "1", None, None, None, None),  # names alone
            ("gp", "2", None, None, None, None),
            ("gp", "3", None, None, None, "4010232137"),  # a number, but the other record has none
        ],
        "source_dataset string, source_record_id string, date_of_birth date, year_of_birth int, "
        "postcode_std string, nhs_number string",
    )
    scored = spark.createDataFrame(
        # One true pair listed right to left (its order in the table must not matter), one false pair.
        [("hospital", "1", "gp", "1"), ("gp", "1", "gp", "2"), ("gp", "2", "gp", "3")],
        "source_dataset_l string, source_record_id_l string, source_dataset_r string, source_record_id_r string",
    )
    assert (
        quality_bench.true_pair_reach(scored, people, truth)
        == {
            "true_pairs": 4,
            "true_candidates": 2,  # gp1-hospital1 and gp2-gp3
            "true_names_only": 3,  # gp1-third_sector1, hospital1-third_sector1 (no values on third_sector1), gp2-gp3
            "true_names_only_not_candidates": 2,  # the two third-sector pairs
        }
    )
