"""A fleet run killed -9 and resumed in a shell without ``CASTRIG_STORE``: run.json says which
fleet store the run pushes to (without its password), the resume says it records in the folder
only and how to sync, and ``castrig runs`` with the store never lists the run ended over the
crashed part's records only (it pushes the rest first). Outside in: the real CLI, real PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import castrig, castrig_main, pg_count, run_then_kill_9, step_running

# two membranes on the twin: killed while m2 evaporates (step 7: m2 lost), resumed to the purge;
# one view per capture (the tables are counted here, not the metrics: three views cost ~1 s more)
RECIPE = """
name: multi3
grade: claim1
concentration_mg_ml: 5.0
support_pore_um: 5.0
steps:
  - {type: prewet, volume_ml: 0.3, rate_ml_min: 1.0}
  - {type: cast, volume_ml: 0.2, rate_ml_min: 0.5}
  - {type: evaporate, setpoint_rh_pct: 70, duration_s: 300, band_rh_pct: 3.0, max_out_of_band_s: 120}
  - {type: capture, views: [reflected], fields: 1}
  - {type: analyse, grade: claim1}
  - {type: prewet, volume_ml: 0.3, rate_ml_min: 1.0}
  - {type: cast, volume_ml: 0.2, rate_ml_min: 0.5}
  - {type: evaporate, setpoint_rh_pct: 70, duration_s: 600, band_rh_pct: 3.0, max_out_of_band_s: 120}
  - {type: capture, views: [reflected], fields: 1}
  - {type: analyse, grade: claim3}
  - {type: purge, duration_s: 60}
"""


def _local(run_dir: Path, table: str) -> int:
    db = sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True)
    try:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        db.close()


def test_a_fleet_run_resumed_without_the_store_is_said_so_and_listed_ended_only_with_all_its_records(pg_schema, tmp_path, capsys,
                                                                                                    monkeypatch):
    from castrig.redact import redact

    url, schema = pg_schema
    recipe = tmp_path / "multi3.yaml"
    recipe.write_text(RECIPE)
    data = tmp_path / "runs"
    run_dir = run_then_kill_9(recipe, data, step_running(7, after_s=60), CASTRIG_STORE=url, CASTRIG_STORE_SCHEMA=schema)
    recorded = json.loads((run_dir / "run.json").read_text())["extra"]["fleet_store"]
    assert recorded == {"url": redact(url), "schema": schema}
    assert "castrig:castrig@" not in (run_dir / "run.json").read_text()  # never the password

    done = castrig("resume", str(run_dir), "-q")  # a shell without CASTRIG_STORE
    assert done.returncode == 0, done.stdout + done.stderr
    said = done.stderr
    assert redact(url) in said and f"castrig store sync {run_dir}" in said, said
    assert any(e == "fleet_store" for (e,) in sqlite3.connect(run_dir / "run.sqlite").execute("SELECT kind FROM events"))
    assert pg_count(url, schema, "samples") < _local(run_dir, "samples")  # the fleet holds the crashed part only

    monkeypatch.setenv("CASTRIG_STORE", url)  # (the listing through castrig_main, in this process)
    monkeypatch.setenv("CASTRIG_STORE_SCHEMA", schema)
    listed = castrig_main(capsys, "runs", "--data", str(data))
    assert listed.returncode == 0, listed.stderr
    assert "completed" in next(line for line in listed.stdout.splitlines() if run_dir.name in line)
    import psycopg

    with psycopg.connect(url) as conn:
        outcome, grades = conn.execute(f"SELECT outcome, grades FROM {schema}.runs").fetchone()  # type: ignore[arg-type,misc]
    assert outcome == "completed"
    for table in ("samples", "events", "journal", "images", "results", "membranes"):
        assert pg_count(url, schema, table) == _local(run_dir, table), table  # the resumed part pushed with the row


def test_a_resume_takes_the_profiles_fleet_store_where_it_is_the_one_run_json_names(pg_schema, tmp_path):
    """A run whose profile has ``store: postgresql://…`` (no CASTRIG_STORE): its resume pushes to that
    store again (the profile file gives the password run.json does not keep), without a warning."""
    from conftest import castrig_killed_9, profile_with_store

    url, schema = pg_schema
    recipe = tmp_path / "multi3.yaml"
    # without the captures and analyses: the tables counted here hold no image nor metric, and m1's
    # twin render and analysis (before the kill) cost ~1 s of CPU; m2's evaporation is step 5 then
    recipe.write_text("".join(line for line in RECIPE.splitlines(keepends=True) if "capture" not in line and "analyse" not in line))
    profile = profile_with_store(tmp_path, url)
    env = {"CASTRIG_DATA": str(tmp_path / "runs"), "CASTRIG_STORE_SCHEMA": schema}
    run_dir = castrig_killed_9("run", str(recipe), "--profile", str(profile), "-q", data=tmp_path / "runs",
                               ready=step_running(5, after_s=60), **env)  # m2 evaporating

    done = castrig("resume", str(run_dir), "-q", **env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning" not in done.stderr and "castrig store sync" not in done.stderr, done.stderr
    for table in ("samples", "events", "membranes"):
        assert pg_count(url, schema, table) == _local(run_dir, table), table  # pushed by the resume itself
