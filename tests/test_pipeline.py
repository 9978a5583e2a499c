"""End to end: the pipeline job on a small generated extract (the README command, run once per session: conftest)."""

from __future__ import annotations

import csv
import io
import re
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from jobs import ingest as ingest_job

pytestmark = pytest.mark.slow


def test_pipeline_exits_zero_and_prints_a_summary(pipeline_run):
    assert pipeline_run.exit_code == 0, pipeline_run.stderr[-2000:]
    out = pipeline_run.stdout
    for stage in ("ingest", "train", "link", "pseudonymise", "cohorts"):
        assert re.search(rf"^\[pipeline\] {stage}\s+\d+\.\d s$", out, re.M), f"no timing line for {stage}"
    assert "local mode: trained model version" in out
    # 300 generated people: the model links them well above chance (F1 0.99 when this was written).
    f1 = float(re.search(r"linkage F1 against truth: (\d\.\d{4})", out).group(1))
    assert f1 >= 0.95, f"pipeline F1 {f1} against truth"
    assert "mlflow ui --backend-store-uri" in out


def test_pipeline_writes_every_zone(pipeline_run, spark):
    lake = pipeline_run.lake
    # Every zone holds rows: the generator writes people and GP events, and a clean extract quarantines nothing.
    for table in (
        "restricted/people_std",
        "restricted/person_spine",
        "pseudonymised/person",
        "pseudonymised/gp_events",
    ):
        assert spark.read.format("delta").load(str(lake / table)).count() > 0, table
    assert spark.read.format("delta").load(str(lake / "restricted/quarantine")).count() == 0
    people = spark.read.format("delta").load(str(lake / "restricted/people_std")).count()
    spine = spark.read.format("delta").load(str(lake / "restricted/person_spine")).count()
    assert spine == people > 300  # every resident is in the GP file or another source, some twice
    cohort_tables = sorted(p.name for p in (lake / "cohorts").iterdir())
    assert "cohort_shielding" in cohort_tables and "cohort_shielding_summary" in cohort_tables


def test_stage_runs_nest_under_one_pipeline_run(pipeline_run):
    client = MlflowClient(pipeline_run.tracking_uri)
    parent_id = re.search(r"\[pipeline\] done in .* \(MLflow run (\w+)\)", pipeline_run.stdout).group(1)
    parent = client.get_run(parent_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    assert {run.data.tags["job"] for run in children} == {
        "ingest",
        "train",
        "link",
        "pseudonymise",
        "cohorts",
    }
    assert all(run.info.status == "FINISHED" for run in children)


def test_output_never_shows_identifiable_values(pipeline_run):
    """Scan everything the pipeline printed for the extract's names, NHS numbers, postcodes and birth dates."""
    identifiers = raw_identifiers(pipeline_run.raw)
    printed = pipeline_run.stdout + pipeline_run.stderr
    tokens = set(re.findall(r"[A-Za-z0-9'/-]+", printed)) | set(
        re.findall(r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}", printed)
    )
    leaked = {kind for kind, values in identifiers.items() if values & tokens}
    assert not leaked, f"pipeline output contains identifiable values of kind(s): {sorted(leaked)}"


def test_failed_ingest_leaves_the_last_good_tables(pipeline_run, spark, tmp_path):
    from delta.tables import DeltaTable

    people_path = str(pipeline_run.lake / "restricted/people_std")
    before = DeltaTable.forPath(spark, people_path).history(1).first().version
    broken_raw = tmp_path / "broken"
    broken_raw.mkdir()
    (broken_raw / "gp_patients.csv").write_text("gp_patient_id,forename\n1,A\n", encoding="utf-8")
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = ingest_job.main([*pipeline_run.overrides, "--set", f"paths.raw={broken_raw}"], {})
    assert code == 2
    # The message names the file and the column it lacks (never a value).
    assert "gp_patients.csv" in err.getvalue() and "not found" in err.getvalue()
    assert DeltaTable.forPath(spark, people_path).history(1).first().version == before


def raw_identifiers(raw: Path) -> dict[str, set[str]]:
    """Identifier values of the extract's people files, by kind (long enough to be meaningful)."""
    found: dict[str, set[str]] = {
        "name": set(),
        "nhs_number": set(),
        "postcode": set(),
        "date_of_birth": set(),
    }
    for path in [*raw.glob("*_patients.csv"), *raw.glob("*_clients.csv")]:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle):
                for column in ("forename", "surname"):
                    if row.get(column) and len(row[column]) >= 4:
                        found["name"].add(row[column])
                if row.get("nhs_number"):
                    found["nhs_number"].add(row["nhs_number"])
                if row.get("postcode"):
                    found["postcode"].add(row["postcode"].upper())
                if row.get("date_of_birth"):
                    found["date_of_birth"].add(row["date_of_birth"])
    return found
