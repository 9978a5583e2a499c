"""The notebooks are valid jupytext files and run top to bottom against a pipeline's output."""

from __future__ import annotations

import contextlib
import io
import re
import runpy

import jupytext
import pytest
from mlflow.tracking import MlflowClient

from linkage.config import PROJECT_ROOT

pytestmark = pytest.mark.slow
NOTEBOOKS = PROJECT_ROOT / "notebooks"


@pytest.mark.parametrize("name", ["analyst", "qa"])
def test_notebook_is_a_valid_jupytext_notebook(name):
    notebook = jupytext.read(NOTEBOOKS / f"{name}.py")
    kinds = [cell.cell_type for cell in notebook.cells]
    assert kinds.count("markdown") >= 3 and kinds.count("code") >= 4


@pytest.fixture
def notebook_env(pipeline_run, monkeypatch, tmp_path):
    assert pipeline_run.exit_code == 0
    settings = [pipeline_run.overrides[i + 1] for i in range(0, len(pipeline_run.overrides), 2)]
    monkeypatch.setenv("LINKAGE_SET", ";".join(settings))
    monkeypatch.setenv("LINKAGE_FIGURES", str(tmp_path / "figures"))
    return tmp_path / "figures"


def run_notebook(name: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(NOTEBOOKS / f"{name}.py"), run_name="__main__")
    return out.getvalue()


def test_analyst_notebook_queries_people_cohorts_history_and_plots(notebook_env):
    output = run_notebook("analyst")
    assert "persons now:" in output
    assert "CREATE OR REPLACE TABLE AS SELECT" in output
    plot = notebook_env / "people_by_age_band_sex.png"
    assert plot.exists() and plot.stat().st_size > 1000


def test_qa_notebook_reads_the_pipelines_link_run(notebook_env, pipeline_run, monkeypatch):
    # The MLflow store is shared by the whole test run: later tests make newer link runs.
    client = MlflowClient(pipeline_run.tracking_uri)
    parent_id = re.search(r"\[pipeline\] done in .* \(MLflow run (\w+)\)", pipeline_run.stdout).group(1)
    experiment_id = client.get_run(parent_id).info.experiment_id
    link_run = client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}' and tags.job = 'link'"
    )[0]
    monkeypatch.setenv("LINKAGE_RUN_ID", link_run.info.run_id)
    output = run_notebook("qa")
    assert "finished link runs" in output
    # The headline table prints the run's F1 against the truth file as a number, not just the word.
    # pandas may print the column in scientific notation when other metrics are large.
    f1 = re.search(r"^f1\s+([0-9.]+(?:e[+-]?\d+)?)\s*$", output, re.M)
    assert f1 and 0.9 <= float(f1.group(1)) <= 1.0, output[-2000:]
