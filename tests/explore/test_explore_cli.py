"""`castrig explore` from the outside in (the real CLI in subprocesses): one process per search
folder, options checked before anything is written, map ranges that are numbers, and the help's
examples that work."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import castrig, castrig_env, castrig_main, refused, signal_self, start_castrig, wait_until

SEARCH = ("explore", "--target-grade", "claim1", "--target-d-um", "3", "--tolerance", "0.01")
ONE_FIELD = ("--template", str(Path(__file__).with_name("one_field.yaml")))  # the default template imaging one field: cheaper trials
#: the same in reflected light only: for the tests whose trials are not judged (a map's points, a
#: search whose finding is not the point), ~0.8 s of CPU less a trial
ONE_VIEW = ("--template", str(Path(__file__).with_name("one_view.yaml")))


def _journal(folder: Path) -> list[dict]:
    path = folder / "trials.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written
            pass
    return out


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
def test_a_second_explore_on_the_same_folder_is_busy_and_a_rerun_after_kill_9_resumes(tmp_path, reap):
    data = tmp_path / "data"
    folder = data / "explore" / "claim1-d3um-s0"
    first = reap(start_castrig(*SEARCH, *ONE_FIELD, "--budget", "6", "--data", str(data)))
    wait_until(lambda: any(r["event"] == "started" for r in _journal(folder)), timeout_s=60, what="the first trial started")

    second = castrig(*SEARCH, *ONE_FIELD, "--budget", "6", "--data", str(data), timeout_s=60)
    assert second.returncode == 4, second.stdout + second.stderr
    assert "busy" in second.stderr and str(folder) in second.stderr and f"pid {first.pid}" in second.stderr
    assert "#0" not in second.stdout  # it ran nothing

    os.kill(first.pid, signal.SIGKILL)  # the OS drops the lock with the process
    first.wait(timeout=10)
    again = castrig(*SEARCH, *ONE_FIELD, "--budget", "2", "--data", str(data), timeout_s=120)
    assert again.returncode in (0, 1), again.stdout + again.stderr
    assert "resuming" in again.stdout or "#0" in again.stdout
    done = Counter(r["n"] for r in _journal(folder) if r["event"] == "done")
    assert done and max(done.values()) == 1, done  # no trial recorded twice


def _readline_within(proc: subprocess.Popen, timeout_s: float) -> str:
    """The next line of ``proc``'s stdout, or "" when none comes within ``timeout_s`` (a bare
    readline() would wait for ever on a process that prints nothing and never ends)."""
    import queue
    import threading

    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout_s)
    except queue.Empty:
        return ""


def _start_in_own_group(*args: str) -> subprocess.Popen:
    """``castrig ARGS`` in its own process group: it and its workers are killed together."""
    return subprocess.Popen([sys.executable, "-m", "castrig", *args], env=castrig_env(), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True)


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_a_second_map_on_the_same_folder_is_busy(tmp_path, reap, capsys):
    """Two `explore map` on one folder both ran workers and redrew the map; the second is now
    refused (exit 4) before it adds or runs anything, and the first goes on. (The second through
    the CLI's entry point in this process, conftest ``castrig_main``: the first, which holds the
    folder, is a process of its own all the same.)"""
    data = tmp_path / "data"
    args = ("explore", "map", "--rh", "60:70:5", "--concentration", "4:6:1", "--data", str(data), *ONE_VIEW)
    first = reap(_start_in_own_group(*args))
    try:
        line = _readline_within(first, 120)
        assert "points asked" in line, line
        second = castrig_main(capsys, *args)
        assert second.returncode == 4 and "busy" in second.stderr and f"pid {first.pid}" in second.stderr, \
            second.stdout + second.stderr
        assert "points asked" not in second.stdout
        assert first.poll() is None  # the first goes on (the rest of its map is not the point here)
    finally:
        _kill_group(first)


def _refused(result, option: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and option in result.stderr
    assert "START:STOP:STEP" in result.stderr or "allowed" in result.stderr


def test_map_ranges_must_be_finite_ordered_and_sane_before_anything_is_written(tmp_path, capsys):
    data = tmp_path / "data"

    def castrig(*args, timeout_s=None):  # refusals before anything runs: the CLI in this process
        return castrig_main(capsys, *args)

    for rh, why in (("nan:95:5", "nan is not a finite number"), ("60:70:inf", "inf is not a finite number"),
                    ("inf", "inf is not a finite number"), ("80:20:5", "START 80 is above STOP 20"),
                    ("60:70:0", "STEP 0 is not above 0"), ("60:70:-2", "STEP -2 is not above 0"),
                    ("60:70:1e-9", "more than 200 values")):
        r = castrig("explore", "map", "--rh", rh, "--concentration", "1:20:1", "--data", str(data), timeout_s=60)
        _refused(r, "--rh")
        assert why in r.stderr, (rh, r.stderr)
        assert ("START:STOP:STEP" in r.stderr or "values" in why) and "\U0001f171" not in r.stderr  # not 'A🅱STEP'
    r = castrig("explore", "map", "--rh", "60", "--concentration", "1:nan:1", "--data", str(data), timeout_s=60)
    _refused(r, "--concentration")
    r = castrig("explore", "map", "--rh", "1:b:2", "--concentration", "5", "--data", str(data), timeout_s=60)
    _refused(r, "--rh")
    assert "'1:b:2'" in r.stderr and "\U0001f171" not in r.stderr  # what was typed, not an emoji
    r = castrig("explore", "map", "--rh", "60", "--concentration", "5", "--flow", "nan", "--data", str(data), timeout_s=60)
    _refused(r, "--flow")
    r = castrig("explore", "map", "--rh", "55:90:0.25", "--concentration", "1:40:0.25", "--seeds", "3", "--data", str(data),
                timeout_s=60)
    assert r.returncode == 2 and "allowed: up to 5000" in r.stderr, r.stderr
    assert not data.exists()  # nothing written for any of them



def _a_map(data: Path, rhs: list[float]) -> str:
    """A claim-1 map study in DATA/explore/map-claim1 (the one-view template: asked again with
    ``*ONE_VIEW``), queued (not run) at ``rhs`` × 5 mg/mL, 2 slpm; its storage."""
    from castrig.explore.distributed import start_map, storage_url
    from castrig.explore.gridmap import Grid
    from castrig.explore.search import make_settings

    folder = data / "explore" / "map-claim1"
    url = storage_url(None, folder)
    settings = make_settings(grade="claim1", target_d_um=3.0, profile_path=Path("hw_profiles/sim.yaml").absolute(), budget=1,
                             support_pore_um=5.0, template_path=Path(ONE_VIEW[1]))
    folder.mkdir(parents=True)
    start_map(url, "map-claim1", settings, Grid(rhs, [5.0], [0.2], 2.0, [1]))
    return url

def test_a_map_folder_poisoned_with_nan_by_an_older_castrig_maps_again(tmp_path):
    from castrig.explore.distributed import load_study, map_results

    data = tmp_path / "data"
    url = _a_map(data, [float("nan")])  # what '--rh 60:70:inf' left
    r = castrig("explore", "map", "--rh", "60", "--concentration", "5", *ONE_VIEW, "--data", str(data), timeout_s=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "queued again" not in r.stderr
    rows = map_results(load_study(url, "map-claim1"))
    assert [row["point"]["rh_pct"] for row in rows] == [60.0]


def test_bad_support_pore_is_refused_before_anything_is_written_and_the_corrected_command_runs(tmp_path, capsys):
    data = tmp_path / "data"
    for value in ("1e9", "nan", "inf", "0", "-3"):
        r = castrig_main(capsys, "explore", "--target-grade", "claim1", "--budget", "1", "--support-pore-um", value, "--data", str(data))
        _refused(r, "--support-pore-um")
        assert "allowed: > 0 to 1000" in r.stderr
        r = castrig_main(capsys, "explore", "map", "--rh", "60", "--concentration", "5", "--support-pore-um", value, "--data", str(data))
        _refused(r, "--support-pore-um")
    assert not data.exists()
    r = castrig(*SEARCH, *ONE_VIEW, "--budget", "1", "--data", str(data), timeout_s=120)
    assert r.returncode in (0, 1) and "#0" in r.stdout, r.stdout + r.stderr  # not "this folder holds another search"


def test_an_out_path_that_cannot_take_the_recipe_is_refused_before_the_search_spends_its_budget(tmp_path, capsys):
    """--out was written only once a recipe was found: a missing folder was a FileNotFoundError
    traceback after every trial had run, a named pipe hung the finished search for a reader."""
    data = tmp_path / "data"
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "pipe.yaml")
    for out, why in ((tmp_path / "no-such" / "found.yaml", "its folder does not exist"), (tmp_path / "folder", "is a folder"),
                     (tmp_path / "pipe.yaml", "not a regular file"), (tmp_path / ("x" * 300 + ".yaml"), "a name longer than")):
        r = castrig_main(capsys, *SEARCH, *ONE_FIELD, "--tolerance", "0.5", "--budget", "1", "--data", str(data), "--out", str(out))
        _refused(r, f"--out {str(out)[:60]}")
        assert why in r.stderr, r.stderr
    assert not data.exists()  # no trial ran for any of them


def test_a_folder_holding_a_search_on_workers_takes_no_other_search_or_map(tmp_path, capsys):
    """Trial files, runs, map and found.yaml are named by trial number only: a second search on
    workers in a --folder that held one (another target) ran beside it and overwrote its
    trials/t00000..., a one-process search there ran its own trials blind to the study's, and a
    map there drew its map over the search's. Each is refused before anything runs."""
    from castrig.explore.distributed import start_search, storage_url
    from castrig.explore.search import make_settings

    folder = tmp_path / "mine"
    folder.mkdir()
    settings = make_settings(grade="claim1", target_d_um=3.0, tolerance=0.01, profile_path=Path("hw_profiles/sim.yaml").absolute(),
                             template_path=Path(ONE_FIELD[1]))
    start_search(storage_url(None, folder), "claim1-d3um-s0", settings)  # `--workers 2 --folder mine` was started here
    data = tmp_path / "data"
    common = (*ONE_FIELD, "--budget", "1", "--folder", str(folder), "--data", str(data))
    r = castrig_main(capsys, "explore", "--target-grade", "claim1", "--target-d-um", "4", "--workers", "2", *common)
    _refused(r, f"--folder {folder}")
    assert "holds another search, study 'claim1-d3um-s0'" in r.stderr, r.stderr
    r = castrig_main(capsys, *SEARCH, *common)  # the same search, resumed without --workers
    _refused(r, f"--folder {folder}")
    assert "holds a search run on workers" in r.stderr and "--workers N" in r.stderr, r.stderr
    r = castrig_main(capsys, "explore", "map", "--rh", "60", "--concentration", "5", *common[:2], *common[4:])
    _refused(r, f"--folder {folder}")
    assert not (folder / "trials").exists() and not (folder / "map.html").exists()  # nothing ran


def test_a_seed_a_worker_count_and_a_fix_that_cannot_be_meant_are_refused_before_anything_runs(tmp_path, capsys):
    """A 300-digit --seed named a search folder too long to make (an OSError traceback; with
    --workers a study name its workers refused: "not found in 0 search trials"); --max-trials 0
    or -1 did nothing and exited 0; --fix given twice ran at the last value without a word."""
    data = tmp_path / "data"
    (data / "explore").mkdir(parents=True)  # (an earlier search's: the folder name too long raised out of a look for it)
    for args, why in ((("--seed", "1" + "0" * 300), "allowed: 0 to 4294967295"), (("--seed", "4294967296"), "allowed: 0 to 4294967295"),
                      (("--fix", "rh_pct=50", "--fix", "rh_pct=60"), "--fix rh_pct given twice, = 50 and = 60")):
        r = castrig_main(capsys, *SEARCH, *ONE_FIELD, "--budget", "1", "--data", str(data), *args)
        _refused(r, args[0])
        assert why in r.stderr, r.stderr
    for n in ("0", "-1"):
        r = castrig_main(capsys, "explore", "worker", "--storage", f"journal:{tmp_path / 'study.journal'}", "--study", "s",
                         "--max-trials", n, "--data", str(data))
        _refused(r, "--max-trials")
    assert not any((data / "explore").iterdir())


def test_another_search_in_the_folder_is_named_by_the_setting_that_differs(tmp_path, capsys):
    from castrig.explore.journal import SearchFolder
    from castrig.explore.search import make_settings

    data = tmp_path / "data"
    folder = data / "explore" / "claim1-d3um-s0"
    old = make_settings(grade="claim1", target_d_um=3.0, tolerance=0.01, profile_path=Path("hw_profiles/sim.yaml").absolute(),
                        support_pore_um=8.0)
    SearchFolder(folder).open(old)  # a search with --support-pore-um 8 was started here
    r = castrig_main(capsys, *SEARCH, "--budget", "1", "--data", str(data))  # refused before anything runs
    assert r.returncode == 2, r.stdout + r.stderr
    assert "this folder holds another search" in r.stderr and "different: template.support_pore_um." in r.stderr, r.stderr


def test_the_map_example_in_the_help_is_accepted_and_map_values_are_checked_against_the_recipe(tmp_path, capsys):
    help_text = castrig_main(capsys, "explore", "--help").stdout
    example = next(line.split("castrig ", 1)[1].split() for line in help_text.splitlines() if "castrig explore map " in line)
    assert example[:2] == ["explore", "map"] and "--rh" in example
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "castrig", *example, "--data", str(data)], env=castrig_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=True)  # its workers in its process group: stopped with it below
    try:
        first = _readline_within(proc, 120)  # 'map NAME in STORAGE: N points asked ...' once it is under way, or nothing
    finally:
        _kill_group(proc)  # 380 runs: only its start is the point here
    assert "points asked" in first, first + proc.stderr.read()
    # the map's limits are the recipe's (RH 20 to 100) within what the twin's chamber levels off at (up to 96.9 %RH)
    for args, option in ((("--rh", "10"), "--rh"), (("--rh", "99"), "--rh"), (("--rh", "60", "--volume", "0:1:0.5"), "--volume"),
                         (("--rh", "60", "--flow", "50"), "--flow")):
        # (refusals before anything runs: the CLI in this process, conftest castrig_main)
        r = castrig_main(capsys, "explore", "map", *args, "--concentration", "5", "--data", str(tmp_path / "refused"))
        _refused(r, option)
    assert not (tmp_path / "refused").exists()



def _map_trials(folder: Path) -> list:
    from castrig.explore.distributed import load_study, storage_url

    if not (folder / "study.journal").is_file():
        return []
    try:
        return load_study(storage_url(None, folder), "map-claim1").get_trials(deepcopy=False)
    except Exception:  # noqa: BLE001 - the study not created yet
        return []


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _interrupt_when_running(args: tuple[str, ...], folder: Path, out: Path, reap) -> str:
    """Start the map (its own process group), wait until both workers are in a run, SIGINT its
    main process only (as `kill -INT` does): it must end within seconds with 130 and leave no
    worker behind. Its output."""
    with open(out, "w") as sink:
        proc = reap(subprocess.Popen([sys.executable, "-m", "castrig", *args], env=castrig_env(), text=True, stdout=sink,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True))
    try:
        def both_running() -> bool:
            time.sleep(0.5)  # (a journal read is not free on a loaded machine)
            if proc.poll() is not None:
                raise AssertionError(f"the map ended before it was interrupted: {out.read_text()}")
            return sum(t.state.name == "RUNNING" and "worker" in t.user_attrs for t in _map_trials(folder)) >= 2

        wait_until(both_running, timeout_s=120, what="both workers in a run")
        time.sleep(2)  # into the run's steps
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the map did not stop within 15 s of Ctrl-C: {out.read_text()}") from None
        assert proc.returncode == 130, out.read_text()
        wait_until(lambda: _group_gone(proc.pid), timeout_s=5, what="its workers gone")
        assert "Traceback" not in out.read_text(), out.read_text()
        return out.read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow  # ~30 s on CI; CI keeps tests/explore/test_explore_distributed.py::test_a_map_resumed_after_ctrl_c_runs_only_the_missing_points
def test_ctrl_c_stops_a_map_on_two_workers_within_seconds_and_a_rerun_resumes(tmp_path, reap):
    """Ctrl-C of `explore map --workers 2` took minutes: the workers were asked once (a run acts
    on it at its next safe point, and a capture step at RH 40 % renders for ~40 s without one)
    and waited on, 20 s then 10 s. Now the map ends within seconds, exit 130, no worker left;
    the runs cut short are queued again, so a rerun adds nothing, and no point is held twice."""
    from castrig.explore.gridmap import point_key

    data = tmp_path / "data"
    folder = data / "explore" / "map-claim1"
    fast = castrig("explore", "map", "--rh", "60", "--concentration", "3:5:1", "--workers", "2", "--data", str(data),
                   *ONE_FIELD, timeout_s=180)
    assert fast.returncode == 0 and "3 points done" in fast.stdout, fast.stdout + fast.stderr
    # grown by three slow points (RH 40 %) taken first
    args = ("explore", "map", "--rh", "40:60:20", "--concentration", "3:5:1", "--workers", "2", "--data", str(data), *ONE_FIELD)
    text = _interrupt_when_running(args, folder, tmp_path / "first.txt", reap)
    assert "6 points asked: 3 done before, 0 queued or running from before, 3 added" in text, text
    text = _interrupt_when_running(args, folder, tmp_path / "second.txt", reap)
    assert "6 points asked: 3 done before, 3 queued or running from before, 0 added" in text, text  # resumed
    held = Counter(point_key(t.user_attrs["point"], t.user_attrs["seed"]) for t in _map_trials(folder)
                   if t.state.name in ("COMPLETE", "WAITING", "RUNNING"))
    assert len(held) == 6 and set(held.values()) == {1}, held  # every point once: done, or queued again


@pytest.mark.parametrize("workers", [pytest.param("1", marks=pytest.mark.slow), "2"])  # CI: the workers' path (afd876d)
def test_a_recipe_found_at_another_flow_says_to_run_it_with_found_profile(tmp_path, workers):
    """A recipe found at a total flow the profile does not have needs found-profile.yaml: run with
    the profile it was searched on, it casts at the other flow. On two workers the search wrote
    that profile but neither its line nor the recipe's description named it (and the line named
    found.yaml, not --out): a user ran the recipe as written, at the wrong flow."""
    import yaml

    out = tmp_path / "mine.yaml"
    done = castrig("explore", "--target-grade", "claim1", "--target-d-um", "3.1", "--budget", "1", "--fix", "total_flow_slpm=3",
                   "--workers", workers, "--data", str(tmp_path / "data"), "--out", str(out), *ONE_FIELD,
                   timeout_s=90)  # (one field, one search trial: the template's own point at 3 slpm hits 3.1 µm; the flow is the point)
    assert done.returncode == 0, done.stderr[-2000:]
    profile = tmp_path / "data" / "explore" / "claim1-d3.1um-s0" / "found-profile.yaml"
    found_line = next(line for line in done.stdout.splitlines() if line.startswith("found claim1"))
    assert found_line.endswith(f": {out} with {profile}"), found_line
    assert yaml.safe_load(profile.read_text())["control"]["total_flow_slpm"] == 3.0
    description = " ".join(yaml.safe_load(out.read_text())["description"].split())
    assert "run with found-profile.yaml (control.total_flow_slpm = 3)" in description, description


def test_a_map_asked_again_at_another_flow_is_refused(tmp_path, capsys):
    """A map made at 2 slpm, asked again with --flow 3: its cells are keyed by RH, concentration
    and volume, so the 3 slpm point was drawn as a second seed of the 2 slpm cell (D the mean of
    the two flows'), and map.json said the whole map was made at 3 slpm."""
    from castrig.explore.distributed import load_study

    data = tmp_path / "data"
    url = _a_map(data, [60.0])  # at 2 slpm
    r = castrig_main(capsys, "explore", "map", "--rh", "60", "--concentration", "5", "--flow", "3", *ONE_VIEW,
                     "--data", str(data))  # refused before anything runs
    said = " ".join(r.stderr.split())
    assert r.returncode == 2 and "was made at --flow 2 slpm; --flow 3 would mix two flows" in said, r.stdout + r.stderr
    assert len(load_study(url, "map-claim1").get_trials(deepcopy=False)) == 1  # nothing queued at 3 slpm


def test_study_names_are_bounded_and_a_workers_folder_stays_in_the_data_root(tmp_path, capsys):
    """A 600-character --study was an Optuna traceback (exit 1); a study named
    "../../../escaped" gave its worker the folder DATA/explore/worker-../../../escaped, outside the
    data root."""
    from castrig.explore.distributed import start_map, storage_url
    from castrig.explore.gridmap import Grid
    from castrig.explore.search import make_settings

    long = castrig_main(capsys, "explore", "map", "--rh", "60", "--concentration", "5", "--study", "x" * 600,
                        "--data", str(tmp_path / "d"))  # refused before anything runs
    assert long.returncode == 2 and "--study" in long.stderr and "1 to 200 printable characters" in long.stderr, long.stderr
    assert "Traceback" not in long.stderr and not (tmp_path / "d").exists()
    journal = tmp_path / "study.journal"
    settings = make_settings(grade="claim1", target_d_um=3.0, profile_path=Path("hw_profiles/sim.yaml").absolute(), budget=1,
                             support_pore_um=5.0, template_path=Path(ONE_VIEW[1]))  # (cheaper trial)
    start_map(storage_url(None, tmp_path), "../../../escaped", settings, Grid([60.0], [5.0], [0.2], 2.0, [1]))
    here = tmp_path / "a" / "b" / "c"
    here.mkdir(parents=True)
    done = castrig("explore", "worker", "--storage", f"journal:{journal}", "--study", "../../../escaped", "--max-trials", "1",
                   "-q", cwd=here, CASTRIG_DATA=str(here / "runs"), timeout_s=180)
    assert done.returncode == 0, done.stdout + done.stderr
    outside = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
                     if p.is_dir() and here not in (p, *p.parents) and p not in here.parents and p.name != "study.workers")
    assert outside == [] and (here / "runs" / "explore" / "worker-_.._.._escaped").is_dir(), outside


def test_a_database_that_never_answers_is_given_up_on(tmp_path):
    """`explore worker --storage postgresql://…` on a server that accepts and never answers (a
    frozen one, a firewall dropping its replies) waited without end and without a word."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        port = silent.getsockname()[1]
        done = castrig("explore", "worker", "--storage", f"postgresql://u:Pw-9q2@127.0.0.1:{port}/db", "--study", "x",
                       "--data", str(tmp_path / "w"), timeout_s=60)
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and "cannot open it: connection timeout expired" in said and "Pw-9q2" not in said, done.stderr


@pytest.mark.parametrize("journal", ["named pipe", "/dev/zero"])
def test_a_journal_that_is_no_file_is_refused_not_read_for_ever(tmp_path, journal):
    """``--storage journal:PATH`` where PATH is a named pipe (a script's process substitution, a
    mistake) waited for ever on its open; /dev/zero was read without end, memory growing. Refused,
    exit 2, naming the path; a worker on it was told the journal "does not exist"."""
    import os

    if journal == "named pipe":
        journal = str(tmp_path / "study.journal")
        os.mkfifo(journal)
    for argv in (["explore", "map", "--rh", "50:60:10", "--concentration", "1:2:1", "--storage", f"journal:{journal}",
                  "--data", str(tmp_path / "d")],
                 ["explore", "worker", "--storage", f"journal:{journal}", "--study", "x", "--data", str(tmp_path / "w")]):
        done = castrig(*argv, timeout_s=30)
        said = " ".join(done.stderr.split())
        assert done.returncode == 2 and f"{journal} is not a regular file" in said and "Traceback" not in said, (argv, said)


def test_the_coordinator_rides_out_a_storage_that_stops_answering(capsys):
    """A 4-second PostgreSQL restart while `explore map --workers 2` watched its study: a
    StorageInternalError traceback, exit 1, and the workers were stopped with it. The study here
    stands for the database (the boundary): it fails twice, then answers."""
    import subprocess
    import sys

    from optuna.exceptions import StorageInternalError

    from castrig.cli.explore import _watch, storage_errors

    # _watch's imports done before the worker's 3 s start: under load they took most of 2 s, and
    # _watch asked only twice
    storage_errors()
    from castrig.explore.distributed import counted  # noqa: F401

    class Restarting:
        calls = 0

        def get_trials(self, deepcopy: bool = False) -> list:
            self.calls += 1
            if self.calls <= 2:
                raise StorageInternalError("server closed the connection unexpectedly")
            return []

    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    study = Restarting()
    _watch(study, [worker], lambda t: None)
    assert worker.returncode == 0 and study.calls >= 3
    assert "does not answer (StorageInternalError); the workers go on" in capsys.readouterr().out


def test_rh_beyond_the_twins_reach_at_the_flow_asked_is_refused_before_any_folder(tmp_path, capsys):
    """The twin's reach depends on the total flow (sim.yaml: 95.4 %RH at most at 0.8 slpm, 96.9 at
    the profile's 2.0). A map at 96 %RH and --flow 0.8 passed its check against the reach at 2.0,
    then run refused every trial ("allowed: 3.1 to 95.4"), each retried, and the map ended "0
    points done", exit 0; a search with --fix rh_pct=96 --fix total_flow_slpm=0.8 ended exit 2 at
    its first trial, its folder made. Both are refused up front now (exit 2), nothing written."""
    data = tmp_path / "data"
    refused(castrig_main(capsys, "explore", "map", "--rh", "96", "--concentration", "5", "--flow", "0.8", "--data", data),
            "--rh = 96: outside what a trial recipe can take", "allowed: 20 to 95.4 %RH at --flow 0.8 slpm",
            "levels off at 3.1 to 95.4 %RH at that total flow", "sim.yaml")
    refused(castrig_main(capsys, *SEARCH, "--budget", "3", "--fix", "rh_pct=96", "--fix", "total_flow_slpm=0.8", "--data", data),
            "--fix rh_pct = 96 %RH: beyond what the twin's chamber levels off at", "--fix total_flow_slpm = 0.8 slpm",
            "allowed: 3.1 to 95.4 %RH at 0.8 slpm")
    # a searched flow: the reach at its lowest end (the narrowest) holds the RH range
    space = tmp_path / "space.yaml"
    space.write_text("rh_pct: {low: 60, high: 96}\ntotal_flow_slpm: {low: 0.8, high: 3}\n")
    refused(castrig_main(capsys, *SEARCH, "--budget", "3", "--space", space, "--data", data),
            f"{space}: rh_pct.high = 96 %RH", "total_flow_slpm.low = 0.8 slpm", "allowed: 3.1 to 95.4 %RH at 0.8 slpm")
    assert not data.exists(), list(data.rglob("*"))


#: A sitecustomize: the process is killed (SIGKILL: no handler runs) the moment its map study has
#: been made and its points queued in the storage (``start_map`` returned).
KILL_ONCE_THE_MAP_IS_STARTED = signal_self("castrig.explore.distributed:start_map", "SIGKILL", after=True)


def test_a_map_killed_as_it_starts_leaves_its_folders_note(tmp_path):
    """`castrig explore map --storage journal:ELSEWHERE` killed -9 once its study was made and
    queued in that storage, before it wrote the folder's study.json: the folder said nothing of
    the study, and the same map in the folder's own storage was let start (two studies for one
    folder's trial files and map). The note is now written before the study is made: the second is
    refused, exit 2, naming the study and where it is."""
    from conftest import with_sitecustomize

    data, folder, elsewhere = tmp_path / "data", tmp_path / "map", tmp_path / "shared" / "map.journal"
    elsewhere.parent.mkdir()
    args = ("explore", "map", "--rh", "60", "--concentration", "5", "--data", str(data), "--folder", str(folder), *ONE_VIEW)
    killed = castrig(*args, "--storage", f"journal:{elsewhere}", **with_sitecustomize(tmp_path, KILL_ONCE_THE_MAP_IS_STARTED))
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-2000:])
    assert elsewhere.is_file()  # the study is there, queued
    refused(castrig(*args), f"--folder {folder}: holds study 'map-claim1' in journal:{elsewhere.resolve()} (study.json)",
            "allowed: --study map-claim1")
    assert not (folder / "study.journal").exists()
