"""``castrig serve``'s explore pages (issue 19): the maps and searches under DATA/explore, the map
filling in while its points run, the real rig's membranes over it, and URL names kept inside
DATA/explore.

Driven from outside: ``castrig serve`` (and, once, ``castrig explore map``) run in their own
processes. The map that fills in is a study written through castrig's own API (``start_map``, then
trials asked and told as a worker does), so the test decides when a point is done.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from conftest import castrig, castrig_main, csp_violations, made_once, make_study, wait_until

from castrig.store import MembraneRecord, RunInfo, open_store

GRID = {"rh": "60:70:10", "concentration": "5:10:5"}


def http(url: str) -> tuple[int, Any, dict[str, str]]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url), timeout=20) as r:
            body, code, headers = r.read().decode(), r.status, {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        body, code, headers = e.read().decode(), e.code, {k.lower(): v for k, v in e.headers.items()}
    try:
        return code, json.loads(body), headers
    except ValueError:
        return code, body, headers


def add_real_membrane(root: Path, *, rh: float, conc: float, grades: list[str]) -> str:
    """A real rig's run with one judged membrane, recorded through the store's API (simulated=False)."""
    store = open_store(root)
    recipe = {"name": "rig", "concentration_mg_ml": conc,
              "steps": [{"type": "cast", "volume_ml": 0.2, "rate_ml_min": 0.5},
                        {"type": "evaporate", "setpoint_rh_pct": rh, "duration_s": 300, "band_rh_pct": 3.0}]}
    rec = store.create_run(RunInfo(run_id="20261201-170000-rig", recipe_name="rig", recipe_path="", profile_name="rig",
                                   profile_path="", software_version="t", seed=None, operator="ada",
                                   started_utc="2026-12-01T17:00:00Z", virtual_time=False, recipe=recipe))
    mid = f"{rec.info.run_id}-m1"
    rec.save_membrane(MembraneRecord(mid, 1, 0, "judged", simulated=False, process={"evaporation": {"setpoint_rh_pct": rh}},
                                     metrics={"mean_pore_diameter_um": 3.0, "pore_diameter_std_um": 0.2}, grades_met=grades))
    rec.update_info(outcome="completed", ended_utc="2026-12-01T17:40:00Z")
    rec.close()
    return mid


def run_points(url: str, name: str, n: int, *, grades: list[str] | None = None) -> None:
    """Do ``n`` queued points as a worker would (ask, record the outcome, tell) — without a twin run."""
    from castrig.explore.distributed import load_study

    study = load_study(url, name)
    for _ in range(n):
        t = study.ask()
        p = t.user_attrs["point"]
        d = p["rh_pct"] / 20
        t.set_user_attr("outcome", {"run_outcome": "completed", "score": 0.1, "grade_met": True, "d_um": d, "d_error": 0.0,
                                    "violation": 0.0, "grades_met": ["claim1"] if grades is None else grades,
                                    "metrics": {"mean_pore_diameter_um": d, "pore_diameter_std_um": 0.1 * d}, "failed_bounds": [],
                                    "seed": t.user_attrs["seed"], "run_dir": None})
        study.tell(t, 0.1)


def tips(page: str) -> list[str]:
    """The cell tooltips of the first (D) panel: which points are drawn."""
    first = page[page.index('<svg xmlns="http://www.w3.org/2000/svg" width="430"'):].split("</svg>")[0]
    return re.findall(r"<title>(RH [^<]*)</title>", first)


@pytest.mark.slow  # ~13 s on CI; CI keeps test_explore_map_page_fills_in_without_reloading_in_chromium
def test_explore_pages_show_a_map_made_by_castrig_explore_map(tmp_path: Path, castrig_serve):
    data = tmp_path / "data"
    mid = add_real_membrane(data, rh=65.0, conc=5.0, grades=["claim1"])
    r = castrig("explore", "map", "--rh", GRID["rh"], "--concentration", GRID["concentration"], "--data", str(data), timeout_s=90)
    assert r.returncode == 0, r.stderr[-2000:]
    assert mid in (data / "explore" / "map-claim1" / "map.html").read_text()  # the CLI's map.html has the rig's point too
    # a map whose study is elsewhere (PostgreSQL): only its map.json snapshot is in the folder
    (data / "explore" / "pg-map").mkdir()
    (data / "explore" / "pg-map" / "map.json").write_bytes((data / "explore" / "map-claim1" / "map.json").read_bytes())
    with castrig_serve(data) as served:
        code, page, headers = http(served.url + "explore")
        assert code == 200 and "href='/explore/map-claim1'" in page and "4 of 4 points done" in page
        assert "default-src 'none'" in headers["content-security-policy"]
        code, page, headers = http(served.url + "explore/map-claim1")
        assert code == 200 and "data-live='0'" in page
        drawn = tips(page)
        assert len(drawn) == 4 and all("D " in t and "µm" in t for t in drawn), drawn
        assert page.count(mid) == 6 and 'class="real"' in page  # the real membrane on every panel of the row
        assert "<script src='/static/explore.js'></script>" in page and "<script>" not in page
        code, api, _ = http(served.url + "api/explore/map-claim1")
        assert code == 200
        assert (api["asked"], api["done"], api["missing"], api["complete"], api["live"]) == (4, 4, 0, True, False)
        assert api["grid"]["rh"] == [60.0, 70.0] and api["grid"]["concentration"] == [5.0, 10.0]
        assert len(api["cells"]) == 4 and all(c["d_um"] > 0 and c["cv"] > 0 and c["n"] == 1 for c in api["cells"])
        assert {tuple(sorted(c)) for c in api["cells"]} == {("cast_volume_ml", "concentration_mg_ml", "cv", "d_um", "grades_met",
                                                            "n", "passes", "rh_pct")}
        assert [m["membrane_id"] for m in api["real"]] == [mid]
        code, listing, _ = http(served.url + "api/explore")
        assert code == 200 and [(x["name"], x["kind"], x["storage"], x["done"], x["asked"]) for x in listing] == [
            ("map-claim1", "map", "journal", 4, 4), ("pg-map", "map", "snapshot", 4, 4)]
        code, snap, _ = http(served.url + "api/explore/pg-map")
        assert code == 200 and (snap["storage"], snap["live"], snap["done"], len(snap["cells"])) == ("snapshot", False, 4, 4)
        code, page, _ = http(served.url + "explore/pg-map")
        assert code == 200 and "a snapshot" in page and len(tips(page)) == 4
        code, js, headers = http(served.url + "static/explore.js")
        assert code == 200 and "fetch('/api/explore/'" in js


def test_explore_map_fills_in_while_its_points_run(tmp_path: Path, castrig_serve):
    data = tmp_path / "data"
    folder = data / "explore" / "map-claim1"
    url, name = make_study(folder)
    journal = folder / "study.journal"
    with castrig_serve(data) as served:
        code, api, _ = http(served.url + "api/explore/map-claim1")
        assert code == 200 and (api["asked"], api["done"], api["waiting"], api["live"], api["complete"]) == (4, 0, 4, True, False)
        assert api["cells"] == []
        code, page, _ = http(served.url + "explore/map-claim1")
        assert code == 200 and "data-live='1'" in page and "0 of 4 points done" in page
        assert all("not run" in t for t in tips(page))
        before = journal.read_bytes()
        run_points(url, name, 2)  # a worker does two points while the page is open
        grown = journal.read_bytes()
        assert len(grown) > len(before)
        api = wait_until(lambda: (a := http(served.url + "api/explore/map-claim1")[1])["done"] == 2 and a,
                         timeout_s=10, what="2 points done in the API")
        assert (api["asked"], api["missing"], api["waiting"], api["live"]) == (4, 2, 2, True)
        assert len(api["cells"]) == 2
        code, panels, _ = http(served.url + "explore/map-claim1/panels")
        assert code == 200 and "<html" not in panels
        drawn = tips(panels)
        assert sum("not run" in t for t in drawn) == 2 and sum("D " in t for t in drawn) == 2, drawn
        for _ in range(3):  # reading (page, panels, API, list) never writes to the study
            for path in ("explore", "explore/map-claim1", "explore/map-claim1/panels", "api/explore/map-claim1"):
                assert http(served.url + path)[0] == 200
        assert journal.read_bytes() == grown
        run_points(url, name, 2)
        api = wait_until(lambda: (a := http(served.url + "api/explore/map-claim1")[1])["done"] == 4 and a,
                         timeout_s=10, what="4 points done")
        assert (api["live"], api["complete"], api["missing"]) == (False, True, 0)
        assert "data-live='0'" in http(served.url + "explore/map-claim1")[1]


def test_explore_names_from_the_url_stay_inside_data_explore(tmp_path: Path, castrig_serve):
    data = tmp_path / "data"
    make_study(data / "explore" / "map-claim1")
    make_study(data / "elsewhere")  # a study folder, but not under explore
    (data / "explore" / "empty").mkdir()  # not a map: no journal, map.json or search.json
    (data / "explore" / "link").symlink_to(data / "elsewhere")
    (data / "explore" / ".hidden").mkdir()
    (data / "explore" / ".hidden" / "study.journal").write_bytes((data / "elsewhere" / "study.journal").read_bytes())
    with castrig_serve(data) as served:
        assert http(served.url + "api/explore/map-claim1")[0] == 200
        for name in ("..%2F..", "..%2Felsewhere", "..", "%2E%2E", ".hidden", "elsewhere", "link", "empty", "nope",
                     "map-claim1%2F..%2F..%2Felsewhere", "%2Fetc%2Fpasswd", "map-claim1%00"):
            for path in (f"explore/{name}", f"api/explore/{name}", f"explore/{name}/panels"):
                code, body, _ = http(served.url + path)
                assert code == 404, (path, code, str(body)[:200])
        assert http(served.url + "api/explore/map-claim1?study=other")[0] == 404
        code, listing, _ = http(served.url + "api/explore")
        assert [x["name"] for x in listing] == ["map-claim1"]


def test_explore_files_linked_from_outside_the_data_root_are_not_served(tmp_path: Path, castrig_serve):
    """A DATA/explore linked to a folder of maps elsewhere, and a map folder whose study.journal
    is linked to a study elsewhere: both were listed and served to every reader."""
    outside = tmp_path / "elsewhere"
    make_study(outside / "maps" / "m1")
    make_study(outside / "study")
    linked_root = tmp_path / "linked"
    linked_root.mkdir()
    (linked_root / "explore").symlink_to(outside / "maps")  # DATA/explore itself a link
    data = tmp_path / "data"
    make_study(data / "explore" / "mine")
    (data / "explore" / "leak").mkdir()
    (data / "explore" / "leak" / "study.journal").symlink_to(outside / "study" / "study.journal")
    with castrig_serve(linked_root) as served:
        assert http(served.url + "api/explore/m1")[0] == 404
        assert [x["name"] for x in http(served.url + "api/explore")[1]] == []
    with castrig_serve(data) as served:
        assert http(served.url + "api/explore/mine")[0] == 200
        for path in ("explore/leak", "api/explore/leak"):
            assert http(served.url + path)[0] == 404, path
        assert [x["name"] for x in http(served.url + "api/explore")[1]] == ["mine"]


MAP_PATHS = ("explore/{}", "api/explore/{}", "explore/{}/panels")


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
def test_a_map_folder_moved_while_served_is_404_not_500(tmp_path: Path, castrig_serve):
    """A map folder renamed, moved out or deleted while ``castrig serve`` runs (its page polling
    every few seconds): requests that met the move between the server's check of the folder and its
    read of the journal (the cached storage opens the journal's path again) answered 500 with a
    FileNotFoundError traceback, the list too. Now the map is 404 and the list leaves it out."""
    import shutil
    import threading
    import time

    data = tmp_path / "data"
    explore = data / "explore"
    url, name = make_study(explore / "a")
    run_points(url, name, 2)
    make_study(explore / "b", "other")
    with castrig_serve(data) as served:
        for path in ("explore", *(p.format("a") for p in MAP_PATHS)):
            assert http(served.url + path)[0] == 200, path
        (explore / "a").rename(explore / "renamed")  # what a person does, between two requests
        for path in MAP_PATHS:
            assert http(served.url + path.format("a"))[0] == 404, path
        assert [(x["name"], x["done"]) for x in http(served.url + "api/explore")[1]] == [("b", 0), ("renamed", 2)]
        # the same, while requests are being answered: the folder goes back and forth a few hundred times
        moving = threading.Event()
        moving.set()

        def move() -> None:
            while moving.is_set():
                (explore / "renamed").rename(explore / "a")
                (explore / "a").rename(explore / "renamed")

        mover = threading.Thread(target=move)
        mover.start()
        seen: set[tuple[str, int]] = set()
        try:
            until = time.monotonic() + 4.0
            while time.monotonic() < until:
                for path in ("explore", "api/explore", *(p.format(n) for p in MAP_PATHS for n in ("a", "renamed"))):
                    code = http(served.url + path)[0]
                    assert code in (200, 404), (path, code)
                    seen.add((path, code))
        finally:
            moving.clear()
            mover.join()
        assert ("explore/a", 200) in seen and ("explore/a", 404) in seen, seen
        shutil.rmtree(explore / "renamed")  # deleted
        for path in MAP_PATHS:
            assert http(served.url + path.format("renamed"))[0] == 404, path
        assert [x["name"] for x in http(served.url + "api/explore")[1]] == ["b"]
        assert "href='/explore/b" in http(served.url + "explore")[1]


def test_explore_pages_escape_names_from_the_study(tmp_path: Path, castrig_serve):
    data = tmp_path / "data"
    evil = "<img src=x onerror=alert(1)>"
    url, name = make_study(data / "explore" / "evil", name=evil)
    run_points(url, name, 1, grades=["claim1", "<script>alert(2)</script>"])
    with castrig_serve(data) as served:
        code, page, _ = http(served.url + "explore")
        assert code == 200 and evil not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
        code, page, _ = http(served.url + "explore/evil")
        assert code == 200 and evil not in page and "<img" not in page and "<script>alert" not in page
        assert "&lt;img src=x onerror=alert(1)&gt;" in page and "1 of 4 points done" in page
        code, api, headers = http(served.url + "api/explore/evil?study=" + urllib.request.quote(evil, safe=""))
        assert code == 200 and api["study"] == evil and headers["content-type"].startswith("application/json")
        assert http(served.url + "explore/evil/panels?study=" + urllib.request.quote(evil, safe=""))[0] == 200


def test_explore_map_page_fills_in_without_reloading_in_chromium(tmp_path: Path, castrig_serve, module_chrome):
    """The browser only talks to the server: the counts and the panels change as points are done,
    the page is not reloaded, and nothing is blocked by the page's Content-Security-Policy."""
    chrome = module_chrome  # (one Chromium for the module's two browser tests)
    data = tmp_path / "data"
    url, name = make_study(data / "explore" / "map-claim1")
    with castrig_serve(data) as served:
        chrome.get(served.url + "explore/map-claim1")
        chrome.execute_script("window.__sameDocument = 42;")
        box = lambda: chrome.find_element("id", "explore-map").get_attribute("innerHTML")  # noqa: E731
        assert "0 of 4 points done" in chrome.find_element("id", "explore-counts").text
        assert sum("D " in t for t in tips(box())) == 0
        run_points(url, name, 2)
        # (each look a round trip through chromedriver into Chromium: 10 a second, not 50)
        wait_until(lambda: sum("D " in t for t in tips(box())) == 2, timeout_s=15, what="two cells drawn", every_s=0.1)
        run_points(url, name, 2)
        wait_until(lambda: "4 of 4 points done" in chrome.find_element("id", "explore-counts").text, timeout_s=15, what="4 done", every_s=0.1)
        wait_until(lambda: sum("D " in t for t in tips(box())) == 4, timeout_s=15, what="four cells drawn", every_s=0.1)
        assert chrome.execute_script("return window.__sameDocument") == 42, "the page reloaded"
        assert chrome.find_element("id", "explore").get_attribute("data-live") == "0"
        errors = [e for e in chrome.get_log("browser") if e.get("level") == "SEVERE" and "favicon.ico" not in e.get("message", "")]
        assert not errors, errors


@pytest.fixture(scope="session")
def searched_once(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A data root holding one finished one-trial search (``castrig explore --target-grade claim1
    --target-d-um 3 --tolerance 0.01 --budget 1``, its trial imaging one field in reflected light:
    tests/explore/one_view.yaml), run once per session (``made_once``, ~1.5 s of CPU): the tests
    below only read its folder, each from its own copy."""
    def make(data: Path) -> None:
        res = castrig("explore", "--target-grade", "claim1", "--target-d-um", "3", "--tolerance", "0.01", "--budget", "1",
                      "--template", str(Path(__file__).parents[1] / "explore" / "one_view.yaml"), "--data", str(data),
                      timeout_s=120)
        assert res.returncode in (0, 1), res.stderr

    return made_once(tmp_path_factory, worker_id, "explore-search", make)


def _copy_search(searched: Path, data: Path) -> Path:
    """The shared search's folder copied into DATA/explore; that folder."""
    import shutil

    (folder,) = [p for p in (searched / "explore").iterdir() if (p / "trials.jsonl").is_file()]
    mine = data / "explore" / folder.name
    shutil.copytree(folder, mine, symlinks=True)
    return mine


def test_a_search_frame_escapes_a_trial_kind_written_into_its_journal(tmp_path: Path, castrig_serve, searched_once):
    """A search's trials.jsonl is a file in the data folder: a "started" line written into it by
    hand, its kind markup, came out raw in the unfinished trial's row of map.html (the finished
    rows were escaped) — found by probing castrig serve with hostile study files."""
    data = tmp_path / "data"
    folder = _copy_search(searched_once, data)
    evil = "<script>alert(3)</script><img src=x onerror=alert(3)>"
    started = next(json.loads(line) for line in (folder / "trials.jsonl").read_text().splitlines()
                   if json.loads(line).get("event") == "started")
    with (folder / "trials.jsonl").open("a") as f:
        f.write(json.dumps({**started, "n": 99, "kind": evil}) + "\n")
    with castrig_serve(data) as served:
        code, page, _ = http(served.url + f"explore/{folder.name}/map.html")
    assert code == 200 and "not finished" in page
    assert evil not in page and "<script>alert" not in page and "&lt;script&gt;alert(3)" in page


def test_a_map_whose_journal_is_damaged_is_named_not_500(tmp_path: Path, castrig_serve):
    """A study journal with a line of NULs in it (a power cut) was listed 'damaged', but opening
    it from the list -- the page, its API, its panels -- answered 500 with Optuna's traceback in
    the server's log: each says 409, naming the folder's journal and the line."""
    from conftest import spoil_journal_line

    data = tmp_path / "data"
    folder = data / "explore" / "map-claim1"
    url, name = make_study(folder)
    run_points(url, name, 1)
    spoil_journal_line(folder / "study.journal", 2)
    with castrig_serve(data) as served:
        for path in ("explore/map-claim1", "api/explore/map-claim1", "explore/map-claim1/panels", "explore/map-claim1/map.html"):
            code, body, _ = http(served.url + path)
            text = json.dumps(body) if isinstance(body, dict) else body
            assert code == 409 and "DATA/explore/map-claim1/study.journal" in text and "line 2" in text, (path, code, text[:300])
            assert str(data) not in text
        code, listing, _ = http(served.url + "api/explore")
        assert code == 200 and [(x["name"], x["kind"]) for x in listing] == [("map-claim1", "damaged")]
        assert "line 2 is not a journal entry" in listing[0]["note"] and str(data) not in listing[0]["note"]
        code, page, _ = http(served.url + "explore")
        assert code == 200 and "line 2 is not a journal entry" in page
        served.proc.send_signal(2)
        served.proc.wait(timeout=10)
        log = served.proc.stderr.read()
    assert "Traceback" not in log, log[-2000:]


@pytest.mark.parametrize("file, text", [pytest.param("map.json", "[1, 2]", marks=pytest.mark.slow), ("map.json", '{"grid": {"rh": [60'),
                                        ("search.json", '{"grade": "cl'),
                                        pytest.param("search.json", "[]", marks=pytest.mark.slow)])  # CI: each file cut short
def test_a_damaged_snapshot_or_search_file_is_named_not_500(tmp_path: Path, castrig_serve, file, text):
    """A map's map.json snapshot or a one-process search's search.json cut short (a copy off a full
    disk) or rewritten by another tool: the list (page and API) answered 500 for every map under
    DATA/explore, and the map's own page 404 "no such map". Now it is listed `damaged` naming the
    file, the others still listed, and its page and API say 409 naming it."""
    data = tmp_path / "data"
    url, name = make_study(data / "explore" / "map-claim1")
    run_points(url, name, 1)
    (data / "explore" / "spoilt").mkdir()
    (data / "explore" / "spoilt" / file).write_text(text)
    with castrig_serve(data) as served:
        code, listing, _ = http(served.url + "api/explore")
        assert code == 200 and [(x["name"], x["kind"]) for x in listing] == [("map-claim1", "map"), ("spoilt", "damaged")], listing
        assert f"DATA/explore/spoilt/{file} cannot be read" in listing[1]["note"] and str(data) not in listing[1]["note"]
        code, page, _ = http(served.url + "explore")
        assert code == 200 and f"spoilt/{file} cannot be read" in page and "href='/explore/map-claim1'" in page
        for path in ("explore/spoilt", "api/explore/spoilt"):
            code, body, _ = http(served.url + path)
            said = json.dumps(body) if isinstance(body, dict) else body
            assert code == 409 and f"DATA/explore/spoilt/{file} cannot be read" in said, (path, code, said[:300])
        served.proc.send_signal(2)
        served.proc.wait(timeout=10)
        log = served.proc.stderr.read()
    assert "Traceback" not in log, log[-2000:]


def test_explore_pages_are_styled_with_no_inline_style_allowed_in_chromium(tmp_path: Path, castrig_serve, module_chrome,
                                                                            searched_once):
    """The explore pages' policy allowed any inline style ('unsafe-inline': an injected style
    attribute could restyle or hide what the operator reads); the map's legend dot and the search
    frame carried style attributes. Now the styles come from castrig's stylesheet, and the search
    map's one stylesheet by hash: no page allows inline style, and Chromium still applies them."""
    chrome = module_chrome  # (one Chromium for the module's two browser tests)
    data = tmp_path / "data"
    add_real_membrane(data, rh=65.0, conc=5.0, grades=["claim1"])
    make_study(data / "explore" / "map-claim1")
    search = _copy_search(searched_once, data).name
    with castrig_serve(data) as served:
        for path in ("explore", "explore/map-claim1", f"explore/{search}", f"explore/{search}/map.html"):
            code, _, headers = http(served.url + path)
            assert code == 200 and "'unsafe-inline'" not in headers["content-security-policy"], (path, headers)
        chrome.get(served.url + "explore/map-claim1")
        dot = chrome.find_element("css selector", ".real-legend svg")
        assert dot.value_of_css_property("vertical-align") == "middle"
        assert chrome.find_element("css selector", ".maps").value_of_css_property("display") == "flex"
        chrome.get(served.url + f"explore/{search}")
        frame = chrome.find_element("id", "explore-frame")
        assert frame.value_of_css_property("height") == "1600px" and frame.value_of_css_property("border-top-width") == "0px"
        chrome.switch_to.frame(frame)
        wait_until(lambda: chrome.find_elements("css selector", "table"), timeout_s=10, what="the search map's table")
        assert chrome.find_element("css selector", "table").value_of_css_property("border-collapse") == "collapse"
        chrome.switch_to.default_content()
        assert not csp_violations(chrome)


def test_a_snapshot_swapped_for_a_named_pipe_after_its_look_is_not_waited_on(tmp_path):
    """The explore pages look whether ``map.json``/``search.json`` is a file, then read it: one
    swapped for a named pipe in between (whoever may write the data root) held the page's worker
    for ever on the open. The read itself refuses what is not a regular file."""
    import os
    import threading

    from castrig.serve.explore import _read_json

    pipe = tmp_path / "map.json"
    os.mkfifo(pipe)
    got: list = []
    reader = threading.Thread(target=lambda: got.append(_read_json(pipe)), daemon=True)
    reader.start()
    reader.join(5.0)
    stuck = reader.is_alive()
    if stuck:  # (let the stuck reader go, then fail)
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
    assert not stuck and got == [None]


def test_a_journal_swapped_for_a_named_pipe_after_its_look_is_not_waited_on(tmp_path, monkeypatch):
    """The server looked at ``study.journal`` (a regular file, not too large), then Optuna opened it
    by name: one swapped for a named pipe in between (whoever may write the data root) held the
    page's worker for ever, waiting for a writer; enough such GETs took every worker. Now the file
    is checked as it is opened, and that open file is the one read: the pipe is named, unread."""
    import os
    import threading

    from castrig.explore.distributed import DamagedJournal
    from castrig.serve.explore import Journals

    folder = tmp_path / "explore" / "map-claim1"
    make_study(folder)
    journal, aside = folder / "study.journal", folder / "aside"
    real_look, swapped = Path.is_file, []

    def look_then_swap(self: Path) -> bool:  # the attacker's move, right after the server's look
        seen = real_look(self)
        if self == journal and not swapped:
            swapped.append(self.rename(aside))
            os.mkfifo(journal)
        return seen

    monkeypatch.setattr(Path, "is_file", look_then_swap)
    journals, got = Journals(), []

    def read() -> None:
        try:
            got.append(journals.studies(journal))
        except DamagedJournal as exc:
            got.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5.0)
    stuck = reader.is_alive()
    if stuck:  # (let the stuck reader go, then fail)
        os.close(os.open(journal, os.O_WRONLY | os.O_NONBLOCK))
    assert swapped and not stuck and isinstance(got[0], DamagedJournal) and "not a regular file" in str(got[0]), got
    journal.unlink()
    aside.rename(journal)
    assert [s.study_name for s in journals.studies(journal)] == ["map-claim1"]  # read afresh once it is a file again


def test_reading_a_map_while_a_worker_appends_to_its_journal_writes_nothing(tmp_path: Path, castrig_serve):
    """A GET of a map (no token on loopback) found the journal's last entry without its newline —
    a worker's append under way — and cut it off, as the study's own process does after a power
    cut but without the journal's lock: the rest of the entry then landed as a line of garbage and
    the study was damaged for good. The server now only reads; the entry counts once it is whole.
    And a journal of hundreds of MB with no newline (whoever may write the data root) was replayed
    whole: 400 MB took 900 MB of the server's memory on one GET; beyond JOURNAL_MAX_BYTES it is named, unread."""
    from castrig.serve.explore import JOURNAL_MAX_BYTES

    data = tmp_path / "data"
    folder = data / "explore" / "map-claim1"
    make_study(folder)
    journal = folder / "study.journal"
    whole = journal.read_bytes()
    journal.write_bytes(whole[:-20])  # the last entry, its last 20 bytes not yet written
    (data / "explore" / "huge").mkdir()
    with open(data / "explore" / "huge" / "study.journal", "wb") as fh:
        fh.truncate(JOURNAL_MAX_BYTES + 1)  # (sparse: no disk taken)
    with castrig_serve(data) as served:
        code, body, _ = http(served.url + "api/explore/huge")
        assert code == 409 and "more than castrig serve reads of a study journal" in body["error"], (code, body)
        assert "huge" in http(served.url + "explore")[1]
        for path in ("api/explore/map-claim1", "explore/map-claim1"):
            assert http(served.url + path)[0] == 200, path
        assert journal.read_bytes() == whole[:-20]
        with open(journal, "ab") as fh:  # the worker's write ends
            fh.write(whole[-20:])
        code, api, _ = http(served.url + "api/explore/map-claim1")
        assert code == 200 and (api["asked"], api["waiting"]) == (4, 4), api
    assert journal.read_bytes() == whole


def test_many_maps_are_served_right_with_journals_kept_within_the_cache_limit(tmp_path: Path, castrig_serve, capsys):
    """``castrig serve`` kept every study journal it had read replayed in memory for good (each up
    to 64 MiB, no limit on how many): a data root of many maps grew the server without bound. Now
    at most ``--explore-cache-mib`` (JOURNALS_CACHE_BYTES) of journals are kept, the least recently
    read dropped and read again when asked: every page stays right."""
    import shutil

    from castrig.serve.explore import Journals

    data = tmp_path / "data"
    fresh = data / "explore" / "map-0"
    make_study(fresh)
    ran = data / "explore" / "map-1"
    url, name = make_study(ran)
    run_points(url, name, 2)
    for i in range(2, 6):  # six maps, two points done in every other one
        shutil.copytree(data / "explore" / f"map-{i % 2}", data / "explore" / f"map-{i}")
    journal = {i: data / "explore" / f"map-{i}" / "study.journal" for i in range(6)}
    sizes = {i: j.stat().st_size for i, j in journal.items()}

    limit = sizes[0] + sizes[1]  # room for two journals at the boundary, not three
    journals = Journals(limit)
    for turn in range(2):  # the second turn reads again the ones dropped in the first
        for i in range(6):
            (study,) = journals.studies(journal[i])
            assert len(study.get_trials()) == 4
            done = sum(t.state.name == "COMPLETE" for t in study.get_trials())
            assert done == 2 * (i % 2), (turn, i, done)
            assert journals.kept_bytes() <= limit
        assert journals.kept() == [str(journal[i].resolve()) for i in (4, 5)]  # the two last read
    assert [s.study_name for s in Journals(0).studies(journal[1])] == ["map-claim1"]  # 0: none kept, still read

    with castrig_serve(data, "--explore-cache-mib", "0") as served:  # every page reads its journal afresh
        for _ in range(2):
            for i in range(6):
                code, api, _ = http(served.url + f"api/explore/map-{i}")
                assert code == 200 and (api["asked"], api["done"]) == (4, 2 * (i % 2)), (i, api)
        code, listed, _ = http(served.url + "api/explore")
        assert code == 200 and sorted(r["name"] for r in listed) == [f"map-{i}" for i in range(6)]
    bad = castrig_main(capsys, "serve", "--data", str(data), "--port", "0", "--explore-cache-mib", "-1")
    assert bad.returncode == 2 and "--explore-cache-mib" in bad.stderr and "Traceback" not in bad.stderr
