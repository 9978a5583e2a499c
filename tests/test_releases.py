"""Releases: write, audit, publish in one commit; names resolve to the published release; one writer per lake.

Small lakes of tiny tables written through `lake.write_table` inside the real release wrapper
(`released`), so each run takes seconds; one end-to-end check reuses the session pipeline run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from linkage import lake
from linkage.catalog import published_tables
from linkage.config import PROJECT_ROOT
from linkage.harness import JobContext, StageClock, StageResult
from linkage.releases import lock as lake_lock
from linkage.releases.catalog import register_catalog
from linkage.releases.cycle import AuditsFailed, released
from linkage.releases.manifest import ReleaseError, read_audits, read_events, releases
from linkage.releases.operator import publish_release, rollback
from linkage.schemas import GP_EVENTS, HOSPITAL_EPISODES
from linkage.sources import person_contract
from linkage.tracking import tracking_run

PERSON = person_contract()
WRITES = (PERSON, GP_EVENTS, HOSPITAL_EPISODES)


def rows_for(contract, person_ids):
    """One row per person id, every other column null: enough to check names, versions and joins."""
    return [tuple(pid if c.name == "person_id" else None for c in contract.columns) for pid in person_ids]


def write_release(spark, ids: dict[str, list[str]]):
    """A job body writing person, gp_events and hospital_episodes with the given person ids, in that order."""

    def body(ctx: JobContext) -> StageResult:
        tables = {}
        for contract in WRITES:
            frame = spark.createDataFrame(rows_for(contract, ids[contract.name]), contract.schema)
            tables[f"{contract.zone}/{contract.name}"] = lake.write_table(
                frame, ctx.config.paths.lake, contract, ctx.run
            )
        return StageResult(tables=tables)

    return body


def ids_of(generation: str) -> dict[str, list[str]]:
    return {
        "person": [f"{generation}1", f"{generation}2"],
        "gp_events": [f"{generation}1"],
        "hospital_episodes": [f"{generation}2", f"{generation}2"],
    }


def run_released(spark, config, body, environ=None):
    with tracking_run(config, job="test-release") as run:
        ctx = JobContext(
            job="test-release",
            args=argparse.Namespace(),
            config=config,
            environ=environ or {"USER": "tester"},
            clock=StageClock("test-release", out=io.StringIO()),
            spark=spark,
            run=run,
        )
        return released(body)(ctx)


def by_name(spark, lake_root, release=None) -> dict[str, list[str]]:
    """Person ids each analyst name resolves to in Spark, after registering the release's views."""
    register_catalog(spark, str(lake_root), release)
    return {
        contract.name: sorted(
            r.person_id for r in spark.sql(f"SELECT person_id FROM pseudonymised.{contract.name}").collect()
        )
        for contract in WRITES
    }


def without_spark(lake_root, release=None) -> dict[str, list[str]]:
    return {
        name.split(".", 1)[1]: sorted(ref.read().column("person_id").to_pylist())
        for name, ref in published_tables(str(lake_root), release).items()
    }


def expected(generation: str) -> dict[str, list[str]]:
    return {name: sorted(ids) for name, ids in ids_of(generation).items()}


@pytest.fixture
def first_release(spark, make_config):
    config = make_config("releases.vacuum=false")
    run_released(spark, config, write_release(spark, ids_of("p")))
    return config


@pytest.mark.parametrize("after_commit", [False, True], ids=["before-commit", "after-commit"])
def test_a_failure_at_any_write_leaves_the_published_release(spark, first_release, monkeypatch, after_commit):
    config = first_release
    published_before = published_tables(config.paths.lake)
    events_before = len(read_events(config.paths.lake))
    real_write = lake.write_table
    for failing_call in range(1, len(WRITES) + 1):
        calls = []

        def flaky_write(df, lake_root, contract, run, failing_call=failing_call, calls=calls):
            calls.append(contract.name)
            if len(calls) == failing_call and not after_commit:
                raise OSError("injected failure before the commit")
            version = real_write(df, lake_root, contract, run)
            if len(calls) == failing_call:
                raise OSError("injected failure after the commit")
            return version

        monkeypatch.setattr(lake, "write_table", flaky_write)
        with pytest.raises(OSError, match="injected"):
            run_released(spark, config, write_release(spark, ids_of("q")))
        assert len(calls) == failing_call
        # Nothing staged, names still resolve to the first release in Spark and without it, and it is consistent.
        assert len(read_events(config.paths.lake)) == events_before
        assert published_tables(config.paths.lake) == published_before
        assert by_name(spark, config.paths.lake) == expected("p")
        assert without_spark(config.paths.lake) == expected("p")
        assert not lake_lock.lock_path(config.paths.lake).exists()
    monkeypatch.setattr(lake, "write_table", real_write)
    # Heads now hold a mix of q and p tables; a complete run publishes q everywhere at once.
    run_released(spark, config, write_release(spark, ids_of("q")))
    assert by_name(spark, config.paths.lake) == expected("q")
    assert without_spark(config.paths.lake) == expected("q")


def test_a_failing_audit_blocks_publication_until_an_override_and_rollback_restores(spark, first_release):
    config = first_release
    orphan = ids_of("q") | {"gp_events": ["q1", "not-a-person"]}
    with pytest.raises(AuditsFailed, match="person_ids_join") as failure:
        run_released(spark, config, write_release(spark, orphan))
    assert "analysts keep release r0001" in str(failure.value)
    assert by_name(spark, config.paths.lake) == expected("p")
    first_id, rejected_id = releases(read_events(config.paths.lake))
    rejected = releases(read_events(config.paths.lake))[rejected_id]
    assert (rejected.status, rejected.audits_passed, rejected.audit_failures) == (
        "rejected",
        False,
        ("person_ids_join",),
    )
    audit_rows = {row["audit"]: row for row in read_audits(config.paths.lake, rejected.release_id)}
    assert not audit_rows["person_ids_join"]["passed"]
    assert json.loads(audit_rows["person_ids_join"]["counts"])["orphan_rows"] == 1
    assert all(row["passed"] for name, row in audit_rows.items() if name != "person_ids_join")

    with pytest.raises(ReleaseError, match="--override"):
        publish_release(config, rejected.release_id, None, {"USER": "operator"})
    publish_release(config, rejected.release_id, "orphan row is a known test record", {"USER": "operator"})
    assert by_name(spark, config.paths.lake) == expected("q") | {"gp_events": ["not-a-person", "q1"]}
    published = releases(read_events(config.paths.lake))[rejected.release_id]
    assert published.current and published.events[-1].actor == "operator"
    assert published.events[-1].reason == "orphan row is a known test record"

    withdrawn, restored = rollback(config, {"USER": "operator"}, "bad release")
    assert (withdrawn, restored) == (rejected_id, first_id)
    assert by_name(spark, config.paths.lake) == expected("p")
    assert without_spark(config.paths.lake) == expected("p")
    with pytest.raises(ReleaseError, match="no earlier published release"):
        rollback(config, {"USER": "operator"})
    # History: the withdrawn release stays readable by its id.
    assert by_name(spark, config.paths.lake, rejected.release_id)["gp_events"] == ["not-a-person", "q1"]
    assert without_spark(config.paths.lake, rejected.release_id)["person"] == ["q1", "q2"]


def test_a_second_writer_exits_2_naming_the_holder_and_a_stale_lock_needs_the_flag(
    spark, make_config, capsys
):
    from jobs import cohorts as cohorts_job

    config = make_config()
    holder = lake_lock.acquire(config.paths.lake, "pipeline", 1.0, False, {"USER": "alice"})
    with pytest.raises(lake_lock.LakeLocked, match="locked by alice"):
        run_released(spark, config, write_release(spark, ids_of("p")))
    argv = ["--set", f"paths.lake={config.paths.lake}", "--set", f"tracking.uri={config.tracking_uri}"]
    assert cohorts_job.main(argv, {"USER": "bob"}) == 2
    err = capsys.readouterr().err
    assert "is locked by alice" in err and f"pid {holder.pid}" in err and "job pipeline" in err
    assert not list(Path(config.paths.lake).glob("pseudonymised/*")) and not read_events(config.paths.lake)

    # A crashed run's lock (expired) is taken over only on request.
    lake_lock.lock_path(config.paths.lake).write_text(
        json.dumps({**holder.__dict__, "expires_at": "2026-01-01T00:00:00+00:00"}), encoding="utf-8"
    )
    with pytest.raises(lake_lock.LakeLocked, match="take_over_stale_lock=true"):
        run_released(spark, config, write_release(spark, ids_of("p")))
    taking_over = make_config("releases.take_over_stale_lock=true")
    run_released(spark, taking_over, write_release(spark, ids_of("p")))
    assert without_spark(config.paths.lake) == expected("p")
    assert not lake_lock.lock_path(config.paths.lake).exists()


def test_retention_vacuums_versions_beyond_the_kept_releases(spark, make_config):
    from deltalake import DeltaTable

    config = make_config("releases.keep=2")
    for generation in ("a", "b", "c"):
        run_released(spark, config, write_release(spark, ids_of(generation)))
    ids = list(releases(read_events(config.paths.lake)))
    assert without_spark(config.paths.lake, ids[1]) == expected("b")
    assert without_spark(config.paths.lake, ids[2]) == expected("c")
    with pytest.raises(Exception):  # noqa: B017 - the oldest release's files are gone
        without_spark(config.paths.lake, ids[0])
    assert DeltaTable(lake.table_path(config.paths.lake, PERSON)).version() >= 2


@pytest.mark.slow
def test_pipeline_publishes_one_audited_release_read_by_name(pipeline_run, spark):
    from mlflow.tracking import MlflowClient

    assert pipeline_run.exit_code == 0, pipeline_run.stderr[-2000:]
    lake_root = str(pipeline_run.lake)
    events = read_events(lake_root)
    assert [e.event for e in events] == ["staged", "published"]
    (release,) = releases(events).values()
    assert release.current and release.audits_passed
    assert (
        "audit person_ids_join" in pipeline_run.stdout
        and f"release {release.release_id} published" in pipeline_run.stdout
    )
    assert {row["audit"] for row in read_audits(lake_root)} == {
        "ingest_reconciles",
        "schema_contracts",
        "no_raw_identifiers",
        "disclosure_obeyed",
        "linkage_gates",
        "person_ids_join",
    }
    register_catalog(spark, lake_root)
    persons = spark.sql("SELECT count(*) AS n FROM pseudonymised.person").first().n
    assert (
        persons
        == lake.read_table(spark, lake_root, PERSON, version=release.tables["pseudonymised/person"]).count()
    )
    assert spark.sql("SELECT count(*) AS n FROM cohorts.cohort_asthma").first().n >= 0
    refs = published_tables(lake_root)
    assert refs["pseudonymised.person"].version == release.tables["pseudonymised/person"]
    assert "cohorts.cohort_asthma_summary" in refs and not any(name.startswith("restricted") for name in refs)
    assert not lake_lock.lock_path(lake_root).exists()

    client = MlflowClient(pipeline_run.tracking_uri)
    parent = client.get_run(events[-1].run_id)
    assert parent.data.tags["lake_release"] == release.release_id
    assert all(
        parent.data.metrics[f"audit.{name}.passed"] == 1.0 for name in ("no_raw_identifiers", "linkage_gates")
    )
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    params = {run.data.tags["job"]: run.data.params for run in children}
    assert params["link"]["input_version.restricted/people_std"] == str(
        release.tables["restricted/people_std"]
    )
    assert params["cohorts"]["input_version.pseudonymised/person"] == str(
        release.tables["pseudonymised/person"]
    )


@pytest.mark.slow
def test_release_list_and_the_jvm_free_helper_as_documented(pipeline_run):
    """`python -m jobs.release list` and `linkage.catalog` in subprocesses with a bare environment."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    # Several times: deltalake's threaded reader aborted the interpreter at exit in about half the runs.
    for _ in range(4):
        listed = subprocess.run(
            [sys.executable, "-m", "jobs.release", "list", "--set", f"paths.lake={pipeline_run.lake}"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert listed.returncode == 0, listed.stderr[-2000:]
    assert "* r0001-" in listed.stdout and "pass person_ids_join" in listed.stdout
    script = (
        "import sys, duckdb; from linkage.catalog import published_tables; "
        f"person = published_tables({str(pipeline_run.lake)!r})['pseudonymised.person']; "
        "arrow = person.read(); "
        "print(duckdb.sql('SELECT count(*) FROM arrow').fetchall()[0][0]); "
        "print('pyspark' in sys.modules)"
    )
    helper = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert helper.returncode == 0, helper.stderr[-2000:]
    count, spark_loaded = helper.stdout.split()
    assert int(count) > 0 and spark_loaded == "False"


def test_release_commands_refuse_unknown_releases(make_config, capsys):
    from jobs import release as release_job

    config = make_config()
    argv = ["--set", f"paths.lake={config.paths.lake}"]
    with redirect_stdout(io.StringIO()) as out, redirect_stderr(io.StringIO()) as err:
        assert release_job.main(["list", *argv], {}) == 0
        assert release_job.main(["publish", "--release", "r9999", *argv], {}) == 2
        assert release_job.main(["rollback", *argv], {}) == 2
    assert "no releases in" in out.getvalue()
    assert "no release 'r9999'" in err.getvalue() and "no earlier published release" in err.getvalue()


def test_identifier_scan_counts_leaked_identifiers_and_ignores_category_words(spark, make_config):
    from linkage.releases.audits import AuditInputs, no_raw_identifiers
    from linkage.schemas import PEOPLE_STD

    config = make_config()
    people = {
        "forename_raw": "Ann",
        "surname_raw": "White",
        "nhs_number_raw": "9434765919",
        "postcode_raw": "LS1 4AB",
        "date_of_birth_raw": "1980-02-03",
        "ethnicity_raw": "Unknown",
    }
    people_row = tuple(people.get(c.name) for c in PEOPLE_STD.columns)
    # gp_events.code holds the NHS number and hospital referral_source the full name (two leaks);
    # person.ethnic_group 'White' equals the surname alone and 'Unknown' a raw field without digits (no leak).
    person_row = tuple(
        {"person_id": "p1", "ethnic_group": "White", "postcode_district": "Unknown"}.get(c.name)
        for c in PERSON.columns
    )
    gp_row = tuple({"person_id": "p1", "code": "9434765919"}.get(c.name) for c in GP_EVENTS.columns)
    hospital_row = tuple(
        {"person_id": "p1", "referral_source": " ann white ", "secondary_diagnoses": ["J45"]}.get(c.name)
        for c in HOSPITAL_EPISODES.columns
    )
    with tracking_run(config, job="test-release") as run:
        for contract, row in (
            (PEOPLE_STD, people_row),
            (PERSON, person_row),
            (GP_EVENTS, gp_row),
            (HOSPITAL_EPISODES, hospital_row),
        ):
            lake.write_table(spark.createDataFrame([row], contract.schema), config.paths.lake, contract, run)
    candidate = {f"{c.zone}/{c.name}": 0 for c in (PEOPLE_STD, PERSON, GP_EVENTS, HOSPITAL_EPISODES)}
    result = no_raw_identifiers(AuditInputs(spark, config, candidate, {}, candidate))
    assert not result.passed
    assert result.counts == {"tables_scanned": 3, "columns_with_identifiers": 2, "identifier_matches": 2}
    assert "gp_events.code" in result.summary and "hospital_episodes.referral_source" in result.summary
    assert "9434765919" not in result.summary and "ann" not in result.summary.lower()  # counts, never values
