"""MLflow as QA meets it: the real MLflow 3 UI in headless Chromium over the pipeline run's store.

Starts `mlflow server` on a random loopback port, opens the saved QA view of the runs table and
the link run's page, screenshots both (into the test's folder; LINKAGE_MLFLOW_SCREENSHOTS=<dir>
copies them there) and checks the run name and headline figures are on screen.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browsers import chrome, require_browser
from mlflow.tracking import MlflowClient

from linkage.lake import read_table
from linkage.mlflow_ui import QA_VIEW_NAME, qa_view_link
from linkage.schemas import LINK_PAIRS

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SCREENSHOT_ENV = "LINKAGE_MLFLOW_SCREENSHOTS"
PAGE_WAIT_SECONDS = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mlflow_server(pipeline_run, tmp_path):
    """`mlflow server` on the pipeline run's store; stopped by its process group id."""
    require_browser()
    port = free_port()
    log = (tmp_path / "mlflow-server.log").open("w")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            pipeline_run.tracking_uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(PAGE_WAIT_SECONDS):
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "mlflow-server.log").read_text()[-2000:]
                time.sleep(1)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.fixture
def browser(tmp_path):
    driver = chrome(tmp_path / "chromium-profile", window="1600,1000")
    try:
        yield driver
    finally:
        driver.quit()


def page_text_once(driver, url: str, *expected: str) -> str:
    """Open url and wait until every expected text is on the page; returns the page's text."""
    driver.get(url)
    deadline = time.monotonic() + PAGE_WAIT_SECONDS
    text = ""
    while time.monotonic() < deadline:
        text = driver.find_element("tag name", "body").text
        if all(e in text for e in expected):
            return text
        time.sleep(1)
    raise AssertionError(f"{url}: {[e for e in expected if e not in text]} not shown; page: {text[:1500]}")


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    driver.save_screenshot(str(path))
    if os.environ.get(SCREENSHOT_ENV):
        target = Path(os.environ[SCREENSHOT_ENV])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / name)
    return path


def test_qa_sees_link_runs_with_headline_figures_in_the_mlflow_ui(
    pipeline_run, spark, mlflow_server, browser, tmp_path
):
    link_run_id = read_table(spark, str(pipeline_run.lake), LINK_PAIRS).select("run_id").first()["run_id"]
    run = MlflowClient(pipeline_run.tracking_uri).get_run(link_run_id)
    metrics, experiment_id = run.data.metrics, run.info.experiment_id
    persons = f"{int(metrics['persons'])} persons"

    # The runs table (not the GenAI overview) in the saved QA view, with the headline metrics as columns.
    table = page_text_once(
        browser,
        f"{mlflow_server}/{qa_view_link(experiment_id)}",
        QA_VIEW_NAME,
        "headline.persons",
        "headline.records",
        "matching runs",
    )
    assert screenshot(browser, tmp_path, "mlflow-runs-table.png").stat().st_size > 10_000
    assert "Run Name" in table and "Traces" in table

    # The link run: its name, and the description's headline figures above the metrics.
    page = page_text_once(
        browser,
        f"{mlflow_server}/#/experiments/{experiment_id}/runs/{link_run_id}",
        run.info.run_name,
        persons,
    )
    assert screenshot(browser, tmp_path, "mlflow-link-run.png").stat().st_size > 10_000
    assert f"precision {metrics['precision']:.4f}" in page  # truth figures of the synthetic run
    assert "QA report (charts)" in page
