"""The bench's profile (stage windows read from a job's output, Spark task time attributed to them) and its
incremental-link change and spine comparison."""

from __future__ import annotations

import ast
from pathlib import Path

from linkage.bench import StageRecorder, task_time_by_stage

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def test_stage_lines_become_windows_ending_when_printed():
    out = StageRecorder()
    out.write("[link] nhs number pass               1.5 s\n[link] registered nothing\n")
    out.write("[link] predict                      12.0 s\n")
    names = [name for name, _, _ in out.stages]
    assert names == ["nhs number pass", "predict"]
    name, started, ended = out.stages[1]
    assert ended - started == 12.0
    assert "registered nothing" in out.getvalue()  # the output is kept whole


def test_spark_task_time_goes_to_the_stage_it_completed_in():
    job = {"started": 100.0, "ended": 130.0, "stages": [("predict", 100.0, 110.0), ("cluster", 110.0, 125.0)]}
    spark_stages = [
        {"ended": 105.0, "run_seconds": 8.0, "cpu_seconds": 6.0},
        {"ended": 109.0, "run_seconds": 4.0, "cpu_seconds": 1.0},
        {"ended": 120.0, "run_seconds": 3.0, "cpu_seconds": 2.0},
        {"ended": 50.0, "run_seconds": 99.0, "cpu_seconds": 99.0},
    ]  # an earlier job's stage
    report = task_time_by_stage(job, spark_stages)
    assert report["predict"] == {
        "wall_seconds": 10.0,
        "task_seconds": 12.0,
        "task_cpu_seconds": 7.0,
        "spark_stages": 2,
    }
    assert report["cluster"]["task_seconds"] == 3.0
    assert report["all"] == {
        "wall_seconds": 30.0,
        "task_seconds": 15.0,
        "task_cpu_seconds": 9.0,
        "spark_stages": 3,
    }


def test_no_library_module_imports_a_job_module():
    # The jobs are thin entry points over the library; the benches build their jobs from the stage bodies.
    importing_jobs = []
    for path in sorted((PROJECT_ROOT / "linkage").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        if any(m == "jobs" or m.startswith("jobs.") for m in imported):
            importing_jobs.append(path.name)
    assert (PROJECT_ROOT / "linkage" / "quality_bench.py").exists()
    assert importing_jobs == []


def test_the_incremental_bench_change_edits_removes_and_copies_records(spark):
    from linkage.bench import changed_extract

    people = spark.createDataFrame(
        [("gp", str(i), f"NAME{i}") for i in range(400)],
        "source_dataset string, source_record_id string, surname_std string",
    )
    assert sorted(changed_extract(people, 0.0).collect()) == sorted(people.collect())
    after = {(r.source_record_id, r.surname_std) for r in changed_extract(people, 0.2).collect()}
    edited = {i for i, name in after if name.endswith("X")}
    copies = {i for i, _ in after if i.startswith("NEW-")}
    kept = {i for i, _ in after}
    gone = {str(i) for i in range(400)} - kept
    # About a tenth edited, a twentieth each gone and copied (a hash of the key decides), the rest untouched.
    assert 20 <= len(edited) <= 60 and 5 <= len(gone) <= 40 and 5 <= len(copies) <= 40
    assert all(f"NEW-{i}" not in copies for i in gone)  # a copied record is also kept
    assert all((i.removeprefix("NEW-"), f"NAME{i.removeprefix('NEW-')}") in after for i in copies)


def test_spines_differ_by_the_records_that_moved_not_by_their_keys(spark):
    from linkage.bench import spine_difference

    schema = "source_dataset string, source_record_id string, person_key string"
    full = spark.createDataFrame([("gp", "1", "A"), ("gp", "2", "A"), ("gp", "3", "B")], schema)
    renamed = spark.createDataFrame([("gp", "1", "K"), ("gp", "2", "K"), ("gp", "3", "L")], schema)
    moved = spark.createDataFrame([("gp", "1", "A"), ("gp", "2", "B"), ("gp", "3", "B")], schema)
    assert spine_difference(full, renamed) == 0
    # Record 2 left record 1's person for record 3's: the persons of records 2 and 3 are other sets of records now.
    assert spine_difference(full, moved) == 2


def test_an_incremental_only_run_replaces_that_part_of_the_sizes_earlier_result(tmp_path):
    import json

    from linkage.bench import markdown_table, merged_with_earlier

    earlier = [
        {"people": 100, "measured_at": "then", "stages": {"link": 9.0}, "incremental": {"ratio": 1.2}},
        {"people": 1000, "measured_at": "then", "stages": {"link": 90.0}},
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": earlier}), encoding="utf-8")
    merged = merged_with_earlier(
        [{"people": 100, "incremental": {"ratio": 0.5}}, {"people": 10, "incremental": {"ratio": 0.7}}], path
    )
    assert [r["people"] for r in merged] == [10, 100, 1000]
    ten, hundred, thousand = merged
    assert hundred["stages"] == {"link": 9.0} and hundred["measured_at"] == "then"
    assert hundred["incremental"]["ratio"] == 0.5 and hundred["incremental"]["measured_at"] != "then"
    assert thousand == earlier[1]
    assert set(ten) == {"people", "incremental"}
    # A size with only the incremental comparison has no row in the main table.
    assert "| 10 |" not in markdown_table([ten])


def test_a_size_run_without_peers_says_they_were_not_run():
    from linkage.bench import markdown_table

    measured = {
        "stages": {"ingest": 500.0, "train": 400.0, "link": 1500.0},
        "peak_memory_mb": {"driver_jvm": 7000.0},
        "linkage": {"candidate_pairs": 40_000_000.0, "f1": 0.98},
    }
    alone = markdown_table([{"people": 5_000_000, **measured}])
    with_peers = markdown_table(
        [
            {
                "people": 1_000_000,
                **measured,
                "duckdb": {"train_seconds": 18.6, "predict_cluster_seconds": 21.0, "f1": 0.975},
                "spark_defaults": {"predict_cluster_seconds": 212.1, "f1": 0.9752},
            }
        ]
    )
    assert alone.splitlines()[-1].endswith("| 0.9800 | not run | not run | not run | not run | not run |")
    assert with_peers.splitlines()[-1].endswith("| 0.9800 | 18.6 | 21.0 | 0.9750 | 212.1 | 0.9752 |")


def test_link_only_needs_a_lake_an_earlier_run_left(tmp_path):
    import pytest

    from linkage.bench import main

    with pytest.raises(SystemExit, match="no linked lake at .*1000.*run the bench at 1000 people first"):
        main(["--sizes", "1000", "--link-only", "--work", str(tmp_path)])
    assert not (tmp_path / "1000" / "lake-link-only").exists()


def test_a_standalone_cluster_is_for_the_link_job_alone(tmp_path, capsys):
    import pytest

    from linkage.bench import link_master, main

    with pytest.raises(SystemExit):
        main(["--sizes", "1000", "--standalone-workers", "2", "--work", str(tmp_path)])
    assert "apply to --link-only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--sizes", "1000", "--ingest-only", "--link-only", "--work", str(tmp_path)])
    assert "runs the ingest job alone" in capsys.readouterr().err
    with link_master(tmp_path, 0, "1g") as settings:
        assert settings == []  # no workers: the configured local master, nothing started
    assert not (tmp_path / "standalone").exists()


def test_a_nested_step_keeps_its_own_window_inside_its_parents():
    # "cluster and key: clusters" prints before "cluster and key" ends: both windows are reported.
    job = {
        "started": 0.0,
        "ended": 30.0,
        "stages": [("cluster and key: clusters", 5.0, 20.0), ("cluster and key", 0.0, 30.0)],
    }
    spark_stages = [
        {"ended": 10.0, "run_seconds": 4.0, "cpu_seconds": 3.0},
        {"ended": 25.0, "run_seconds": 2.0, "cpu_seconds": 1.0},
    ]
    report = task_time_by_stage(job, spark_stages)
    assert report["cluster and key: clusters"]["task_seconds"] == 4.0
    assert report["cluster and key"]["task_seconds"] == 6.0


def test_splink_on_duckdb_trains_the_settings_that_train_trains(spark, pipeline_run):
    from linkage.bench import duckdb_train_run
    from linkage.config import load_config
    from linkage.link.fields import plan_model, populated_columns, populated_counts
    from linkage.link.model import model_input
    from linkage.link.settings import build_settings

    people_df = model_input(spark.read.format("delta").load(f"{pipeline_run.lake}/restricted/people_std"))
    plan = plan_model(populated_columns(populated_counts(people_df)))
    seconds, model = duckdb_train_run(people_df.toPandas(), load_config(None).linkage, plan)
    assert seconds > 0 and model["sql_dialect"] == "duckdb"
    assert [c["output_column_name"] for c in model["comparisons"]] == [
        c.get_comparison("spark").output_column_name for c in plan.comparisons
    ]
    # Trained: the prior, and every comparison's m away from the starting values of the untrained settings.
    untrained = build_settings(load_config(None).linkage, plan.comparisons, plan.prediction_rules)
    untrained = untrained.create_settings_dict("spark")
    assert model["probability_two_random_records_match"] != untrained["probability_two_random_records_match"]
    for trained, start in zip(model["comparisons"], untrained["comparisons"], strict=True):
        m = [level.get("m_probability") for level in trained["comparison_levels"]]
        assert m != [level.get("m_probability") for level in start["comparison_levels"]], trained[
            "output_column_name"
        ]
