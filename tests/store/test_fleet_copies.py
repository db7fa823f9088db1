"""A copy of a run folder (``cp -a`` keeps its run id) synced into the fleet store."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg

from conftest import castrig_main


def test_a_copy_of_a_synced_run_is_refused_and_a_moved_run_is_followed(pg_schema, finished_demo_run, tmp_path: Path, capsys,
                                                                       monkeypatch):
    """Syncing a copy moved the catalog row to the copy; with the original still running, it was
    then called crashed in every rig's `castrig runs`."""
    url, schema = pg_schema
    root, run_id = finished_demo_run
    original, copy = tmp_path / "rig" / run_id, tmp_path / "backup" / run_id
    shutil.copytree(root / run_id, original)

    monkeypatch.setenv("CASTRIG_STORE_SCHEMA", schema)

    def sync(folder: Path):  # type: ignore[no-untyped-def]  # (the CLI's entry point in this process: conftest castrig_main)
        return castrig_main(capsys, "store", "sync", str(folder), "--url", url)

    def catalog_dir() -> str:
        with psycopg.connect(url) as conn:
            return conn.execute(f"select run_dir from {schema}.runs").fetchone()[0]  # type: ignore[arg-type,index]

    assert sync(original).returncode == 0  # (its fleet-wide id made now, kept in its run.sqlite)
    shutil.copytree(original, copy)
    refused = sync(copy)
    said = " ".join(refused.stderr.split())
    assert refused.returncode == 2 and f"a copy of run {run_id}" in said and str(original) in said, refused.stderr
    assert catalog_dir() == str(original.resolve())
    shutil.rmtree(original)  # the run folder moved away: its copy is now the run
    assert sync(copy).returncode == 0 and catalog_dir() == str(copy.resolve())
