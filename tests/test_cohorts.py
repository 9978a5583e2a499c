"""Each declared cohort on tiny hand-built pseudonymised tables: who is in, who is out and why.

Index date 2026-06-30 (config default). Age comes from year and month of birth: a person born in
July 2000 is 25 on the index date, one born in June 2000 is 26.
"""

from datetime import date
from pathlib import Path

import pytest
from cohort_tables import gp, person, tables

from linkage.cohorts.builder import build_cohort, summary_counts
from linkage.cohorts.declaration import declaration_files, load_declaration
from linkage.config import PROJECT_ROOT, CohortsConfig
from linkage.errors import ConfigError

CONFIG = CohortsConfig(
    declarations=str(PROJECT_ROOT / "conf/cohorts"), codelists=str(PROJECT_ROOT / "conf/codelists")
)
DECLARATIONS = declaration_files(CONFIG.declarations)

# Codes from conf/codelists (see the CSVs for terms)
HYP, HYP_RESOLVED = "38341003", "162659009"
AST, AST_RESOLVED, SALBUTAMOL = "195967001", "162660004", "320176004"
CARER, NOT_CARER = "408424005", "1092541000000103"
SHIELD_HIGH, SHIELD_LOW = "1300561000000107", "1300571000000100"
MH_REFERRAL, FLUOXETINE = "183524004", "321949006"
MMR, MMR2, BOOSTER = "38598009", "170433008", "414259000"


def build(name, inputs):
    rows = build_cohort(inputs, load_declaration(DECLARATIONS[name]), CONFIG).collect()
    return {row.person_id: row for row in rows}


def hospital(person_id, when, setting="APC", primary=None, secondary=None, specialty=None, referral=None):
    return {
        "person_id": person_id,
        "start_date": when,
        "setting": setting,
        "primary_diagnosis": primary,
        "secondary_diagnoses": secondary,
        "treatment_specialty": specialty,
        "referral_source": referral,
        "run_id": "test",
    }


def test_every_declaration_compiles_against_the_contracts_and_codelists():
    from linkage.cohorts.builder import compile_criteria

    assert set(DECLARATIONS) == {
        "shielding",
        "cyp_mental_health",
        "unpaid_carers",
        "cancer",
        "asthma",
        "hypertension",
        "preschool_immunisations",
    }
    for path in DECLARATIONS.values():
        assert compile_criteria(load_declaration(path), CONFIG.codelists)


def test_hypertension_register_excludes_resolved_and_future_diagnoses(spark):
    inputs = tables(
        spark,
        [person(f"p{i}", 1960) for i in range(1, 7)],
        gp_events=[
            gp("p1", date(2020, 1, 1), HYP),  # in
            gp("p2", date(2020, 1, 1), HYP),
            gp("p2", date(2021, 1, 1), HYP_RESOLVED),  # resolved: out
            gp("p3", date(2019, 1, 1), HYP),
            gp("p3", date(2020, 1, 1), HYP_RESOLVED),
            gp("p3", date(2022, 5, 1), HYP),  # re-diagnosed after resolution: in
            gp("p4", date(2026, 7, 1), HYP),  # after the index date: out
            gp("p5", None, HYP),  # undated: out
            gp("p6", date(2020, 1, 1), "99999999"),  # other code: out
        ],
    )
    cohort = build("hypertension", inputs)
    assert set(cohort) == {"p1", "p3"}
    assert cohort["p3"].diagnosis_date == date(2019, 1, 1)  # register date = first diagnosis
    assert cohort["p1"].identified_in == ["gp"]


def test_asthma_register_needs_unresolved_diagnosis_and_treatment_in_last_12_months(spark):
    inputs = tables(
        spark,
        [person(f"p{i}", 1990) for i in range(1, 8)],
        gp_events=[
            gp("p1", date(2015, 1, 1), AST),
            gp("p1", date(2026, 3, 1), SALBUTAMOL, "DMD"),  # in
            gp("p2", date(2015, 1, 1), AST),
            gp("p2", date(2025, 4, 1), SALBUTAMOL, "DMD"),  # 15 months ago: out
            gp("p3", date(2015, 1, 1), AST),
            gp("p3", date(2018, 1, 1), AST_RESOLVED),
            gp("p3", date(2026, 3, 1), SALBUTAMOL, "DMD"),  # resolved: out
            gp("p4", date(2026, 3, 1), SALBUTAMOL, "DMD"),  # no diagnosis: out
            gp("p5", date(2015, 1, 1), AST),
            gp("p5", date(2025, 6, 30), SALBUTAMOL, "DMD"),  # exactly 12 months: out
            gp("p6", date(2015, 1, 1), AST),
            gp("p6", date(2025, 7, 1), SALBUTAMOL, "DMD"),  # a day inside: in
            gp("p7", date(2015, 1, 1), AST),
            gp("p7", date(2020, 1, 1), AST_RESOLVED),
            gp("p7", date(2020, 1, 1), AST),
            gp("p7", date(2026, 3, 1), SALBUTAMOL, "DMD"),  # resolved same day: in
        ],
    )
    cohort = build("asthma", inputs)
    assert set(cohort) == {"p1", "p6", "p7"}
    assert cohort["p1"].latest_treatment_date == date(2026, 3, 1)


def test_shielding_needs_the_high_risk_flag_not_a_lower_one(spark):
    inputs = tables(
        spark,
        [person("p1", 1950), person("p2", 1950), person("p3", None)],
        gp_events=[
            gp("p1", date(2020, 4, 1), SHIELD_HIGH),
            gp("p2", date(2020, 4, 1), SHIELD_LOW),
            gp("p3", date(2020, 5, 1), SHIELD_HIGH),
        ],
    )
    cohort = build("shielding", inputs)
    assert set(cohort) == {"p1", "p3"}  # no age rule: unknown year of birth stays in
    assert cohort["p3"].age_at_index is None and cohort["p3"].age_band is None


def test_unpaid_carers_ended_gp_code_excluded_and_sources_deduplicated(spark):
    people = [person(f"p{i}", 1970) for i in range(1, 9)]
    inputs = tables(
        spark,
        people,
        gp_events=[
            gp("p1", date(2020, 1, 1), CARER),  # in
            gp("p2", date(2020, 1, 1), CARER),
            gp("p2", date(2021, 1, 1), NOT_CARER),  # ended: out
            gp("p7", date(2018, 1, 1), CARER),
            gp("p7", date(2019, 1, 1), NOT_CARER),
            gp("p8", date(2022, 3, 1), CARER),
        ],
        social_care=[
            {"person_id": "p3", "client_type": "Carer", "start_date": date(2021, 2, 1)},
            {"person_id": "p6", "client_type": "Service User", "start_date": date(2021, 2, 1)},  # out
            {"person_id": "p7", "client_type": "Carer", "start_date": date(2023, 1, 1)},
        ],
        third_sector=[
            {"person_id": "p4", "contact_date": date(2024, 1, 1), "unpaid_carer": True},
            {"person_id": "p5", "contact_date": date(2024, 1, 1), "unpaid_carer": None},  # out
            {"person_id": "p8", "contact_date": date(2021, 9, 1), "unpaid_carer": True},
        ],
    )
    cohort = build("unpaid_carers", inputs)
    assert set(cohort) == {"p1", "p3", "p4", "p7", "p8"}
    # p7's GP carer code was ended, so only social care identifies them.
    assert (cohort["p7"].identification_date, cohort["p7"].identified_in) == (
        date(2023, 1, 1),
        ["social_care"],
    )
    # p8 is one row though two sources hold them; identified at the earliest of the two.
    assert (cohort["p8"].identification_date, cohort["p8"].identified_in) == (
        date(2021, 9, 1),
        ["gp", "third_sector"],
    )


def test_cyp_mental_health_ages_11_to_25_self_harm_in_any_position(spark):
    people = [
        person("p1", 2010),
        person("p2", 2000, 6),
        person("p3", 2000, 7),
        person("p4", 2005),
        person("p5", 2005),
        person("p6", 2014),
        person("p7", 2016),
        person("p8", 2005),
    ]
    inputs = tables(
        spark,
        people,
        gp_events=[
            gp("p1", date(2025, 1, 1), MH_REFERRAL),  # 16: in
            gp("p2", date(2025, 1, 1), MH_REFERRAL),  # 26 (born June 2000): out
            gp("p3", date(2025, 1, 1), FLUOXETINE, "DMD"),  # 25 (born July 2000): in
            gp("p7", date(2025, 1, 1), FLUOXETINE, "DMD"),
        ],  # 10: out
        hospital=[
            hospital("p4", date(2025, 2, 1), primary="S610", secondary=["Z911", "X780"]),  # secondary: in
            hospital("p5", date(2025, 2, 1), primary="X59", secondary=["X85"]),  # outside X60-X84
            hospital("p8", date(2025, 2, 1), setting="AE", primary="X600"),
        ],  # not admitted: out
        social_care=[
            {
                "person_id": "p6",
                "primary_support_reason": "Mental health support",
                "start_date": date(2026, 1, 5),
            }
        ],
    )  # 12: in
    cohort = build("cyp_mental_health", inputs)
    assert set(cohort) == {"p1", "p3", "p4", "p6"}
    assert cohort["p4"].has_self_harm_admission and cohort["p4"].identified_in == ["hospital"]
    assert cohort["p3"].age_at_index == 25 and cohort["p3"].age_band == "18-25"


def test_cancer_pathway_intervals_and_standards(spark):
    inputs = tables(
        spark,
        [person("p1", 1960), person("p2", 1960), person("p3", 1960)],
        hospital=[
            hospital("p1", date(2026, 1, 1), setting="OP", referral="2WW"),
            hospital("p1", date(2026, 1, 20), setting="OP", primary="C509"),  # 19 days: within 28
            hospital(
                "p1", date(2026, 2, 25), primary="C509", specialty="370"
            ),  # 36 after diagnosis, 55 after referral
            hospital("p2", date(2026, 3, 1), setting="OP", referral="2WW"),  # referred, not (yet) diagnosed
            hospital("p3", date(2026, 3, 1), primary="C340", specialty="800"),  # no urgent referral: out
        ],
    )
    cohort = build("cancer", inputs)
    assert set(cohort) == {"p1", "p2"}
    p1 = cohort["p1"]
    assert (p1.referral_to_diagnosis_days, p1.diagnosis_to_treatment_days, p1.referral_to_treatment_days) == (
        19,
        36,
        55,
    )
    assert (
        p1.diagnosed_within_28_days,
        p1.treated_within_31_days_of_diagnosis,
        p1.treated_within_62_days_of_referral,
    ) == (True, False, True)
    assert cohort["p2"].diagnosed_within_28_days is None and cohort["p2"].diagnosis_date is None


def test_preschool_immunisations_doses_and_coverage_by_age(spark):
    people = [
        person("c1", 2021, 3),
        person("c2", 2025, 1),
        person("c3", 2020, 5),
        person("a1", 1990),
        person("c4", 2023, 2),
    ]
    inputs = tables(
        spark,
        people,
        gp_events=[
            gp("c1", date(2022, 4, 10), MMR),
            gp("c1", date(2022, 4, 10), MMR),  # the same dose recorded twice
            gp("c1", date(2024, 9, 1), MMR2),
            gp("c1", date(2024, 9, 1), BOOSTER),
            gp("c3", date(2021, 6, 1), MMR),  # 6 years old: outside population
            gp("a1", date(2020, 1, 1), MMR),  # adult: out
            gp("c4", date(2024, 3, 1), MMR),
            gp("c4", date(2024, 3, 1), MMR),
        ],
    )
    cohort = build("preschool_immunisations", inputs)
    assert set(cohort) == {"c1", "c2", "c4"}  # c2 had no dose yet but is in the denominator
    c1, c2 = cohort["c1"], cohort["c2"]
    assert (c1.mmr1_date, c1.mmr2_date, c1.booster_date) == (
        date(2022, 4, 10),
        date(2024, 9, 1),
        date(2024, 9, 1),
    )
    # born March 2021: MMR1 at 13 months is after the 1st birthday, before the 2nd; 5th birthday in March 2026.
    assert (c1.mmr1_by_age_1, c1.mmr1_by_age_2, c1.mmr1_by_age_5, c1.mmr2_by_age_5, c1.booster_by_age_5) == (
        False,
        True,
        True,
        True,
        True,
    )
    # c2 (born January 2025) is past 1 but not 2: counted as not covered at 1, not yet applicable at 2.
    assert (c2.mmr1_given, c2.mmr1_by_age_1, c2.mmr1_by_age_2) == (False, False, None)
    assert (cohort["c4"].mmr1_given, cohort["c4"].mmr2_given) == (
        True,
        False,
    )  # one dose is not a second dose
    assert c2.identified_in == []


def test_summary_counts_breakdowns_totals_and_overlapping_sources(spark):
    people = [
        person("p1", 1970, sex="F"),
        person("p2", 1970, sex="M"),
        person("p3", 1970, sex=None, imd_decile=None),
    ]
    inputs = tables(
        spark,
        people,
        gp_events=[gp("p1", date(2020, 1, 1), CARER), gp("p2", date(2020, 1, 1), CARER)],
        third_sector=[
            {"person_id": "p2", "contact_date": date(2021, 1, 1), "unpaid_carer": True},
            {"person_id": "p3", "contact_date": date(2021, 1, 1), "unpaid_carer": True},
        ],
    )
    declaration = load_declaration(DECLARATIONS["unpaid_carers"])
    counts = {
        (r.breakdown, r.category): r["count"]
        for r in summary_counts(build_cohort(inputs, declaration, CONFIG), declaration).collect()
    }
    assert {k: v for k, v in counts.items() if k[0] == "sex"} == {
        ("sex", "F"): 1,
        ("sex", "M"): 1,
        ("sex", "Unknown"): 1,
        ("sex", "Total"): 3,
    }
    assert (
        counts[("imd_quintile", "2")] == 2 and counts[("imd_quintile", "Unknown")] == 1
    )  # decile 3 -> quintile 2
    # p2 is in both sources: source cells overlap, so their total is the cohort size, not the cells' sum.
    assert {k: v for k, v in counts.items() if k[0] == "source"} == {
        ("source", "gp"): 2,
        ("source", "third_sector"): 2,
        ("source", "Total"): 3,
    }
    assert counts[("identified_by_gp", "true")] == 2 and counts[("identified_by_gp", "false")] == 1


def test_cohort_events_read_each_table_once_and_give_one_event_per_criterion_matched(spark, tmp_path):
    """Two criteria on one codelist, a criterion with its ending codes and a dotted, lower-case ICD-10 code in the
    array of secondary diagnoses: every (criterion, kind) a row matches is one event, as one filtered copy of the
    table per criterion gave."""
    from chispa import assert_df_equality
    from pyspark.sql.types import DateType, StringType, StructField, StructType

    from linkage.cohorts.builder import ENDING, EVENT, cohort_events, compile_criteria

    path = tmp_path / "events.yaml"
    path.write_text(
        "description: x\ncriteria:\n"
        "  first_dose: {table: gp_events, codelist: mmr_vaccination, aggregation: first}\n"
        "  any_dose: {table: gp_events, codelist: mmr_vaccination, aggregation: count}\n"
        "  hypertension: {table: gp_events, codelist: hypertension_diagnosis, resolved_by: hypertension_resolved}\n"
        "  self_harm: {table: hospital_episodes, codelist: self_harm_icd10,"
        " code_columns: [primary_diagnosis, secondary_diagnoses]}\n"
        "population:\n  any: [first_dose, any_dose, hypertension, self_harm]\n"
    )
    compiled = compile_criteria(load_declaration(path), CONFIG.codelists)
    inputs = tables(
        spark,
        [person("p1", 2020)],
        gp_events=[
            gp("p1", date(2024, 1, 5), f" {MMR} "),
            gp("p1", date(2025, 2, 1), HYP),
            gp("p1", date(2025, 3, 1), HYP_RESOLVED),
            gp("p1", date(2027, 1, 1), HYP),  # after the index date: no event
            gp("p1", date(2025, 4, 1), AST),  # in no codelist
        ],
        hospital=[
            hospital("p1", date(2025, 5, 1), primary="I10", secondary=["j45", "x70.1"]),
            hospital("p1", date(2025, 6, 1), primary="X85", secondary=None),
        ],
    )
    schema = StructType(
        [
            StructField("person_id", StringType()),
            StructField("criterion", StringType()),
            StructField("kind", StringType()),
            StructField("event_date", DateType()),
        ]
    )
    expected = spark.createDataFrame(
        [
            ("p1", "first_dose", EVENT, date(2024, 1, 5)),
            ("p1", "any_dose", EVENT, date(2024, 1, 5)),
            ("p1", "hypertension", EVENT, date(2025, 2, 1)),
            ("p1", "hypertension", ENDING, date(2025, 3, 1)),
            ("p1", "self_harm", EVENT, date(2025, 5, 1)),
        ],
        schema,
    )
    actual = cohort_events(inputs, compiled, date(2026, 6, 30))
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_declaration_naming_an_unknown_column_fails_with_the_column_name(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(
        "description: x\ncriteria:\n  c:\n    table: gp_events\n    where: {no_such_column: [1]}\n"
        "population:\n  all: [c]\n"
    )
    from linkage.cohorts.builder import compile_criteria

    with pytest.raises(ConfigError, match="no_such_column"):
        compile_criteria(load_declaration(path), CONFIG.codelists)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("population:\n  all: [missing]\n", "unknown criteria"),
        ("population:\n  all: [c]\nvariables:\n  a: {earliest_of: [b]}\n  b: {value_of: c}\n", "later names"),
        ("population:\n  all: [c]\n  extra_key: 1\n", "extra"),
    ],
)
def test_declaration_errors_name_the_problem(tmp_path: Path, body, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"description: x\ncriteria:\n  c: {{table: gp_events, codelist: carer_gp}}\n{body}")
    with pytest.raises(ConfigError, match=message):
        load_declaration(path)


def test_each_cohort_thread_runs_in_its_own_fair_pool_and_errors_are_redacted(
    spark, make_config, monkeypatch
):
    from linkage.cohorts import runner

    pools = {}

    def fake_load(path):
        pools[path.stem] = spark.sparkContext.getLocalProperty("spark.scheduler.pool")
        raise ValueError("cannot parse 'Jane Smith' as a date")  # a value quoted by an error: must not leak

    monkeypatch.setattr(runner, "load_declaration", fake_load)
    config = make_config()
    cohorts = {name: Path(f"/nowhere/{name}.yaml") for name in ("a", "b", "c")}
    outcomes = runner.build_all(spark, config, None, cohorts, None, parallelism=3)
    assert pools == {"a": "a", "b": "b", "c": "c"}
    assert [o.status for o in outcomes] == ["failed"] * 3
    assert all("Jane" not in o.error and "<redacted>" in o.error for o in outcomes)
    assert (
        spark.sparkContext.getLocalProperty("spark.scheduler.pool") is None
    )  # the caller's thread untouched
