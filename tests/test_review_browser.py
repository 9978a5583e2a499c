"""End to end, as a reviewer works: `python -m jobs.review` started as documented, driven in headless Chromium.

On a copy of the session pipeline's lake: sign in with the printed token, decide pairs with the
keyboard, split a person, then check the decisions are in restricted/review_decisions and that
the next link run applies them. Needs Debian's chromium and chromium-driver (.ci/run installs
them); outside CI the test is skipped when they are absent.
"""

from __future__ import annotations

import io
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from browsers import chrome, require_browser
from mlflow.tracking import MlflowClient

from linkage.config import PROJECT_ROOT
from linkage.lake import read_table
from linkage.review.store import queue_pairs
from linkage.schemas import PERSON_SPINE, REVIEW_DECISIONS, REVIEW_QUEUE

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SCREENSHOT_ENV = (
    "LINKAGE_REVIEW_SCREENSHOT"  # set to docs/review-pair-view.png to refresh the README's picture
)
REVIEWER = "reviewer-e2e"
PAGE_SECONDS = 900  # a generous bound, not a timing: only a hung app reaches it


def start_review_app(settings: list[str], home: Path, stderr_path: Path) -> tuple[subprocess.Popen, str, str]:
    """`python -m jobs.review` in a bare environment; returns the process, its URL and the printed token."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LINKAGE_REVIEWER": REVIEWER}
    if os.environ.get("JAVA_HOME"):
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    command = [
        sys.executable,
        "-m",
        "jobs.review",
        "--port",
        "0",
        "--set",
        "spark.driver_memory=1g",
        *[arg for setting in settings for arg in ("--set", setting)],
    ]
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr_path.open("w"),
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    url = None
    while True:
        line = lines.get(timeout=600)
        assert line is not None, (
            f"jobs.review exited early: {process.wait()} {stderr_path.read_text()[-2000:]}"
        )
        if "sign in with this access token" in line:
            url = line.split("open ", 1)[1].split(" ", 1)[0].rstrip("/")
            return process, url, lines.get(timeout=30).strip()


def stop(process: subprocess.Popen) -> int:
    os.killpg(process.pid, signal.SIGINT)
    try:
        code = process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        code = process.wait()
    return code


def to_new_page(driver, act: Callable[[], None]) -> None:
    """Do what leads to another page (a key, a form's button) and wait until that page has loaded.

    WebDriver can return before the navigation starts, so reading the page at once may read the old
    one. A mark set on the old page's window is gone once a new page has replaced it. It is a script
    value, not an element: looking an element up while the document is being replaced can fail in
    chromedriver itself ("Node with given id does not belong to the document").
    """
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("window.linkageOldPage = true;")
    act()
    WebDriverWait(driver, PAGE_SECONDS, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script("return !window.linkageOldPage && document.readyState === 'complete';")
    )


def press(driver, key: str, expect_new_page: bool = True) -> None:
    """Type one key at the page, as a reviewer does, and wait for the page it leads to."""
    from selenium.webdriver.common.action_chains import ActionChains

    def type_key() -> None:
        ActionChains(driver).send_keys(key).perform()  # to whatever has focus, as a keyboard would

    if expect_new_page:
        to_new_page(driver, type_key)
    else:
        type_key()


def click(driver, element) -> None:
    """Click a button that submits a form, and wait for the page the server answers with."""
    to_new_page(driver, element.click)


def text_of(driver, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).text


def test_a_reviewer_decides_pairs_by_keyboard_and_the_next_link_run_applies_them(
    spark, pipeline_run, tmp_path
):
    require_browser()
    from selenium.webdriver.common.by import By

    assert pipeline_run.exit_code == 0, pipeline_run.stderr[-2000:]
    lake = tmp_path / "lake"
    shutil.copytree(pipeline_run.lake, lake)  # the session's lake stays as other tests expect it
    settings = pipeline_run.settings(lake)

    # What the reviewer will meet, in the app's order: the queue best-first, persons from the spine.
    pairs = [
        (r.source_dataset_l, r.source_record_id_l, r.source_dataset_r, r.source_record_id_r)
        for r in queue_pairs(read_table(spark, str(lake), REVIEW_QUEUE)).collect()
    ]
    person_of = {
        (r.source_dataset, r.source_record_id): r.person_key
        for r in read_table(spark, str(lake), PERSON_SPINE).collect()
    }
    members: dict[str, list] = {}
    for key, person in person_of.items():
        members.setdefault(person, []).append(key)
    first = 0
    assert len(pairs) >= first + 4, "the pipeline's queue is too short for this test"
    to_match, to_cut, to_leave = pairs[first], pairs[first + 1], pairs[first + 2]
    decided_records = {k for p in (to_match, to_cut, to_leave) for k in (p[:2], p[2:])}
    # A record of another pair whose person has other records, none of them in the decided pairs: split it off.
    split_index, split_side, split_record = next(
        (i, side, key)
        for i, p in enumerate(pairs)
        if i not in (first, first + 1, first + 2)
        for side, key in (("l", p[:2]), ("r", p[2:]))
        if len(members[person_of[key]]) >= 2 and not set(members[person_of[key]]) & decided_records
    )

    stderr_path = tmp_path / "review.stderr"
    process, url, token = start_review_app(settings, tmp_path, stderr_path)
    driver = None
    try:
        with urllib.request.urlopen(url + "/login") as response:  # noqa: S310 - loopback URL the app printed
            assert response.status == 200
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + "/")  # noqa: S310
        assert refused.value.code == 401

        # A decision is a Delta commit by the app's Spark session; on a busy machine the first one takes minutes.
        driver = chrome(tmp_path / "chromium-profile", window="1400,1100", page_seconds=PAGE_SECONDS)
        driver.get(url + "/")
        driver.find_element(By.ID, "token").send_keys(token)
        click(driver, driver.find_element(By.ID, "sign-in"))
        assert text_of(driver, "reviewer") == REVIEWER

        driver.get(f"{url}/pair/review_queue/{first}")
        assert text_of(driver, "position") == str(first + 1)
        assert text_of(driver, "recomputed-weight")  # the model's evidence is there
        if os.environ.get(SCREENSHOT_ENV):
            driver.save_screenshot(os.environ[SCREENSHOT_ENV])
        press(driver, "m")  # match; the app moves to the next pending pair
        assert text_of(driver, "position") == str(first + 2)
        press(driver, "6", expect_new_page=False)  # note 6: different people, common name
        press(driver, "n")
        assert text_of(driver, "position") == str(first + 3)
        press(driver, "u")
        press(driver, "k")  # back to the pair just marked unsure
        assert text_of(driver, "position") == str(first + 3)
        assert "unsure" in text_of(driver, "current-decision")
        press(driver, "b")  # blind mode hides the score
        assert "hidden" in text_of(driver, "score")
        press(driver, "b")
        press(driver, "j")
        assert text_of(driver, "position") == str(first + 4)

        driver.get(f"{url}/pair/review_queue/{split_index}")
        press(driver, split_side)  # that record's person
        row = driver.find_element(
            By.XPATH,
            f"//table[@id='person-table']//tr[td[3][text()='{split_record[1]}']"
            f" and td[2][text()='{split_record[0]}']]",
        )
        row.find_element(By.NAME, "record").click()
        click(driver, driver.find_element(By.ID, "split"))
        assert "non-match decision" in driver.find_element(By.CLASS_NAME, "flash").text
    finally:
        if driver is not None:
            driver.quit()
        code = stop(process)
    stderr = stderr_path.read_text()
    assert code == 0, stderr[-2000:]
    assert token not in stderr  # printed once, to stdout only
    assert "GET " not in stderr and "POST " not in stderr and "/pair/" not in stderr  # no request log

    decisions = read_table(spark, str(lake), REVIEW_DECISIONS).collect()
    assert {r.decided_by for r in decisions} == {REVIEWER}
    by_pair = {
        (r.source_dataset_l, r.source_record_id_l, r.source_dataset_r, r.source_record_id_r): (
            r.decision,
            r.note,
            r.queue,
        )
        for r in decisions
    }
    assert by_pair[to_match] == ("match", None, "review_queue")
    assert by_pair[to_cut] == ("non_match", "common_name", "review_queue")
    assert by_pair[to_leave] == ("unsure", None, "review_queue")
    others = [k for k in members[person_of[split_record]] if k != split_record]
    assert sum(1 for r in decisions if r.queue == "cluster_split") == len(others)

    # The next link run applies them.
    from jobs import link as link_job

    with redirect_stdout(io.StringIO()) as out, redirect_stderr(io.StringIO()) as err:
        assert link_job.main([arg for s in settings for arg in ("--set", s)], {}) == 0, err.getvalue()[-2000:]
    run_id = re.search(r"MLflow run (\w+)", out.getvalue()).group(1)
    metrics = MlflowClient(pipeline_run.tracking_uri).get_run(run_id).data.metrics
    assert metrics["pairs_linked_by_method.clerical"] == 1  # the match became a clerical link
    spine = {
        (r.source_dataset, r.source_record_id): r.person_key
        for r in read_table(spark, str(lake), PERSON_SPINE).collect()
    }
    assert spine[to_match[:2]] == spine[to_match[2:]]
    assert all(spine[split_record] != spine[k] for k in others)
    still_queued = {
        (r.source_dataset_l, r.source_record_id_l, r.source_dataset_r, r.source_record_id_r)
        for r in read_table(spark, str(lake), REVIEW_QUEUE).collect()
    }
    assert to_leave in still_queued and to_cut not in still_queued and to_match not in still_queued
