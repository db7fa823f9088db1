"""The first `castrig runs` over a data root of new run folders (restored from a backup, copied
from another computer) wrote and synced each folder's catalog row in a transaction of its own,
on a connection of its own: 3 000 folders took 56-81 s, almost all of it in COMMITs and closes.
Now the rows are written a batch at a time (``CATALOG_BATCH_ROWS``), one transaction each: a
listing killed meanwhile leaves the batches before it committed and a catalog that reads fine;
the next listing indexes the rest."""

from __future__ import annotations

import sqlite3

from conftest import castrig_main, run_folder_copies


def test_the_first_listing_of_new_run_folders_writes_the_catalog_in_batches_and_a_ctrl_c_leaves_it_whole(
        tmp_path, capsys, monkeypatch):
    import castrig.store.base as base
    import castrig.store.sqlite_store as sqlite_store

    data = tmp_path / "runs"
    run_folder_copies(data, 60)
    catalog = data / "catalog.sqlite"
    commits: list[str] = []
    real_connect = sqlite3.connect

    def counted(path, *args, **kwargs):  # (SQLite's own word for each transaction's end, on the catalog)
        conn = real_connect(path, *args, **kwargs)
        if str(path).endswith("catalog.sqlite"):
            conn.set_trace_callback(lambda sql: commits.append(sql) if sql.lstrip().upper().startswith("COMMIT") else None)
        return conn

    monkeypatch.setattr(sqlite3, "connect", counted)
    monkeypatch.setattr(sqlite_store, "CATALOG_BATCH_ROWS", 25)

    # a Ctrl-C as the 40th folder is read: the first batch (25 rows) is in, the catalog whole
    real_grades_of, read = base.grades_of, []

    def ctrl_c_at_the_40th(rec):
        read.append(rec.run_dir)
        if len(read) == 40:
            raise KeyboardInterrupt
        return real_grades_of(rec)

    monkeypatch.setattr(base, "grades_of", ctrl_c_at_the_40th)
    stopped = castrig_main(capsys, "runs", "--data", str(data))
    assert stopped.returncode == 130 and "Traceback" not in stopped.stderr, stopped
    assert len(commits) == 1, commits
    with real_connect(f"file:{catalog}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (25,)

    monkeypatch.setattr(base, "grades_of", real_grades_of)
    commits.clear()
    listed = castrig_main(capsys, "runs", "--data", str(data), "--all")  # (all 60: the newest 50 by default)
    assert listed.returncode == 0, listed
    assert len(commits) == 2, commits  # the 35 rows left: 25 + 10 (it was one transaction per folder)
    assert listed.stdout.count("-copy") == 60, listed.stdout
    with real_connect(f"file:{catalog}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (60,)

    commits.clear()
    again = castrig_main(capsys, "runs", "--data", str(data), "--all")
    assert again.returncode == 0 and again.stdout.count("-copy") == 60 and commits == [], (again, commits)
