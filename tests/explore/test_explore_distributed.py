"""Exploration on many workers (issue 19): studies in Optuna's journal file and in PostgreSQL, shared
by worker processes of the real CLI; a worker killed mid-trial; a map grown and resumed after
Ctrl-C. Every trial is a real twin run (about a second each)."""

from __future__ import annotations

import os
import signal
import uuid
from collections import Counter
from pathlib import Path

import pytest
import yaml

from castrig.explore.distributed import (_states, counted, load_study, map_results, reap_stale, start_map, storage_url,
                                         trial_kind)
from castrig.explore.gridmap import Grid, parse_range, point_key
from castrig.explore.search import make_settings

from conftest import castrig, castrig_main, process_state, signal_self, start_castrig, stopped, wait_until, with_sitecustomize

ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "hw_profiles" / "sim.yaml"
PG_URL = os.environ.get("CASTRIG_TEST_PG", "")
NO_PG = "no PostgreSQL for the tests: set CASTRIG_TEST_PG=postgresql://… (`.ci/postgres.sh` prints one)"
#: the default template imaging one field in reflected light: the trials here test how studies are shared,
#: resumed and stopped, never a verdict (the transmitted and section views were ~0.8 s of CPU more a trial)
ONE_VIEW = Path(__file__).with_name("one_view.yaml")


def _settings():
    return make_settings(grade="claim1", target_d_um=3.0, profile_path=SIM, support_pore_um=5.0, template_path=ONE_VIEW)


def _grid(rhs, cs, seeds=(1,)) -> Grid:
    return Grid(list(rhs), list(cs), [0.2], 2.0, list(seeds))


def _keys(study) -> Counter:
    return Counter(point_key(r["point"], r["seed"]) for r in map_results(study))


def _workers_used(study) -> set[int]:
    return {t.user_attrs["worker"]["pid"] for t in counted(study.get_trials(deepcopy=False))}


def test_parse_range_and_grid_growth_queue_only_missing_points(tmp_path):
    assert parse_range("50:60:5", "--rh") == [50.0, 55.0, 60.0]
    assert parse_range("7", "--rh") == [7.0]
    url = storage_url(None, tmp_path)
    study, queued = start_map(url, "m", _settings(), _grid([60, 70], [3, 6]))
    assert queued == 4
    _, queued = start_map(url, "m", _settings(), _grid([60, 70], [3, 6]))
    assert queued == 0  # asked again: nothing new
    study, queued = start_map(url, "m", _settings(), _grid([60, 70, 80], [3, 6], seeds=(1, 2)))
    assert queued == 8  # 12 pairs asked, 4 held
    assert len(study.get_trials(deepcopy=False)) == 12


def _share_a_study(url: str, folder: Path, name: str, reap) -> None:
    """Two `castrig explore worker` processes empty one queued map study between them. (Three
    points: each worker takes one as soon as it has started, and the first to finish one takes the
    third; a fourth was one more twin run, ~1 s of CPU.)"""
    study, queued = start_map(url, name, _settings(), _grid([65, 72.5, 80], [3]))
    assert queued == 3
    procs = [reap(start_castrig("explore", "worker", "--storage", url, "--study", name, "--data", str(folder / f"w{i}"), "-q"))
             for i in range(2)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
        err = p.stderr.read()
        # (Optuna's "Heartbeat of storage is supposed to be used with Study.optimize" reached
        # the user on every PostgreSQL worker and map)
        assert "Warning" not in err, err
    study = load_study(url, name)
    assert sorted(_keys(study).values()) == [1, 1, 1]  # every point once
    assert len(_workers_used(study)) == 2  # both workers took trials
    assert all(r["outcome"]["d_um"] for r in map_results(study))


def test_two_workers_share_a_journal_file_study(tmp_path, reap):
    _share_a_study(storage_url(None, tmp_path), tmp_path, "shared", reap)


@pytest.mark.skipif(not PG_URL, reason=NO_PG)
def test_two_workers_share_a_postgresql_study(tmp_path, reap):
    _share_a_study(PG_URL, tmp_path, f"test-{uuid.uuid4().hex[:8]}", reap)


#: A sitecustomize (:func:`with_sitecustomize`) for each of two maps: ``$HOLD_DIR/opened-$HOLD_TAG``
#: once the map has opened its storage (that opening's lock released), and, when it is about to
#: queue its first point (the study's points read, none queued yet), ``$HOLD_DIR/queuing-$HOLD_TAG``
#: and a wait (at most 60 s) for ``$HOLD_DIR/go``: the map held inside "read what is held, queue
#: what is not", the step growing a study must not share.
HOLD_FIRST_QUEUING = """
import os, time
from pathlib import Path
import optuna.study
import castrig.explore.distributed as d
_dir, _tag = Path(os.environ["HOLD_DIR"]), os.environ["HOLD_TAG"]
_open, _enqueue, _queued = d.open_storage, optuna.study.Study.enqueue_trial, []
def _opened(*a, **kw):
    storage = _open(*a, **kw)
    (_dir / f"opened-{_tag}").touch()
    return storage
def _held(self, *a, **kw):
    if not _queued:
        _queued.append(True)
        (_dir / f"queuing-{_tag}").touch()
        deadline = time.monotonic() + 60
        while not (_dir / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    return _enqueue(self, *a, **kw)
d.open_storage, optuna.study.Study.enqueue_trial = _opened, _held
"""


def _waits_on_a_lock(url: str, application: str) -> bool:
    """Whether a connection of ``application`` (libpq's PGAPPNAME) waits on a lock in the server."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
                           (application,)).fetchone()
    return bool(row and row[0])


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
@pytest.mark.skipif(not PG_URL, reason=NO_PG)
def test_two_maps_of_one_postgresql_study_started_together_run_each_point_once(tmp_path, reap, pg_schema):
    """Two `castrig explore map` of the same PostgreSQL study started at the same moment (an
    outside tester): each found the same points missing and queued them, and a 4-point grid ran 5
    trials (a 9-point one 14), the map counting points twice. Growing a study now holds it
    (a PostgreSQL advisory lock): the second map finds the first's points queued.
    On a new database (here a new schema) both also created Optuna's tables, and one ended
    "cannot open it: duplicate key value violates unique constraint" (CI met it once, when this
    was the first test to use the storage): opening a storage holds a lock too. That lock keeps two
    maps started together apart, study lock or not: the second opens its storage (Optuna checking
    its tables, ~0.5 s, longer under load) while the first reads and queues a 2-point grid
    (~0.1 s), and reads after it; left alone, this test passed with the study lock a no-op. So the
    first map to queue a point is held there, between reading the study's points and queuing its
    first, until the other reaches the same place (no study lock: both queue both points) or
    waits on a lock in the server with its storage open (held out of the study). (A 2-point grid
    here: points counted twice show the same way, at half the twin runs.)"""
    import psycopg

    url, schema = pg_schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")  # type: ignore[arg-type]
    storage = f"{url}?options=-csearch_path%3D{schema}"
    name = f"race-{uuid.uuid4().hex[:8]}"
    hold = tmp_path / "hold"
    hold.mkdir()
    hook = with_sitecustomize(tmp_path, HOLD_FIRST_QUEUING)
    args = ("explore", "map", "--rh", "65:80:15", "--concentration", "3", "--storage", storage, "--study", name,
            "--profile", str(SIM), "--template", str(ONE_VIEW))
    maps = {x: reap(start_castrig(*args, "--folder", str(tmp_path / x), HOLD_DIR=str(hold), HOLD_TAG=x,
                                  PGAPPNAME=f"castrig-{name}-{x}", **hook)) for x in "ab"}
    first = wait_until(lambda: next((x for x in maps if (hold / f"queuing-{x}").exists()), None), timeout_s=120,
                       what="a map about to queue its first point")
    other = "b" if first == "a" else "a"
    wait_until(lambda: (hold / f"queuing-{other}").exists()
               or ((hold / f"opened-{other}").exists() and _waits_on_a_lock(url, f"castrig-{name}-{other}")),
               timeout_s=120, what="the other map queuing too, or waiting on a lock with its storage open")
    (hold / "go").touch()
    said = {}
    for x, proc in maps.items():
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, (out, err[-2000:])
        said[x] = out
    study = load_study(storage, name)
    keys = _keys(study)
    assert len(keys) == 2 and all(n == 1 for n in keys.values()), (keys, said)
    assert len([t for t in study.get_trials(deepcopy=False) if "point" in t.user_attrs]) == 2, said
    assert "0 queued or running from before, 2 added" in said[first], said[first]
    assert "2 queued or running from before, 0 added" in said[other], said[other]


def _a_worker_mid_trial(url: str, name: str, tmp_path: Path, reap, monkeypatch):
    """A map study of 2 points and one `castrig explore worker` on it (1 s heartbeats, 4 s grace),
    returned once it runs a trial: (its process, that trial's number). (Two: the trial of the
    worker stopped or killed, and one other; each more is a twin run, ~1 s of CPU.)"""
    monkeypatch.setenv("CASTRIG_EXPLORE_HEARTBEAT_S", "1")
    monkeypatch.setattr("castrig.explore.distributed.HEARTBEAT_S", 1)
    monkeypatch.setattr("castrig.explore.distributed.GRACE_S", 4)
    start_map(url, name, _settings(), _grid([65, 80], [3]))
    worker = reap(start_castrig("explore", "worker", "--storage", url, "--study", name, "--data", str(tmp_path / "v"), "-q"))
    study = load_study(url, name)
    running = wait_until(lambda: [t for t in study.get_trials(deepcopy=False)
                                  if t.state == _states().RUNNING and t.user_attrs.get("worker", {}).get("pid") == worker.pid],
                         timeout_s=60, what="the worker running a trial", every_s=0.1)  # (each look asks the storage)
    return worker, running[0].number


@pytest.mark.parametrize("where", [pytest.param("journal", marks=pytest.mark.slow),  # ~11 s on CI; CI kills the PostgreSQL one
                                   pytest.param("postgresql", marks=pytest.mark.skipif(not PG_URL, reason=NO_PG))])
def test_a_worker_killed_mid_trial_loses_nothing_and_counts_nothing_twice(tmp_path, reap, where, monkeypatch):
    # PostgreSQL: Optuna's heartbeat finds the dead worker (1 s beats, 4 s grace for the test);
    # journal file: the worker's OS lock, free the moment it died.
    url = storage_url(None, tmp_path) if where == "journal" else PG_URL
    name = "kill" if where == "journal" else f"kill-{uuid.uuid4().hex[:8]}"
    victim, killed = _a_worker_mid_trial(url, name, tmp_path, reap, monkeypatch)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    survivor = castrig("explore", "worker", "--storage", url, "--study", name, "--data", str(tmp_path / "s"), "-q")
    assert survivor.returncode == 0, survivor.stderr
    study = load_study(url, name)
    trials = study.get_trials(deepcopy=False)
    assert sorted(_keys(study).values()) == [1, 1]
    failed = [t for t in trials if t.state == _states().FAIL]
    assert [t.number for t in failed] == [killed]
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == failed[0].number]
    assert len(retry) == 1 and retry[0].state == _states().COMPLETE
    assert retry[0].user_attrs["point"] == failed[0].user_attrs["point"]
    assert reap_stale(study, tmp_path / "study.journal" if where == "journal" else None) == []  # nothing left to reap


@pytest.mark.slow
def test_a_search_on_two_workers_resumes_from_the_storage_alone(tmp_path):
    folder = tmp_path / "s"
    args = ["explore", "--target-grade", "claim1", "--target-d-um", "3", "--workers", "2", "--folder", str(folder),
            "--profile", str(SIM)]
    first = castrig(*args, "--budget", "3", timeout_s=240)
    assert first.returncode in (0, 1), first.stderr
    study = load_study(storage_url(None, folder), "claim1-d3um-s0")
    n1 = sum(trial_kind(t) == "search" for t in counted(study.get_trials(deepcopy=False)))
    assert n1 >= 3 or "found" in first.stdout
    if "found" in first.stdout:
        return
    again = castrig(*args, "--budget", "5", timeout_s=240)
    assert again.returncode in (0, 1), again.stderr
    study = load_study(storage_url(None, folder), "claim1-d3um-s0")
    numbers = [t.number for t in counted(study.get_trials(deepcopy=False))]
    assert len(numbers) == len(set(numbers))
    assert sum(trial_kind(t) == "search" for t in counted(study.get_trials(deepcopy=False))) >= 5 or "found" in again.stdout


def test_a_map_resumed_after_ctrl_c_runs_only_the_missing_points(tmp_path, reap, capsys):
    folder = tmp_path / "map"
    # (3 points: one done before Ctrl-C, the rest missing -- a fourth was one more twin run)
    args = ["explore", "map", "--rh", "65:80:7.5", "--concentration", "3", "--folder", str(folder), "--profile", str(SIM),
            "--template", str(ONE_VIEW)]
    first = reap(start_castrig(*args))
    study = wait_until(lambda: (s := _try_load(folder)) is not None and map_results(s) and s, timeout_s=60, what="a first point",
                       every_s=0.2)  # (each look loads the study again)
    first.send_signal(signal.SIGINT)
    first.wait(timeout=60)
    done_before = {point_key(r["point"], r["seed"]): r["trial"] for r in map_results(load_study(storage_url(None, folder), "map-claim1"))}
    assert 1 <= len(done_before) < 3
    again = castrig(*args, timeout_s=120)
    assert again.returncode == 0, again.stderr
    assert f"3 points asked: {len(done_before)} done before" in again.stdout and "0 added" in again.stdout
    study = load_study(storage_url(None, folder), "map-claim1")
    assert sorted(_keys(study).values()) == [1, 1, 1]
    after = {point_key(r["point"], r["seed"]): r["trial"] for r in map_results(study)}
    assert all(after[k] == n for k, n in done_before.items())  # the points done before were not run again
    html = (folder / "map.html").read_text()
    assert "claim1 pass region" in html and "σd/D" in html
    _a_map_in_other_storage_is_refused_there(capsys, folder, args, tmp_path / "shared.db")


def _a_map_in_other_storage_is_refused_there(capsys, folder: Path, args: list[str], db: Path) -> None:
    """The map moved to shared storage, as a CI maintainer met it: the same command with
    ``--storage postgresql://…`` (a SQLite URL here: the same path, a storage outside the folder)
    ran, exit 0, and wrote its trial recipes over the journal map's ``trials/map-claim1/t00000``…
    and its map.json and map.html over the first's. Now refused, exit 2, nothing written; so is
    another --study there, and in a folder from before the folder noted its study (study.json)."""
    kept = {p: p.read_bytes() for p in (*(folder / "trials").rglob("recipe.yaml"), folder / "map.json", folder / "map.html")}
    assert len(kept) >= 5  # (three points: at least three trials, the map and its data)
    other = [*args[:3], "85", *args[4:], "--storage", f"sqlite:///{db}"]  # another point, in shared storage
    refused = castrig_main(capsys, *other)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "holds study 'map-claim1' in the folder's own study.journal" in refused.stderr, refused.stderr
    assert f"map 'map-claim1' in sqlite:///{db} would overwrite" in refused.stderr
    named = castrig_main(capsys, *other, "--study", "moved")
    assert named.returncode == 2 and "map 'moved' in sqlite" in named.stderr, named.stderr
    assert "allowed: --study map-claim1 in the folder's own study.journal to resume it, or another --folder" in named.stderr
    (folder / "study.json").unlink()  # (a folder made before castrig noted its study: its own journal says)
    legacy = castrig_main(capsys, *other)
    assert legacy.returncode == 2 and "holds study 'map-claim1' in the folder's own study.journal" in legacy.stderr, legacy.stderr
    assert {p: p.read_bytes() for p in kept} == kept, "the journal map's trial recipes or map were overwritten"
    assert not db.exists()  # refused before the storage was opened


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    """Not ended (an orphan's parent may be slow to reap it: a zombie has ended)."""
    try:
        return process_state(pid) not in ("Z", "X")
    except OSError:
        return False


def test_the_workers_of_a_coordinator_killed_9_take_no_more_trials(tmp_path):
    """``castrig explore map --workers 2`` killed -9 (or by the OOM killer): its stop_workers never
    runs. Before, its two workers went on alone through the whole map, unseen and beyond any
    Ctrl-C, and the map started again to resume it ran two more workers beside them. Now each
    ends after the trial it was running (told or given back); the map goes on when asked again."""
    folder = tmp_path / "map"
    # (100 points: ~2 minutes of CPU for two workers, so a worker still running at the end of
    # the wait below is one that went on with the map)
    coordinator = start_castrig("explore", "map", "--rh", "50:95:5", "--concentration", "1:10:1", "--workers", "2",
                                "--folder", str(folder), "--profile", str(SIM), "--template", str(ONE_VIEW))
    workers: list[int] = []
    try:
        # (each look reads every process's stat, or loads the study again: 5 a second, not 50)
        workers = wait_until(lambda: len(kids := _children(coordinator.pid)) == 2 and kids, timeout_s=60, what="two workers",
                             every_s=0.2)
        wait_until(lambda: (s := _try_load(folder)) is not None and map_results(s), timeout_s=60, what="a first point",
                   every_s=0.2)
        coordinator.kill()
        coordinator.wait(timeout=10)
        wait_until(lambda: not any(_alive(pid) for pid in workers), timeout_s=60, what="the orphaned workers to end")
    finally:
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    study = load_study(storage_url(None, folder), "map-claim1")
    assert not [t.number for t in study.get_trials(deepcopy=False) if t.state == _states().RUNNING]
    assert len(map_results(study)) < 100


#: A sitecustomize: the first trial a process asks of its study is held 3 s after Optuna has made
#: it (``$ASKED`` is created then), so a Ctrl-C lands between the ask and the worker's mark.
ASK_THEN_HOLD = """
import os, time
import optuna.study
_ask = optuna.study.Study.ask
def ask(self, *a, **kw):
    trial = _ask(self, *a, **kw)
    if not os.path.exists(os.environ["ASKED"]):
        open(os.environ["ASKED"], "w").close()
        time.sleep(3)
    return trial
optuna.study.Study.ask = ask
"""


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
def test_ctrl_c_just_after_a_trial_is_asked_leaves_no_trial_running(tmp_path, reap):
    """A Ctrl-C as Optuna had made a trial, before the worker marked it, left the trial RUNNING and
    unmarked: the map run again waited 60 s (the grace of a worker killed there) before it ran the
    point again, saying nothing; the suite met it under load (65 s for a 4-point map)."""
    folder, asked = tmp_path / "map", tmp_path / "asked"
    args = ["explore", "map", "--rh", "65:80:15", "--concentration", "3", "--folder", str(folder), "--profile", str(SIM),
            "--template", str(ONE_VIEW)]
    first = reap(start_castrig(*args, ASKED=str(asked), **with_sitecustomize(tmp_path, ASK_THEN_HOLD)))
    wait_until(asked.exists, timeout_s=60, what="the first trial asked")
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=60) == 130
    study = load_study(storage_url(None, folder), "map-claim1")
    assert not study.get_trials(deepcopy=False, states=(_states().RUNNING,))  # given back, queued again
    again = castrig(*args, timeout_s=120)
    assert again.returncode == 0, again.stderr
    assert sorted(_keys(load_study(storage_url(None, folder), "map-claim1")).values()) == [1, 1]


def _try_load(folder: Path):
    try:
        return load_study(storage_url(None, folder), "map-claim1")
    except Exception:  # noqa: BLE001 - not created yet
        return None


@pytest.mark.slow  # ~18 s; the journal worker stopped the same way (and the PostgreSQL worker killed) run in every suite
@pytest.mark.skipif(not PG_URL, reason=NO_PG)
def test_a_worker_stopped_past_its_grace_drops_its_late_result_quietly(tmp_path, reap, monkeypatch):
    """SIGSTOP a PostgreSQL worker mid-trial (a suspended laptop, a paused VM) for longer than the
    heartbeat's grace: another worker fails its trial as stale and retries it; when the stopped one
    wakes and finishes, its result is dropped and it says so, without calling its trial failed and
    queued again (that was done by the other worker) or counting it among its errors."""
    name = f"stop-{uuid.uuid4().hex[:8]}"
    sleeper, number = _a_worker_mid_trial(PG_URL, name, tmp_path, reap, monkeypatch)
    os.kill(sleeper.pid, signal.SIGSTOP)
    other = castrig("explore", "worker", "--storage", PG_URL, "--study", name, "--data", str(tmp_path / "s"), "-q")
    assert other.returncode == 0, other.stderr
    os.kill(sleeper.pid, signal.SIGCONT)
    assert sleeper.wait(timeout=60) == 0
    err = sleeper.stderr.read()
    assert "queued again" not in err and "Traceback" not in err, err
    assert f"trial {number}" in err and "stale" in err, err
    study = load_study(PG_URL, name)
    assert sorted(_keys(study).values()) == [1, 1]


def test_a_damaged_journal_is_refused_naming_its_line(tmp_path, capsys):
    """A study journal with a line of NULs in it (a power cut): `castrig explore map` run again to
    resume it, and a worker joining it, ended with Optuna's JSONDecodeError traceback and exit 1
    (which says "budget spent"). Each is refused, exit 2, naming the file and the line; the
    journal is left as it was (nothing appended to it)."""
    from conftest import spoil_journal_line

    folder = tmp_path / "map"
    journal = folder / "study.journal"
    start_map(storage_url(None, folder), "map-claim1", _settings(), _grid([65.0, 80.0], [3.0]))
    spoilt = spoil_journal_line(journal, 2)
    for args in (["explore", "map", "--rh", "65:80:15", "--concentration", "3", "--folder", str(folder), "--profile", str(SIM)],
                 ["explore", "worker", "--storage", f"journal:{journal}", "--study", "map-claim1"]):
        done = castrig_main(capsys, *args)
        assert done.returncode == 2, (args, done.returncode, done.stderr[-2000:])
        assert f"{journal}: damaged study journal (line 2 is not a journal entry" in done.stderr, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
        assert journal.read_bytes() == spoilt


def test_a_cut_journal_is_opened_from_its_whole_entries(tmp_path, capsys):
    """The journal's last entry cut off (a power cut mid-write): opening the study replayed it
    into a JSONDecodeError, and the next append went on the cut line. The cut entry is dropped
    (said on stderr) and the study opens from the entries before it; the CLI runs below (slow)."""
    from castrig.explore.distributed import open_storage

    url = storage_url(None, tmp_path)
    start_map(url, "map-claim1", _settings(), _grid([65.0, 80.0], [3.0]))
    journal = tmp_path / "study.journal"
    journal.write_bytes(journal.read_bytes()[:-40])
    capsys.readouterr()
    open_storage(url)
    assert "its last entry was cut off" in capsys.readouterr().err
    assert journal.read_bytes().endswith(b"\n")
    # the second point's entry was the one cut: growing the map again queues it, and only it
    assert len([t for t in load_study(url, "map-claim1").get_trials(deepcopy=False) if "point" in t.user_attrs]) == 1
    _, queued = start_map(url, "map-claim1", _settings(), _grid([65.0, 80.0], [3.0]))
    assert queued == 1


@pytest.mark.slow  # ~12 s each: test_a_cut_journal_is_opened_from_its_whole_entries runs in every suite
@pytest.mark.parametrize("keep", [-40, 3000])
def test_a_journal_whose_last_write_was_cut_goes_on_from_its_whole_entries(tmp_path, keep):
    """A journal whose last entry was cut off (a power cut, a full disk mid-write): `castrig
    explore map` run again to resume it ended in Optuna's JSONDecodeError traceback (exit 1),
    having first appended its own entry onto the cut line, and every later start was refused
    (damaged journal). Cut right after its study was created (its settings written, their kind
    not: ``keep`` 3000 bytes) it was "another None". Now the cut entry is dropped (said on
    stderr) and the map goes on: every point done, each counted once."""
    folder = tmp_path / "map"
    journal = folder / "study.journal"
    args = ("explore", "map", "--rh", "65:80:15", "--concentration", "3", "--profile", str(SIM), "--folder", str(folder))
    done = castrig(*args, timeout_s=120)
    assert done.returncode == 0, done.stderr[-2000:]
    journal.write_bytes(journal.read_bytes()[:keep])
    assert not journal.read_bytes().endswith(b"\n")
    done = castrig(*args, timeout_s=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"{journal}: its last entry was cut off" in " ".join(done.stderr.split()), done.stderr
    assert "2 points done" in done.stdout, done.stdout
    again = castrig(*args, timeout_s=120)  # the journal whole again: nothing to drop, nothing to add
    assert again.returncode == 0 and "cut off" not in again.stderr and "0 added" in again.stdout, again.stdout + again.stderr
    study = load_study(storage_url(None, folder), "map-claim1")
    assert len(_keys(study)) == 2 and all(n == 1 for n in _keys(study).values()), _keys(study)


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
@pytest.mark.skipif(not PG_URL, reason=NO_PG)
def test_the_workers_get_the_storage_url_by_the_environment_not_the_command_line(tmp_path, reap):
    """`--workers 2 --storage postgresql://user:PW@…` started each worker with the URL as an
    argument: every user of the machine read the password in `ps`. The environment of a
    process only its own user can read."""
    name = f"pw-{uuid.uuid4().hex[:8]}"
    # (30 points: the workers are still at them when they are looked at, then Ctrl-C ends them)
    coordinator = reap(start_castrig("explore", "map", "--rh", "60:80:5", "--concentration", "3:8:1", "--workers", "2",
                                     "--storage", PG_URL, "--study", name, "--folder", str(tmp_path / "map"),
                                     "--profile", str(SIM), "--template", str(ONE_VIEW)))

    def workers() -> list[int]:
        # (the coordinator's children that are workers: under load another short-lived child of
        # it was counted as the second worker and read as a zombie, its argv empty)
        found = []
        for proc in Path("/proc").iterdir():
            try:
                stat = (proc / "stat").read_text()
                if (proc.name.isdigit() and int(stat.rsplit(")", 1)[1].split()[1]) == coordinator.pid
                        and b"worker" in (proc / "cmdline").read_bytes().split(b"\0")):
                    found.append(int(proc.name))
            except (OSError, ValueError, IndexError):
                continue
        return found

    pids = wait_until(lambda: len(w := workers()) == 2 and w, timeout_s=60, what="two workers")
    try:
        for pid in pids:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert b"worker" in argv and not any(PG_URL.encode() in a for a in argv), argv
            assert b"CASTRIG_EXPLORE_STORAGE=" + PG_URL.encode() in environ
    finally:
        coordinator.send_signal(signal.SIGINT)
        coordinator.wait(timeout=60)


#: A sitecustomize: the castrig process running ``explore $SIGINT_IN`` (map: the coordinator, not
#: its workers; worker) sends itself SIGINT -- a Ctrl-C -- once ``$ARMED`` exists, from its main
#: thread, at the moment it has sent the ping with which SQLAlchemy checks a pooled connection out
#: (``pool_pre_ping``: the start of every look at the study, and of telling it a result).
SIGINT_IN_THE_PING = signal_self(
    "psycopg._cursor_base:BaseCursor._execute_send", "SIGINT", after=True,
    when='_in_ping and sys.argv[2:3] == [os.environ["SIGINT_IN"]] and threading.current_thread() is threading.main_thread() '
         'and os.path.exists(os.environ["ARMED"]) and not os.unlink(os.environ["ARMED"])',  # (disarmed as it fires)
    prelude="""
import threading
from sqlalchemy.dialects.postgresql import _psycopg_common as common
_ping, _in_ping = common._PGDialect_common_psycopg.do_ping, []
def do_ping(self, conn):  # (inside the pool's ping: where the signal lands)
    _in_ping.append(1)
    try:
        return _ping(self, conn)
    finally:
        _in_ping.pop()
common._PGDialect_common_psycopg.do_ping = do_ping
""")


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
@pytest.mark.skipif(not PG_URL, reason=NO_PG)
def test_ctrl_c_while_the_coordinator_reads_the_study_ends_the_map(tmp_path, reap):
    """Ctrl-C to `castrig explore map --workers 2 --storage postgresql://...` did not end it
    within 60 s, twice in the suite under load (it ends in ~1 s otherwise). The coordinator looks
    at the study every 0.5 s; a SIGINT that arrived in the ping of that look (SQLAlchemy's
    ``pool_pre_ping``) raised its KeyboardInterrupt inside psycopg, whose clean-up replaced it with
    "can't change 'autocommit' now" (a StorageInternalError): the coordinator said the storage did
    not answer and watched on, Ctrl-C lost, until the workers had run every point of the map. Here
    the Ctrl-C is sent at that moment; the map ends (130), its workers stopped, the study
    resumable: nothing left running, the points done counted once."""
    name, armed = f"ping-{uuid.uuid4().hex[:8]}", tmp_path / "armed"
    # (30 points: minutes of twin runs for two workers, far past the bound below)
    coordinator = reap(start_castrig("explore", "map", "--rh", "60:80:5", "--concentration", "3:8:1", "--workers", "2",
                                     "--storage", PG_URL, "--study", name, "--folder", str(tmp_path / "map"),
                                     "--profile", str(SIM), "--template", str(ONE_VIEW), ARMED=str(armed), SIGINT_IN="map",
                                     **with_sitecustomize(tmp_path, SIGINT_IN_THE_PING)))
    # (its two workers started: it watches the study; not waiting for their trials keeps the test
    # within the suite's 120 s under load, where starting three processes takes most of a minute)
    wait_until(lambda: len(_worker_children(coordinator.pid)) == 2, timeout_s=90, what="two workers")
    armed.touch()
    wait_until(lambda: not armed.exists(), timeout_s=30, what="the Ctrl-C sent")
    # (the workers are given 2 + 4 + 5 s to stop; the rest is the coordinator's own exit)
    code = coordinator.wait(timeout=60)
    out, err = coordinator.communicate()
    assert code == 130 and "does not answer" not in out, (code, out, err[-2000:])
    study = load_study(PG_URL, name)
    assert not study.get_trials(deepcopy=False, states=(_states().RUNNING,))  # given back, queued again
    assert all(n == 1 for n in _keys(study).values()) and len(_keys(study)) < 30


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
@pytest.mark.skipif(not PG_URL, reason=NO_PG)
def test_ctrl_c_while_a_worker_reads_the_study_ends_it(tmp_path, reap):
    """The same Ctrl-C lost in `castrig explore worker` (and in a map's one worker, its own
    process): a SIGINT in the ping of a look at the study, or of telling it a result, was replaced
    by a StorageInternalError ("trial failed, queued again") or dropped, and the worker ran on
    through the study. It ends now (130), nothing left running, each point done counted once."""
    name, armed = f"ping-{uuid.uuid4().hex[:8]}", tmp_path / "armed"
    start_map(PG_URL, name, _settings(), _grid([60, 65, 70, 75, 80], [3, 4, 5, 6]))  # 20 points: a minute and more of twin runs
    worker = reap(start_castrig("explore", "worker", "--storage", PG_URL, "--study", name, "--data", str(tmp_path / "w"), "-q",
                                ARMED=str(armed), SIGINT_IN="worker", **with_sitecustomize(tmp_path, SIGINT_IN_THE_PING)))
    study = load_study(PG_URL, name)
    wait_until(lambda: study.get_trials(deepcopy=False, states=(_states().RUNNING,)), timeout_s=120, what="the worker running a trial")
    armed.touch()
    wait_until(lambda: not armed.exists() or worker.poll() is not None, timeout_s=60, what="the Ctrl-C sent")
    code = worker.wait(timeout=60)
    out, err = worker.communicate()
    assert code == 130 and "queued again" not in err, (code, out, err[-2000:])
    study = load_study(PG_URL, name)
    assert not study.get_trials(deepcopy=False, states=(_states().RUNNING,))
    assert all(n == 1 for n in _keys(study).values()) and len(_keys(study)) < 20


def _worker_children(pid: int) -> list[int]:
    """The `castrig explore worker` processes whose parent is ``pid``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if (proc.name.isdigit() and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid
                    and b"worker" in (proc / "cmdline").read_bytes().split(b"\0")):
                found.append(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


@pytest.mark.skipif(not PG_URL, reason=NO_PG)
def test_an_explorations_twin_trials_stay_out_of_the_fleet_store(tmp_path, pg_schema):
    """With CASTRIG_STORE set (a rig's shell), every twin trial of `castrig explore` was written
    into the fleet catalog beside the rig's real runs."""
    import psycopg

    url, schema = pg_schema
    done = castrig("explore", "map", "--rh", "60", "--concentration", "5", "--folder", str(tmp_path / "map"),
                   "--profile", str(SIM), "--template", str(ONE_VIEW), CASTRIG_STORE=url, CASTRIG_STORE_SCHEMA=schema,
                   timeout_s=180)
    assert done.returncode == 0 and "1 points done" in done.stdout, done.stdout + done.stderr
    assert list((tmp_path / "map").rglob("run.json"))  # the trial's run folder, in the map folder
    with psycopg.connect(url) as conn:
        runs = conn.execute("select to_regclass(%s)", (f"{schema}.runs",)).fetchone()[0]
        assert runs is None or conn.execute(f"select count(*) from {schema}.runs").fetchone()[0] == 0  # type: ignore[arg-type,index]


@pytest.mark.slow  # ~8 s for a message's words
def test_a_map_asked_again_with_other_settings_names_only_what_differs(tmp_path):
    """Only --support-pore-um changed on an existing map: refused, rightly, but the message said
    "different: grid, template" though the grid was the same (an outside tester)."""
    args = ("explore", "map", "--rh", "65", "--concentration", "3", "--profile", str(SIM), "--folder", str(tmp_path / "m"))
    assert castrig(*args, timeout_s=120).returncode == 0
    done = castrig(*args, "--support-pore-um", "7", timeout_s=120)
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and "holds another map (different: template.support_pore_um)" in said, said


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
def test_a_stopped_journal_worker_does_not_hold_its_map_up(tmp_path, reap, monkeypatch):
    """SIGSTOP a journal-study worker mid-trial (Ctrl-Z in its terminal, a paused VM): it held its
    OS lock, so its trial never went stale and the others waited on it without a word for as long
    as it was stopped (an outside tester: over 70 s). Its lease's heartbeat stops with it: past
    the grace another worker fails and retries its trial, and the stopped one, woken, drops its
    late result. Every point counted once."""
    url = storage_url(None, tmp_path)
    sleeper, number = _a_worker_mid_trial(url, "stop", tmp_path, reap, monkeypatch)
    os.kill(sleeper.pid, signal.SIGSTOP)
    try:
        other = castrig("explore", "worker", "--storage", url, "--study", "stop", "--data", str(tmp_path / "s"), "-q",
                        CASTRIG_EXPLORE_HEARTBEAT_S="1", timeout_s=120)
    finally:
        os.kill(sleeper.pid, signal.SIGCONT)
    assert other.returncode == 0, other.stderr
    assert sleeper.wait(timeout=60) == 0
    err = sleeper.stderr.read()
    assert f"trial {number}" in err and "stale" in err and "Traceback" not in err, err
    study = load_study(url, "stop")
    assert sorted(_keys(study).values()) == [1, 1]


#: A process that takes the study journal's append lock and stops itself, as a worker Ctrl-Z'd or
#: SIGSTOPped in the middle of an append would.
_HOLD_AND_STOP = ("import fcntl, os, signal, sys\n"
                  "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
                  "fcntl.flock(fd, fcntl.LOCK_EX)\n"
                  "print('held', flush=True)\n"
                  "os.kill(os.getpid(), signal.SIGSTOP)\n")


def test_a_process_stopped_while_holding_the_journal_lock_holds_no_worker_up(tmp_path, reap):
    """CI met it: a journal worker SIGSTOPped just after writing its trial's mark, still inside
    the journal's append lock, and the next worker waited on that kernel lock for as long as it
    was stopped (the test's 120 s). A holder seen stopped for STOPPED_HOLDER_S is passed by, and
    the worker says so; appends are whole without the lock."""
    import subprocess
    import sys

    url = storage_url(None, tmp_path)
    start_map(url, "held", _settings(), _grid([65], [3]))
    holder = reap(subprocess.Popen([sys.executable, "-c", _HOLD_AND_STOP, str(tmp_path / "study.journal.flock")], stdout=subprocess.PIPE, text=True))
    assert holder.stdout.readline().strip() == "held"
    wait_until(lambda: stopped(holder.pid), timeout_s=10, what="the holder stopped")
    done = castrig("explore", "worker", "--storage", url, "--study", "held", "--data", str(tmp_path / "w"), "-q",
                   timeout_s=120)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stderr.split())
    assert f"held by process {holder.pid}, which is stopped" in said and said.count("which is stopped") == 1, said
    assert stopped(holder.pid)  # (still holding it)
    assert sorted(_keys(load_study(url, "held")).values()) == [1]


def test_a_live_holder_of_the_journal_lock_is_waited_for(tmp_path):
    """Only a *stopped* holder is passed by: one that holds the lock longer than STOPPED_HOLDER_S
    while running (a slow disk's fsync) is waited for, without a word."""
    import subprocess
    import sys
    import time

    from castrig.explore import journal_lock

    path = tmp_path / "study.journal"
    hold = _HOLD_AND_STOP.replace("os.kill(os.getpid(), signal.SIGSTOP)", "import time; time.sleep(3)")
    holder = subprocess.Popen([sys.executable, "-c", hold, f"{path}.flock"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = journal_lock.journal_lock(path)
        began = time.monotonic()
        assert lock.acquire() and lock.fd is not None  # taken, not passed by
        assert time.monotonic() - began > journal_lock.STOPPED_HOLDER_S and holder.poll() is not None
        lock.release()
    finally:
        holder.kill()
        holder.wait()


def test_a_stopped_holder_cutting_a_torn_entry_off_is_never_passed_by(tmp_path, reap):
    """A review of the pass-by: the same lock guards cutting a torn last entry off (the file
    measured, then truncated). A holder stopped inside that, passed by, would wake and truncate
    away the entries appended meanwhile. That change holds the lock ``exclusive`` (the lock file
    says so): an append waits for it however long it is stopped, and goes on once it is gone."""
    import subprocess
    import sys
    import threading

    from castrig.explore import journal_lock

    path = tmp_path / "study.journal"
    hold = _HOLD_AND_STOP.replace("print('held', flush=True)", "os.pwrite(fd, b'exclusive', 0)\nprint('held', flush=True)")
    holder = reap(subprocess.Popen([sys.executable, "-c", hold, f"{path}.flock"], stdout=subprocess.PIPE, text=True))
    assert holder.stdout.readline().strip() == "held"
    wait_until(lambda: stopped(holder.pid), timeout_s=10, what="the holder stopped")
    lock = journal_lock.journal_lock(path)
    taken = threading.Event()
    threading.Thread(target=lambda: (lock.acquire(), taken.set()), daemon=True).start()
    assert not taken.wait(journal_lock.STOPPED_HOLDER_S + 2.0)  # not passed by
    os.kill(holder.pid, signal.SIGKILL)
    assert taken.wait(10) and lock.fd is not None  # taken once the holder is gone
    lock.release()


def test_cutting_a_torn_entry_waits_for_a_stopped_holder_and_says_so(tmp_path, reap, capfd):
    """The exclusive side (a second review: it was never exercised): cutting a torn entry off
    never passes a stopped holder by, and says once that it waits, where it had waited in
    silence; held, the lock file says 'exclusive'; released, nothing."""
    import subprocess
    import sys
    import threading

    from castrig.explore import journal_lock

    path = tmp_path / "study.journal"
    holder = reap(subprocess.Popen([sys.executable, "-c", _HOLD_AND_STOP, f"{path}.flock"], stdout=subprocess.PIPE, text=True))
    assert holder.stdout.readline().strip() == "held"
    wait_until(lambda: stopped(holder.pid), timeout_s=10, what="the holder stopped")
    lock = journal_lock.journal_lock(path)
    taken = threading.Event()
    threading.Thread(target=lambda: (lock.acquire(exclusive=True), taken.set()), daemon=True).start()
    assert not taken.wait(journal_lock.STOPPED_HOLDER_S + 1.0)
    assert f"held by process {holder.pid}, which is stopped" in capfd.readouterr().err
    os.kill(holder.pid, signal.SIGKILL)
    assert taken.wait(10)
    assert (tmp_path / "study.journal.flock").read_bytes() == journal_lock.EXCLUSIVE
    lock.release()
    assert (tmp_path / "study.journal.flock").read_bytes() == b""



def test_workers_of_two_studies_sharing_one_data_folder_keep_each_trials_recipe(tmp_path):
    """Two hand-started `castrig explore worker`s of different studies (one journal) given the same
    --data wrote their trial files by trial number alone: both studies' first trial is 0, so the
    second worker's trials/t00000/recipe.yaml replaced the first's, and a worker whose run read its
    recipe after that ran the other study's point (RH 80 for a trial of RH 65), recorded as its
    own. Now each study's trials have their own folder (trials/STUDY/tNNNNN). The workers run in
    this process, the other study's worker taking its trial while the first's run starts (what
    two processes do side by side); the runs themselves are left out: the recipe each run is given
    is what the test follows (a twin run is ~1.2 s of CPU each).

    And their runs had one name: both recipes were ``explore-claim1-t00000``, which names the run
    folder (``<stamp>-explore-claim1-t00000``) and the row of `castrig runs` and serve, and a lab
    could not tell one study's run from the other's. Now each is named after its study, within a
    recipe name's 80 characters and folder-safe for a study name of 200 characters with a space."""
    from castrig.explore.distributed import Worker, folder_name
    from castrig.explore.search import RunOutput
    from castrig.recipe.model import Recipe
    from castrig.store.sqlite_store import _safe, run_folder_word

    b = "map b/" + "x" * 194  # (--study takes 200 printable characters)
    url = storage_url(None, tmp_path)
    start_map(url, "map-a", _settings(), _grid([65], [3]))
    start_map(url, b, _settings(), _grid([80], [3]))
    data = tmp_path / "shared"
    given: dict[str, dict] = {}

    def run_b(recipe: Path, profile: Path, runs: Path, seed: int) -> RunOutput:
        given[b] = yaml.safe_load(recipe.read_text())
        return RunOutput("completed", None, None, None)

    def run_a(recipe: Path, profile: Path, runs: Path, seed: int) -> RunOutput:
        Worker(url, b, data, runner=run_b).run(1)  # the other study's worker, meanwhile
        given["map-a"] = yaml.safe_load(recipe.read_text())  # (read as the run starts)
        return RunOutput("completed", None, None, None)

    assert Worker(url, "map-a", data, runner=run_a).run(1) == 1
    for name, rh in (("map-a", 65.0), (b, 80.0)):
        rhs = {s["setpoint_rh_pct"] for s in given[name]["steps"] if "setpoint_rh_pct" in s}
        assert rhs == {rh}, (name, rhs)  # (map-a's run was given map-b's recipe: {80.0})
        kept = yaml.safe_load((data / "trials" / folder_name(name) / "t00000" / "recipe.yaml").read_text())
        assert kept == given[name], name
        Recipe.model_validate(kept)  # (a name over 80 characters: the run refused its own recipe)
    assert given["map-a"]["name"] == "explore-map-a-t00000"
    long_name = given[b]["name"]
    assert long_name.startswith("explore-map_b_xxx") and long_name.endswith("-t00000") and len(long_name) <= 80, long_name
    # the run folders as castrig run names them: apart, and names the file system takes as they are
    folders = {_safe(f"20261207-120000-{run_folder_word(given[n]['name'])}") for n in given}
    assert folders == {f"20261207-120000-{r['name']}" for r in given.values()} and len(folders) == 2, folders
