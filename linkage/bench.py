"""Benchmark: train and link at given sizes, beside the same model on Splink's DuckDB backend and on
Splink's Spark backend with Spark's default settings, so the ratios come from one run.

    python -m linkage.bench --sizes 100000 1000000     (make bench)
    python -m linkage.bench --sizes 1000000 --link-only [--standalone-workers 2]
    python -m linkage.bench --sizes 1000000 --ingest-only

For each size: generate a synthetic extract (reused when present), ingest, train, approve, link
with this project's jobs and settings, timing each stage; then predict + cluster the same model
(the approved version's JSON) on DuckDB and on Spark with default shuffle partitions and
whole-stage codegen. Writes data/bench/results/results.json and results.md: wall time per stage,
peak memory (the JVM's and this process's peak resident set), candidate pairs and F1 against
the synthetic truth. Not a test: it takes minutes to an hour.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from linkage.config import PROJECT_ROOT, load_config
from linkage.link.duckdb_model import model_for_duckdb

BENCH_DIR = PROJECT_ROOT / "data" / "bench"  # git-ignored, like every generated extract
RESULTS_DIR = BENCH_DIR / "results"
# Spark's own defaults, for the "plain Splink on Spark" comparison.
SPARK_DEFAULTS = {"spark.sql.shuffle.partitions": "200", "spark.sql.codegen.wholeStage": "true"}


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


# A job's stage line, as linkage.harness.StageClock prints it: "[link] predict    12.3 s".
STAGE_LINE = re.compile(r"^\[(?P<job>[\w-]+)\] (?P<stage>.+?)\s+(?P<seconds>\d+\.\d) s$")


class StageRecorder(io.StringIO):
    """Collects a job's output and, for each stage line, the stage's wall-clock window (end = when it printed)."""

    def __init__(self) -> None:
        super().__init__()
        self.stages: list[tuple[str, float, float]] = []  # (stage, started, ended), epoch seconds

    def write(self, text: str) -> int:
        now = time.time()
        for line in text.splitlines():
            if match := STAGE_LINE.match(line.strip()):
                self.stages.append((match["stage"], now - float(match["seconds"]), now))
        return super().write(text)


def run_job_quietly(main: Callable, overrides: list[str], extra: Sequence[str] = ()) -> dict[str, Any]:
    """Run a job's main(argv, environ) with --set overrides; returns its wall seconds and its stages' windows.
    Raises on a non-zero exit."""
    argv = [part for setting in overrides for part in ("--set", setting)] + list(extra)
    out = StageRecorder()
    started = time.time()
    with redirect_stdout(out):
        code, seconds = timed(lambda: main(argv, {}))
    if code != 0:
        raise RuntimeError(f"{getattr(main, '__name__', main)} exited {code}:\n{out.getvalue()[-2000:]}")
    return {"seconds": seconds, "started": started, "ended": time.time(), "stages": out.stages}


def job_main(name: str, body: Callable, add_arguments: Callable | None = None) -> Callable:
    """A job's main() built from its library body, as jobs/<name>.py builds it (the bench imports no job module)."""
    from linkage.harness import run_job

    return lambda argv, environ: run_job(
        name, f"bench: {name}", body, argv, environ, add_arguments=add_arguments
    )


def job_mains() -> dict[str, Callable]:
    """ingest, train and link as their jobs build them, from the stage bodies (the bench imports no job module)."""
    from linkage.ingest import stage as ingest
    from linkage.link import stage as link
    from linkage.train import stage as train

    return {
        "ingest": job_main("ingest", ingest.run),
        "train": job_main("train", train.run),
        "link": job_main("link", link.run, link.add_link_arguments),
    }


def spark_stage_times(spark) -> list[dict[str, float]]:
    """Every completed Spark stage of this application: (completed at, executor run time, CPU time), from the
    driver UI's REST API on loopback (no listener to register). Empty when the UI is off."""
    import urllib.request

    url = spark.sparkContext.uiWebUrl
    if not url:
        return []
    app = spark.sparkContext.applicationId
    with urllib.request.urlopen(
        f"{url}/api/v1/applications/{app}/stages?status=complete", timeout=30
    ) as reply:
        stages = json.load(reply)
    parsed = []
    for stage in stages:
        ended = stage.get("completionTime")
        if not ended:
            continue
        parsed.append(
            {
                "ended": datetime.strptime(
                    ended.replace("GMT", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z"
                ).timestamp(),
                "run_seconds": stage.get("executorRunTime", 0) / 1000,
                "cpu_seconds": stage.get("executorCpuTime", 0) / 1e9,
            }
        )
    return parsed


def task_time_by_stage(
    job: dict[str, Any], spark_stages: list[dict[str, float]]
) -> dict[str, dict[str, float]]:
    """Per job stage: wall seconds, and the Spark task time (executor run and CPU) of the Spark stages that
    completed inside it; 'all' covers the whole job. Task time over wall time above the core count is parallelism,
    far below it is driver-side or fixed cost."""
    windows = [*job["stages"], ("all", job["started"], job["ended"])]
    report = {}
    for name, started, ended in windows:
        inside = [s for s in spark_stages if started <= s["ended"] <= ended + 0.5]
        report[name] = {
            "wall_seconds": round(ended - started, 2),
            "task_seconds": round(sum(s["run_seconds"] for s in inside), 2),
            "task_cpu_seconds": round(sum(s["cpu_seconds"] for s in inside), 2),
            "spark_stages": len(inside),
        }
    return report


def jvm_peak_rss_mb(spark) -> float:
    """Peak resident set of the driver JVM (VmHWM), in MB."""
    pid = spark._jvm.java.lang.ProcessHandle.current().pid()  # noqa: SLF001
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def python_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pairwise_scores(joined: Any) -> dict[str, float]:
    """Pairwise precision, recall and F1 of a pandas frame of records with cluster_id and true_person_id."""

    def pairs(counts) -> int:
        return int((counts * (counts - 1) // 2).sum())

    true_positive = pairs(joined.groupby(["cluster_id", "true_person_id"]).size())
    predicted = pairs(joined.groupby("cluster_id").size())
    actual = pairs(joined.groupby("true_person_id").size())
    precision = true_positive / predicted if predicted else 1.0
    recall = true_positive / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def pairwise_f1(clusters: Any, truth: Any) -> float:
    """Pairwise F1 of a (source_dataset, source_record_id, cluster_id) pandas frame against truth.csv."""
    return pairwise_scores(clusters.merge(truth, on=["source_dataset", "source_record_id"], how="inner"))[
        "f1"
    ]


def splink_predict_and_cluster(linker, threshold: float) -> tuple[Any, int]:
    predictions = linker.inference.predict()
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, threshold)
    frame = clusters.as_pandas_dataframe()[["source_dataset", "source_record_id", "cluster_id"]]
    candidates = linker.misc.query_sql(
        f"select count(*) as n from {predictions.physical_name}", output_type="pandas"
    )
    return frame, int(candidates["n"].iloc[0])


def duckdb_tables(people_pd) -> list:
    """The records as Splink's DuckDB input tables, one per source (as `register_sources` does on Spark)."""
    from splink import DuckDBAPI

    db_api = DuckDBAPI()
    return [
        db_api.register(frame, dataset_display_name=source, table_name=f"input_{source}")
        for source, frame in people_pd.groupby("source_dataset")
    ]


def duckdb_run(people_pd, model: dict, threshold: float) -> dict[str, Any]:
    from splink import Linker

    linker = Linker(duckdb_tables(people_pd), model_for_duckdb(model))
    (clusters, candidates), seconds = timed(lambda: splink_predict_and_cluster(linker, threshold))
    return {"predict_cluster_seconds": seconds, "candidate_pairs": candidates, "clusters": clusters}


def duckdb_train_run(people_pd, config, plan) -> tuple[float, dict]:
    """(seconds, model JSON) of Splink on DuckDB training the settings `train` trains (the same comparisons, prior
    rules, u sample and EM sessions, through the same train_linker), with Splink's own EM loop."""
    from splink.blocking_rule_library import CustomRule

    from linkage.link.duckdb_model import spark_sql_to_duckdb
    from linkage.link.fields import rule_sql
    from linkage.link.model import build_linker, train_linker
    from linkage.link.settings import build_settings

    def in_duckdb(rules) -> list:
        return [CustomRule(spark_sql_to_duckdb(rule_sql(rule)), sql_dialect="duckdb") for rule in rules]

    settings = build_settings(config, plan.comparisons, plan.prediction_rules).create_settings_dict("spark")
    linker = build_linker(duckdb_tables(people_pd), model_for_duckdb(settings))
    _, seconds = timed(
        lambda: train_linker(
            linker, config, in_duckdb(plan.em_rules), in_duckdb(plan.prior_rules), pattern_counts=False
        )
    )
    return seconds, linker.misc.save_model_to_json()


def spark_defaults_run(spark, people_df, model: dict, threshold: float, scratch: str) -> dict[str, Any]:
    from pyspark.sql import functions as F
    from splink import Linker
    from splink.backends.spark import SparkAPI

    saved = {key: spark.conf.get(key) for key in SPARK_DEFAULTS}
    for key, value in SPARK_DEFAULTS.items():
        spark.conf.set(key, value)
    spark.sparkContext.setCheckpointDir(scratch)
    try:
        db_api = SparkAPI(spark_session=spark)  # Splink's default break_lineage_method
        sources = [r.source_dataset for r in people_df.select("source_dataset").distinct().collect()]
        tables = [
            db_api.register(
                people_df.where(F.col("source_dataset") == s),
                dataset_display_name=s,
                table_name=f"__splink__bench_{s}",
            )
            for s in sorted(sources)
        ]
        linker = Linker(tables, model)
        (clusters, candidates), seconds = timed(lambda: splink_predict_and_cluster(linker, threshold))
    finally:
        for key, value in saved.items():
            spark.conf.set(key, value)
    return {"predict_cluster_seconds": seconds, "candidate_pairs": candidates, "clusters": clusters}


def changed_extract(people_df, fraction: float):
    """people_std after a change to `fraction` of its records, chosen by a hash of their keys: half edited (a
    letter added to the surname), a quarter gone, a quarter arriving again under a new id (duplicates)."""
    from pyspark.sql import functions as F

    bucket = F.abs(F.xxhash64("source_dataset", "source_record_id")) % 100_000 / 100_000
    edited, gone = bucket < fraction / 2, (bucket >= fraction / 2) & (bucket < fraction * 3 / 4)
    copied = (bucket >= fraction * 3 / 4) & (bucket < fraction)
    kept = people_df.where(~gone).withColumn(
        "surname_std", F.when(edited, F.concat("surname_std", F.lit("X"))).otherwise(F.col("surname_std"))
    )
    copies = people_df.where(copied).withColumn(
        "source_record_id", F.concat(F.lit("NEW-"), F.col("source_record_id"))
    )
    return kept.unionByName(copies)


def spine_difference(full_spine, incremental_spine) -> int:
    """Records whose person (as the set of records sharing its key) differs between two spines."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    def labelled(spine):
        uid = F.concat_ws(":", "source_dataset", "source_record_id")
        return spine.select(
            "source_dataset",
            "source_record_id",
            F.min(uid).over(Window.partitionBy("person_key")).alias("person_label"),
        )

    joined = labelled(full_spine).join(
        labelled(incremental_spine).withColumnRenamed("person_label", "other_label"),
        ["source_dataset", "source_record_id"],
        how="full",
    )
    return joined.where(~F.col("person_label").eqNullSafe(F.col("other_label"))).count()


def bench_incremental(spark, lake: Path, overrides: list[str], fraction: float, link_main) -> dict[str, Any]:
    """The same change linked in full and with --incremental, each on its own copy of the lake after the full
    link: wall times, pairs rescored and reused, and the records whose person differs between the two spines."""
    import shutil

    people_df = spark.read.format("delta").load(f"{lake}/restricted/people_std")
    next_people = changed_extract(people_df, fraction).localCheckpoint(eager=True)
    result: dict[str, Any] = {"fraction_changed": fraction}
    for mode in ("full", "incremental"):
        copy = lake.parent / f"lake-{mode}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(lake, copy, ignore=shutil.ignore_patterns("_scratch", "_logs"))
        next_people.write.format("delta").mode("overwrite").save(f"{copy}/restricted/people_std")
        settings = [o for o in overrides if not o.startswith("paths.lake=")] + [f"paths.lake={copy}"]
        job = run_job_quietly(link_main, settings, ["--incremental"] if mode == "incremental" else [])
        result[f"{mode}_link_seconds"] = job["seconds"]
        stages = {s: round(b - a, 1) for s, a, b in job["stages"]}
        result[f"{mode}_predict_seconds"] = stages.get("predict")
        # Every step, so what an incremental run still does over all the records shows.
        result[f"{mode}_stage_seconds"] = stages
    result["incremental_over_full"] = result["incremental_link_seconds"] / result["full_link_seconds"]
    spines = [
        spark.read.format("delta").load(f"{lake.parent}/lake-{m}/restricted/person_spine")
        for m in ("full", "incremental")
    ]
    result["records"] = spines[0].count()
    result["records_in_a_different_person"] = spine_difference(*spines)
    return result


def size_overrides(
    people: int, work: Path, shuffle_partitions: int, settings: Sequence[str]
) -> tuple[Path, Path, list[str]]:
    """(raw folder, lake, the --set overrides of every job) of one size's run."""
    root = work / str(people)
    raw, lake = root / "raw", root / "lake"
    overrides = [
        f"paths.raw={raw}",
        f"paths.lake={lake}",
        f"paths.truth={raw / 'truth.csv'}",
        f"synthetic.people={people}",
        f"spark.shuffle_partitions={shuffle_partitions}",
        f"tracking.registered_model=bench-{people}",
        *settings,
    ]
    return raw, lake, overrides


def bench_session(overrides: list[str]):
    """The configuration and the one Spark session of a bench run."""
    from linkage.session import build_spark

    config = load_config(None, overrides=overrides)
    # The driver UI answers the task-time queries; port 0 lets Spark pick a free one (never 4040's neighbours).
    # The UI keeps only the last 1,000 stages by default: a 1M run's ingest and train push the link's predict
    # stages out before they are read, and the report showed predict with no task time.
    config.spark.conf.update(
        {
            "spark.ui.enabled": "true",
            "spark.ui.port": "0",
            "spark.ui.retainedStages": "100000",
            "spark.ui.retainedJobs": "100000",
        }
    )
    return config, build_spark(config.spark)


def bench_incremental_only(
    people: int, work: Path, shuffle_partitions: int, settings: Sequence[str], fraction: float
) -> dict[str, Any]:
    """The incremental comparison alone, on the lake an earlier run at this size left (its full link done)."""
    _, lake, overrides = size_overrides(people, work, shuffle_partitions, settings)
    if not (lake / "restricted" / "person_spine").exists():
        raise SystemExit(f"linkage.bench: no linked lake at {lake}: run the bench at {people} people first")
    _, spark = bench_session(overrides)
    return {
        "people": people,
        "incremental": bench_incremental(spark, lake, overrides, fraction, job_mains()["link"]),
    }


def bench_ingest_only(people: int, work: Path, shuffle_partitions: int, settings: Sequence[str]) -> str:
    """The ingest job alone on the size's extract (generated first when absent), each step's wall and Spark task
    time and the driver's peak; returns that (markdown)."""
    from linkage.synthetic import extract_present, generate_extract

    raw, _, overrides = size_overrides(people, work, shuffle_partitions, settings)
    config, spark = bench_session(overrides)
    if not extract_present(raw):
        generate_extract(config.synthetic, raw, Path(config.cohorts.codelists))
    job = run_job_quietly(job_mains()["ingest"], overrides)
    table = substage_table(
        [{"people": people, "substages": {"ingest": task_time_by_stage(job, spark_stage_times(spark))}}]
    )
    csv_mb = sum(path.stat().st_size for path in raw.glob("*.csv") if not path.name.startswith("truth")) / 1e6
    return f"{table}\n\n{csv_mb:,.0f} MB of CSV read; driver JVM peak {jvm_peak_rss_mb(spark):,.0f} MB."


@contextmanager
def link_master(size_work: Path, workers: int, worker_memory: str) -> Iterator[list[str]]:
    """The settings that put the link job on a standalone cluster of `workers` one-core workers, started here and
    stopped on exit (none for 0 workers: the configured local master)."""
    if not workers:
        yield []
        return
    import subprocess

    from linkage.standalone import standalone_cluster

    daemons: list[subprocess.Popen] = []
    with standalone_cluster(
        size_work / "standalone",
        daemons,
        workers=workers,
        cores_per_worker=1,
        memory_per_worker=worker_memory,
    ) as cluster:
        print(f"[bench] standalone cluster: {workers} workers of 1 core, {worker_memory} each", flush=True)
        yield [
            f"spark.master={cluster.master_url}",
            "spark.conf.spark.executor.cores=1",
            f"spark.conf.spark.executor.memory={worker_memory}",
            f"spark.conf.spark.cores.max={workers}",
        ]


def bench_link_only(
    people: int, work: Path, shuffle_partitions: int, settings: Sequence[str], current_rules: bool = False
) -> str:
    """The link job alone, on a copy of the lake an earlier run at this size left (a rerun: the spine it holds is
    the previous one), with each of its steps' wall and Spark task time, then its candidate pairs and accuracy;
    returns that (markdown). With `current_rules`, the copy's approved model first takes this code's prediction
    blocking rules and corrections (its estimates kept; the copy's registry only)."""
    import shutil

    _, lake, overrides = size_overrides(people, work, shuffle_partitions, settings)
    if not (lake / "restricted" / "person_spine").exists():
        raise SystemExit(f"linkage.bench: no linked lake at {lake}: run the bench at {people} people first")
    copy = lake.parent / "lake-link-only"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(lake, copy, ignore=shutil.ignore_patterns("_scratch", "_logs"))
    overrides = [o for o in overrides if not o.startswith("paths.lake=")] + [f"paths.lake={copy}"]
    config, spark = bench_session(overrides)
    if current_rules:
        from linkage.link.registry import approve_current_rules_and_corrections

        approve_current_rules_and_corrections(spark, config, "bench")
    job = run_job_quietly(job_mains()["link"], overrides)
    table = substage_table(
        [{"people": people, "substages": {"link": task_time_by_stage(job, spark_stage_times(spark))}}]
    )
    linkage = last_link_metrics(config)
    return (
        f"{table}\n\nCandidate pairs {linkage['candidate_pairs']:,.0f}; precision {linkage['precision']:.4f}, "
        f"recall {linkage['recall']:.4f}, F1 {linkage['f1']:.4f}."
    )


def last_link_metrics(config) -> dict[str, Any]:
    """Candidate pairs, records and accuracy against the truth file, from the last link run's MLflow metrics."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(config.tracking_uri)
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    link_run = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.job = 'link'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )[0]
    metrics = link_run.data.metrics
    return {k: metrics.get(k) for k in ("candidate_pairs", "f1", "precision", "recall", "records")}


def bench_size(
    people: int,
    work: Path,
    shuffle_partitions: int,
    settings: Sequence[str] = (),
    incremental_change: float = 0.0,
    peers: bool = True,
) -> dict[str, Any]:
    """One size's whole run: generate (when absent), ingest, train, approve and link, then (peers) the same model
    on Splink's DuckDB backend and on Spark defaults over the same records."""
    import pandas as pd

    from linkage.link.model import model_input, remove_path
    from linkage.link.registry import approve_model, latest_version, load_model_json
    from linkage.synthetic import extract_present, generate_extract

    raw, lake, overrides = size_overrides(people, work, shuffle_partitions, settings)
    config, spark = bench_session(overrides)
    result: dict[str, Any] = {
        "people": people,
        "shuffle_partitions": shuffle_partitions,
        "stages": {},
        "substages": {},
    }
    if not extract_present(raw):
        _, result["stages"]["generate"] = timed(
            lambda: generate_extract(config.synthetic, raw, Path(config.cohorts.codelists))
        )
    jobs = job_mains()
    for name, main in jobs.items():
        if name == "link":
            version = latest_version(config)
            approve_model(config, version, {}, how="automatic (bench)")
        job = run_job_quietly(main, overrides)
        result["stages"][name] = job["seconds"]
        result["substages"][name] = task_time_by_stage(job, spark_stage_times(spark))
        print(
            f"[bench] {people:,}: {name} {job['seconds']:.0f} s; "
            + ", ".join(
                f"{stage} {t['wall_seconds']:.1f} s wall / {t['task_seconds']:.1f} s tasks"
                for stage, t in result["substages"][name].items()
            ),
            flush=True,
        )

    if incremental_change:
        result["incremental"] = bench_incremental(spark, lake, overrides, incremental_change, jobs["link"])
        print(f"[bench] {people:,}: incremental {json.dumps(result['incremental'])}", flush=True)

    result["linkage"] = last_link_metrics(config)
    result["peak_memory_mb"] = {"driver_jvm": jvm_peak_rss_mb(spark), "python": python_peak_rss_mb()}
    if not peers:
        return result

    model = load_model_json(config, version)
    threshold = config.linkage.thresholds.upper
    people_df = model_input(spark.read.format("delta").load(f"{lake}/restricted/people_std"))
    truth = pd.read_csv(raw / "truth.csv", dtype=str)[
        ["source_dataset", "source_record_id", "true_person_id"]
    ]

    from linkage.link.fields import plan_model, populated_columns, populated_counts

    people_pd = people_df.toPandas()
    duck = duckdb_run(people_pd, model, threshold)
    plan = plan_model(populated_columns(populated_counts(people_df)))
    result["duckdb"] = {
        "train_seconds": duckdb_train_run(people_pd, config.linkage, plan)[0],
        "predict_cluster_seconds": duck["predict_cluster_seconds"],
        "candidate_pairs": duck["candidate_pairs"],
        "f1": pairwise_f1(duck["clusters"], truth),
    }
    scratch = f"{config.paths.scratch_dir}/bench-defaults"
    try:
        plain = spark_defaults_run(spark, people_df, model, threshold, scratch)
    finally:
        remove_path(spark, scratch)
    result["spark_defaults"] = {
        "predict_cluster_seconds": plain["predict_cluster_seconds"],
        "candidate_pairs": plain["candidate_pairs"],
        "f1": pairwise_f1(plain["clusters"], truth),
    }
    return result


def markdown_table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| people | generate s | ingest s | train s | link s | driver JVM peak MB | candidate pairs | F1 (this project) "
        "| Splink DuckDB train s | Splink DuckDB predict+cluster s | F1 | Splink Spark defaults predict+cluster s "
        "| F1 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "stages" not in r:  # only the incremental comparison was run at this size
            continue
        s = r["stages"]
        # A size run with --no-peers has no DuckDB or Spark-defaults figures.
        duck, plain = r.get("duckdb", {}), r.get("spark_defaults", {})
        rows.append(
            f"| {r['people']:,} | {s.get('generate', 0):.0f} | {s['ingest']:.0f} | {s['train']:.0f} | {s['link']:.0f} "
            f"| {r['peak_memory_mb']['driver_jvm']:.0f} | {r['linkage']['candidate_pairs'] or 0:,.0f} "
            f"| {r['linkage']['f1'] or float('nan'):.4f} | {_figure(duck, 'train_seconds', '.1f')} "
            f"| {_figure(duck, 'predict_cluster_seconds', '.1f')} | {_figure(duck, 'f1', '.4f')} "
            f"| {_figure(plain, 'predict_cluster_seconds', '.1f')} | {_figure(plain, 'f1', '.4f')} |"
        )
    return "\n".join(rows)


def _figure(figures: dict[str, Any], name: str, spec: str) -> str:
    """A peer's figure for the table, or "not run"."""
    value = figures.get(name)
    return "not run" if value is None else format(value, spec)


def substage_table(results: list[dict[str, Any]]) -> str:
    """Each job's stages: wall time beside the Spark task time spent inside them (local[2]: at most 2 s per s)."""
    rows = [
        "| people | job | stage | wall s | Spark task s | task CPU s | Spark stages |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for job, stages in r.get("substages", {}).items():
            for stage, t in stages.items():
                rows.append(
                    f"| {r['people']:,} | {job} | {stage} | {t['wall_seconds']:.1f} | {t['task_seconds']:.1f} "
                    f"| {t['task_cpu_seconds']:.1f} | {t['spark_stages']} |"
                )
    return "\n".join(rows)


def incremental_table(results: list[dict[str, Any]]) -> str:
    """The same change linked in full and with --incremental: times and the spines' difference."""
    rows = [
        "| people | records changed | full link s | incremental link s | ratio | full predict s "
        "| incremental predict s | records in a different person |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if i := r.get("incremental"):
            rows.append(
                f"| {r['people']:,} | {i['fraction_changed']:.1%} | {i['full_link_seconds']:.0f} "
                f"| {i['incremental_link_seconds']:.0f} | {i['incremental_over_full']:.2f} "
                f"| {i['full_predict_seconds'] or 0:.1f} | {i['incremental_predict_seconds'] or 0:.1f} "
                f"| {i['records_in_a_different_person']:,} of {i['records']:,} |"
            )
    return "\n".join(rows)


PARTIAL_RESULT = {"people", "incremental", "measured_at"}


def merged_with_earlier(results: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    """This run's results plus earlier runs' results for sizes not measured now (each keeps its measured_at)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    fresh = [{**r, "measured_at": now} for r in results]
    earlier = json.loads(path.read_text(encoding="utf-8"))["results"] if path.exists() else []
    by_size = {r["people"]: r for r in earlier}
    for r in fresh:
        if set(r) <= PARTIAL_RESULT:
            # A run of the incremental comparison alone replaces only that part of the size's earlier result.
            kept = by_size.get(r["people"], {"people": r["people"]})
            by_size[r["people"]] = {**kept, "incremental": {**r["incremental"], "measured_at": now}}
        else:
            by_size[r["people"]] = r
    return [by_size[size] for size in sorted(by_size)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="linkage.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--work",
        type=Path,
        default=BENCH_DIR / "work",
        help="Where extracts and lakes are kept (reused between runs).",
    )
    parser.add_argument("--shuffle-partitions", type=int, default=4)
    parser.add_argument(
        "--incremental-change",
        type=float,
        default=0.01,
        metavar="FRACTION",
        help="After the full link, change this share of the records and link them in full and with "
        "--incremental, each on a copy of the lake (0: skip).",
    )
    parser.add_argument(
        "--incremental-only",
        action="store_true",
        help="Only the full-versus-incremental link comparison, on the lakes an earlier run left under --work "
        "(the other figures of that size are kept).",
    )
    parser.add_argument(
        "--link-only",
        action="store_true",
        help="Only the link job, step by step, on a copy of the lake an earlier run left under --work "
        "(written to results/link-<people>.md; the other figures are kept).",
    )
    parser.add_argument(
        "--ingest-only",
        action="store_true",
        help="Only the ingest job, step by step, on the size's extract (generated when absent), into the size's "
        "lake (written to results/ingest-<people>.md; the other figures are kept).",
    )
    parser.add_argument(
        "--current-rules",
        action="store_true",
        help="With --link-only: link with this code's prediction blocking rules and fixed corrections, the trained "
        "estimates kept (to measure a change of either without training again).",
    )
    parser.add_argument(
        "--standalone-workers",
        type=int,
        default=0,
        metavar="N",
        help="With --link-only: run the link job on a Spark standalone cluster of N one-core workers on 127.0.0.1 "
        "(a master started for the run, and stopped), the bench's process the driver, instead of local[2].",
    )
    parser.add_argument(
        "--worker-memory",
        default="4g",
        help="With --standalone-workers: each worker's (and its executor's) memory.",
    )
    parser.add_argument(
        "--no-peers",
        action="store_true",
        help="Skip Splink on DuckDB and on Spark defaults (for a size where only this project's scaling is wanted: "
        "the peers hold every record in the bench's Python process).",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="A setting for every job of the run, e.g. --set spark.driver_memory=4g (repeatable).",
    )
    args = parser.parse_args(argv)
    if args.ingest_only and (args.link_only or args.incremental_only):
        parser.error("--ingest-only runs the ingest job alone")
    if (args.current_rules or args.standalone_workers) and not args.link_only:
        parser.error("--current-rules and --standalone-workers apply to --link-only")
    if args.ingest_only:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        for people in args.sizes:
            table = bench_ingest_only(people, args.work, args.shuffle_partitions, args.set)
            (RESULTS_DIR / f"ingest-{people}.md").write_text(table + "\n", encoding="utf-8")
            print(table)
        return 0
    if args.link_only:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        for people in args.sizes:
            with link_master(args.work / str(people), args.standalone_workers, args.worker_memory) as master:
                table = bench_link_only(
                    people, args.work, args.shuffle_partitions, [*master, *args.set], args.current_rules
                )
            where = f"-standalone{args.standalone_workers}" if args.standalone_workers else ""
            (RESULTS_DIR / f"link-{people}{where}.md").write_text(table + "\n", encoding="utf-8")
            print(table)
        return 0
    results = []
    for people in args.sizes:
        print(f"[bench] {people:,} people ...", flush=True)
        if args.incremental_only:
            result = bench_incremental_only(
                people, args.work, args.shuffle_partitions, args.set, args.incremental_change
            )
        else:
            result = bench_size(
                people,
                args.work,
                args.shuffle_partitions,
                args.set,
                args.incremental_change,
                peers=not args.no_peers,
            )
        results.append(result)
        print(
            f"[bench] {people:,}: {json.dumps({k: v for k, v in result.items() if k != 'people'}, default=str)}",
            flush=True,
        )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    results = merged_with_earlier(results, RESULTS_DIR / "results.json")
    stamp = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "results": results}
    (RESULTS_DIR / "results.json").write_text(json.dumps(stamp, indent=2, default=str), encoding="utf-8")
    tables = "\n\n".join([markdown_table(results), substage_table(results), incremental_table(results)])
    (RESULTS_DIR / "results.md").write_text(tables + "\n", encoding="utf-8")
    print(tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
