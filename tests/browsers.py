"""Headless Chromium for the browser tests (Debian's chromium and chromium-driver; .ci/run installs them)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def require_browser() -> None:
    """Skip without a browser on a developer's machine; in CI a missing browser is a failure, not a skip."""
    if CHROMIUM and CHROMEDRIVER:
        return
    if os.environ.get("CI"):
        pytest.fail("chromium and chromium-driver are missing: .ci/run installs them before the tests")
    pytest.skip("chromium / chromium-driver not installed (apt-get install -y chromium chromium-driver)")


def chrome(profile: Path, window: str, page_seconds: float | None = None):
    """A headless Chromium with its own profile folder; `page_seconds` bounds page loads and driver commands."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--window-size={window}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    if page_seconds is not None:
        driver.command_executor.client_config.timeout = page_seconds
        driver.set_page_load_timeout(page_seconds)
    return driver
