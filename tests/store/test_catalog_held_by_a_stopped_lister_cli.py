"""The data root's catalog is an index of its run folders: a process stopped while it writes it
(``castrig runs`` re-indexing, Ctrl-Z'd or SIGSTOPped) must not stop a run on that data root."""

from __future__ import annotations

import json
import signal

from conftest import ROOT, castrig, castrig_main, process_state, signal_self, start_castrig, wait_until, with_sitecustomize

#: A sitecustomize: the process stops itself (SIGSTOP, as Ctrl-Z does) inside its first write
#: transaction on the data root's catalog.sqlite -- holding the catalog's write lock.
STOP_IN_CATALOG_WRITE = signal_self("castrig.store.sqlite_store:_Tx.__enter__", "SIGSTOP", after=True, once="_STOPPED",
                                    when='any(str(row[2]).endswith("catalog.sqlite") for row in result.execute("PRAGMA database_list"))')


def test_a_lister_stopped_while_it_writes_the_catalog_stops_no_run(tmp_path, reap, capsys):
    """``castrig runs`` Ctrl-Z'd as it indexes a run folder holds the catalog's write lock. Before,
    every ``castrig run`` on that data root then waited 10 s and was refused, exit 3, 'cannot
    create the run folder ... database is locked' (and a run ending then was recorded 'faulted:
    outcome not recorded'). The run now goes on and completes; its folder is listed once the
    lister goes on."""
    data = tmp_path / "runs"
    first = castrig("run", str(ROOT / "tests" / "data" / "short.yaml"), "--data", str(data), "-q")
    assert first.returncode == 0, first.stderr
    (data / "catalog.sqlite").unlink()  # (and its -wal, -shm): the lister indexes the folder again
    for extra in ("catalog.sqlite-wal", "catalog.sqlite-shm"):
        (data / extra).unlink(missing_ok=True)
    lister = reap(start_castrig("runs", "--data", str(data), **with_sitecustomize(tmp_path, STOP_IN_CATALOG_WRITE)))
    wait_until(lambda: process_state(lister.pid) in ("T", "t"), what="castrig runs stopped in its catalog write")

    done = castrig("run", str(ROOT / "tests" / "data" / "short.yaml"), "--data", str(data), "-q")
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    run_dirs = sorted(p for p in data.iterdir() if p.is_dir())
    assert len(run_dirs) == 2
    assert json.loads((run_dirs[-1] / "run.json").read_text())["outcome"] == "completed"

    lister.send_signal(signal.SIGCONT)
    out, err = lister.communicate(timeout=60)
    assert lister.returncode == 0, err
    listed = castrig_main(capsys, "runs", "--data", str(data))
    assert listed.returncode == 0
    assert all(p.name in listed.stdout for p in run_dirs) and listed.stdout.count("completed") == 2, listed.stdout


#: A sitecustomize: the data root's catalog.sqlite is overwritten (not a database any more) as the
#: run's first step starts -- another program's write, a disk's error.
SPOIL_CATALOG_IN_THE_RUN = """
from pathlib import Path
import castrig.recipe.runner as _r
_purge = _r.Runner._step_purge
def _spoil_then_purge(self, *a, **kw):
    catalog = Path(self.rec.run_dir).parent / "catalog.sqlite"
    catalog.write_bytes(b"x" * 8192)
    for extra in ("-wal", "-shm"):
        Path(str(catalog) + extra).unlink(missing_ok=True)
    return _purge(self, *a, **kw)
_r.Runner._step_purge = _spoil_then_purge
"""


def test_a_catalog_damaged_under_a_run_stops_neither_it_nor_the_next(tmp_path, capsys):
    """The catalog damaged while a run goes on (seeded: overwritten as its first step starts). As it
    ended, indexing it raised SQLite's 'file is not a database': a traceback, exit 1, from a run
    that had completed (run.json said so); and every later `castrig run` on that data root was
    refused, exit 3, 'cannot create the run folder ... (file is not a database)' -- which file,
    unsaid. The catalog is an index of the folders: now said once, named, and the runs go on (0)
    and are listed from their folders."""
    from conftest import castrig_main

    data = tmp_path / "runs"
    recipe = tmp_path / "purge.yaml"
    recipe.write_text("name: purge\nsteps:\n  - {type: purge, duration_s: 30}\n")
    done = castrig("run", str(recipe), "--data", str(data), "-q", **with_sitecustomize(tmp_path, SPOIL_CATALOG_IN_THE_RUN))
    said = " ".join(done.stderr.split())
    assert done.returncode == 0 and "Traceback" not in said, (done.returncode, said[-3000:])
    assert f"warning: {data / 'catalog.sqlite'}: file is not a database" in said, said
    (first,) = [p.parent for p in data.glob("*/run.json")]
    assert json.loads((first / "run.json").read_text())["outcome"] == "completed"
    listed = castrig_main(capsys, "runs", "--data", str(data))
    assert listed.returncode == 0 and first.name in listed.stdout and "completed" in listed.stdout, listed
    nxt = castrig("run", str(recipe), "--data", str(data), "-q")  # the next run on that data root
    assert nxt.returncode == 0 and "Traceback" not in nxt.stderr, nxt.stderr[-2000:]
    assert len(list(data.glob("*/run.json"))) == 2
