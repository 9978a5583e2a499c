"""Every stage has one shape: `linkage/<stage>/stage.py:run(ctx) -> StageResult`, a body of at most 40 lines,
and the harness records what any stage wrote, and its failures, the same way."""

from __future__ import annotations

import ast
import importlib
import inspect

import pytest

from linkage.errors import StageFailed
from linkage.harness import StageResult
from linkage.lake import TableWrite

STAGES = ("ingest", "train", "link", "pseudonymise", "cohorts", "review")


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_is_run_of_a_context_returning_a_stage_result_in_at_most_40_lines(stage):
    module = importlib.import_module(f"linkage.{stage}.stage")
    run = module.run
    assert list(inspect.signature(run).parameters) == ["ctx"]
    assert inspect.signature(run).return_annotation in ("StageResult", StageResult)
    (definition,) = [
        node
        for node in ast.parse(inspect.getsource(module)).body
        if isinstance(node, ast.FunctionDef) and node.name == "run"
    ]
    assert definition.end_lineno - definition.lineno + 1 <= 40


def test_a_stage_result_records_each_table_written_by_zone_and_name():
    result = StageResult(
        tables={
            "restricted/people_std": TableWrite(version=3, rows=120),
            "cohorts/cohort_asthma": TableWrite(version=0, rows=7),
        }
    )
    assert result.written_metrics() == {
        "written.restricted.people_std.rows": 120,
        "written.restricted.people_std.version": 3,
        "written.cohorts.cohort_asthma.rows": 7,
        "written.cohorts.cohort_asthma.version": 0,
    }
    result.raise_failures()  # none reported: nothing raised


def test_a_stage_reporting_failures_raises_the_one_failure_exception_naming_them():
    result = StageResult(failures=("2 cohort(s) failed, the others were written: asthma: X; cancer: Y",))
    with pytest.raises(StageFailed, match="asthma: X; cancer: Y") as raised:
        result.raise_failures()
    assert raised.value.exit_code == 1
