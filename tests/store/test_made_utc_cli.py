"""A lab joins a night's images to its membranes and sorts them by the wall clock: ``membranes.csv``
and ``images.csv`` of ``castrig export``, and the fleet store's ``images`` and ``membranes``
tables, carry ``membrane_id`` and ``made_utc`` (UTC ISO 8601, to the millisecond). Before, neither
had a made time, and an image's membrane was only inside its ``metadata_json``."""

from __future__ import annotations

import csv
import sqlite3
from datetime import datetime
from pathlib import Path

from castrig.store.export import export_run
from castrig.store.sync import sync_run
from conftest import castrig, castrig_main, only_run_dir, run_rows, signal_self, with_sitecustomize

TWO_CASTS = """name: two-casts
grade: claim1
support_pore_um: 5.0
steps:
""" + """  - {type: prewet, volume_ml: 0.1, rate_ml_min: 2.0}
  - {type: cast, volume_ml: 0.1, rate_ml_min: 0.8}
  - {type: evaporate, setpoint_rh_pct: 70, duration_s: 20, band_rh_pct: 20, max_out_of_band_s: 30}
  - {type: capture, views: [reflected], fields: 1}
""" * 2


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _utc(text: str) -> datetime:
    assert text.endswith("Z") and len(text) == len("2026-12-07T10:31:02.117Z"), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_two_casts_exported_and_pushed_carry_membrane_id_and_made_utc(tmp_path: Path, pg_schema, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    recipe = tmp_path / "two.yaml"
    recipe.write_text(TWO_CASTS)
    data = tmp_path / "runs"
    done = castrig("run", str(recipe), "--data", str(data), "-q")
    assert done.returncode == 0, done.stderr
    run_dir = only_run_dir(data)
    assert run_dir is not None
    out = tmp_path / "x"
    assert castrig_main(capsys, "export", str(run_dir), "--to", str(out)).returncode == 0

    membranes, images = _csv(out / "membranes.csv"), _csv(out / "images.csv")
    m1, m2 = (f"{run_dir.name}-m{k}" for k in (1, 2))
    assert [m["membrane_id"] for m in membranes] == [m1, m2]
    made = {m["membrane_id"]: _utc(m["made_utc"]) for m in membranes}
    assert made[m1] < made[m2]  # (to the millisecond: on the twin both fall within one wall-clock second)
    assert [(i["membrane_id"], i["name"]) for i in images] == [(m1, "s3_field0_reflected"), (m2, "s7_field0_reflected")]
    for image in images:  # each image written after its membrane was made, before the next one was
        assert made[image["membrane_id"]] <= _utc(image["made_utc"])
    assert _utc(images[0]["made_utc"]) <= made[m2]

    # the fleet store: the same columns, queried as a lab queries them
    import psycopg

    url, schema = pg_schema
    monkeypatch.setenv("CASTRIG_STORE_SCHEMA", schema)  # (the sync through castrig_main)
    sync = castrig_main(capsys, "store", "sync", str(run_dir), "--url", url)
    assert sync.returncode == 0, sync.stderr
    join = (f"SELECT i.name, i.membrane_id, i.made_utc, m.made_utc FROM {schema}.images i JOIN {schema}.membranes m"
            " USING (run_uid, membrane_id) ORDER BY i.made_utc")
    with psycopg.connect(url, autocommit=True) as conn:
        got = [tuple(r) for r in conn.execute(join)]  # type: ignore[arg-type]
        expected = [(i["name"], i["membrane_id"], i["made_utc"], next(m["made_utc"] for m in membranes
                                                                      if m["membrane_id"] == i["membrane_id"]))
                    for i in images]
        assert got == expected
        # a database an older castrig made (the same tables without the new columns): the next
        # castrig to connect adds them, filled from the rows' own JSON
        conn.execute(f"DROP INDEX {schema}.images_membrane")  # type: ignore[arg-type]
        conn.execute(f"ALTER TABLE {schema}.images DROP COLUMN membrane_id, DROP COLUMN made_utc")  # type: ignore[arg-type]
        conn.execute(f"ALTER TABLE {schema}.membranes DROP COLUMN made_utc")  # type: ignore[arg-type]
    again = sync_run(run_dir, url, schema=schema)  # (in this process: a castrig process costs 0.4 s of CPU)
    assert not any(again.inserted.values()), again
    with psycopg.connect(url, autocommit=True) as conn:
        assert [tuple(r) for r in conn.execute(join)] == expected  # type: ignore[arg-type]

    # a run folder recorded before castrig kept these: its tables export, the times empty
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        db.execute("UPDATE membranes SET process_json = json_remove(process_json, '$.made_utc')")
        db.execute("UPDATE images SET metadata_json = json_remove(metadata_json, '$.made_utc', '$.membrane_id')")
    export_run(run_dir, tmp_path / "old")
    assert [m["made_utc"] for m in _csv(tmp_path / "old" / "membranes.csv")] == ["", ""]
    assert [(i["membrane_id"], i["made_utc"]) for i in _csv(tmp_path / "old" / "images.csv")] == [("", "")] * 2


#: A sitecustomize (:func:`conftest.with_sitecustomize`): the power goes (SIGKILL) between the two
#: writes that say a membrane was made -- right after its record says ``made`` (``$KILL_AT_MADE``:
#: its k), or right after the journal says its making step ended (``$KILL_AT_DONE``: that step, 0-based).
KILL_BETWEEN_MADE_WRITES = (  # save_membrane(self, mb); add_journal(self, t_s, step, state, data)
    signal_self("castrig.store.sqlite_store:SqliteRunRecorder.save_membrane", "SIGKILL", after=True,
                when='args[1].status == "made" and str(args[1].k) == os.environ.get("KILL_AT_MADE")')
    + signal_self("castrig.store.sqlite_store:SqliteRunRecorder.add_journal", "SIGKILL", after=True,
                  when='args[3] == "done" and str(args[2]) == os.environ.get("KILL_AT_DONE")'))


def test_a_membrane_made_as_the_power_went_keeps_its_one_made_time_through_the_resumes(tmp_path: Path) -> None:
    """Killed between the two writes that say a membrane was made, twice: its record said made
    (made_utc given) and the evaporation's end was not journaled -- the resume called it lost ("the
    cast film dried without RH control ... after 20 s of it" of a 20 s evaporation) and dropped its
    made time; its cast's end journaled, its record not yet made (no evaporate step) -- it stayed
    ``forming`` through a completed run, with no made time. Now each is made once, at its own time."""
    prewet_cast = "  - {type: prewet, volume_ml: 0.1, rate_ml_min: 2.0}\n  - {type: cast, volume_ml: 0.1, rate_ml_min: 0.8}\n"
    evaporate = "  - {type: evaporate, setpoint_rh_pct: 70, duration_s: 20, band_rh_pct: 20, max_out_of_band_s: 30}\n"
    recipe = tmp_path / "three.yaml"  # m1: steps 0-2; m2: 3-5, its capture 6; m3 (no evaporation): 7-8
    recipe.write_text("name: three\ngrade: claim1\nsupport_pore_um: 5.0\nsteps:\n" + prewet_cast + evaporate + prewet_cast
                      + evaporate + "  - {type: capture, views: [reflected], fields: 1}\n" + prewet_cast)
    data = tmp_path / "runs"
    hook = with_sitecustomize(tmp_path, KILL_BETWEEN_MADE_WRITES)
    assert castrig("run", str(recipe), "--data", str(data), "-q", KILL_AT_MADE="2", **hook).returncode == -9
    run_dir = only_run_dir(data)
    assert run_dir is not None
    made = dict(run_rows(run_dir, "SELECT membrane_id, json_extract(process_json, '$.made_utc') FROM membranes"))
    m1, m2, m3 = (f"{run_dir.name}-m{k}" for k in (1, 2, 3))
    assert set(made) == {m1, m2} and all(made.values())  # m2 recorded made as the power went
    assert castrig("resume", str(run_dir), "-q", KILL_AT_DONE="8", **hook).returncode == -9  # m3's cast ended
    assert run_rows(run_dir, f"SELECT status FROM membranes WHERE membrane_id = '{m3}'") == [("forming",)]
    m3_stamp = run_rows(run_dir, "SELECT json_extract(data_json, '$.made_utc') FROM journal WHERE step_index = 8 AND state = 'done'")
    done = castrig("resume", str(run_dir), "-q", **hook)
    assert done.returncode == 0, done.stderr[-2000:]

    export_run(run_dir, tmp_path / "x")  # (castrig export's own code, in this process)
    membranes = _csv(tmp_path / "x" / "membranes.csv")
    assert [(m["membrane_id"], m["status"], m["lost_reason"]) for m in membranes] == [(m1, "made", ""), (m2, "made", ""), (m3, "made", "")]
    got = {m["membrane_id"]: m["made_utc"] for m in membranes}
    assert got == {m1: made[m1], m2: made[m2], m3: m3_stamp[0][0]}  # each its own stamp, given once, before any resume
    assert _utc(got[m1]) < _utc(got[m2]) < _utc(got[m3])
    # m2's evaporation is not run again, nor lost: its end journaled once; its capture taken by the resume
    assert run_rows(run_dir, "SELECT count(*) FROM journal WHERE step_index = 5 AND state = 'done'") == [(1,)]
    assert run_rows(run_dir, "SELECT count(*) FROM journal WHERE state = 'skipped'") == [(0,)]
    assert [(i["membrane_id"], i["name"]) for i in _csv(tmp_path / "x" / "images.csv")] == [(m2, "s6_field0_reflected")]


# (three runs of the CLI, two analyses: ~3 s of CPU; run in CI: a resumed twin that measured a blank film passed unseen)
def test_a_membrane_made_as_the_power_went_is_measured_after_the_resume_as_if_the_run_had_not_stopped(tmp_path: Path) -> None:
    """On the twin, killed right after the membrane's record said made, before its evaporation's end
    (which carries the twin's film) was journaled: the resume wrote that end without the film, the
    twin restored none, and the capture and analysis saw a blank film (opening ratio 0, claim1 not
    met) where the run uncrashed measured 0.35. Now the film the process made is put back and
    measures as in the uncrashed run (the twin's seeds are the same).

    The same kill (this was also its own test, a_resume_after_a_membrane_made_as_the_power_went_goes_on_from_after_it,
    with a 23 s evaporation: the same crash point): the membrane's t_end_s was the crashed part's
    last record, 3.8 s after the last sample (one every 5 s on the twin). The resume went on from
    the last sample or event (+ one control period), not from it: the evaporation's end was
    journaled 2.8 s before the membrane was made, and the capture and every record after it came
    earlier still -- the run's clock stepped back at the resume's start. Now it goes on from the
    membrane's time too."""
    recipe = tmp_path / "one.yaml"
    # (123 s: made 3.8 s after the last sample, as the 23 s evaporation was; at 120 s it was 0.8 s)
    recipe.write_text("name: one\ngrade: claim1\nsupport_pore_um: 5.0\nsteps:\n"
                      "  - {type: prewet, volume_ml: 0.1, rate_ml_min: 2.0}\n  - {type: cast, volume_ml: 0.1, rate_ml_min: 0.8}\n"
                      "  - {type: evaporate, setpoint_rh_pct: 70, duration_s: 123, band_rh_pct: 20, max_out_of_band_s: 30}\n"
                      "  - {type: capture, views: [reflected], fields: 1}\n  - {type: analyse}\n")
    opening = "SELECT status, json_extract(metrics_json, '$.opening_ratio') FROM membranes"
    uncrashed = castrig("run", str(recipe), "--data", str(tmp_path / "uncrashed"), "-q")
    assert uncrashed.returncode == 0, uncrashed.stderr[-2000:]
    [(status, expected)] = run_rows(only_run_dir(tmp_path / "uncrashed"), opening)
    assert status == "judged" and expected > 0.1, (status, expected)  # (a film the analysis sees)
    data = tmp_path / "crashed"
    hook = with_sitecustomize(tmp_path, KILL_BETWEEN_MADE_WRITES)
    assert castrig("run", str(recipe), "--data", str(data), "-q", KILL_AT_MADE="1", **hook).returncode == -9
    run_dir = only_run_dir(data)
    assert run_dir is not None
    assert run_rows(run_dir, "SELECT count(*) FROM journal WHERE step_index = 2 AND state = 'done'") == [(0,)]
    [(made_t,)] = run_rows(run_dir, "SELECT t_end_s FROM membranes")
    [(last_sample_t,)] = run_rows(run_dir, "SELECT max(t_s) FROM samples")
    assert made_t - last_sample_t > 1.5, (made_t, last_sample_t)  # (the crash point the clock's check is about)
    done = castrig("resume", str(run_dir), "-q", **hook)
    assert done.returncode == 0, done.stderr[-2000:]
    [(status, measured)] = run_rows(run_dir, opening)
    assert status == "judged" and abs(measured - expected) <= 0.05 * expected, (measured, expected)
    # the resume went on from the membrane's time: nothing after it recorded earlier
    [(evaporated_t,)] = run_rows(run_dir, "SELECT t_s FROM journal WHERE step_index = 2 AND state = 'done'")
    assert evaporated_t >= made_t, (evaporated_t, made_t)
    for table, order in (("journal", "seq"), ("events", "id"), ("images", "id")):
        times = [t for (t,) in run_rows(run_dir, f"SELECT t_s FROM {table} ORDER BY {order}")]
        assert times == sorted(times), (table, times)
    assert min(t for (t,) in run_rows(run_dir, "SELECT t_s FROM images")) > made_t


# (four runs of the CLI, three analyses: ~4 s of CPU)
def test_a_film_cast_without_an_evaporate_step_is_measured_after_a_resume_as_if_the_run_had_not_stopped(tmp_path: Path) -> None:
    """A recipe without an evaporate step (condition, pre-wet, cast, wait, capture, analyse): its
    membrane is made at its cast's end and its film dries on through the wait. Only an
    evaporation's end journaled the twin's film, so killed after the cast (or after the wait) and
    resumed, the twin imaged a bare support: opening ratio 0.0 where the run not stopped measured
    0.60. Now every step that ends with a film on the support journals it, drying or formed, and
    the resume measures the film that was cast."""
    recipe = tmp_path / "no-evaporate.yaml"
    recipe.write_text("name: no-evaporate\ngrade: claim1\nsupport_pore_um: 5.0\nsteps:\n"
                      "  - {type: condition, setpoint_rh_pct: 70, band_rh_pct: 3, stable_for_s: 5, timeout_s: 300}\n"
                      "  - {type: prewet, volume_ml: 0.1, rate_ml_min: 2.0}\n  - {type: cast, volume_ml: 0.1, rate_ml_min: 0.8}\n"
                      "  - {type: wait, duration_s: 120}\n  - {type: capture, views: [reflected], fields: 1}\n  - {type: analyse}\n")
    measured = ("SELECT status, json_extract(metrics_json, '$.opening_ratio'), json_extract(metrics_json, '$.mean_pore_diameter_um'),"
                " json_extract(process_json, '$.made_utc') FROM membranes")
    uncrashed = castrig("run", str(recipe), "--data", str(tmp_path / "uncrashed"), "-q")
    assert uncrashed.returncode == 0, uncrashed.stderr[-2000:]
    [(status, opening, diameter_um, _)] = run_rows(only_run_dir(tmp_path / "uncrashed"), measured)
    assert status == "judged" and opening > 0.1, (status, opening)  # (a film the analysis sees)
    hook = with_sitecustomize(tmp_path, KILL_BETWEEN_MADE_WRITES)
    for killed_after, step in (("cast", 2), ("wait", 3)):
        data = tmp_path / f"after-{killed_after}"
        assert castrig("run", str(recipe), "--data", str(data), "-q", KILL_AT_DONE=str(step), **hook).returncode == -9
        run_dir = only_run_dir(data)
        assert run_dir is not None
        done = castrig("resume", str(run_dir), "-q")
        assert done.returncode == 0, done.stderr[-2000:]
        [(status, got_opening, got_diameter_um, made_utc)] = run_rows(run_dir, measured)
        assert status == "judged" and made_utc, (killed_after, status, made_utc)
        assert abs(got_opening - opening) <= 0.05 * opening, (killed_after, got_opening, opening)
        assert abs(got_diameter_um - diameter_um) <= 0.05 * diameter_um, (killed_after, got_diameter_um, diameter_um)


def test_a_membrane_lost_as_the_power_went_leaves_the_next_cast_a_support_of_its_own(tmp_path: Path) -> None:
    """Killed right after m2's cast, m2 is lost; the twin must not put back its film, cast and still
    drying: the next cast (m3's) went onto it, a film of 0.2 mL where m3 cast 0.1 mL."""
    recipe = tmp_path / "three.yaml"
    recipe.write_text("name: three\ngrade: claim1\nsupport_pore_um: 5.0\nsteps:\n" + (
        "  - {type: prewet, volume_ml: 0.1, rate_ml_min: 2.0}\n  - {type: cast, volume_ml: 0.1, rate_ml_min: 0.8}\n"
        "  - {type: evaporate, setpoint_rh_pct: 70, duration_s: 120, band_rh_pct: 20, max_out_of_band_s: 30}\n") * 3)
    data = tmp_path / "runs"
    hook = with_sitecustomize(tmp_path, KILL_BETWEEN_MADE_WRITES)
    assert castrig("run", str(recipe), "--data", str(data), "-q", KILL_AT_DONE="4", **hook).returncode == -9  # m2's cast
    run_dir = only_run_dir(data)
    assert run_dir is not None
    done = castrig("resume", str(run_dir), "-q")
    assert done.returncode == 0, done.stderr[-2000:]
    assert run_rows(run_dir, "SELECT status FROM membranes ORDER BY k") == [("made",), ("lost",), ("made",)]
    cast_ml = "SELECT json_extract(data_json, '$.twin.film.cast_volume_ml') FROM journal WHERE state = 'done' AND step_index = {}"
    [(m1_ml,)], [(m3_ml,)] = run_rows(run_dir, cast_ml.format(2)), run_rows(run_dir, cast_ml.format(8))
    assert abs(m1_ml - 0.1) < 1e-9 and abs(m3_ml - 0.1) < 1e-9, (m1_ml, m3_ml)
