"""The report in a real headless Chromium (Debian's, installed by scripts/install-chromium.sh)."""

from __future__ import annotations

import os
import tempfile

import optuna
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from piip_search.report import write_report
from tests.report.studies import known_study

optuna.logging.set_verbosity(optuna.logging.WARNING)

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    os.environ.setdefault("SE_AVOID_STATS", "true")  # Selenium Manager: no telemetry, no downloads (paths given)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="piip-chromium-")
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
              f"--user-data-dir={profile}", "--window-size=1400,1000"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return write_report(known_study(), tmp_path_factory.mktemp("rep") / "report.html")


def _rows_shown(browser) -> int:
    return browser.execute_script("return document.querySelectorAll('#trials tbody tr').length")


def test_report_loads_plots_filters_and_screenshots(browser, report, tmp_path):
    browser.get(report.as_uri())
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    # points drawn in the front plot's SVG: each of the 10 trials once (all have FLOPs; failed ones at AP 0;
    # the 3 front points on the front line) and the knee star
    drawn = browser.execute_script("return document.querySelectorAll('#front .scatterlayer .trace .points path')"
                                   ".length")
    assert drawn == 10 + 1
    names = browser.execute_script("return document.getElementById('front').data.map(t => t.name)")
    assert names == ["dominated (3)", "truncated (1)", "stopped (1)", "infeasible (1)", "failed (1)",
                     "Pareto front (3)", "knee"]
    for div in ("hv", "progress", "importance", "parcoords", "composition"):
        assert browser.execute_script(f"return document.getElementById('{div}').data.length") > 0
    assert _rows_shown(browser) == 10
    browser.execute_script("const s=document.getElementById('f-kind'); s.value='ok';"
                           "s.dispatchEvent(new Event('input'))")
    assert _rows_shown(browser) == 6
    browser.execute_script("const e=document.getElementById('f-gmax'); e.value='3';"
                           "e.dispatchEvent(new Event('input'))")
    assert _rows_shown(browser) == 2  # ok trials 0 (1 GFLOPs) and 1 (2 GFLOPs)
    browser.execute_script("const s=document.getElementById('f-kind'); s.value='';"
                           "s.dispatchEvent(new Event('input'));"
                           "const t=document.getElementById('f-text'); t.value='worker-died';"
                           "t.dispatchEvent(new Event('input'))")
    assert _rows_shown(browser) == 1
    browser.execute_script("document.getElementById('f-text').value=''; document.getElementById('f-gmax').value='';"
                           "document.getElementById('f-text').dispatchEvent(new Event('input'))")
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    out = os.environ.get("PIIP_REPORT_SCREENSHOT")  # docs/report.png is refreshed with this set
    if out:
        browser.save_screenshot(out)
