"""The cohorts job end to end on a tiny lake: broken declarations fail alone, the rest are written,
summaries are exported after disclosure control, and truth QA reaches MLflow as ratios only."""

import csv
import shutil
from datetime import date

import pytest
from builders import contract_frame
from cohort_tables import frame, gp, person
from mlflow.tracking import MlflowClient

from jobs.cohorts import main
from linkage import lake, sources
from linkage.config import PROJECT_ROOT
from linkage.pseudonymise.keys import load_release_key
from linkage.pseudonymise.tokens import pseudonym
from linkage.schemas import PERSON_SPINE
from linkage.sources import person_contract
from linkage.tracking import tracking_run

HYP, HYP_RESOLVED, SHIELD_HIGH = "38341003", "162659009", "1300561000000107"


@pytest.mark.slow
def test_failing_cohorts_are_isolated_and_qa_is_logged(spark, make_config, tmp_path, capsys):
    declarations = tmp_path / "cohorts"
    declarations.mkdir()
    for name in ("hypertension", "shielding"):
        shutil.copy(PROJECT_ROOT / "conf/cohorts" / f"{name}.yaml", declarations)
    (declarations / "broken_codelist.yaml").write_text(
        "description: refers to a codelist that does not exist\ncriteria:\n"
        "  c: {table: gp_events, codelist: no_such_list}\npopulation:\n  all: [c]\n"
    )
    (declarations / "broken_column.yaml").write_text(
        "description: filters on a column the table does not have\ncriteria:\n"
        "  c: {table: social_care_events, where: {no_such_column: [x]}}\npopulation:\n  all: [c]\n"
    )
    truth, conditions = tmp_path / "truth.csv", tmp_path / "truth_conditions.csv"
    overrides = [
        f"cohorts.declarations={declarations}",
        "cohorts.parallelism=3",
        f"paths.truth={truth}",
        f"paths.truth_conditions={conditions}",
    ]
    config = make_config(*overrides)

    # Four people k1..k4 (true persons T1..T4), one GP record each; person_id is the HMAC the pipeline uses.
    key = load_release_key(config, {}, say=lambda _: None)
    pid = {k: pseudonym(k, key) for k in ("k1", "k2", "k3", "k4")}
    with tracking_run(config, job="test-setup") as run:
        lake.write_table(
            frame(spark, "person", [person(pid[k], 1960) for k in pid]),
            config.paths.lake,
            person_contract(),
            run,
        )
        gp_rows = [
            gp(pid["k1"], date(2020, 1, 1), HYP),
            gp(pid["k1"], date(2020, 4, 1), SHIELD_HIGH),
            gp(pid["k2"], date(2020, 1, 1), HYP),
            gp(pid["k2"], date(2021, 1, 1), HYP_RESOLVED),
            gp(pid["k3"], date(2020, 1, 1), HYP),
        ]
        for source, contract in sources.pseudonymised_activity_contracts().items():
            lake.write_table(
                frame(spark, contract.name, gp_rows if source == "gp" else []),
                config.paths.lake,
                contract,
                run,
            )
        spine = contract_frame(
            spark,
            PERSON_SPINE,
            [
                {
                    "source_dataset": "gp",
                    "source_record_id": f"g{k}",
                    "person_key": k,
                    "match_method": "nhs_number",
                    "cluster_size": 1,
                    "run_id": "test",
                }
                for k in pid
            ],
        )
        lake.write_table(spine, config.paths.lake, PERSON_SPINE, run)
    truth.write_text(
        "source_dataset,source_record_id,true_person_id\n" + "".join(f"gp,g{k},T{k[1]}\n" for k in pid)
    )
    # Hypertension truth: T1 (found), T4 (missed); T3 is found but not true -> precision 1/2, recall 1/2.
    conditions.write_text(
        "true_person_id,condition,date\nT1,hypertension,2020-01-01\nT4,hypertension,2020-01-01\n"
        "T1,shielding,2020-04-01\nT2,hypertension,2027-01-01\n"
    )

    exit_code = main(
        [
            "--set",
            f"paths.lake={config.paths.lake}",
            "--set",
            f"tracking.uri={config.tracking_uri}",
            "--set",
            f"pseudonymise.key_file={config.pseudonymise.key_file}",
            *[arg for item in overrides for arg in ("--set", item)],
        ],
        {},
    )

    err = capsys.readouterr().err
    assert exit_code == 1
    assert "broken_codelist" in err and "broken_column" in err and "no_such_column" in err
    for name in ("hypertension", "shielding"):
        assert lake.table_exists(spark, config.paths.lake, _contract(f"cohort_{name}"))
        assert lake.table_exists(spark, config.paths.lake, _contract(f"cohort_{name}_summary"))
    assert not lake.table_exists(spark, config.paths.lake, _contract("cohort_broken_column"))
    cohort = lake.read_table(spark, config.paths.lake, _contract("cohort_hypertension"))
    assert sorted(r.person_id for r in cohort.collect()) == sorted([pid["k1"], pid["k3"]])

    with open(f"{config.paths.exports_dir}/cohort_hypertension_summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert "person_id" not in rows[0]
    # Two people: every non-zero cell is a small count, so every one is suppressed.
    assert {row["count"] for row in rows if row["is_suppressed"] == "True"} == {""}
    assert all(row["count"] in ("", "0") for row in rows)

    client = MlflowClient(config.tracking_uri)
    run = client.search_runs(
        [client.get_experiment_by_name(config.tracking.experiment).experiment_id],
        "tags.job = 'cohorts'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )[0]
    metrics = run.data.metrics
    assert metrics["hypertension.hypertension.precision"] == pytest.approx(0.5)
    assert metrics["hypertension.hypertension.recall"] == pytest.approx(
        0.5
    )  # T2's row is after the index date
    assert metrics["shielding.shielding.recall"] == pytest.approx(1.0)
    assert (metrics["hypertension.ok"], metrics["broken_codelist.ok"], metrics["broken_column.ok"]) == (
        1,
        0,
        0,
    )
    assert "wall_seconds.parallel" in metrics
    assert not any(
        name.endswith("persons_rounded") and value not in (0, 5) for name, value in metrics.items()
    )


def _contract(name):
    from linkage.schemas import TableContract

    return TableContract("cohorts", name, "", ())
