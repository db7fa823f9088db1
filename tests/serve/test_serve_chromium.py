"""The operator's pages in headless Chromium (Debian's chromium + chromium-driver, via Selenium).

A wall-clock run on the twin and ``castrig serve`` run as their own processes; the browser only
talks to the server. Checked: the step shown changes as the run moves on, a plotted value
updates without reloading, abort without the token answers 401 and the run goes on, abort with
it ends the run ``aborted`` with the safe state verified; the finished report of a demo run shows
its membrane's verdict and micrographs with scale bars, and is the same page as the saved report. Screenshots of the runs table, a live run
and a finished report go to ``artifacts/`` (repository root). Without chromium the tests are
skipped with the reason (and fail under ``CI=true``, as the report tests do).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, csp_violations, only_run_dir, start_castrig, wait_until

ARTIFACTS = ROOT / "artifacts"
#: How often a wait looks at the page: each look is a round trip through chromedriver into Chromium
#: (~4 ms of their CPU), and the live page's step and plot change each second or slower -- 50 looks
#: a second through a 7 s wait for step 3 cost more than the page they watch
LOOK_S = 0.1
RECIPE = """\
name: live-page
steps:
  - {type: purge, duration_s: 3, label: "dry out the chamber"}
  - {type: wait, duration_s: 4, label: "first hold"}
  - {type: wait, duration_s: 600, label: "long hold"}
"""


def text(d: Any, css: str) -> str:
    """The text of the first element ``css`` selects; looked up again if the page redrew it
    between the lookup and the read (the live page re-renders its sections as the run's state
    comes in: a StaleElementReferenceException in CI, on the finished run's scale bar)."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(20):
        try:
            return d.find_element("css selector", css).text
        except StaleElementReferenceException:
            time.sleep(0.1)
    return d.find_element("css selector", css).text


def shot(d: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    d.set_window_size(1300, 900)
    height = d.execute_script("return document.body.scrollHeight")
    d.set_window_size(1300, min(max(900, int(height) + 40), 6000))
    d.save_screenshot(str(path))
    assert path.stat().st_size > 10_000, f"{name}: screenshot looks empty"
    return path


def test_live_run_page_follows_the_run_and_aborts_with_the_token(tmp_path: Path, wall_sim_profile: Path, reap,
                                                                 castrig_serve, chrome):
    recipe = tmp_path / "live.yaml"
    recipe.write_text(RECIPE)
    data = tmp_path / "data"
    run = reap(start_castrig("run", str(recipe), "--profile", str(wall_sim_profile), "--data", str(data), "-q",
                             "--operator", "ada"))
    run_dir = wait_until(lambda: only_run_dir(data), timeout_s=60, what="the run folder")
    with castrig_serve(data) as served:
        chrome.get(served.url)
        wait_until(lambda: run_dir.name in text(chrome, "#runs"), timeout_s=10, what="the run in the table", every_s=LOOK_S)
        assert "running" in text(chrome, "#runs") and "ada" in text(chrome, "#runs")
        shot(chrome, "serve-runs-table.png")
        assert not csp_violations(chrome)

        chrome.get(served.url + f"runs/{run_dir.name}")
        chrome.execute_script("window.__sameDocument = 42;")
        wait_until(lambda: text(chrome, "#step").startswith(("1/3", "2/3")), timeout_s=20, what="a step shown", every_s=LOOK_S)
        seen = {text(chrome, "#step")}
        points = int(chrome.find_element("id", "plot-rh").get_attribute("data-points"))
        last_t = float(chrome.find_element("id", "plot-rh").get_attribute("data-last-t") or 0)
        wait_until(lambda: text(chrome, "#step").startswith("3/3"), timeout_s=30, what="step 3 shown", every_s=LOOK_S)
        seen.add(text(chrome, "#step"))
        assert len(seen) >= 2 and text(chrome, "#step-label") == "long hold", seen
        wait_until(lambda: float(chrome.find_element("id", "plot-rh").get_attribute("data-last-t") or 0) > last_t + 2,
                   timeout_s=20, what="the RH plot updated", every_s=LOOK_S)
        assert int(chrome.find_element("id", "plot-rh").get_attribute("data-points")) > points
        assert chrome.execute_script("return window.__sameDocument") == 42, "the page reloaded"
        assert "%RH" in text(chrome, "#rh") and text(chrome, "#run-left") != "—"
        time.sleep(0.5)
        shot(chrome, "serve-live-run.png")

        # abort without the token: 401, the run goes on
        chrome.execute_script("window.confirmSkip = true;")
        chrome.find_element("id", "btn-abort").click()
        wait_until(lambda: chrome.find_element("id", "action-msg").get_attribute("data-code") == "401", timeout_s=15,
                   what="401 shown", every_s=LOOK_S)
        time.sleep(1.5)
        assert run.poll() is None and chrome.find_element("tag name", "body").get_attribute("data-status") == "running"
        assert json.loads((run_dir / "run.json").read_text())["outcome"] == "running"

        # with the token: the run ends aborted, the safe state verified and shown in the log
        chrome.find_element("id", "token").send_keys(served.token)
        chrome.find_element("id", "btn-abort").click()
        wait_until(lambda: chrome.find_element("tag name", "body").get_attribute("data-status") == "aborted",
                   timeout_s=30, what="the page showing aborted", every_s=LOOK_S)
        assert run.wait(timeout=30) == 3
        info = json.loads((run_dir / "run.json").read_text())
        assert info["outcome"] == "aborted" and "token:operator" in info["outcome_reason"]
        wait_until(lambda: "safe state verified" in text(chrome, "#events"), timeout_s=10, what="safe state in the log", every_s=LOOK_S)
        assert "abort requested by token:operator" in text(chrome, "#events")
        warn = chrome.find_elements("css selector", "#events tr.warn")
        assert any("aborted" in w.text for w in warn), "the run_end (aborted) row is not highlighted"
        assert chrome.execute_script("return window.__sameDocument") == 42
        assert not csp_violations(chrome)


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
def test_finished_report_page_of_a_demo_run(tmp_path: Path, finished_demo_run, castrig_serve, chrome):
    data, uid = finished_demo_run
    run_dir = data / uid
    with castrig_serve(data) as served:
        chrome.get(served.url + f"runs/{run_dir.name}")
        wait_until(lambda: chrome.find_element("tag name", "body").get_attribute("data-ended") == "1", timeout_s=20,
                   what="the finished run loaded")
        assert text(chrome, "#status") == "completed"
        wait_until(lambda: chrome.execute_script(
            "return [...document.querySelectorAll('.micrographs img.raw')].filter(i => i.naturalWidth > 0).length") >= 3,
            timeout_s=20, what="micrographs loaded")
        wait_until(lambda: len(chrome.find_elements("css selector", ".micrographs .scalebar")) >= 6, timeout_s=20,
                   what="scale bars")
        assert text(chrome, ".micrographs .scalebar span").endswith("µm")
        # once ended, the page is the report: what went wrong, the membrane's section, overlays, the timeline
        wait_until(lambda: chrome.find_elements("css selector", "section.membrane table.verdict"), timeout_s=20,
                   what="the membrane's section")
        assert "Nothing went wrong" in text(chrome, "#problems")
        assert len(chrome.find_elements("css selector", ".micrographs img.overlay")) >= 4
        assert len(chrome.find_elements("css selector", "#timeline text.tl-label")) == 8
        assert float(chrome.find_element("id", "plot-rh").get_attribute("data-ylo")) >= 0
        assert "claim1" in text(chrome, "#membranes") and "PASS" in text(chrome, "#membranes")
        assert text(chrome, "#recipe").startswith("# The quick-start recipe")  # the recipe as written, not normalised
        # the RH axis never goes below 0 %RH and the plot can be zoomed to the minute scale
        x1 = float(chrome.find_element("id", "plot-rh").get_attribute("data-x1"))
        canvas = chrome.find_element("id", "plot-rh")
        for _ in range(12):
            chrome.execute_script("arguments[0].dispatchEvent(new WheelEvent('wheel', {deltaY: -100, clientX: "
                                  "arguments[0].getBoundingClientRect().left + 400, clientY: arguments[0].getBoundingClientRect().top + 50,"
                                  " bubbles: true, cancelable: true}))", canvas)
        time.sleep(0.3)
        z0 = float(canvas.get_attribute("data-x0"))
        z1 = float(canvas.get_attribute("data-x1"))
        assert z1 - z0 < x1 / 10, (z0, z1, x1)
        chrome.execute_script("arguments[0].dispatchEvent(new MouseEvent('dblclick', {bubbles: true}))", canvas)
        time.sleep(0.3)
        shot(chrome, "serve-finished-report.png")
        assert not csp_violations(chrome)  # the live page under its policy: styles, overlays (data:), the API
        import urllib.request

        with urllib.request.urlopen(served.url + f"runs/{run_dir.name}/report.html", timeout=30) as r:
            saved_page = r.read()
    # saved: the same page, self-contained — it opens from a file with no server running
    saved = tmp_path / "saved.html"
    saved.write_bytes(saved_page)
    assert len(saved_page) <= 2_000_000, f"saved page {len(saved_page)} bytes"
    assert b"src=\"http" not in saved_page and b"href=\"http" not in saved_page
    chrome.get(saved.as_uri())
    wait_until(lambda: chrome.find_element("tag name", "body").get_attribute("data-ended") == "1", timeout_s=20,
               what="the saved page loaded")
    assert text(chrome, "#status") == "completed" and "claim1" in text(chrome, "#membranes")
    assert len(chrome.find_elements("css selector", "section.membrane table.verdict tr.pass")) >= 10
    wait_until(lambda: chrome.execute_script(
        "return [...document.querySelectorAll('.micrographs img.raw')].filter(i => i.naturalWidth > 0).length") >= 3,
        timeout_s=20, what="micrographs in the saved page")
    assert int(chrome.find_element("id", "plot-rh").get_attribute("data-points")) > 50
    shot(chrome, "serve-saved-report.png")
    # opened from disk, its own meta policy holds: the one script and stylesheet by hash, no other inline code
    assert b"'unsafe-inline'" not in saved_page and not csp_violations(chrome)
