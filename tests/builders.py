"""Builders of test inputs shared by several test modules (fixtures that use them are in conftest.py).

Test modules import from here, never from each other: a test module's helpers are its own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
from conftest import TEST_SPARK
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import ingest as ingest_job
from jobs.pseudonymise import main as pseudonymise_main
from linkage import lake, sources
from linkage.config import PROJECT_ROOT, AppConfig, load_config
from linkage.link.settings import build_settings, with_corrections
from linkage.schemas import PEOPLE_STD, PERSON_SPINE, TableContract
from linkage.tracking import tracking_run

# ---------------------------------------------------------------------------------------------
# people_std frames and record pairs

PAIR_SCHEMA = (
    "source_dataset_l string, source_record_id_l string, source_dataset_r string, source_record_id_r string"
)


def people_frame(spark, rows: list[dict]):
    """A people_std frame: the given columns per row, every other PEOPLE_STD column null."""
    names = PEOPLE_STD.column_names
    return spark.createDataFrame([tuple(row.get(n) for n in names) for row in rows], PEOPLE_STD.schema)


def phonetic_people_frame(spark, rows: list[dict]):
    """`people_frame` with the phonetic name columns the model compares (Soundex of the canonical names)."""
    return people_frame(spark, rows).withColumns(
        {
            "forename_phonetic": F.soundex("forename_canonical"),
            "surname_phonetic": F.soundex("surname_canonical"),
        }
    )


def person(dataset, record_id, **values):
    return {"source_dataset": dataset, "source_record_id": record_id, **values}


# ---------------------------------------------------------------------------------------------
# a small raw extract for the ingest job, with injected bad rows

BOM = "\ufeff"
RUN_DATE = "2026-06-30"

# Physical lines matter: the expected quarantine below names them (header = line 1).
FILES = {
    # Upper-case, reordered header with a BOM; G3 twice; a blank id; a short row; an embedded comma and quote.
    "gp_patients.csv": BOM
    + (
        "GP_PATIENT_ID,Forename,middle_names,Surname,date_of_birth,sex,postcode,nhs_number,practice_code,"
        "registration_start,registration_end,ethnicity,imd_decile\n"
        "G1,Zoë,,O'Neill,1980-01-01,F,ls14ab,9434765919,B86001,2001-01-01,,A,3\n"  # 2 ok
        "G2,Bob,Mary Jane,Smith-Jones,31/02/1990,M,LS1 4AB,9434765918,B86001,,,White British,11\n"  # 3 ok, flags
        "G3,Ann,,Lee,1990-05-05,U,LS2 7EW,,B86001,,,,\n"  # 4 duplicate_id
        "G3,Anne,,Lee,1990-05-05,F,LS2 7EW,,B86001,,,,\n"  # 5 duplicate_id
        ",Cat,,Ray,1970-03-03,F,LS3 1AA,,B86001,,,,\n"  # 6 missing id
        "G4,Dan,,Fox,1970-03-03,M\n"  # 7 malformed
        'G5,Jo,,"Smith, ""Jr""",07/08/1965,M,,NULL,B86001,,,,\n'  # 8 ok
        "G6,Eve,,Kay,,F,,,B86001,,,Z,\n"  # 9 ok
    ),
    "gp_events.csv": (
        "gp_patient_id,event_date,code_system,code,value\n"
        "G1,2020-01-01,SNOMED,38341003,140.5\n"  # 2 ok
        "G1,2020-02-30,SNOMED,38341003,\n"  # 3 impossible_date
        "G1,soon,SNOMED,38341003,\n"  # 4 unparseable_date
        "G1,2099-01-01,SNOMED,38341003,\n"  # 5 future_date
        "G1,2020-01-01,READ,G20..,\n"  # 6 unknown_code
        "G404,01/02/2020,dmd,3214911000001105,\n"  # 7 ok: person not in the people file is kept
        "G2,,SNOMED,38341003,\n"  # 8 unparseable_date (missing)
    ),
    "hospital_patients.csv": (
        "hospital_patient_id,nhs_number,forename,surname,date_of_birth,sex,postcode,ethnicity\n"
        "H1,943 476 5919,Zoe,ONeill,01/01/1980,2,LS1 4AB,A\n"
    ),
    "hospital_episodes.csv": (
        "episode_id,hospital_patient_id,setting,start_date,end_date,admission_method,primary_diagnosis,"
        "secondary_diagnoses,treatment_specialty,referral_source\n"
        "E1,H1,APC,2020-01-01,2020-01-03,21,j45.9,I10|E11.9,300,\n"  # 2 ok
        "E2,H1,XX,2020-01-01,,,,,,\n"  # 3 unknown_code
        "E3,H1,op,2020-03-01,,,,,,2WW\n"  # 4 duplicate_id
        "E3,H1,OP,2020-03-02,,,,,,\n"  # 5 duplicate_id
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
        "C1,R1,Carers Centre,04/03/2021,Debt,Y\n"  # 2 ok
        "C2,R1,Carers Centre,2021-03-04,Debt,maybe\n"  # 3 unknown_code
    ),
}

JOB_SETTINGS = [
    f"ingest.run_date={RUN_DATE}",
    "ingest.sources.third_sector.people_columns.org_client_ref=ClientRef",
]


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
    run = client.search_runs(
        [experiment.experiment_id], "tags.job = 'ingest'", order_by=["start_time DESC"], max_results=1
    )[0]
    return run.data.metrics


# ---------------------------------------------------------------------------------------------
# generated extracts and codelists

CODELISTS = PROJECT_ROOT / "conf" / "codelists"


def read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")


# ---------------------------------------------------------------------------------------------
# a tiny restricted zone and one pseudonymise release of it

RELEASE_KEY = bytes(range(32))  # test key; its hex is what the leak checks look for
REFERENCE_DATE = date(2026, 6, 30)


def contract_frame(spark: SparkSession, contract: TableContract, rows: list[dict]) -> DataFrame:
    """Rows given as dicts of the columns that matter; every other contract column is null."""
    tuples = [
        tuple({"run_id": "test-setup", **row}.get(name) for name in contract.column_names) for row in rows
    ]
    return spark.createDataFrame(tuples, contract.schema)


def _person(forename, surname, dob_raw, dob, sex, postcode, district, nhs, group, **extra) -> dict:
    return {
        "forename_raw": forename,
        "surname_raw": surname,
        "forename_std": forename.upper(),
        "surname_std": surname.upper(),
        "date_of_birth_raw": dob_raw,
        "date_of_birth": dob,
        "year_of_birth": dob.year if dob else None,
        "sex": sex,
        "postcode_raw": postcode,
        "postcode_std": postcode,
        "postcode_district": district,
        "nhs_number_raw": nhs,
        "nhs_number": nhs,
        "ethnic_group": group,
        **extra,
    }


PEOPLE_ROWS = [
    # person pk-A: GP, hospital and social care records that disagree on DOB, sex, postcode and ethnic group.
    {
        "source_dataset": "gp",
        "source_record_id": "GPLOCAL0001",
        "middle_names_raw": "Quillon",
        "imd_decile": 3,
        **_person(
            "Ottoline",
            "Vexbridge",
            "1980-05-17",
            date(1980, 5, 17),
            "M",
            "LS1 4AB",
            "LS1",
            "9434765919",
            "White",
        ),
    },
    {
        "source_dataset": "hospital",
        "source_record_id": "MRNLOCAL0001",
        **_person(
            "Ottoline",
            "Vexbridge",
            "17/05/1980",
            date(1980, 5, 17),
            "M",
            "LS6 2XY",
            "LS6",
            "9434765919",
            "Unknown",
        ),
    },
    {
        "source_dataset": "social_care",
        "source_record_id": "LALOCAL0001",
        **_person("Otto", "Vexbrydge", "1981-05-17", date(1981, 5, 17), "F", "LS1 4AB", "LS1", None, "Asian"),
    },
    # person pk-B: third sector only, year of birth only.
    {
        "source_dataset": "third_sector",
        "source_record_id": "Carers Centre:TSREF0042",
        "year_of_birth": 2010,
        "year_of_birth_raw": "2010",
        "forename_raw": "Zephyrine",
        "surname_raw": "Quasthoff",
        "forename_std": "ZEPHYRINE",
        "surname_std": "QUASTHOFF",
        "ethnic_group": "Unknown",
        "organisation": "Carers Centre",
    },
    # person pk-C: GP only, no activity, 17 on the reference date, sex not recorded.
    {
        "source_dataset": "gp",
        "source_record_id": "GPLOCAL0002",
        **_person(
            "Barnaby",
            "Fenwright",
            "30/06/2009",
            date(2009, 6, 30),
            None,
            "BD7 1QQ",
            "BD7",
            "4010232137",
            "Black",
        ),
    },
    # a GP record the linkage gave no person key (the null row): its activity must not be published.
    {
        "source_dataset": "gp",
        "source_record_id": "GPLOCAL0003",
        **_person(
            "Ermintrude", "Pocklington", "1999-12-01", date(1999, 12, 1), "F", "YO1 7HH", "YO1", None, "Mixed"
        ),
    },
]

SPINE_ROWS = [
    {"source_dataset": "gp", "source_record_id": "GPLOCAL0001", "person_key": "pk-A"},
    {"source_dataset": "hospital", "source_record_id": "MRNLOCAL0001", "person_key": "pk-A"},
    {"source_dataset": "social_care", "source_record_id": "LALOCAL0001", "person_key": "pk-A"},
    {"source_dataset": "third_sector", "source_record_id": "Carers Centre:TSREF0042", "person_key": "pk-B"},
    {"source_dataset": "gp", "source_record_id": "GPLOCAL0002", "person_key": "pk-C"},
    {"source_dataset": "gp", "source_record_id": "GPLOCAL0003", "person_key": None},
]

ACTIVITY_ROWS = {
    "gp": [
        {
            "source_dataset": "gp",
            "source_record_id": "GPLOCAL0001",
            "event_date": date(2024, 1, 10),
            "code_system": "SNOMED",
            "code": "38341003",
            "value": 140.0,
        },
        {
            "source_dataset": "gp",
            "source_record_id": "GPLOCAL0001",
            "event_date": date(2023, 2, 1),
            "code_system": "DMD",
            "code": "39113611000001102",
            "value": None,
        },
        {
            "source_dataset": "gp",
            "source_record_id": "GPLOCAL0003",
            "event_date": date(2024, 5, 5),
            "code_system": "SNOMED",
            "code": "195967001",
            "value": None,
        },
    ],
    "hospital": [
        {
            "episode_id": "EPILOCAL9001",
            "source_dataset": "hospital",
            "source_record_id": "MRNLOCAL0001",
            "setting": "APC",
            "start_date": date(2025, 2, 20),
            "end_date": date(2025, 3, 1),
            "admission_method": "21",
            "primary_diagnosis": "J459",
            "secondary_diagnoses": ["E119", "I10"],
            "treatment_specialty": "300",
        },
    ],
    "social_care": [
        {
            "event_id": "SCELOCAL7001",
            "source_dataset": "social_care",
            "source_record_id": "LALOCAL0001",
            "client_type": "Service User",
            "event_type": "Assessment",
            "service_type": "Home care",
            "primary_support_reason": "Physical support",
            "start_date": date(2022, 6, 1),
            "end_date": None,
        },
    ],
    "third_sector": [
        {
            "contact_id": "TSCLOCAL5001",
            "source_dataset": "third_sector",
            "source_record_id": "Carers Centre:TSREF0042",
            "organisation": "Carers Centre",
            "contact_date": date(2025, 6, 1),
            "contact_reason": "Carer support",
            "unpaid_carer": True,
        },
    ],
}


def write_restricted_inputs(spark: SparkSession, config) -> None:
    """The linkage team's tables the job reads: people_std, person_spine and the four activity tables."""
    with tracking_run(config, job="test-setup") as run:
        lake.write_table(contract_frame(spark, PEOPLE_STD, PEOPLE_ROWS), config.paths.lake, PEOPLE_STD, run)
        lake.write_table(
            contract_frame(spark, PERSON_SPINE, SPINE_ROWS), config.paths.lake, PERSON_SPINE, run
        )
        for source, contract in sources.activity_std_contracts().items():
            lake.write_table(
                contract_frame(spark, contract, ACTIVITY_ROWS[source]), config.paths.lake, contract, run
            )


def job_argv(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


@dataclass(frozen=True)
class Release:
    config: AppConfig
    argv: list[str]


def make_release(spark: SparkSession, root: Path, tracking_uri: str) -> Release:
    """One pseudonymise run on the tiny extract under `root`, key from the environment."""
    overrides = [
        f"paths.lake={root / 'lake'}",
        f"paths.raw={root / 'raw'}",
        "paths.truth=",
        "paths.truth_conditions=",
        f"tracking.uri={tracking_uri}",
        f"spark.master={TEST_SPARK.master}",
        f"spark.shuffle_partitions={TEST_SPARK.shuffle_partitions}",
        f"pseudonymise.key_file={root / 'secrets' / 'unused_key'}",
        f"pseudonymise.reference_date={REFERENCE_DATE}",
        "pseudonymise.release_id=test-release-1",
    ]
    config = load_config(None, overrides=overrides)
    write_restricted_inputs(spark, config)
    argv = job_argv(overrides)
    assert pseudonymise_main(argv, {"LINKAGE_PSEUDO_KEY": RELEASE_KEY.hex()}) == 0
    return Release(config, argv)


# Linkage model inputs: a few hundred people_std rows over the four sources, with their truth.

FORENAMES = [
    "OLIVIA",
    "AMELIA",
    "ISLA",
    "AVA",
    "MOHAMMED",
    "NOAH",
    "OLIVER",
    "GEORGE",
    "PRIYA",
    "ANEESA",
    "KWAME",
    "CHIDI",
    "SIOBHAN",
    "EWAN",
    "FATIMA",
    "YUSUF",
    "GRACE",
    "ROBERT",
    "CATHERINE",
    "WEI",
]
SURNAMES = [
    "SMITH",
    "JONES",
    "TAYLOR",
    "BROWN",
    "KHAN",
    "PATEL",
    "OKAFOR",
    "MENSAH",
    "OBRIEN",
    "MURPHY",
    "CHEN",
    "WANG",
    "WILLIAMS",
    "DAVIES",
    "EVANS",
    "HUSSAIN",
    "AHMED",
    "NGUYEN",
    "CAMPBELL",
    "STEWART",
    "ROBINSON",
    "WRIGHT",
]
NICKNAMES = {"ROBERT": "BOB", "CATHERINE": "KATE", "MOHAMMED": "MOHAMMAD"}
ETHNIC_GROUPS = ["White", "Asian", "Black", "Mixed", "Other"]
PEOPLE = 90


def typo(name: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(name))
    return name[:i] + rng.choice("AEIOURNSTL") + name[i + 1 :]


def synthetic_people(seed: int = 7) -> tuple[list[dict], list[tuple]]:
    """People spread over the four sources with typos, nicknames, swaps and missing NHS numbers; plus the truth."""
    rng = random.Random(seed)
    rows, truth = [], []
    for i in range(PEOPLE):
        forename, surname = rng.choice(FORENAMES), rng.choice(SURNAMES)
        dob = date(1935, 1, 1) + timedelta(days=rng.randrange(0, 30000))
        sex = rng.choice("MF")
        postcode = (
            f"LS{rng.randrange(1, 9)} {rng.randrange(1, 9)}{rng.choice('ABDEFG')}{rng.choice('HJLNPQ')}"
        )
        nhs = f"{9000000000 + i * 7919}"
        ethnic, imd = rng.choice(ETHNIC_GROUPS), rng.randrange(1, 11)
        nhs_coverage = {"gp": 0.97, "hospital": 0.9, "social_care": 0.6, "third_sector": 0.0}
        present = ["gp"] + [s for s in ("hospital", "social_care", "third_sector") if rng.random() < 0.5]
        if rng.random() < 0.08:
            present.append("gp")  # the same person twice in one source
        for n, source in enumerate(present):
            f, s, d, p = forename, surname, dob, postcode
            roll = rng.random()
            if n and roll < 0.15:
                s = typo(s, rng)
            elif n and roll < 0.25:
                f = NICKNAMES.get(f, typo(f, rng))
            elif n and roll < 0.30:
                f, s = s, f
            elif n and roll < 0.37 and d.day <= 12:
                d = date(d.year, d.day, d.month)
            elif n and roll < 0.41:
                d = date(
                    d.year + 10 if d.year < 2000 else d.year - 10, d.month, min(d.day, 28)
                )  # one year digit
            elif n and roll < 0.45:
                d = d + timedelta(days=rng.randrange(1, 20))
            elif n and roll < 0.48:
                d = date(d.year, 1, 1)  # placeholder
            year_only = source == "third_sector" and rng.random() < 0.3
            if n and rng.random() < 0.2:
                p = None
            has_nhs = rng.random() < nhs_coverage[source]
            noise = rng.random()
            sex_recorded = (
                {"M": "F", "F": "M"}[sex] if n and noise < 0.03 else (None if n and noise < 0.08 else sex)
            )
            nhs_recorded = (
                f"{9000000000 + (i + 1) * 7919}" if n and noise > 0.98 else nhs
            )  # a relative's number
            record_id = f"{source[0]}{i:03d}{n}"
            rows.append(
                {
                    "source_dataset": source,
                    "source_record_id": record_id,
                    "forename_std": f,
                    "surname_std": s,
                    "forename_canonical": {"BOB": "ROBERT", "KATE": "CATHERINE"}.get(f, f),
                    "surname_canonical": s,
                    "surname_parts": [s],
                    "date_of_birth": None if year_only else d,
                    "year_of_birth": d.year,
                    "dob_is_placeholder": d.month == 1 and d.day == 1,
                    "sex": sex_recorded,
                    "postcode_std": p,
                    "postcode_sector": p[:-2] if p else None,
                    "postcode_district": p.split(" ")[0] if p else None,
                    "nhs_number": nhs_recorded if has_nhs else None,
                }
            )
            truth.append((source, record_id, f"T{i}", ethnic, sex, dob.year, imd))
    rows.append(
        {"source_dataset": "third_sector", "source_record_id": "t-null-row"}
    )  # a record with nothing known
    truth.append(("third_sector", "t-null-row", "T-null", "Other", None, None, None))
    return rows, truth


def write_people(spark, config, rows) -> None:
    people = phonetic_people_frame(spark, rows)
    with tracking_run(config, job="test-setup") as run:
        lake.write_table(people.withColumn("run_id", F.lit(run.run_id)), config.paths.lake, PEOPLE_STD, run)


def write_truth(path: Path, truth: list[tuple]) -> None:
    lines = ["source_dataset,source_record_id,true_person_id,ethnic_group,sex,birth_year,imd_decile"]
    lines += [",".join("" if v is None else str(v) for v in row) for row in truth]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def as_argv(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


def with_random_parameters(
    model: dict, seed: int, m_range: tuple[float, float], u_range: tuple[float, float], prior: float
) -> dict:
    """The model with every m and u it does not fix drawn at random (uniform in the ranges), and the prior."""
    rng = random.Random(seed)
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            if not level.get("fix_m_probability"):
                level["m_probability"] = rng.uniform(*m_range)
            if not level.get("fix_u_probability"):
                level["u_probability"] = rng.uniform(*u_range)
    model["probability_two_random_records_match"] = prior
    return model


def random_model(config: AppConfig) -> dict:
    """The project's settings (with the fixed corrections) with every free m and u drawn at random, a prior of 1e-3.

    Random, distinct parameters per level make a wrong level, a wrong term frequency or a missed term show up as
    a different weight; levels the settings fix (the neutral and family levels) keep their values.
    """
    model = with_corrections(build_settings(config.linkage).get_settings("spark").as_dict())
    return with_random_parameters(model, 16, (0.001, 0.9), (1e-5, 0.5), 1e-3)
