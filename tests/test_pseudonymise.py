"""Pseudonymised zone: keyed person ids, the release key's handling, the person table's rules, no leaks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
from datetime import date
from pathlib import Path

import pytest
from builders import ACTIVITY_ROWS, PEOPLE_ROWS, RELEASE_KEY, SPINE_ROWS
from chispa import assert_df_equality
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, StringType

from jobs.pseudonymise import main as pseudonymise_main
from linkage import lake, sources
from linkage.errors import ConfigError
from linkage.pseudonymise import load_release_key, person_id_for, pseudonym
from linkage.pseudonymise.person import persons_with_conflicts, preferred_value, source_rank
from linkage.schemas import (
    PEOPLE_STD,
)

OTHER_RELEASE_KEY = bytes(range(32, 64))


def key_forms(key: bytes) -> list[str]:
    """The ways a key could show up in text: hex (both cases), base64, and HMAC's xored pads in hex."""
    padded = key.ljust(64, b"\0")
    pads = [bytes(b ^ 0x36 for b in padded).hex(), bytes(b ^ 0x5C for b in padded).hex()]
    return [key.hex(), key.hex().upper(), base64.b64encode(key).decode(), *pads]


# ---------------------------------------------------------------------------------------------
# person_id


def test_person_id_is_rfc_2104_hmac_sha256_of_the_person_key(spark):
    # RFC 4231 test case 2: HMAC-SHA256(key "Jefe", "what do ya want for nothing?").
    keys_df = spark.createDataFrame([("what do ya want for nothing?",)], "person_key string")
    person_id = person_id_for(keys_df, b"Jefe").first().person_id
    assert person_id == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_person_ids_are_stable_under_one_key_and_unrelated_under_another(spark):
    keys_df = spark.createDataFrame([("pk-1",), ("pk-2",), ("pk-1",), (None,)], "person_key string")
    first = {r.person_key: r.person_id for r in person_id_for(keys_df, RELEASE_KEY).collect()}
    again = {r.person_key: r.person_id for r in person_id_for(keys_df, RELEASE_KEY).collect()}
    other = {r.person_key: r.person_id for r in person_id_for(keys_df, OTHER_RELEASE_KEY).collect()}
    # One row per distinct non-null key; the null key has no person.
    assert set(first) == {"pk-1", "pk-2"}
    assert first == again
    assert first["pk-1"] == hmac.new(RELEASE_KEY, b"pk-1", hashlib.sha256).hexdigest()
    assert not set(first.values()) & set(other.values())


def test_query_plans_do_not_contain_the_key(spark, capsys):
    keys_df = spark.createDataFrame([("pk-1",)], "person_key string")
    person_id_for(keys_df, RELEASE_KEY).explain(mode="extended")
    person_id_for(keys_df, RELEASE_KEY).explain(mode="formatted")
    plans = capsys.readouterr().out
    assert "MapInArrow" in plans  # the capture really holds the plans
    assert not [form for form in key_forms(RELEASE_KEY) if form in plans], (
        "the release key appears in a query plan"
    )


# ---------------------------------------------------------------------------------------------
# the release key


def test_local_mode_creates_a_0600_key_file_once_and_reuses_it(make_config, capsys):
    config = make_config()
    key_file = Path(config.pseudonymise.key_file)
    assert not key_file.exists()
    created = load_release_key(config, {})
    reused = load_release_key(config, {})
    assert created == reused and len(created) == 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    out = capsys.readouterr()
    assert out.out.count(str(key_file)) == 1  # said where, once
    assert not [form for form in key_forms(created) if form in out.out + out.err]


def test_environment_key_wins_over_the_key_file(make_config):
    config = make_config()
    load_release_key(config, {})  # creates a different key in the file
    assert load_release_key(config, {"LINKAGE_PSEUDO_KEY": RELEASE_KEY.hex()}) == RELEASE_KEY


def test_a_key_file_others_can_read_is_used_with_a_warning(make_config, capsys):
    config = make_config("environment=cluster")
    key_file = Path(config.pseudonymise.key_file)
    key_file.parent.mkdir(parents=True)
    key_file.write_text(RELEASE_KEY.hex() + "\n")
    key_file.chmod(0o644)
    assert load_release_key(config, {}) == RELEASE_KEY
    assert "chmod 600" in capsys.readouterr().out


def test_outside_local_mode_a_missing_key_is_a_config_error_not_a_new_key(make_config):
    config = make_config("environment=cluster")
    with pytest.raises(ConfigError, match="LINKAGE_PSEUDO_KEY"):
        load_release_key(config, {})
    assert not Path(config.pseudonymise.key_file).exists()


@pytest.mark.parametrize("bad_key", ["not hex at all, but long enough to be a key....", "abcd" * 8])
def test_a_malformed_or_short_key_is_refused_without_echoing_it(make_config, bad_key):
    with pytest.raises(ConfigError) as error:
        load_release_key(make_config(), {"LINKAGE_PSEUDO_KEY": bad_key})
    assert bad_key not in str(error.value)


def test_a_key_file_inside_the_lake_is_refused(make_config, lake):
    with pytest.raises(ConfigError, match="inside the lake"):
        load_release_key(make_config(f"pseudonymise.key_file={lake / 'pseudo_key'}"), {})


def test_job_exits_2_without_a_key_outside_local_mode(test_overrides, capfd):
    argv = [arg for item in [*test_overrides, "environment=cluster"] for arg in ("--set", item)]
    assert pseudonymise_main(argv, {}) == 2
    assert "no pseudonymisation key" in capfd.readouterr().err


# ---------------------------------------------------------------------------------------------
# person attributes


def test_source_priority_is_configurable_but_must_name_each_source_once(spark, make_config):
    priority = make_config(
        "pseudonymise.source_priority=[hospital, gp, social_care, third_sector]"
    ).pseudonymise
    df = spark.createDataFrame([("gp",), ("hospital",), ("elsewhere",), (None,)], "source string")
    ranks = [
        r.rank
        for r in df.select(source_rank(F.col("source"), priority.source_priority).alias("rank")).collect()
    ]
    assert ranks == [1, 0, 4, 4]  # unknown and null sources rank after every configured one
    with pytest.raises(ConfigError, match="source_priority"):
        make_config("pseudonymise.source_priority=[gp, gp, hospital, social_care]")


def test_conflicting_values_resolve_by_count_then_gp_then_recency_or_recency_first(spark):
    records = spark.createDataFrame(
        [
            # p1: two hospital records say F, one GP record says M -> most common wins: F.
            ("p1", 0, date(2020, 1, 1), "M"),
            ("p1", 1, date(2020, 1, 1), "F"),
            ("p1", 1, date(2019, 1, 1), "F"),
            # p2: one each -> the GP record wins even though the hospital one is more recent.
            ("p2", 0, date(2018, 1, 1), "M"),
            ("p2", 1, date(2024, 1, 1), "F"),
            # p3: one each, both hospital -> the most recent activity wins; a null value never counts.
            ("p3", 1, date(2018, 1, 1), "M"),
            ("p3", 1, date(2024, 1, 1), "F"),
            ("p3", 0, date(2025, 1, 1), None),
            # p4: only a null value -> null.
            ("p4", 0, None, None),
        ],
        "person_id string, source_rank int, last_activity_date date, sex string",
    )
    grouped = records.groupBy("person_id").agg(
        F.collect_list(F.struct("source_rank", "last_activity_date", "sex")).alias("records")
    )
    got = grouped.select("person_id", preferred_value(F.col("records"), "sex").alias("sex"))
    expected = spark.createDataFrame(
        [("p1", "F"), ("p2", "M"), ("p3", "F"), ("p4", None)], "person_id string, sex string"
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    # Recency first (the postcode rule): p1's two latest records tie on date -> GP; p2 and p3 -> latest value.
    got_recent = grouped.select(
        "person_id", preferred_value(F.col("records"), "sex", most_recent_first=True).alias("sex")
    )
    expected_recent = spark.createDataFrame(
        [("p1", "M"), ("p2", "F"), ("p3", "F"), ("p4", None)], "person_id string, sex string"
    )
    assert_df_equality(got_recent, expected_recent, ignore_row_order=True, ignore_nullable=True)


def test_a_conflict_is_two_distinct_known_values_on_one_persons_records(spark):
    records = spark.createDataFrame(
        [
            # p1: two sexes and two dates of birth; the same district twice.
            ("p1", date(1980, 1, 1), 1980, "M", "White", 3, "LS1"),
            ("p1", date(1980, 2, 1), 1980, "F", "White", 3, "LS1"),
            # p2: one known value and a null per attribute: nothing conflicts.
            ("p2", date(1990, 1, 1), 1990, "F", "Asian", None, "LS2"),
            ("p2", None, None, None, None, 4, None),
            # p3: three records, the third with a second ethnic group and a second district.
            ("p3", None, 2001, "M", "Black", 5, "LS3"),
            ("p3", None, 2001, "M", "Black", 5, "LS3"),
            ("p3", None, 2001, "M", "Mixed", 5, "LS4"),
            # p4: a single record cannot conflict.
            ("p4", date(1970, 1, 1), 1970, "F", "White", 1, "LS5"),
        ],
        "person_id string, date_of_birth date, year_of_birth int, sex string, ethnic_group string, "
        "imd_decile int, postcode_district string",
    )
    assert persons_with_conflicts(records) == {
        "date_of_birth": 1,
        "year_of_birth": 0,
        "sex": 1,
        "ethnic_group": 1,
        "imd_decile": 0,
        "postcode_district": 1,
    }


# ---------------------------------------------------------------------------------------------
# the whole job on a tiny restricted extract (builders.make_release; the `released` fixture is in conftest)


def _read(spark, config, contract, version=None) -> DataFrame:
    return lake.read_table(spark, config.paths.lake, contract, version=version)


@pytest.mark.slow
def test_person_table_holds_generalised_attributes_chosen_by_the_rule(spark, released):
    got = _read(spark, released.config, sources.person_contract()).drop("run_id")
    expected = spark.createDataFrame(
        [
            # pk-A: DOB 1980-05-17 on 2 of 3 records; sex M (2 of 3); ethnic group White beats Asian by the GP rule
            # (Unknown does not count); postcode district of the most recent activity (hospital, 2025-03-01).
            (
                pseudonym("pk-A", RELEASE_KEY),
                1980,
                5,
                "45-54",
                "M",
                "White",
                3,
                "LS6",
                True,
                True,
                True,
                False,
                date(2022, 6, 1),
                date(2025, 3, 1),
                None,
            ),
            # pk-B: year only -> no month; age at mid-year 2010 is 15 on 2026-06-30.
            (
                pseudonym("pk-B", RELEASE_KEY),
                2010,
                None,
                "11-15",
                None,
                "Unknown",
                None,
                None,
                False,
                False,
                False,
                True,
                date(2025, 6, 1),
                date(2025, 6, 1),
                None,
            ),
            # pk-C: 17th birthday on the reference date; no activity -> null dates.
            (
                pseudonym("pk-C", RELEASE_KEY),
                2009,
                6,
                "16-17",
                None,
                "Black",
                None,
                "BD7",
                True,
                False,
                False,
                False,
                None,
                None,
                None,
            ),
        ],
        sources.person_contract().schema,
    ).drop("run_id")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True, ignore_metadata=True)


@pytest.mark.slow
def test_activity_tables_are_keyed_by_person_id_and_drop_records_without_a_person(spark, released):
    gp = _read(spark, released.config, sources.get("gp").pseudonymised_activity)
    # GPLOCAL0003 has no person key: its event is not published.
    assert sorted((r.person_id, r.code) for r in gp.collect()) == sorted(
        [(pseudonym("pk-A", RELEASE_KEY), "38341003"), (pseudonym("pk-A", RELEASE_KEY), "39113611000001102")]
    )
    hospital = _read(spark, released.config, sources.get("hospital").pseudonymised_activity).first()
    assert (hospital.person_id, hospital.secondary_diagnoses) == (
        pseudonym("pk-A", RELEASE_KEY),
        ["E119", "I10"],
    )
    counts = {c.name: _read(spark, released.config, c).count() for c in sources.pseudonymised_tables()}
    assert counts == {
        "person": 3,
        "gp_events": 2,
        "hospital_episodes": 1,
        "social_care_events": 1,
        "third_sector_contacts": 1,
    }


def identifiers_df(spark: SparkSession) -> DataFrame:
    """Every direct identifier and local id of the input, lower case, dates as text in both formats."""
    values: set[str] = set()
    text_fields = [
        "source_record_id",
        "forename_raw",
        "middle_names_raw",
        "surname_raw",
        "forename_std",
        "surname_std",
        "date_of_birth_raw",
        "postcode_raw",
        "postcode_std",
        "nhs_number_raw",
        "nhs_number",
    ]
    for row in PEOPLE_ROWS:
        values |= {str(row[name]) for name in text_fields if row.get(name)}
        if row.get("date_of_birth"):
            values |= {row["date_of_birth"].isoformat(), row["date_of_birth"].strftime("%d/%m/%Y")}
    values |= {row["person_key"] for row in SPINE_ROWS if row["person_key"]}
    values |= {
        row[name]
        for rows in ACTIVITY_ROWS.values()
        for row in rows
        for name in ("episode_id", "event_id", "contact_id")
        if name in row
    }
    return spark.createDataFrame([(v.lower(),) for v in values], "identifier string")


def columns_with_identifiers(df: DataFrame, identifiers: DataFrame) -> list[str]:
    """Names of the string (and string array) columns holding any identifier as a substring; never the values."""
    texts = [
        F.struct(F.lit(f.name).alias("column"), F.lower(F.col(f.name)).alias("text"))
        for f in df.schema
        if f.dataType == StringType()
    ]
    texts += [
        F.struct(F.lit(f.name).alias("column"), F.lower(F.array_join(F.col(f.name), "|")).alias("text"))
        for f in df.schema
        if f.dataType == ArrayType(StringType())
    ]
    cells = df.select(F.explode(F.array(*texts)).alias("cell")).select("cell.column", "cell.text")
    hits = cells.crossJoin(identifiers).where(F.col("text").contains(F.col("identifier")))
    return sorted(r.column for r in hits.select("column").distinct().collect())


@pytest.mark.slow
def test_no_pseudonymised_table_holds_a_direct_identifier_or_local_id(spark, released):
    identifiers = identifiers_df(spark)
    # The scan finds what it looks for: the restricted input is full of hits.
    assert "surname_raw" in columns_with_identifiers(_read(spark, released.config, PEOPLE_STD), identifiers)
    leaks = {
        f"{c.zone}/{c.name}": columns_with_identifiers(_read(spark, released.config, c), identifiers)
        for c in sources.pseudonymised_tables()
    }
    assert leaks == {name: [] for name in leaks}, (
        "identifiers found in these table columns (values not shown)"
    )


@pytest.mark.slow
def test_mlflow_holds_qa_aggregates_and_no_trace_of_the_key(spark, released, tmp_path):
    run_id = _read(spark, released.config, sources.person_contract()).select("run_id").first().run_id
    client = MlflowClient(released.config.tracking_uri)
    run = client.get_run(run_id)
    assert run.data.tags["release_id"] == "test-release-1"
    # QA aggregates: the unkeyed GP record and its event; pk-A's records disagree on DOB, sex, group, district.
    metrics = run.data.metrics
    assert (
        metrics["rows.person"],
        metrics["spine_records_without_person"],
        metrics["activity_rows_without_person.gp"],
        metrics["activity_rows_without_person.hospital"],
    ) == (3, 1, 1, 0)
    assert {
        name: metrics[f"persons_with_conflicting.{name}"]
        for name in ("date_of_birth", "sex", "ethnic_group", "imd_decile", "postcode_district")
    } == {"date_of_birth": 1, "sex": 1, "ethnic_group": 1, "imd_decile": 0, "postcode_district": 1}
    texts = [
        *run.data.params.keys(),
        *map(str, run.data.params.values()),
        *run.data.tags.keys(),
        *map(str, run.data.tags.values()),
        *run.data.metrics.keys(),
    ]
    pending = list(client.list_artifacts(run_id))
    assert "config.json" in [item.path for item in pending]
    while pending:
        item = pending.pop()
        if item.is_dir:
            pending += client.list_artifacts(run_id, item.path)
        else:
            texts.append(
                Path(client.download_artifacts(run_id, item.path, str(tmp_path))).read_text(errors="replace")
            )
    texts += [p.read_text() for p in Path(released.config.paths.lake).glob("*/*/_delta_log/*.json")]
    found = [form for form in key_forms(RELEASE_KEY) if any(form in text for text in texts)]
    assert not found, "the release key (in some encoding) is in the MLflow run or a Delta log"


@pytest.mark.slow
def test_rerun_replaces_each_table_and_time_travel_returns_the_first_release(spark, released, capfd):
    # Last in the file on purpose: it adds version 1 to the shared release (with identical rows, so tests
    # that read the current version, here or in test_docs, see the same data whichever runs first).
    config = released.config
    assert pseudonymise_main(released.argv, {"LINKAGE_PSEUDO_KEY": RELEASE_KEY.hex()}) == 0
    output = capfd.readouterr()
    assert "[pseudonymise] release 'test-release-1'" in output.out  # the capture holds the job's output
    assert not [form for form in key_forms(RELEASE_KEY) if form in output.out + output.err]
    for contract in sources.pseudonymised_tables():
        path = lake.table_path(config.paths.lake, contract)
        history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").orderBy("version").collect()
        assert [h.version for h in history] == [0, 1]
        stamps = [json.loads(h.userMetadata) for h in history]
        assert all(stamp["config_hash"] == config.config_hash() for stamp in stamps)
        assert {h.operation for h in history} == {"CREATE OR REPLACE TABLE AS SELECT"}  # one transaction each
        first, second = _read(spark, config, contract, version=0), _read(spark, config, contract)
        assert first.select("run_id").distinct().count() == 1
        assert [first.first().run_id, second.first().run_id] == [stamp["run_id"] for stamp in stamps]
        assert stamps[0]["run_id"] != stamps[1]["run_id"]
        # Same inputs and key: the rerun publishes the same rows (same person ids) under a new run id.
        assert_df_equality(first.drop("run_id"), second.drop("run_id"), ignore_row_order=True)
