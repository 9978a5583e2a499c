"""The model adapts to the fields an extract holds: no postcode anywhere, no NHS number anywhere."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from builders import as_argv, people_frame, synthetic_people, write_people, write_truth
from mlflow.tracking import MlflowClient

from jobs import approve as approve_job
from jobs import link as link_job
from jobs import train as train_job
from linkage.lake import read_table
from linkage.link import fields
from linkage.link.registry import load_model_json
from linkage.link.settings import MODEL_COLUMNS, RECORD_SOURCE
from linkage.schemas import PERSON_SPINE

POSTCODE_COLUMNS = ("postcode_std", "postcode_sector", "postcode_district")
ALL_COLUMNS = frozenset({*MODEL_COLUMNS, RECORD_SOURCE})


def test_full_extract_keeps_the_full_model():
    plan = fields.plan_model(ALL_COLUMNS)
    assert not plan.adapted
    assert plan.describe() == "all model fields populated: full model"


def test_no_postcode_drops_its_comparison_rules_and_em_session_and_adds_one_on_date_of_birth():
    plan = fields.plan_model(ALL_COLUMNS - set(POSTCODE_COLUMNS))
    assert plan.dropped["comparisons"] == ["postcode"]
    assert len(plan.dropped["blocking_rules"]) == 4 and all(
        "postcode" in r for r in plan.dropped["blocking_rules"]
    )
    assert plan.dropped["em_sessions"] == [
        "(l.`date_of_birth` = r.`date_of_birth`) AND (l.`postcode_district` = r.`postcode_district`)"
    ]
    # Without that session no session would estimate the name comparisons (the other blocks on canonical names).
    assert plan.added_em_rules == ["l.`date_of_birth` = r.`date_of_birth`"]
    assert all("postcode" not in fields.rule_sql(r) for r in plan.prediction_rules)


def test_no_nhs_number_drops_its_comparison_rule_prior_rule_and_the_relatives_correction():
    plan = fields.plan_model(ALL_COLUMNS - {"nhs_number"})
    assert plan.dropped["comparisons"] == ["nhs_number", "relatives"]
    # The canonical-names rule runs once for each side lacking an NHS number; with none anywhere both sides always
    # lack one, so the second copy would pair the same records again.
    assert plan.dropped["blocking_rules"] == [
        "l.`nhs_number` = r.`nhs_number`",
        "l.forename_canonical = r.forename_canonical AND l.surname_canonical = r.surname_canonical "
        "AND l.year_of_birth = r.year_of_birth AND r.nhs_number IS NULL",
    ]
    assert (
        "l.forename_canonical = r.forename_canonical AND l.surname_canonical = r.surname_canonical "
        "AND l.year_of_birth = r.year_of_birth AND l.nhs_number IS NULL"
    ) in [fields.rule_sql(r) for r in plan.prediction_rules]
    assert [fields.rule_sql(r) for r in plan.prior_rules] == [
        "(l.`forename_std` = r.`forename_std`) AND (l.`surname_std` = r.`surname_std`) AND "
        "(l.`date_of_birth` = r.`date_of_birth`)"
    ]
    assert not plan.added_em_rules


def test_names_and_date_of_birth_only_add_a_blocking_rule_on_each_field_alone():
    plan = fields.plan_model(ALL_COLUMNS - {"nhs_number", "sex", *POSTCODE_COLUMNS})
    single = [
        "l.`date_of_birth` = r.`date_of_birth`",
        "l.`surname_std` = r.`surname_std`",
        "l.`forename_std` = r.`forename_std`",
    ]
    assert list(plan.added_prediction_rules) == single
    assert [fields.rule_sql(r) for r in plan.prediction_rules][-3:] == single
    assert "added blocking rules" in plan.describe()
    # The canonical-names session would estimate the date of birth alone (both name comparisons read the names it
    # blocks on): EM then has one view of each pair. It is replaced by one on surname sound, which estimates the date
    # beside the forename.
    assert plan.dropped["em_sessions_estimating_one_comparison"] == [
        "(l.`forename_canonical` = r.`forename_canonical`) AND (l.`surname_canonical` = r.`surname_canonical`)"
    ]
    assert [fields.rule_sql(r) for r in plan.em_rules] == [
        "l.`date_of_birth` = r.`date_of_birth`",
        "l.`surname_phonetic` = r.`surname_phonetic`",
    ]
    compared = [c.get_comparison("spark").as_dict() for c in plan.comparisons]
    for rule in plan.em_rules:
        assert len([c for c in compared if fields._estimated_by(rule, c)]) >= 2, fields.rule_sql(rule)
    # Either identifier present: no single-field rules.
    assert not fields.plan_model(ALL_COLUMNS - {"nhs_number"}).added_prediction_rules
    assert not fields.plan_model(ALL_COLUMNS - set(POSTCODE_COLUMNS)).added_prediction_rules


def test_an_extract_from_one_source_drops_the_source_comparison():
    # Only records of two sources can form a pair across sources: with one, the comparison has one level to see.
    two_sources = {"gp": {"records": 3, "forename_std": 3}, "hospital": {"records": 2, "forename_std": 2}}
    one_source = {"gp": {"records": 5, "forename_std": 5}, "hospital": {"records": 0, "forename_std": 0}}
    assert "record_source" in fields.populated_columns(two_sources)
    assert "record_source" not in fields.populated_columns(one_source)
    plan = fields.plan_model(ALL_COLUMNS - {"record_source"})
    assert plan.dropped["comparisons"] == ["source"]
    assert "source" in [
        c.get_comparison("spark").as_dict()["output_column_name"]
        for c in fields.plan_model(ALL_COLUMNS).comparisons
    ]


def test_a_column_a_rule_only_tests_for_null_need_not_be_populated():
    sql = "l.a = r.a AND l.`b` = r.`b` AND l.nhs_number IS NULL"
    assert fields.rule_columns(sql) == {"a", "b"}
    assert fields.rule_columns("l.a = r.a AND l.nhs_number = r.nhs_number") == {"a", "nhs_number"}


def test_a_registered_model_keeps_one_of_two_rules_that_act_alike_on_the_extract():
    left, right = "l.a = r.a AND l.nhs_number IS NULL", "l.a = r.a AND r.nhs_number IS NULL"
    model = {
        "comparisons": [],
        "blocking_rules_to_generate_predictions": [{"blocking_rule": left}, {"blocking_rule": right}],
    }
    adapted, dropped = fields.model_for_populated(model, frozenset({"a"}))
    assert adapted["blocking_rules_to_generate_predictions"] == [{"blocking_rule": left}]
    assert dropped == [right]
    # Where NHS numbers are held, the two rules pair different records: both stay.
    adapted, dropped = fields.model_for_populated(model, frozenset({"a", "nhs_number"}))
    assert len(adapted["blocking_rules_to_generate_predictions"]) == 2 and not dropped


def test_a_registered_model_loses_only_the_blocking_rules_on_missing_fields():
    model = {
        "comparisons": [],
        "blocking_rules_to_generate_predictions": [
            {"blocking_rule": "l.`nhs_number` = r.`nhs_number`"},
            {
                "blocking_rule": "(l.`surname_phonetic` = r.`surname_phonetic`) AND (l.`postcode_std` = r.`postcode_std`)"
            },
            {
                "blocking_rule": "(l.`surname_phonetic` = r.`surname_phonetic`) AND (l.`date_of_birth` = r.`date_of_birth`)"
            },
        ],
    }
    adapted, dropped = fields.model_for_populated(model, ALL_COLUMNS - set(POSTCODE_COLUMNS))
    assert dropped == [
        "(l.`surname_phonetic` = r.`surname_phonetic`) AND (l.`postcode_std` = r.`postcode_std`)"
    ]
    assert len(adapted["blocking_rules_to_generate_predictions"]) == 2


def test_populated_counts_per_source_treat_empty_arrays_as_missing(spark):
    rows = [
        {"source_dataset": "gp", "source_record_id": "g1", "surname_std": "KHAN", "surname_parts": ["KHAN"]},
        {"source_dataset": "gp", "source_record_id": "g2", "surname_std": None, "surname_parts": []},
        {"source_dataset": "hospital", "source_record_id": "h1", "nhs_number": "9434765919"},
    ]
    counts = fields.populated_counts(people_frame(spark, rows))
    assert (
        counts["gp"]["records"] == 2
        and counts["gp"]["surname_std"] == 1
        and counts["gp"]["surname_parts"] == 1
    )
    assert counts["hospital"]["nhs_number"] == 1
    # One NHS number in the whole extract: no pair can compare it.
    assert "nhs_number" not in fields.populated_columns(counts)
    assert fields.populated_metrics(counts)["fields.gp.surname_std"] == 0.5


@pytest.mark.slow
@pytest.mark.parametrize(
    ("blanked", "link_too"),
    [(POSTCODE_COLUMNS, False), (("nhs_number",), True)],
    ids=["no-postcode", "no-nhs-number"],
)
def test_train_and_link_an_extract_without_a_field(
    blanked, link_too, spark, make_config, test_overrides, tmp_path, capsys
):
    """Train adapts the model to the missing field; linking with it is checked where it matters most (no NHS
    number: the strongest field gone), which keeps the suite's time down."""
    rows, truth = synthetic_people(seed=11)
    rows = [{**row, **dict.fromkeys(blanked)} for row in rows]
    truth_path = tmp_path / "truth.csv"
    write_truth(truth_path, truth)
    overrides = [
        *test_overrides,
        f"paths.truth={truth_path}",
        f"tracking.registered_model=fields-{tmp_path.name}",
        "linkage.u_max_pairs=20000",
        "linkage.em_max_iterations=10",
    ]
    config = make_config(*overrides[len(test_overrides) :])
    write_people(spark, config, rows)
    argv = as_argv(overrides)

    assert train_job.main(argv, {}) == 0, capsys.readouterr().err[-2000:]
    out = capsys.readouterr().out
    assert f"no values for {', '.join(blanked)}" in out
    # Each training step is timed in the job's output (the bench reports them).
    assert "train model: u" in out and "train model: em 0" in out
    version = re.search(r"version (\d+); approve it", out).group(1)
    model = load_model_json(config, version)
    # No rule needs a blanked column; one may still test it for null (always true here).
    needed = set().union(
        *[fields.rule_columns(r["blocking_rule"]) for r in model["blocking_rules_to_generate_predictions"]]
    )
    assert not needed & set(blanked)
    dropped_comparison = "postcode" if "postcode_std" in blanked else "nhs_number"
    assert dropped_comparison not in [c["output_column_name"] for c in model["comparisons"]]

    client = MlflowClient(config.tracking_uri)
    train_run = client.get_run(client.get_model_version(config.tracking.registered_model, version).run_id)
    assert train_run.data.params["model.missing_fields"] == ", ".join(blanked)
    adaptation = json.loads(
        Path(
            client.download_artifacts(train_run.info.run_id, "model/fields_adaptation.json", str(tmp_path))
        ).read_text(encoding="utf-8")
    )
    assert adaptation["dropped_comparisons"][0] == dropped_comparison
    # Each rule kept is logged with its blocks, to check before linking; none of a dropped rule.
    blocks = json.loads(
        Path(
            client.download_artifacts(train_run.info.run_id, "model/blocking_block_sizes.json", str(tmp_path))
        ).read_text(encoding="utf-8")
    )
    assert [b["rule"] for b in blocks] == [
        r["blocking_rule"] for r in model["blocking_rules_to_generate_predictions"]
    ]
    assert all(0 <= b["largest_block_comparisons"] <= b["comparisons_before_filters"] for b in blocks)
    assert sum(b["comparisons_before_filters"] for b in blocks) > len(rows)
    assert (
        train_run.data.metrics["blocking.comparisons_before_filters.rule_0"]
        == blocks[0]["comparisons_before_filters"]
    )
    # The prior's rules' recall is estimated from the trained model, and near what the rules find among true pairs.
    assert train_run.data.params["model.prior_recall_source"] == "estimated"
    estimated = float(train_run.data.params["model.prior_recall"])
    found = prior_rules_recall_in_truth(rows, truth, blanked)
    assert abs(estimated - found) < 0.1, (estimated, found)

    if not link_too:
        return
    assert approve_job.main([*argv, "--version", version], {}) == 0
    assert link_job.main(argv, {}) == 0, capsys.readouterr().err[-2000:]
    f1 = float(re.search(r"F1 (\d\.\d{4})", capsys.readouterr().out).group(1))
    assert f1 >= 0.85, f"F1 {f1} without {blanked}"
    assert read_table(spark, config.paths.lake, PERSON_SPINE).count() == len(rows)


def prior_rules_recall_in_truth(rows: list[dict], truth: list[tuple], blanked: tuple[str, ...]) -> float:
    """Share of true pairs that the prior rules (without those on blanked columns) find: NHS number and date of
    birth equal, or forename, surname and date of birth equal."""
    person = {(source, record): person for source, record, person, *_ in truth}
    by_person: dict[str, list[dict]] = {}
    for row in rows:
        by_person.setdefault(person[(row["source_dataset"], row["source_record_id"])], []).append(row)
    rules = [("nhs_number", "date_of_birth"), ("forename_std", "surname_std", "date_of_birth")]
    rules = [rule for rule in rules if not set(rule) & set(blanked)]

    def found(a: dict, b: dict) -> bool:
        return any(all(a.get(c) is not None and a.get(c) == b.get(c) for c in rule) for rule in rules)

    pairs = [
        found(a, b) for records in by_person.values() for i, a in enumerate(records) for b in records[i + 1 :]
    ]
    return sum(pairs) / len(pairs)


def test_a_trained_model_takes_this_codes_rules_and_corrections_with_its_estimates_kept():
    estimated = {"output_column_name": "forename", "comparison_levels": [], "m_estimated": 0.25}
    trained = {
        "probability_two_random_records_match": 0.001,
        "comparisons": [
            estimated,
            {"output_column_name": "relatives", "comparison_levels": [], "stale": True},
        ],
        "blocking_rules_to_generate_predictions": [{"blocking_rule": "l.x = r.x", "sql_dialect": "spark"}],
    }
    full = fields.with_current_rules_and_corrections(trained, ALL_COLUMNS)
    plan = fields.plan_model(ALL_COLUMNS)
    assert full["probability_two_random_records_match"] == 0.001
    assert full["comparisons"][0] == estimated
    assert [c["output_column_name"] for c in full["comparisons"]] == ["forename", "family", "relatives"]
    assert not any(c.get("stale") for c in full["comparisons"])
    assert [r["blocking_rule"] for r in full["blocking_rules_to_generate_predictions"]] == [
        fields.rule_sql(r) for r in plan.prediction_rules
    ]
    # No NHS numbers: no relatives correction, no rule on the number, one copy of the canonical-names rule.
    without = fields.with_current_rules_and_corrections(trained, ALL_COLUMNS - {"nhs_number"})
    assert [c["output_column_name"] for c in without["comparisons"]] == ["forename", "family"]
    rules = [r["blocking_rule"] for r in without["blocking_rules_to_generate_predictions"]]
    assert len(rules) == len(plan.prediction_rules) - 2 and not any("= r.`nhs_number`" in r for r in rules)
