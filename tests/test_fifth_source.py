"""A fifth source is one declaration: registered (in this test only), it is ingested, linked and on the spine.

The toy source, community mental health, has a people file (its own client id plus the usual
identifiers) and an activity file (a contact date and a code). The extract holds tens of people:
everyone is in GP, and some are also in the fifth source and the other three under their own ids.
Assertions are counts only: the extract's names, dates and numbers are never printed.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
from builders import RUN_DATE, as_argv, run_ingest_job, write_extract

from jobs import approve as approve_job
from jobs import link as link_job
from linkage import lake, sources
from linkage.ingest.fields import FileFields
from linkage.link import approved_version
from linkage.link.registry import load_model_json, register_model
from linkage.schemas import PEOPLE_STD, PERSON_SPINE, Column, TableContract
from linkage.standardise.sex import sex_std_social_care
from linkage.synthetic import extract_present
from linkage.tracking import tracking_run

CMH = "community_mental_health"
KEY = (
    Column("source_dataset", "string", "Source of the record."),
    Column("source_record_id", "string", "The people-file record this activity belongs to."),
)
RUN_ID = Column("run_id", "string", "MLflow run that wrote the row.")

COMMUNITY_MENTAL_HEALTH = sources.SourceDeclaration(
    name=CMH,
    record_label="a community mental health record",
    people_file="cmh_clients",
    activity_file="cmh_contacts",
    people=FileFields(
        ("cmh_client_id", "nhs_number", "forename", "surname", "date_of_birth", "sex", "postcode"),
        mandatory_ids=("cmh_client_id",),
        unique_key=("cmh_client_id",),
    ),
    activity=FileFields(
        ("contact_id", "cmh_client_id", "contact_date", "contact_type", "code"),
        mandatory_ids=("contact_id", "cmh_client_id"),
        unique_key=("contact_id",),
        mandatory_dates=("contact_date",),
        closed_codes={"contact_type": ("F2F", "TEL")},
    ),
    person_id=("cmh_client_id",),
    activity_std=TableContract(
        "restricted",
        f"{CMH}_activity_std",
        "Community mental health contacts.",
        (
            Column("contact_id", "string", "Contact id."),
            *KEY,
            Column("contact_date", "date", "Date of the contact."),
            Column("contact_type", "string", "F2F or TEL."),
            Column("code", "string", "SNOMED CT code of the contact."),
            RUN_ID,
        ),
    ),
    pseudonymised_activity=TableContract(
        "pseudonymised",
        f"{CMH}_contacts",
        "Contacts keyed by person_id.",
        (
            Column("person_id", "string", "Pseudonymous person id."),
            Column("contact_date", "date", "Date of the contact."),
            Column("code", "string", "SNOMED CT code."),
            RUN_ID,
        ),
    ),
    activity_date_columns=("contact_date",),
    cohort_date_column="contact_date",
    cohort_code_columns=("code",),
    sex_std=sex_std_social_care,  # Male / Female, as local-authority systems write it
)

FORENAMES = [
    "Olivia",
    "Amelia",
    "Isla",
    "Ava",
    "Mohammed",
    "Noah",
    "Oliver",
    "George",
    "Priya",
    "Aneesa",
    "Kwame",
    "Chidi",
    "Siobhan",
    "Ewan",
    "Fatima",
    "Yusuf",
    "Grace",
    "Robert",
    "Catherine",
    "Wei",
]
SURNAMES = [
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Khan",
    "Patel",
    "Okafor",
    "Mensah",
    "Obrien",
    "Murphy",
    "Chen",
    "Wang",
    "Williams",
    "Davies",
    "Evans",
    "Hussain",
    "Ahmed",
    "Nguyen",
    "Campbell",
    "Stewart",
    "Robinson",
    "Wright",
]
PEOPLE = 36
IN_CMH = range(0, 14)  # persons 0..13 are also community mental health clients
CMH_WITHOUT_NHS = range(0, 3)  # ... three of them recorded without an NHS number
IN_HOSPITAL, IN_SOCIAL_CARE, IN_THIRD_SECTOR = range(10, 26), range(22, 32), range(30, 36)


def nhs_number(seed: int) -> str:
    """A made-up ten-digit number with a valid modulus-11 check digit."""
    for base in range(900_000_000 + seed * 997, 900_000_000 + seed * 997 + 50):
        digits = [int(d) for d in str(base)]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        if check == 11:
            check = 0
        if check != 10:
            return f"{base}{check}"
    raise AssertionError("no valid check digit")


def people() -> list[dict[str, str]]:
    rng = random.Random(5)
    return [
        {
            "forename": FORENAMES[i % len(FORENAMES)],
            "surname": SURNAMES[(i * 7) % len(SURNAMES)],
            "dob": date(1940, 1, 2) + timedelta(days=rng.randrange(0, 25_000)),
            "sex": rng.choice("MF"),
            "postcode": f"LS{1 + i % 9} {1 + i % 8}{'ABDEFG'[i % 6]}{'HJLNPQ'[i % 6]}",
            "nhs": nhs_number(i),
        }
        for i in range(PEOPLE)
    ]


def csv(header: str, rows: list[str]) -> str:
    return "\n".join([header, *rows]) + "\n"


def extract_files() -> dict[str, str]:
    """The spec's CSV files for the four sources plus the fifth source's two."""
    who = people()
    sex_word = {"M": "Male", "F": "Female"}
    hospital_sex = {"M": "1", "F": "2"}
    return {
        "gp_patients.csv": csv(
            "gp_patient_id,nhs_number,forename,middle_names,surname,date_of_birth,sex,postcode,practice_code,"
            "ethnicity,imd_decile",
            [
                f"G{i},{p['nhs']},{p['forename']},,{p['surname']},{p['dob']},{p['sex']},{p['postcode']},B86001,A,5"
                for i, p in enumerate(who)
            ],
        ),
        "gp_events.csv": csv(
            "gp_patient_id,event_date,code_system,code,value",
            [f"G{i},2024-01-0{1 + i % 9},SNOMED,38341003," for i in range(PEOPLE)],
        ),
        "hospital_patients.csv": csv(
            "hospital_patient_id,nhs_number,forename,surname,date_of_birth,sex,postcode,ethnicity",
            [
                f"H{i},{who[i]['nhs']},{who[i]['forename'].upper()},{who[i]['surname'].upper()},"
                f"{who[i]['dob']:%d/%m/%Y},{hospital_sex[who[i]['sex']]},{who[i]['postcode']},A"
                for i in IN_HOSPITAL
            ],
        ),
        "hospital_episodes.csv": csv(
            "episode_id,hospital_patient_id,setting,start_date,end_date,admission_method,primary_diagnosis,"
            "secondary_diagnoses,treatment_specialty,referral_source",
            [f"E{i},H{i},OP,2024-02-01,,,,,300," for i in IN_HOSPITAL],
        ),
        "social_care_clients.csv": csv(
            "la_client_id,nhs_number,forename,surname,date_of_birth,sex,postcode,ethnicity",
            [
                f"LA{i},{who[i]['nhs']},{who[i]['forename']},{who[i]['surname']},{who[i]['dob']},"
                f"{sex_word[who[i]['sex']]},{who[i]['postcode']},"
                for i in IN_SOCIAL_CARE
            ],
        ),
        "social_care_events.csv": csv(
            "event_id,la_client_id,client_type,event_type,service_type,primary_support_reason,start_date,end_date",
            [
                f"SE{i},LA{i},Service User,Assessment,Home care,Physical support,2024-03-01,"
                for i in IN_SOCIAL_CARE
            ],
        ),
        "third_sector_clients.csv": csv(
            "org_client_ref,organisation,forename,surname,date_of_birth,year_of_birth,postcode",
            [
                f"R{i},Carers Centre,{who[i]['forename']},{who[i]['surname']},{who[i]['dob']},,{who[i]['postcode']}"
                for i in IN_THIRD_SECTOR
            ],
        ),
        "third_sector_contacts.csv": csv(
            "contact_id,org_client_ref,organisation,contact_date,contact_reason,unpaid_carer",
            [f"TC{i},R{i},Carers Centre,2024-04-01,Debt,N" for i in IN_THIRD_SECTOR],
        ),
        "cmh_clients.csv": csv(
            "cmh_client_id,nhs_number,forename,surname,date_of_birth,sex,postcode",
            [
                f"M{i},{'' if i in CMH_WITHOUT_NHS else who[i]['nhs']},{who[i]['forename']},{who[i]['surname']},"
                f"{who[i]['dob']},{sex_word[who[i]['sex']]},{who[i]['postcode']}"
                for i in IN_CMH
            ],
        ),
        "cmh_contacts.csv": csv(
            "contact_id,cmh_client_id,contact_date,contact_type,code",
            [f"MC{i}a,M{i},2024-05-0{1 + i % 9},f2f, 401157001 " for i in IN_CMH]
            + [f"MC{i}b,M{i},2024-06-01,TEL,401157001" for i in IN_CMH[:4]],
        ),
    }


@pytest.fixture
def fifth_source():
    with sources.registered(COMMUNITY_MENTAL_HEALTH) as declaration:
        yield declaration
    assert CMH not in sources.names()


def test_registering_a_source_extends_every_derived_list(fifth_source, make_config):
    assert sources.names()[-1] == CMH and len(sources.names()) == 5
    assert sources.all_tables().count(fifth_source.activity_std) == 1
    # The analysts' person table gets the new source's flag, after the built-in ones.
    person = sources.person_contract()
    flags = [c for c in person.columns if c.name.startswith("in_")]
    assert [c.name for c in flags][-2:] == ["in_third_sector", f"in_{CMH}"]
    assert flags[-1].type == "boolean" and flags[-1].comment == "Person has a community mental health record."
    assert sources.pseudonymised_tables()[0] == person
    config = make_config(f"pseudonymise.source_priority=[{CMH},gp,hospital,social_care,third_sector]")
    # ingest.sources defaults to the declared file names; the configuration accepts the new name everywhere.
    assert (config.ingest.sources[CMH].people_file, config.ingest.sources[CMH].activity_file) == (
        "cmh_clients",
        "cmh_contacts",
    )
    assert config.pseudonymise.source_priority[0] == CMH
    with pytest.raises(KeyError, match="unknown source"):
        sources.get("dentistry")
    with pytest.raises(ValueError, match="already registered"):
        sources.register(fifth_source)


def test_a_source_not_registered_is_refused_by_the_configuration(make_config):
    from linkage.errors import ConfigError

    with pytest.raises(
        ConfigError, match="Input should be 'gp', 'hospital', 'social_care' or 'third_sector'"
    ):
        make_config(f"ingest.sources.{CMH}.people_file=cmh_clients")


@pytest.mark.slow
def test_a_fifth_source_is_ingested_linked_and_on_the_spine(
    fifth_source, spark, tmp_path, test_overrides, make_config, capsys, pipeline_run
):
    """Linked with the model the session pipeline trained (registered here as train would register it): training
    on a fifth source is training on more rows, and costs the test a minute it would spend on nothing new."""
    assert pipeline_run.exit_code == 0, pipeline_run.stderr[-2000:]
    trained = pipeline_run.config()
    model = load_model_json(
        trained, approved_version(trained)
    )  # from the pipeline's store, before ours opens
    raw = tmp_path / "raw"
    write_extract(raw, extract_files())
    overrides = [
        *test_overrides,
        f"tracking.registered_model=fifth-{tmp_path.name}",
        "linkage.u_max_pairs=20000",
        "linkage.em_max_iterations=10",
    ]
    config = make_config(*overrides[len(test_overrides) :])
    assert extract_present(raw)  # the default file names now include the fifth source's

    assert run_ingest_job(overrides, settings=[f"ingest.run_date={RUN_DATE}"]) == 0, capsys.readouterr().err[
        -2000:
    ]
    people_std = lake.read_table(spark, config.paths.lake, PEOPLE_STD)
    by_source = {r.source_dataset: r["count"] for r in people_std.groupBy("source_dataset").count().collect()}
    assert by_source == {
        "gp": PEOPLE,
        "hospital": len(IN_HOSPITAL),
        "social_care": len(IN_SOCIAL_CARE),
        "third_sector": len(IN_THIRD_SECTOR),
        CMH: len(IN_CMH),
    }
    cmh_people = people_std.where(f"source_dataset = '{CMH}'")
    assert cmh_people.where(
        "nhs_number IS NOT NULL AND sex IS NOT NULL AND date_of_birth IS NOT NULL"
        " AND postcode_std IS NOT NULL"
    ).count() == len(IN_CMH) - len(CMH_WITHOUT_NHS)
    activity = lake.read_table(spark, config.paths.lake, fifth_source.activity_std)
    assert activity.columns == fifth_source.activity_std.column_names
    assert activity.count() == len(IN_CMH) + 4
    # Standardised by the generic standardiser: dates parsed, the closed code canonical, text trimmed.
    assert (
        activity.where(
            "contact_date IS NOT NULL AND contact_type IN ('F2F', 'TEL') AND code = '401157001'"
            " AND source_record_id LIKE 'M%'"
        ).count()
        == len(IN_CMH) + 4
    )
    metrics_out = capsys.readouterr().out
    assert "cmh_contacts.csv" in metrics_out

    argv = as_argv(overrides)
    with tracking_run(config, "train") as run:
        version = register_model(config, run, model)
    assert approve_job.main([*argv, "--version", version], {}) == 0
    assert link_job.main(argv, {}) == 0, capsys.readouterr().err[-2000:]

    spine = {
        (r.source_dataset, r.source_record_id): r.person_key
        for r in lake.read_table(spark, config.paths.lake, PERSON_SPINE).collect()
    }
    assert len(spine) == sum(by_source.values())
    assert sum(1 for source, _ in spine if source == CMH) == len(IN_CMH)
    # The extract says client M<i> is GP patient G<i>: the same person, with or without an NHS number.
    same_as_gp = [spine[(CMH, f"M{i}")] == spine[("gp", f"G{i}")] for i in IN_CMH]
    assert sum(same_as_gp) == len(IN_CMH)
    # And no two extract people are one spine person.
    assert len({spine[("gp", f"G{i}")] for i in range(PEOPLE)}) == PEOPLE
