"""Issue 15, storage: a full disk (a real one: a small tmpfs, as root), damaged and read-only run
folders, exports that never follow a symlink, micrographs with the usual file mode, and the
`runs` filters that name bad input — each a clear error, nothing lost, no run left running."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, RUN_FOLDER_DAMAGES, castrig, castrig_main

SHORT = ROOT / "tests" / "data" / "short.yaml"
LONG_WAIT = ROOT / "tests" / "data" / "long_wait.yaml"


@pytest.fixture
def small_disk(mounts):
    """``small_disk(kib)``: a tmpfs of that size to fill."""
    return lambda kib: mounts("castrig-full-", ["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs"])


def test_disk_full_mid_run_exits_3_safe_with_the_outcome_recorded(small_disk):
    data = small_disk(400) / "runs"
    done = castrig("run", "recipes/overnight.yaml", "--data", str(data), timeout_s=60)
    text = done.stdout + done.stderr
    assert done.returncode == 3, text[-2000:]
    assert "Traceback" not in text
    assert "safe state verified" in text  # the summary is printed
    (run_dir,) = [p for p in data.iterdir() if p.is_dir()]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["outcome"] == "faulted" and info["outcome_reason"].startswith("disk full")
    assert not list(run_dir.glob(".*.tmp"))


def test_disk_full_when_the_folder_is_made_leaves_no_running_folder(small_disk):
    data = small_disk(40) / "runs"
    done = castrig("run", str(SHORT), "--data", str(data), "-q", timeout_s=60)
    text = done.stdout + done.stderr
    assert done.returncode == 3, text[-2000:]
    assert "Traceback" not in text and "disk full" in text
    assert not [p for p in data.iterdir() if p.is_dir()]  # nothing left to show as `running`


@pytest.fixture(scope="module")
def one_run(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("runs")
    done = castrig("run", str(SHORT), "--data", str(data), "-q", timeout_s=60)
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = [p for p in data.iterdir() if p.is_dir()]
    return run_dir


DAMAGES = RUN_FOLDER_DAMAGES


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_run_folder_is_named_with_the_reason(one_run, tmp_path, damage, capsys):
    """In this process (the readers and resume refuse before anything runs; a subprocess per
    command cost ~10 s per damage on CI): the other tests here read through subprocesses."""
    name, spoil, reason = DAMAGES[damage]
    data = tmp_path / "runs"
    run_dir = data / one_run.name
    shutil.copytree(one_run, run_dir)
    for extra in ("run.sqlite-wal", "run.sqlite-shm"):
        (run_dir / extra).unlink(missing_ok=True)
    spoil(run_dir / name)
    for args in (["report", str(run_dir), "--out", str(tmp_path / "r.html")], ["export", str(run_dir), "--to", str(tmp_path / "x")],
                 ["resume", str(run_dir), "-q"]):
        done = castrig_main(capsys, *args)
        text = done.stdout + done.stderr
        assert done.returncode == 2, (args, text[-2000:])
        assert "Traceback" not in text and "damaged run folder" in " ".join(text.split()), (args, text)
    done = castrig_main(capsys, "runs", "--data", str(data))
    flat = " ".join(done.stdout.split())
    assert done.returncode == 0 and "damaged" in flat and one_run.name[:15] in flat, done.stdout + done.stderr
    # `castrig status` (and the served pages, through the same store.live) says what `runs` says:
    # it said 'completed' for a run.sqlite that is not a database
    done = castrig_main(capsys, "status", str(run_dir))
    assert "damaged" in done.stdout and "completed" not in done.stdout, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_a_named_pipe_beside_the_catalog_hangs_neither_a_listing_nor_a_new_run(one_run, tmp_path, capsys):
    """A named pipe ``DATA/catalog.sqlite-journal`` (whoever may write the data root): SQLite opens
    the journal by name, and waited on it for a writer for ever (Ctrl-C did not reach it): `castrig
    runs` hung, and `castrig run` never started, saying nothing. Now the listing goes on without the
    catalog and a new run is refused (exit 3) naming the file, no folder left behind."""
    data = tmp_path / "runs"
    shutil.copytree(one_run, data / one_run.name)
    assert castrig_main(capsys, "runs", "--data", str(data)).returncode == 0  # the catalog is made (the journal is looked for then)
    os.mkfifo(data / "catalog.sqlite-journal")
    done = castrig_main(capsys, "runs", "--data", str(data))
    assert done.returncode == 0 and one_run.name[:15] in " ".join(done.stdout.split()), done.stdout + done.stderr
    done = castrig("run", str(SHORT), "--data", str(data), "-q", timeout_s=60)
    said = " ".join(done.stderr.split())
    assert done.returncode == 3 and "catalog.sqlite-journal is not a regular file" in said and "Traceback" not in said, said
    assert sorted(p.name for p in data.iterdir() if p.is_dir()) == [one_run.name]


READERS = (["runs", "--data", "{data}"], ["report", "{run}", "--out", "{out}/r.html"], ["export", "{run}", "--to", "{out}/x"],
           ["lots", "--data", "{data}"])


def _read_everything(data: Path, run_dir: Path, out: Path, capsys) -> None:
    """Each of READERS on the run, through the CLI's entry point in this process (conftest
    ``castrig_main``): a reader's connections left open in a process that goes on would show here
    the more."""
    before = sorted(p.name for p in run_dir.iterdir())
    for args in READERS:
        args = [a.format(data=data, run=run_dir, out=out) for a in args]
        done = castrig_main(capsys, *args)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (args, done.stdout[-1500:], done.stderr[-1500:])
    assert (out / "r.html").stat().st_size > 1000 and (out / "x" / "samples.csv").is_file()
    assert sorted(p.name for p in run_dir.iterdir()) == before  # nothing written into the run


def test_reading_needs_no_write_access(one_run, tmp_path, read_only_mount, capsys):
    """runs, report --out, export and lots on a read-only data root (a read-only copy of a run)."""
    copy = tmp_path / "copy"
    shutil.copytree(one_run.parent, copy)
    data = read_only_mount(copy)
    run_dir = data / one_run.name
    (tmp_path / "out").mkdir()
    _read_everything(data, run_dir, tmp_path / "out", capsys)
    done = castrig_main(capsys, "report", str(run_dir))  # no --out: a clear error, not a traceback
    assert done.returncode == 2 and "--out" in done.stderr and "Traceback" not in done.stderr, done.stderr
    done = castrig_main(capsys, "runs", "--data", str(data))
    assert one_run.name in done.stdout and "damaged" not in done.stdout


def test_readers_leave_a_finished_run_as_it_was(one_run, tmp_path, capsys):
    """report, export, runs and lots write nothing into the run they read: SQLite's read-only
    readers of a WAL database left a -wal and -shm behind, and on a full disk those were the
    files that could not be made (CI met it when the run had not been read in place before)."""
    data = tmp_path / "runs"
    shutil.copytree(one_run.parent, data)
    for extra in ("run.sqlite-wal", "run.sqlite-shm"):
        (data / one_run.name / extra).unlink(missing_ok=True)  # as its writer left it
    (tmp_path / "out").mkdir()
    _read_everything(data, data / one_run.name, tmp_path / "out", capsys)


def test_reading_works_on_a_full_data_root(one_run, tmp_path, small_disk, capsys):
    data = small_disk(1024) / "runs"
    shutil.copytree(one_run.parent, data)
    (data / "catalog.sqlite").unlink(missing_ok=True)  # the runs must be found without writing a catalog
    with open(data / "filler", "wb") as fh:  # fill what is left
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    (tmp_path / "out").mkdir()
    _read_everything(data, data / one_run.name, tmp_path / "out", capsys)


def test_export_neither_follows_nor_replaces_a_symlink(one_run, tmp_path, capsys):
    """A link at a table's name was replaced (never followed); now it is refused as every file
    export did not write (tests/cli/test_output_files_cli.py), the link and its target kept."""
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    to = tmp_path / "export"
    to.mkdir()
    (to / "samples.csv").symlink_to(outside)
    done = castrig_main(capsys, "export", str(one_run), "--to", str(to))
    assert done.returncode == 2 and "samples.csv: a symbolic link" in done.stderr, done.stderr
    assert outside.read_text() == "keep me" and (to / "samples.csv").is_symlink()
    assert sorted(p.name for p in to.iterdir()) == ["samples.csv"]
    (to / "samples.csv").unlink()
    assert castrig_main(capsys, "export", str(one_run), "--to", str(to)).returncode == 0
    assert (to / "samples.csv").read_text().startswith("run_id,") and not list(to.glob(".*.tmp"))
    assert stat.S_IMODE((to / "samples.csv").stat().st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    m = os.umask(0o022)
    os.umask(m)
    return m


def test_micrographs_get_the_usual_file_mode(tmp_path):
    from castrig.tiffio import write_micrograph

    old = os.umask(0o022)
    try:
        path = write_micrograph(tmp_path / "m.tif", np.zeros((16, 16), np.uint8), 0.25, {})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.parametrize("args,want", [(["runs", "--grade", "claim9"], "claim1, claim2"),
                                       (["runs", "--data", "/nonexistent"], "no such folder")])
def test_runs_names_bad_filters(args, want, capsys):
    done = castrig_main(capsys, *args)
    assert done.returncode == 2 and want in done.stderr and "no runs yet" not in done.stdout, done.stderr


# -- numbers that pass `check` and then faulted the run ------------------------------------------
def test_check_knows_the_rig_limits(tmp_path, capsys):
    bad, sim = ROOT / "tests" / "data" / "bad_inputs", ROOT / "hw_profiles" / "sim.yaml"
    done = castrig_main(capsys, "check", str(bad / "profile_total_flow_above_full_scale.yaml"))
    assert done.returncode == 2 and "full_scale_slpm = 5" in " ".join(done.stderr.split())
    done = castrig_main(capsys, "check", str(bad / "purge_flow_above_full_scale.yaml"), "--profile", sim)
    assert done.returncode == 2 and "allowed: up to 5" in done.stderr
    done = castrig_main(capsys, "check", ROOT / "recipes" / "demo.yaml", "--profile", sim)
    assert done.returncode == 0, done.stderr


def test_a_recipe_that_empties_the_syringe_is_refused_before_a_folder_exists(tmp_path, capsys):
    """Four casts of 0.2 mL from a caster loaded with 0.5 mL: refused by check and by run, naming
    the step that runs dry, the pump and what its syringe holds; no run folder."""
    profile = yaml.safe_load((ROOT / "hw_profiles" / "sim.yaml").read_text())
    profile["devices"]["caster"]["syringe_volume_ml"] = 0.5
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(profile))
    night = ROOT / "recipes" / "overnight.yaml"
    for args in (["check", night, "--profile", tmp_path / "rig.yaml"],
                 ["run", night, "--profile", tmp_path / "rig.yaml", "--data", tmp_path / "runs"]):
        done = castrig_main(capsys, *args)  # (refused before anything runs)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "steps[15] (cast)" in done.stderr and "devices.caster" in done.stderr and "up to 0.5 mL" in done.stderr
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())
    profile["devices"]["caster"]["syringe_volume_ml"] = 0.8  # exactly what the night takes
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(profile))
    assert castrig_main(capsys, "check", night, "--profile", tmp_path / "rig.yaml").returncode == 0


def test_the_film_model_answers_for_every_allowed_concentration():
    from castrig.sim.world import FilmConditions, FilmModel, film_targets

    for rh in (20.0, 40.0, 45.0, 100.0):
        for conc in (0.01, 5.0, 200.0):
            t = film_targets(FilmConditions(20.0, conc, "chloroform", 86_400, rh, 5.0, rh, True, 2.0, 22.0), FilmModel())
            assert 0.0 <= t.through_fraction <= 1.0 and np.isfinite(t.thickness_um)


@pytest.mark.parametrize("rh", [20, 40])
def test_concentration_200_gives_an_answer_or_outside_the_model(tmp_path, rh):
    recipe = tmp_path / f"c200_{rh}.yaml"
    text = (ROOT / "recipes" / "demo.yaml").read_text()
    import re

    text = re.sub(r"(?m)^concentration_mg_ml: .*$", "concentration_mg_ml: 200", text)
    recipe.write_text(re.sub(r"setpoint_rh_pct: [0-9.]+", f"setpoint_rh_pct: {rh}", text))
    done = castrig("run", str(recipe), "--data", str(tmp_path / "runs"), "-q", timeout_s=60)
    text = done.stdout + done.stderr
    assert "internal error" not in text and "Traceback" not in text, text[-2000:]
    assert done.returncode == 0 or (done.returncode == 3 and "outside the model" in " ".join(text.split())), text[-2000:]


@pytest.mark.parametrize("target", ["run.sqlite", "run.json", "image", "catalog.sqlite", "folder"])
def test_report_out_never_overwrites_what_is_not_a_report(one_run, tmp_path, target, capsys):
    """``castrig report RUN --out RUN/run.sqlite`` replaced the run's records with the page, exit 0
    (as did an image, run.json, the catalog); only an earlier report is replaced."""
    data = tmp_path / "runs"
    shutil.copytree(one_run.parent, data)
    run_dir = data / one_run.name
    path = {"run.sqlite": run_dir / "run.sqlite", "run.json": run_dir / "run.json", "folder": run_dir / "results",
            "catalog.sqlite": data / "catalog.sqlite", "image": tmp_path / "field0.tif"}[target]
    if target == "image":
        path.write_bytes(b"II*\0" + os.urandom(64))
    if not path.exists():
        path.write_bytes(b"SQLite format 3\0")
    before = sorted((p.relative_to(tmp_path), p.read_bytes() if p.is_file() else b"") for p in tmp_path.rglob("*"))
    done = castrig_main(capsys, "report", str(run_dir), "--out", str(path))
    assert done.returncode == 2 and "--out" in done.stderr and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert sorted((p.relative_to(tmp_path), p.read_bytes() if p.is_file() else b"") for p in tmp_path.rglob("*")) == before
    # an earlier report is replaced, as before
    page = tmp_path / "r.html"
    assert castrig_main(capsys, "report", str(run_dir), "--out", str(page)).returncode == 0
    assert castrig_main(capsys, "report", str(run_dir), "--out", str(page)).returncode == 0 and page.stat().st_size > 1000


def test_disk_filled_by_another_program_mid_run_still_gets_the_outcome_written(small_disk, reap):
    """Another program fills the shared disk to the last byte while a run holds (a camera dump, a
    log): the run's next write fails, and run.json — rewritten whole to record the outcome — would
    find no room either. The reserve file kept in the run folder is given up for it: the run ends
    faulted (exit 3) with "disk full" recorded, not left "running" with its outcome lost."""
    from conftest import only_run_dir, run_status, start_castrig, wait_until

    disk = small_disk(32_000)
    data = disk / "runs"
    run = reap(start_castrig("run", str(ROOT / "tests" / "data" / "day_wait.yaml"), "--data", str(data), "-q"))
    run_dir = wait_until(lambda: (d := only_run_dir(data)) is not None and run_status(d).get("state") == "running" and d,
                         timeout_s=30, what="the run under way")
    assert (run_dir / ".castrig-reserve").is_file()
    with open(disk / "camera-dump.bin", "wb", buffering=0) as fh:  # to the last byte
        try:
            while fh.write(b"\0" * 4096):
                pass
        except OSError:
            pass
    out, err = run.communicate(timeout=60)
    assert run.returncode == 3, out + err
    assert "Traceback" not in err and "disk full" in out + err
    info = json.loads((run_dir / "run.json").read_text())
    assert info["outcome"] == "faulted" and info["outcome_reason"].startswith("disk full"), info
    assert not (run_dir / ".castrig-reserve").exists() and not list(run_dir.glob(".*.tmp"))


#: A sitecustomize: the disk fills up (another writer, ``$FILL_FILE``) as soon as the queue has
#: recorded its first run -- a seeded moment between two runs, when the queue writes its state.
FILL_AFTER_FIRST_RECORD = """
import os
import castrig.recipe.queue as q
_record = q._record
def _record_then_fill(*a, **kw):
    _record(*a, **kw)
    if not os.path.exists(os.environ["FILL_FILE"]):
        with open(os.environ["FILL_FILE"], "wb") as fh:
            try:
                while True:
                    fh.write(b"x" * 65536)
                    fh.flush()
            except OSError:
                pass
q._record = _record_then_fill
"""


def test_a_disk_full_between_two_queued_runs_stops_the_queue_with_its_state_kept(small_disk, tmp_path, capsys):
    """The data root's disk fills up as a queue records its first run: writing its state file
    raised out of the queue (a traceback, exit 1, no summary); a new queue on that disk raised as
    its lock's holder record was written. Now the queue stops there -- no run
    under way, the rig safe, said, exit 3 -- its state file as last written; with space freed,
    `queue --resume` records the first run (completed, not cast again) and runs the second."""
    from conftest import with_sitecustomize

    disk = small_disk(2048)
    data, fill = disk / "runs", disk / "filler"
    done = castrig("queue", str(SHORT), str(SHORT), "--data", str(data), timeout_s=60, FILL_FILE=str(fill),
                   **with_sitecustomize(tmp_path, FILL_AFTER_FIRST_RECORD))
    said = " ".join(done.stderr.split())
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr[-3000:]
    (state_path,) = data.glob("queue-*.json")
    assert f"cannot write the queue's state {state_path}" in said and "the rig safe" in said, said
    assert f"castrig queue --resume {state_path}" in said and "queue summary" in done.stdout
    (first,) = [json.loads(p.read_text()) for p in data.glob("*/run.json")]  # the second never started
    assert first["outcome"] == "completed"
    json.loads(state_path.read_text())  # whole, as last written
    another = castrig_main(capsys, "queue", str(SHORT), "--data", str(data))  # on the full disk: said, nothing started
    assert another.returncode == 3 and "nothing started" in " ".join(another.stderr.split()), another.stderr[-2000:]
    assert len(list(data.glob("queue-*.json"))) == 1

    fill.unlink()
    resumed = castrig("queue", "--resume", str(state_path), timeout_s=60)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    items = json.loads(state_path.read_text())["items"]
    assert [i["outcome"] for i in items] == ["completed", "completed"]
    assert len(list(data.glob("*/run.json"))) == 2 and items[0]["run_dir"] == str(data / first["run_id"])


def test_a_resume_on_a_full_disk_makes_the_rig_safe_first_and_says_it_went_no_further(small_disk):
    """A run faulted on a full disk (its kept room spent recording that), the disk still full
    (another writer took the last bytes), and `castrig resume` of it: it opened the rig and wrote
    run.json's new owner before anything else -- the disk refused it and the resume ended in a
    traceback (exit 1), the rig opened and never made safe by it. Now it makes the rig safe first,
    then says it cannot record and goes no further (exit 3), the safe state printed; the folder
    keeps its outcome, resumable once there is room. (Where the disk refuses first hangs on what
    the faulted run could hand over: before the rig is touched is right too, exit 2.)"""
    disk = small_disk(1500)
    faulted = castrig("run", str(LONG_WAIT), "--data", str(disk / "runs"), "-q", timeout_s=60)
    assert faulted.returncode == 3, faulted.stderr[-2000:]
    (run_dir,) = [p for p in (disk / "runs").iterdir() if p.is_dir()]
    try:  # another writer takes what room is left, if any
        with open(disk / "filler", "wb") as fh:
            while True:
                fh.write(b"x" * 4096)
                fh.flush()
    except OSError:
        pass
    done = castrig("resume", str(run_dir), "-q", timeout_s=60)
    text = " ".join((done.stdout + done.stderr).split())
    assert done.returncode in (2, 3) and "Traceback" not in text, text[-3000:]
    if done.returncode == 2:
        assert "nothing was sent to the rig" in text and "free space first" in text, text
    else:
        assert "safe state verified" in text, text
    if "went no further" in text:
        assert f"free space, then castrig resume {run_dir} again" in text, text
    assert json.loads((run_dir / "run.json").read_text())["outcome"] in ("faulted", "running")  # resumable either way


def test_a_queued_run_faulted_by_a_full_disk_stops_the_queue_with_the_rest_pending(small_disk):
    """The first of two queued runs fills the disk and faults (safe, recorded). The queue went on:
    the second run started on the full disk (its rig conditioned, then faulted too), both items
    recorded ended, so `queue --resume` after freeing space ran nothing. Now the queue stops there
    (exit 3, why and how to go on said), the second recipe not started and still pending."""
    data = small_disk(400) / "runs"
    done = castrig("queue", str(LONG_WAIT), str(SHORT), "--data", str(data), timeout_s=60)
    said = " ".join(done.stderr.split())
    assert done.returncode == 3 and "Traceback" not in said, said[-3000:]
    assert len([p for p in data.iterdir() if p.is_dir()]) == 1  # the second never started
    (state_path,) = data.glob("queue-*.json")
    state = json.loads(state_path.read_text())
    assert state["items"][1]["status"] == "pending", state["items"]
    assert "queue stopped" in said and f"castrig queue --resume {state_path}" in said, said

    # `castrig resume` of that run on the still full disk: a traceback (exit 1) as it checked it could
    # write the run's records; now refused before the rig is touched (or the rig made safe first)
    (run_dir,) = [p for p in data.iterdir() if p.is_dir()]
    resumed = castrig("resume", str(run_dir), "-q", timeout_s=60)
    text = " ".join((resumed.stdout + resumed.stderr).split())
    assert resumed.returncode in (2, 3) and "Traceback" not in text, text[-3000:]
    assert ("nothing was sent to the rig" in text) if resumed.returncode == 2 else ("safe state verified" in text), text
    assert json.loads((run_dir / "run.json").read_text())["outcome"] in ("faulted", "running")  # resumable either way


def test_a_disk_error_as_the_catalog_is_opened_at_a_runs_end_is_a_store_error_not_a_traceback(tmp_path, monkeypatch):
    """The clean-clone CI met it (test_disk_filled_by_another_program_mid_run_...): the disk filled
    as the run's end opened catalog.sqlite, SQLite's 'disk I/O error' came out of the catalog's
    open unwrapped, and `castrig run` ended in a traceback (exit 1) instead of 'cannot record the
    outcome' (exit 3). The open's failure is now a StoreError, which the run's end says."""
    import sqlite3

    import castrig.store.sqlite_store as sqlite_store
    from castrig.store.sqlite_connect import StoreError

    def full_disk(path, *args, **kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(sqlite_store, "connect", full_disk)  # (the disk: the outside world)
    with pytest.raises(StoreError, match="catalog.sqlite: disk I/O error"):
        sqlite_store.SqliteRunStore(tmp_path)._index_rows([("r",) * 9])


@pytest.mark.parametrize("make, kind", [(Path.mkdir, "a folder"), (os.mkfifo, "a named pipe")], ids=["folder", "fifo"])
def test_a_catalog_that_is_no_file_is_named_as_what_it_is(tmp_path, make, kind):
    """A folder or a named pipe named DATA/catalog.sqlite (files castrig never makes) refused
    every `castrig run` on that data root as 'cannot write DATA/catalog.sqlite: unable to open
    database file' (a folder) or '... disk I/O error' (a pipe: taken for a failing disk). Still
    refused, exit 3, no folder left, but saying what the file is and what to do."""
    data = tmp_path / "runs"
    data.mkdir()
    make(data / "catalog.sqlite")
    done = castrig("run", str(SHORT), "--data", str(data), "-q", timeout_s=60)
    said = " ".join(done.stderr.split())
    assert done.returncode == 3 and f"catalog.sqlite is {kind}, not a database; move it aside" in said, said
    assert "disk I/O error" not in said and "unable to open" not in said and "Traceback" not in said, said
    assert [p.name for p in data.iterdir()] == ["catalog.sqlite"]
