"""train -> register -> approve -> link on a few hundred synthetic-ish people_std rows, in-process on the test session."""

from __future__ import annotations

import json
import random
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import functions as F
from splink.internals.html_utils import chart_html
from test_link_spine import people_frame

from jobs import approve as approve_job
from jobs import link as link_job
from jobs import train as train_job
from linkage.lake import read_table, write_table
from linkage.link import approved_version, linking
from linkage.link.registry import load_model_json
from linkage.schemas import PEOPLE_STD, PERSON_REGISTRY, PERSON_SPINE, REVIEW_QUEUE
from linkage.tracking import tracking_run

FORENAMES = ["OLIVIA", "AMELIA", "ISLA", "AVA", "MOHAMMED", "NOAH", "OLIVER", "GEORGE", "PRIYA", "ANEESA", "KWAME",
             "CHIDI", "SIOBHAN", "EWAN", "FATIMA", "YUSUF", "GRACE", "ROBERT", "CATHERINE", "WEI"]
SURNAMES = ["SMITH", "JONES", "TAYLOR", "BROWN", "KHAN", "PATEL", "OKAFOR", "MENSAH", "OBRIEN", "MURPHY", "CHEN", "WANG",
            "WILLIAMS", "DAVIES", "EVANS", "HUSSAIN", "AHMED", "NGUYEN", "CAMPBELL", "STEWART", "ROBINSON", "WRIGHT"]
NICKNAMES = {"ROBERT": "BOB", "CATHERINE": "KATE", "MOHAMMED": "MOHAMMAD"}
ETHNIC_GROUPS = ["White", "Asian", "Black", "Mixed", "Other"]
PEOPLE = 90


def typo(name: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(name))
    return name[:i] + rng.choice("AEIOURNSTL") + name[i + 1:]


def synthetic_people(seed: int = 7) -> tuple[list[dict], list[tuple]]:
    """People spread over the four sources with typos, nicknames, swaps and missing NHS numbers; plus the truth."""
    rng = random.Random(seed)
    rows, truth = [], []
    for i in range(PEOPLE):
        forename, surname = rng.choice(FORENAMES), rng.choice(SURNAMES)
        dob = date(1935, 1, 1) + timedelta(days=rng.randrange(0, 30000))
        sex = rng.choice("MF")
        postcode = f"LS{rng.randrange(1, 9)} {rng.randrange(1, 9)}{rng.choice('ABDEFG')}{rng.choice('HJLNPQ')}"
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
                d = date(d.year + 10 if d.year < 2000 else d.year - 10, d.month, min(d.day, 28))  # one year digit
            elif n and roll < 0.45:
                d = d + timedelta(days=rng.randrange(1, 20))
            elif n and roll < 0.48:
                d = date(d.year, 1, 1)  # placeholder
            year_only = source == "third_sector" and rng.random() < 0.3
            if n and rng.random() < 0.2:
                p = None
            has_nhs = rng.random() < nhs_coverage[source]
            noise = rng.random()
            sex_recorded = {"M": "F", "F": "M"}[sex] if n and noise < 0.03 else (None if n and noise < 0.08 else sex)
            nhs_recorded = f"{9000000000 + (i + 1) * 7919}" if n and noise > 0.98 else nhs  # a relative's number
            record_id = f"{source[0]}{i:03d}{n}"
            rows.append({"source_dataset": source, "source_record_id": record_id, "forename_std": f, "surname_std": s,
                         "forename_canonical": {"BOB": "ROBERT", "KATE": "CATHERINE"}.get(f, f),
                         "surname_canonical": s, "surname_parts": [s], "date_of_birth": None if year_only else d,
                         "year_of_birth": d.year, "dob_is_placeholder": d.month == 1 and d.day == 1, "sex": sex_recorded,
                         "postcode_std": p, "postcode_sector": p[:-2] if p else None,
                         "postcode_district": p.split(" ")[0] if p else None,
                         "nhs_number": nhs_recorded if has_nhs else None})
            truth.append((source, record_id, f"T{i}", ethnic, sex, dob.year, imd))
    rows.append({"source_dataset": "third_sector", "source_record_id": "t-null-row"})  # a record with nothing known
    truth.append(("third_sector", "t-null-row", "T-null", "Other", None, None, None))
    return rows, truth


def write_people(spark, config, rows) -> None:
    people = people_frame(spark, rows).withColumns({
        "forename_phonetic": F.soundex("forename_canonical"), "surname_phonetic": F.soundex("surname_canonical")})
    with tracking_run(config, job="test-setup") as run:
        write_table(people.withColumn("run_id", F.lit(run.run_id)), config.paths.lake, PEOPLE_STD, run)


def write_truth(path: Path, truth: list[tuple]) -> None:
    lines = ["source_dataset,source_record_id,true_person_id,ethnic_group,sex,birth_year,imd_decile"]
    lines += [",".join("" if v is None else str(v) for v in row) for row in truth]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def as_argv(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


@pytest.mark.slow
def test_train_approve_link_end_to_end(spark, make_config, test_overrides, tmp_path, capsys, monkeypatch):
    rows, truth = synthetic_people()
    truth_path = tmp_path / "truth.csv"
    write_truth(truth_path, truth)
    overrides = [*test_overrides, f"paths.truth={truth_path}", f"tracking.registered_model=linkage-test-{tmp_path.name}",
                 "linkage.u_max_pairs=20000", "linkage.em_max_iterations=10"]
    config = make_config(*overrides[len(test_overrides):])
    write_people(spark, config, rows)
    argv = as_argv(overrides)

    # No approved model yet: link refuses with exit 2 before doing any work.
    assert link_job.main(argv, {}) == 2
    assert "approve one with `python -m jobs.approve --version N`" in capsys.readouterr().err

    assert train_job.main(argv, {}) == 0
    version = re.search(r"version (\d+); approve it", capsys.readouterr().out).group(1)
    assert approved_version(config) is None

    # Outside local mode an unapproved version needs --allow-unapproved, and such a run is tagged.
    cluster_argv = [*argv, "--set", "environment=cluster", "--model-version", version]
    assert link_job.main(cluster_argv, {}) == 2
    assert "--allow-unapproved" in capsys.readouterr().err
    # With the flag the run goes ahead, tagged; it fails here (injected) right after reading the model, which keeps
    # the test short. (A run that dies between the spine and the registry: tests/test_link_history.py.)
    def failing_read(ctx):
        raise RuntimeError("injected failure after tagging")

    monkeypatch.setattr(linking, "read_people", failing_read)
    assert link_job.main([*cluster_argv, "--allow-unapproved"], {}) == 1
    monkeypatch.undo()
    unapproved_run = latest_run(config, "link")
    assert unapproved_run.data.tags.get("unapproved") == "true"

    assert approve_job.main([*argv, "--version", version], {"LINKAGE_REVIEWER": "qa.reviewer", "USER": "svc"}) == 0
    assert approved_version(config) == version
    tags = MlflowClient(config.tracking_uri).get_model_version(config.tracking.registered_model, version).tags
    assert tags["approved_by"] == "qa.reviewer" and tags["approved_at"].startswith(str(date.today().year))

    assert link_job.main(argv, {}) == 0, capsys.readouterr().err[-2000:]
    out = capsys.readouterr().out
    f1 = float(re.search(r"F1 (\d\.\d{4})", out).group(1))
    assert f1 >= 0.9, f"F1 {f1} on easy synthetic data"

    spine_v1 = read_table(spark, config.paths.lake, PERSON_SPINE)
    assert spine_v1.count() == len(rows)
    methods = {r.match_method for r in spine_v1.select("match_method").distinct().collect()}
    assert {"nhs_number", "probabilistic", "singleton"} <= methods
    keys_v1 = {(r.source_dataset, r.source_record_id): r.person_key for r in spine_v1.collect()}
    queue = read_table(spark, config.paths.lake, REVIEW_QUEUE)
    thresholds = config.linkage.thresholds
    assert queue.where((F.col("match_probability") < thresholds.lower)
                       | (F.col("match_probability") >= thresholds.upper)).count() == 0
    # The registered model carries the fixed family correction that training left out.
    family = next(c for c in load_model_json(config, version)["comparisons"] if c["output_column_name"] == "family")
    assert [level.get("fix_m_probability", False) for level in family["comparison_levels"]] == [False, True, True]

    # Every key is new, recorded once under the run that made it.
    # (Reruns keeping keys are covered on hand-built clusters in test_link_spine.)
    registry = read_table(spark, config.paths.lake, PERSON_REGISTRY)
    assert {r.event for r in registry.select("event").distinct().collect()} == {"created"}
    assert registry.count() == len(set(keys_v1.values()))
    assert {r.run_id for r in registry.select("run_id").distinct().collect()} == {latest_run(config, "link").info.run_id}

    artifacts_hold_no_identifiers(config, rows)


def latest_run(config, job: str):
    client = MlflowClient(config.tracking_uri)
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    return client.search_runs([experiment.experiment_id], f"tags.job = '{job}'", order_by=["start_time DESC"],
                              max_results=1)[0]


def artifacts_hold_no_identifiers(config, rows) -> None:
    """Every artifact and parameter of every run in the store is scanned for the test's names, NHS numbers, postcodes."""
    client = MlflowClient(config.tracking_uri)
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    identifiers = set()
    for row in rows:
        identifiers |= {row.get(k) for k in ("forename_std", "surname_std", "nhs_number", "postcode_std")}
    identifiers.discard(None)
    texts = []
    for run in client.search_runs([experiment.experiment_id]):
        if run.data.tags.get("job") not in ("train", "link"):
            continue
        texts.append(json.dumps(run.data.params) + json.dumps(run.data.metrics))
        stack = [None]
        while stack:
            for item in client.list_artifacts(run.info.run_id, stack.pop()):
                if item.is_dir:
                    stack.append(item.path)
                elif item.path.endswith((".json", ".html", ".txt", ".yaml", "MLmodel")):
                    local = client.download_artifacts(run.info.run_id, item.path)
                    texts.append(Path(local).read_text(encoding="utf-8", errors="replace"))
    def tokens_of(text: str) -> set[str]:
        return set(re.findall(r"[A-Z0-9]+(?: [0-9][A-Z]{2})?", text.upper()))

    # Chart pages bundle the Vega libraries, whose words (e.g. the colour 'brown') are not data; the chart
    # specs themselves are scanned in full (charts/*.json).
    library = tokens_of(chart_html({}, inline=True, fullhtml=True))
    tokens = set()
    for text in texts:
        tokens |= tokens_of(text) - library if text.lstrip().lower().startswith("<!doctype") and "vega" in text else tokens_of(text)
    leaked = sorted(identifiers & tokens)
    assert not leaked, f"{len(leaked)} identifying value(s) found in MLflow artifacts or params"


def test_approving_a_version_that_does_not_exist_exits_2(make_config, test_overrides, capsys):
    argv = as_argv([*test_overrides, "tracking.registered_model=linkage-never-trained"])
    assert approve_job.main([*argv, "--version", "7"], {}) == 2
    assert "has no version 7" in capsys.readouterr().err
