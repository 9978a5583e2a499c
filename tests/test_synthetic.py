"""The synthetic extract: spec conformance, realism figures, truth consistency, determinism and errors.

No Spark here: the generator is numpy + pyarrow, so these tests read its CSV files with pandas.
Identifiers in these files are synthetic; assertion messages still report counts and shares only.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from builders import CODELISTS, read

from jobs.generate import main as generate_main
from linkage.config import PROJECT_ROOT, SyntheticConfig
from linkage.synthetic import FILES, extract_present, generate_extract
from linkage.synthetic.population import age_at
from linkage.synthetic.strings import (
    break_one_digit,
    compact,
    nhs_check_digit,
    typo,
    valid_nhs_numbers,
    with_room_for,
)

REFERENCE = date(2026, 6, 30)
PEOPLE = 5000
ISO = r"^\d{4}-\d{2}-\d{2}$"
DMY = r"^\d{2}/\d{2}/\d{4}$"
POSTCODE = r"^(?:[A-Z]{1,2}\d{1,2}|[A-Z]{1,2}\d[A-Z]) ?\d[A-Z]{2}$"

SPEC_COLUMNS = {
    "gp_patients": [
        "gp_patient_id",
        "nhs_number",
        "forename",
        "middle_names",
        "surname",
        "date_of_birth",
        "sex",
        "postcode",
        "practice_code",
        "registration_start",
        "registration_end",
        "ethnicity",
        "imd_decile",
    ],
    "gp_events": ["gp_patient_id", "event_date", "code_system", "code", "value"],
    "hospital_patients": [
        "hospital_patient_id",
        "nhs_number",
        "forename",
        "surname",
        "date_of_birth",
        "sex",
        "postcode",
        "ethnicity",
    ],
    "hospital_episodes": [
        "episode_id",
        "hospital_patient_id",
        "setting",
        "start_date",
        "end_date",
        "admission_method",
        "primary_diagnosis",
        "secondary_diagnoses",
        "treatment_specialty",
        "referral_source",
    ],
    "social_care_clients": [
        "la_client_id",
        "nhs_number",
        "forename",
        "surname",
        "date_of_birth",
        "sex",
        "postcode",
        "ethnicity",
    ],
    "social_care_events": [
        "event_id",
        "la_client_id",
        "client_type",
        "event_type",
        "service_type",
        "primary_support_reason",
        "start_date",
        "end_date",
    ],
    "third_sector_clients": [
        "org_client_ref",
        "organisation",
        "forename",
        "surname",
        "date_of_birth",
        "year_of_birth",
        "postcode",
    ],
    "third_sector_contacts": [
        "contact_id",
        "org_client_ref",
        "organisation",
        "contact_date",
        "contact_reason",
        "unpaid_carer",
    ],
}
PEOPLE_ID = {
    "gp": "gp_patient_id",
    "hospital": "hospital_patient_id",
    "social_care": "la_client_id",
    "third_sector": "org_client_ref",
}


def codes(name: str) -> set[str]:
    return set(read(CODELISTS, name)["code"])


@pytest.fixture(scope="module")
def extract(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic")
    generate_extract(SyntheticConfig(people=PEOPLE, seed=7), folder, CODELISTS)
    return folder


@pytest.fixture(scope="module")
def truth(extract) -> pd.DataFrame:
    return read(extract, "truth")


def with_person(extract: Path, truth: pd.DataFrame, source: str, activity: str) -> pd.DataFrame:
    """Activity rows of a source joined to the true person of their people-file record."""
    rows = read(extract, activity)
    key = rows[PEOPLE_ID[source]]
    if source == "third_sector":
        key = rows["organisation"] + ":" + key
    people = truth[truth["source_dataset"] == source].set_index("source_record_id")["true_person_id"]
    return rows.assign(true_person_id=key.map(people))


# -- building blocks -------------------------------------------------------------------------------


def test_nhs_numbers_pass_modulus_11_and_one_wrong_digit_always_fails():
    numbers = valid_nhs_numbers(np.random.default_rng(1), 2000)
    as_int = numbers.astype(np.int64)
    assert len(set(numbers)) == 2000
    assert (nhs_check_digit(as_int // 10) == as_int % 10).all()
    broken = break_one_digit(numbers, np.random.default_rng(2)).astype(np.int64)
    assert (nhs_check_digit(broken // 10) != broken % 10).all()
    # the textbook example: 943 476 591 has check digit 9
    assert nhs_check_digit(np.array([943476591]))[0] == 9


def test_typo_makes_exactly_one_keying_edit_and_keeps_the_first_letter():
    names = np.array(["Catherine", "Mohammed", "Zoë", "Al", "Smith-Jones"] * 40)
    damaged = typo(names, np.random.default_rng(3))
    assert (np.strings.slice(damaged, 0, 1) == np.strings.slice(names, 0, 1)).all()
    length_change = np.strings.str_len(damaged) - np.strings.str_len(names)
    assert set(length_change) <= {-1, 0, 1}
    assert (
        damaged != names
    ).mean() > 0.8  # transposing a double letter or a 2-letter name can leave it as is


def test_string_arrays_are_kept_at_their_narrowest_and_widened_before_longer_names_go_in():
    from linkage.synthetic.records import _typo_some

    # np.strings.add sizes its result for the longest string it could make: the values need far less.
    postcodes = np.strings.add(
        np.strings.add(np.array(["AB1", "CD22"], dtype="U20"), " "), np.array(["2XY", "9ZZ"])
    )
    assert postcodes.dtype.itemsize > 4 * 8
    narrow = compact(postcodes)
    assert narrow.dtype == np.dtype("U8") and (narrow == postcodes).all()
    assert compact(np.arange(3)).dtype == np.arange(3).dtype and compact(np.array([], dtype="U9")).size == 0
    # A typo can add a letter: into an array at its narrowest it would be cut without a word.
    names = compact(np.array(["Ann", "Bob"] * 50))
    assert names.dtype == np.dtype("U3")
    roomy = with_room_for(names, np.array(["Anna"]))
    assert roomy.dtype == np.dtype("U4") and (roomy == names).all()
    damaged = _typo_some(names, np.ones(len(names)), np.random.default_rng(5))
    assert (np.strings.str_len(damaged) == 4).any()
    assert set(np.strings.str_len(damaged) - np.strings.str_len(names)) <= {-1, 0, 1}


def test_age_at_counts_whole_years_including_leap_day_birthdays():
    dob = np.array(["2015-06-30", "2015-07-01", "2000-02-29", "1990-12-31"], dtype="M8[D]")
    # born 30 June 2015 is 11 on 30 June 2026; a day later is still 10
    assert age_at(dob, REFERENCE).tolist() == [11, 10, 26, 35]
    assert age_at(np.array(["2000-02-29"], dtype="M8[D]"), date(2026, 2, 28)).tolist() == [25]


# -- spec conformance ------------------------------------------------------------------------------


def test_files_have_exactly_the_spec_columns(extract):
    for name, columns in SPEC_COLUMNS.items():
        assert sorted(read(extract, name).columns) == sorted(columns), name
    assert extract_present(extract)


def test_people_file_formats_follow_the_spec(extract):
    gp = read(extract, "gp_patients")
    hospital = read(extract, "hospital_patients")
    social = read(extract, "social_care_clients")
    third = read(extract, "third_sector_clients")
    assert gp["gp_patient_id"].is_unique and hospital["hospital_patient_id"].is_unique
    assert set(gp["sex"]) == {"M", "F", "U"}
    assert set(hospital["sex"]) == {"1", "2", "9", "0"}
    assert {"Male", "Female", "Unknown", "Other"} <= set(social["sex"])
    assert set(social["sex"]) - {"Male", "Female", "Unknown", "Other"} <= {
        "male",
        "female",
        "M",
        "F",
        "MALE",
        "FEMALE",
    }
    assert gp["practice_code"].str.fullmatch(r"[A-Z]\d{5}").all()
    assert set(gp["imd_decile"]) - {""} == {str(d) for d in range(1, 11)}
    allowed_codes = set("ABCDEFGHJKLMNPRS") | {"Z", "99", ""}
    assert set(gp["ethnicity"]) <= allowed_codes and set(hospital["ethnicity"]) <= allowed_codes
    assert (~social["ethnicity"].isin(allowed_codes)).mean() > 0.2  # free text in social care
    for frame in (gp, hospital, social):
        nhs = frame["nhs_number"][~frame["nhs_number"].isin(["", "NULL"])]
        assert nhs.str.fullmatch(r"\d{10}").all()
        postcode = frame["postcode"][frame["postcode"] != ""].str.upper()
        assert postcode.str.fullmatch(POSTCODE).all()
    assert gp["date_of_birth"].str.fullmatch(ISO).all() and social["date_of_birth"].str.fullmatch(ISO).all()
    assert gp["registration_start"].str.fullmatch(ISO).all()
    year_only = (third["date_of_birth"] == "") & (third["year_of_birth"] != "")
    assert 0.05 < year_only.mean() < 0.25 and 0.65 < (third["date_of_birth"] != "").mean() < 0.75


def test_hospital_and_third_sector_mix_both_date_of_birth_formats_row_by_row(extract):
    for name, dmy_share in (("hospital_patients", 0.35), ("third_sector_clients", 0.85)):
        dob = read(extract, name)["date_of_birth"]
        dob = dob[dob != ""]
        is_dmy, is_iso = dob.str.fullmatch(DMY), dob.str.fullmatch(ISO)
        assert (is_dmy | is_iso).all(), name
        assert abs(is_dmy.mean() - dmy_share) < 0.06, name


def test_activity_formats_follow_the_spec(extract):
    gp = read(extract, "gp_events")
    hospital = read(extract, "hospital_episodes")
    assert set(gp["code_system"]) == {"SNOMED", "DMD"}
    assert gp["event_date"].str.fullmatch(ISO).all()
    assert set(hospital["setting"]) == {"APC", "OP", "AE"} and hospital["episode_id"].is_unique
    assert (hospital.loc[hospital["setting"] != "APC", "end_date"] == "").all()
    assert (hospital.loc[hospital["setting"] != "APC", "admission_method"] == "").all()
    diagnoses = hospital["primary_diagnosis"][hospital["primary_diagnosis"] != ""]
    assert (
        diagnoses.str.contains(".", regex=False).any() and (~diagnoses.str.contains(".", regex=False)).any()
    )
    assert set(read(extract, "social_care_events")["client_type"]) == {"Service User", "Carer"}
    assert set(read(extract, "third_sector_contacts")["unpaid_carer"]) == {"Y", "N", ""}
    for name, column in (
        ("gp_events", "event_date"),
        ("hospital_episodes", "start_date"),
        ("social_care_events", "start_date"),
        ("third_sector_contacts", "contact_date"),
    ):
        assert (read(extract, name)[column] <= REFERENCE.isoformat()).all(), (
            name
        )  # no future dates unless malformed


def test_background_events_use_codes_outside_every_codelist(extract):
    all_codes = set().union(*(codes(path.stem) for path in CODELISTS.glob("*.csv")))
    gp_codes = read(extract, "gp_events")["code"]
    assert (~gp_codes.isin(all_codes)).mean() > 0.4
    assert gp_codes.isin(codes("shielding_lower_risk")).any()  # noise the shielding cohort must ignore


# -- realism figures -------------------------------------------------------------------------------


def test_coverage_and_nhs_number_presence_per_source_are_as_configured(extract, truth):
    people = truth.groupby("source_dataset")["true_person_id"].nunique() / PEOPLE
    for source, expected, tolerance in (
        ("gp", 0.97, 0.02),
        ("hospital", 0.40, 0.03),
        ("social_care", 0.09, 0.02),
        ("third_sector", 0.05, 0.015),
    ):
        assert abs(people[source] - expected) < tolerance, (source, round(people[source], 3))
    for name, expected in (("gp_patients", 0.98), ("hospital_patients", 0.95), ("social_care_clients", 0.60)):
        nhs = read(extract, name)["nhs_number"]
        present = (~nhs.isin(["", "NULL"])).mean()
        assert abs(present - expected) < 0.03, (name, round(present, 3))


def test_some_people_are_held_twice_in_one_source(truth):
    per_person = truth.groupby(["source_dataset", "true_person_id"]).size()
    twice = (per_person == 2).groupby(level=0).mean()
    assert 0.005 < twice["gp"] < 0.02 and 0.015 < twice["hospital"] < 0.05


def test_households_and_twins_share_surname_address_and_twins_a_birth_date(extract, truth):
    gp = read(extract, "gp_patients").merge(truth, left_on="gp_patient_id", right_on="source_record_id")
    gp = gp[~gp["true_person_id"].duplicated()]
    same = gp.groupby(["surname", "postcode", "date_of_birth"])["true_person_id"].transform("size")
    twins = gp[same == 2].groupby(["surname", "postcode", "date_of_birth"])["forename"].nunique()
    assert (twins == 2).sum() >= 5  # twin pairs with different forenames
    household = gp.groupby(["surname", "postcode"]).size()
    assert (household >= 3).sum() > PEOPLE / 50


def test_error_kinds_appear_at_configured_rates_and_scale(tmp_path):
    def forename_disagreement(scale: float) -> tuple[float, float]:
        folder = tmp_path / f"scale_{scale}"
        generate_extract(SyntheticConfig(people=4000, seed=3, error_rate_scale=scale), folder, CODELISTS)
        truth = read(folder, "truth")
        gp = read(folder, "gp_patients").merge(truth, left_on="gp_patient_id", right_on="source_record_id")
        hospital = read(folder, "hospital_patients").merge(
            truth, left_on="hospital_patient_id", right_on="source_record_id"
        )
        pairs = gp.merge(hospital, on="true_person_id", suffixes=("_gp", "_h"))
        differ = pairs["forename_gp"].str.upper() != pairs["forename_h"].str.upper()
        nhs = pd.concat([gp["nhs_number"], hospital["nhs_number"]])
        nhs = nhs[nhs.str.fullmatch(r"\d{10}")].astype(np.int64)
        invalid = (nhs_check_digit((nhs // 10).to_numpy()) != (nhs % 10).to_numpy()).mean()
        return differ.mean(), invalid

    clean, clean_invalid = forename_disagreement(0.0)
    base, base_invalid = forename_disagreement(1.0)
    heavy, heavy_invalid = forename_disagreement(3.0)
    assert clean == 0.0 and clean_invalid == 0.0  # no errors at all at scale 0
    assert 0.03 < base < heavy
    assert 0.0 < base_invalid < heavy_invalid


HOSPITAL_ERROR_CHECKS = {
    # error kind -> share of hospital_patients rows showing it (a DD/MM/YYYY date is compared as a date)
    "dob_placeholder": lambda h: h["date_of_birth"].str.contains(r"^(?:\d{4}-01-01|01/01/\d{4})$").mean(),
    "postcode_no_space": lambda h: (~h["postcode"].str.contains(" ") & (h["postcode"] != "")).mean(),
    "postcode_lower": lambda h: (h["postcode"].str.lower() == h["postcode"]).mean(),
}


@pytest.mark.parametrize("kind", sorted(HOSPITAL_ERROR_CHECKS))
def test_each_error_kind_follows_its_own_configured_rate(tmp_path, kind):
    def share(rate: float) -> float:
        config = SyntheticConfig(people=1500, seed=4, error_rates={kind: rate})
        generate_extract(config, tmp_path / str(rate), CODELISTS)
        return HOSPITAL_ERROR_CHECKS[kind](read(tmp_path / str(rate), "hospital_patients"))

    assert share(0.0) < 0.02  # 1 January birthdays do happen (about 1 in 365)
    assert 0.4 < share(0.5) < 0.6


def test_minority_groups_have_more_identifier_variation_but_only_modestly(extract, truth):
    gp = read(extract, "gp_patients").merge(truth, left_on="gp_patient_id", right_on="source_record_id")
    missing = gp.assign(missing=gp["nhs_number"] == "").groupby("ethnic_group")["missing"].mean()
    assert set(missing.index) == {"White", "Mixed", "Asian", "Black", "Other"}
    assert missing["White"] < missing["Asian"] < 0.05


# -- truth -----------------------------------------------------------------------------------------


def test_truth_has_one_row_per_people_record_with_matching_keys(extract, truth):
    assert list(truth.columns) == [
        "source_dataset",
        "source_record_id",
        "true_person_id",
        "ethnic_group",
        "sex",
        "birth_year",
        "imd_decile",
    ]
    assert not truth.duplicated(["source_dataset", "source_record_id"]).any()
    for source, (people_file, _) in FILES.items():
        people = read(extract, people_file)
        keys = people[PEOPLE_ID[source]]
        if source == "third_sector":
            keys = people["organisation"] + ":" + keys
        assert sorted(keys) == sorted(truth.loc[truth["source_dataset"] == source, "source_record_id"]), (
            source
        )
    assert set(truth["sex"]) == {"M", "F"}
    assert set(truth["imd_decile"]) == {str(d) for d in range(1, 11)}


def test_every_truth_condition_is_supported_by_written_activity(extract, truth):
    conditions = read(extract, "truth_conditions")
    gp = with_person(extract, truth, "gp", "gp_events").rename(columns={"event_date": "date"})
    hospital = with_person(extract, truth, "hospital", "hospital_episodes").rename(
        columns={"start_date": "date"}
    )
    social = with_person(extract, truth, "social_care", "social_care_events").rename(
        columns={"start_date": "date"}
    )
    third = with_person(extract, truth, "third_sector", "third_sector_contacts").rename(
        columns={"contact_date": "date"}
    )
    harm = hospital["primary_diagnosis"].str.match(r"X(6|7|8[0-4])") | hospital[
        "secondary_diagnoses"
    ].str.contains(r"(?:^|\|)X(?:6|7|8[0-4])")
    evidence = {
        "shielding": [gp[gp["code"].isin(codes("shielding_high_risk"))]],
        "cyp_mental_health": [
            gp[gp["code"].isin(codes("mental_health_referral") | codes("antidepressants"))],
            hospital[(hospital["setting"] == "APC") & harm],
            social[social["primary_support_reason"] == "Mental health support"],
        ],
        "unpaid_carers": [
            gp[gp["code"].isin(codes("carer_gp"))],
            social[social["client_type"] == "Carer"],
            third[third["unpaid_carer"] == "Y"],
        ],
        "cancer": [hospital[(hospital["setting"] == "OP") & (hospital["referral_source"] == "2WW")]],
        "asthma": [gp[gp["code"].isin(codes("asthma_diagnosis"))]],
        "hypertension": [gp[gp["code"].isin(codes("hypertension_diagnosis"))]],
        "mmr1": [gp[gp["code"].isin(codes("mmr_vaccination"))]],
        "mmr2": [gp[gp["code"].isin(codes("mmr_vaccination"))]],
        "preschool_booster": [gp[gp["code"].isin(codes("preschool_booster"))]],
    }
    assert set(conditions["condition"]) == set(evidence)
    for condition, frames in evidence.items():
        found = set(pd.concat(frames)[["true_person_id", "date"]].itertuples(index=False, name=None))
        expected = conditions[conditions["condition"] == condition]
        rows = set(expected[["true_person_id", "date"]].itertuples(index=False, name=None))
        assert len(rows) >= 5 and rows <= found, (condition, len(rows - found))


def test_negative_cases_are_written_and_kept_out_of_truth(extract, truth):
    conditions = read(extract, "truth_conditions")
    gp = with_person(extract, truth, "gp", "gp_events")

    def persons(frame: pd.DataFrame) -> set[str]:
        return set(frame["true_person_id"])

    def in_truth(condition: str) -> set[str]:
        return set(conditions.loc[conditions["condition"] == condition, "true_person_id"])

    ended = persons(gp[gp["code"].isin(codes("carer_ended_gp"))])
    hyp_resolved = persons(gp[gp["code"].isin(codes("hypertension_resolved"))])
    asthma_resolved = persons(gp[gp["code"].isin(codes("asthma_resolved"))])
    asthma_diagnosed = persons(gp[gp["code"].isin(codes("asthma_diagnosis"))])
    for negatives, condition in (
        (ended, "unpaid_carers"),
        (hyp_resolved, "hypertension"),
        (asthma_resolved, "asthma"),
    ):
        assert len(negatives) >= 3 and not negatives & in_truth(condition), condition
    # diagnosed, not resolved, but no inhaler in the last 12 months: not on the register
    assert len(asthma_diagnosed - asthma_resolved - in_truth("asthma")) >= 10
    # near misses in hospital: self-harm seen only in A&E; cancer diagnosed without a 2WW referral
    hospital = with_person(extract, truth, "hospital", "hospital_episodes")
    self_harm = hospital["primary_diagnosis"].str.match(r"X(6|7|8[0-4])")
    ae_only = (
        persons(hospital[self_harm & (hospital["setting"] == "AE")])
        - persons(hospital[self_harm & (hospital["setting"] == "APC")])
        - persons(gp[gp["code"].isin(codes("mental_health_referral") | codes("antidepressants"))])
    )
    social = with_person(extract, truth, "social_care", "social_care_events")
    ae_only -= persons(social[social["primary_support_reason"] == "Mental health support"])
    assert len(ae_only) >= 3 and not ae_only & in_truth("cyp_mental_health")
    no_referral = persons(hospital[hospital["primary_diagnosis"].str.match(r"C\d")]) - persons(
        hospital[hospital["referral_source"] == "2WW"]
    )
    assert len(no_referral) >= 3 and not no_referral & in_truth("cancer")
    # mental health evidence outside ages 11-25 at the index date
    ages = truth.drop_duplicates("true_person_id").set_index("true_person_id")["birth_year"].astype(int)
    mh = persons(gp[gp["code"].isin(codes("mental_health_referral"))])
    outside = {p for p in mh if not 10 <= REFERENCE.year - ages[p] <= 26}
    assert len(outside) >= 5 and not outside & in_truth("cyp_mental_health")


def test_vaccination_codes_are_written_for_children_only(extract, truth):
    gp = with_person(extract, truth, "gp", "gp_events")
    vaccine = gp[gp["code"].isin(codes("mmr_vaccination") | codes("preschool_booster"))]
    birth_year = truth.drop_duplicates("true_person_id").set_index("true_person_id")["birth_year"].astype(int)
    assert len(vaccine) > 50
    assert (REFERENCE.year - birth_year[vaccine["true_person_id"]] <= 11).all()


def test_codes_come_from_the_codelist_files(tmp_path):
    lists = tmp_path / "codelists"
    shutil.copytree(CODELISTS, lists)
    with (lists / "shielding_high_risk.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(
            [
                ["code", "term", "coding_system", "source", "version"],
                ["999000111", "Test high risk flag", "SNOMED", "test", "1"],
            ]
        )
    generate_extract(SyntheticConfig(people=800, seed=5), tmp_path / "out", lists)
    assert (read(tmp_path / "out", "gp_events")["code"] == "999000111").sum() > 3


# -- determinism and malformed rows ----------------------------------------------------------------


def _digests(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.glob("*.csv"))}


def test_same_seed_and_size_give_byte_identical_files(tmp_path):
    config = SyntheticConfig(people=1500, seed=11, malformed_rows=4)
    generate_extract(config, tmp_path / "a", CODELISTS)
    # The second copy comes from another process with another string-hash seed: nothing may depend on set order.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "jobs.generate",
            "--set",
            "synthetic.people=1500",
            "--set",
            "synthetic.seed=11",
            "--set",
            "synthetic.malformed_rows=4",
            "--out",
            str(tmp_path / "b"),
        ],
        check=True,
        capture_output=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    )
    generate_extract(config.model_copy(update={"seed": 12}), tmp_path / "c", CODELISTS)
    first = _digests(tmp_path / "a")
    assert len(first) == 11 and first == _digests(tmp_path / "b")
    assert all(first[name] != digest for name, digest in _digests(tmp_path / "c").items())


def test_malformed_rows_are_injected_only_when_asked_and_listed_by_line(tmp_path):
    generate_extract(SyntheticConfig(people=600, seed=2, malformed_rows=4), tmp_path / "bad", CODELISTS)
    generate_extract(SyntheticConfig(people=600, seed=2), tmp_path / "good", CODELISTS)
    assert not (tmp_path / "good" / "malformed_rows.csv").exists()
    manifest = read(tmp_path / "bad", "malformed_rows")
    assert len(manifest) == 8 * 4
    assert set(manifest["kind"]) == {"wrong_field_count", "unparseable_date", "future_date", "blank_id"}
    for name in SPEC_COLUMNS:
        with (tmp_path / "bad" / f"{name}.csv").open(encoding="utf-8-sig", newline="") as handle:
            lines = list(csv.reader(handle))
        width = len(lines[0])
        listed = manifest[manifest["file"] == f"{name}.csv"]
        wrong = {int(line) for line in listed.loc[listed["kind"] == "wrong_field_count", "line"]}
        assert {number for number, row in enumerate(lines, 1) if len(row) != width} == wrong, name
        for line in listed.loc[listed["kind"] == "blank_id", "line"].astype(int):
            assert "" in lines[line - 1], name
        truth_ids = set(read(tmp_path / "bad", "truth")["source_record_id"])
        if name.endswith(("patients", "clients")):  # malformed people rows are not anyone in truth
            for line in listed["line"].astype(int):
                assert not set(lines[line - 1]) & truth_ids, name
        with (tmp_path / "good" / f"{name}.csv").open(encoding="utf-8-sig", newline="") as handle:
            assert all(len(row) == width for row in csv.reader(handle)), name
    # regenerating without malformed rows removes the old manifest, so it never describes other files
    generate_extract(SyntheticConfig(people=600, seed=2), tmp_path / "bad", CODELISTS)
    assert not (tmp_path / "bad" / "malformed_rows.csv").exists()
    assert sorted(p.name for p in (tmp_path / "bad").iterdir()) == sorted(
        p.name for p in (tmp_path / "good").iterdir()
    )


def test_generate_job_writes_the_extract_and_maps_bad_config_to_exit_2(tmp_path, capsys):
    out = tmp_path / "raw"
    assert generate_main(["--set", "synthetic.people=60", "--out", str(out)], {}) == 0
    assert extract_present(out) and (out / "truth.csv").exists() and (out / "truth_conditions.csv").exists()
    assert "gp_patients.csv" in capsys.readouterr().out
    assert generate_main(["--set", "synthetic.people=3", "--out", str(out)], {}) == 2
    assert generate_main(["--set", "synthetic.coverage.hospital=1.5", "--out", str(out)], {}) == 2
    assert generate_main(["--set", f"cohorts.codelists={tmp_path / 'none'}", "--out", str(out)], {}) == 2
    (out / "gp_events.csv").unlink()
    assert not extract_present(out)
