"""Safe-mode pumps on a real-time rig hear from the runner in time, from the outside in.

Found on the wall clock against `castrig sim serve` (pumps, MFCs and transmitters over TCP):

* the pumps' watchdog was armed as they opened, first of the rig's devices; opening the two
  HMT330s and creating the run store took another 2.3 s before the first tick, so with a 2 s
  watchdog (on a 0.5 s control period) the pumps alarmed ``A?T`` and the run aborted at once;
* a finished run left its pumps in safe mode: stopped, they alarmed ``A?T`` (a real NE-1000
  beeps) a watchdog after every run, and the next run's connect had to acknowledge the alarm;
* an analyse step computed with no tick: 8 fields of 2048² micrographs replayed by a folder
  camera took over 10 s, so the RH loop and the samples stopped and the pumps, with the shipped
  10 s watchdog, alarmed and the run aborted (``pump_alarm``) right after the verdict;
* a capture did too: a camera's snap that took longer than the watchdog (the in-process twin
  rendering 1.1 µm pores on the wall clock took 22 s; a real camera's long exposure or slow
  transfer) stopped the RH loop, the samples and the keep-alive, and the run aborted.

The virtual clock never showed these: no virtual time passes while castrig computes. Here the
analysis is 12 fields of 1024² (about 6 s) against a 3 s watchdog.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ROOT, SimServe, castrig, castrig_main, run_rows, with_sitecustomize


def _run_on_served_rig(tmp_path: Path, served: SimServe, recipe: dict[str, Any], *, safe_mode_s: int,
                       control_period_s: float = 1.0, camera: dict[str, Any] | None = None) -> tuple[Path, list[tuple[Any, ...]]]:
    """``castrig run`` of ``recipe`` on hw_profiles/sim-serial.yaml at the served addresses, its
    pumps' watchdog ``safe_mode_s``; asserts it completed; (run folder, events)."""
    profile = yaml.safe_load((ROOT / "hw_profiles" / "sim-serial.yaml").read_text())
    for role, cfg in profile["devices"].items():
        cfg["link"]["url"] = served.addresses[role]
    for role in ("caster", "water_pump"):
        profile["devices"][role]["safe_mode_s"] = safe_mode_s
    if camera is not None:
        profile["devices"]["camera"] = camera
    profile["control"]["control_period_s"] = control_period_s
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(profile))
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    done = castrig("run", str(tmp_path / "recipe.yaml"), "--profile", str(tmp_path / "rig.yaml"),
                   "--data", str(tmp_path / "runs"), "-q")
    (run_dir,) = [p.parent for p in (tmp_path / "runs").glob("*/run.json")]
    events = run_rows(run_dir, "SELECT t_s, kind, message FROM events ORDER BY id")
    assert done.returncode == 0, (done.stderr, [e for e in events if e[1] in ("interlock", "run_end")])
    assert json.loads((run_dir / "run.json").read_text())["outcome"] == "completed"
    assert not [e for e in events if e[1] == "interlock"]
    return run_dir, events


def test_the_shortest_watchdog_outlasts_opening_the_rig_and_the_run(tmp_path, sim_serve):
    with sim_serve("--tcp", "0") as served:
        # the shortest watchdog a 0.5 s control period allows (3 periods, rounded up)
        _run_on_served_rig(tmp_path, served, {"name": "short", "steps": [{"type": "purge", "duration_s": 3}]},
                           safe_mode_s=2, control_period_s=0.5)


@pytest.mark.slow  # ~32 s; the slow-camera test below runs the same Runner._while_ticking in every suite
def test_a_long_analysis_keeps_the_rig_ticking_and_safe_mode_pumps_alive(tmp_path, sim_serve):
    rendered = castrig("sim", "render", "--out", str(tmp_path / "micrographs"), "--n", "1", "--width", "1024",
                       "--seed", "3")
    assert rendered.returncode == 0, rendered.stderr
    recipe = {"name": "long-analysis", "steps": [
        {"type": "purge", "duration_s": 1},
        {"type": "capture", "views": ["reflected", "transmitted", "section"], "fields": 12},
        {"type": "analyse"},
        {"type": "purge", "duration_s": 2},
    ]}
    with sim_serve("--tcp", "0") as served:
        run_dir, events = _run_on_served_rig(tmp_path, served, recipe, safe_mode_s=3,
                                                camera={"model": "folder", "folder": str(tmp_path / "micrographs")})
    start = next(t for t, kind, msg in events if kind == "step_start" and "analyse" in msg)
    end = next(t for t, kind, _ in events if kind == "analysis")
    assert end - start > 3.5, "the analysis was too quick to outlast the watchdog: the test shows nothing"
    # the rig went on meanwhile: RH read and controlled, samples written (every 2 s; ticks come late
    # on a loaded machine: 2.4-3.1 s apart seen beside a CI run), pumps kept alive (no interlock above)
    sampled = run_rows(run_dir, f"SELECT DISTINCT t_s FROM samples WHERE t_s > {start} AND t_s < {end}")
    assert len(sampled) >= (end - start) / 4, (len(sampled), end - start)


#: the twin's camera as slow as a long exposure: every snap takes 5 s of wall time
SLOW_CAMERA = """\
import time
import castrig.sim.twin as twin
_render = twin.Twin.render
def _slow(self, view):
    time.sleep(5.0)
    return _render(self, view)
twin.Twin.render = _slow
"""


def test_a_slow_camera_keeps_the_rig_ticking_and_safe_mode_pumps_alive(tmp_path, wall_sim_profile):
    profile = yaml.safe_load(wall_sim_profile.read_text())
    for role in ("caster", "water_pump"):
        profile["devices"][role]["safe_mode_s"] = 3
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(profile))
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({"name": "slow-camera", "steps": [
        {"type": "purge", "duration_s": 1}, {"type": "capture", "views": ["reflected"], "fields": 1},
        {"type": "purge", "duration_s": 1}]}))
    done = castrig("run", str(tmp_path / "recipe.yaml"), "--profile", str(tmp_path / "rig.yaml"),
                   "--data", str(tmp_path / "runs"), "-q", **with_sitecustomize(tmp_path, SLOW_CAMERA))
    (run_dir,) = [p.parent for p in (tmp_path / "runs").glob("*/run.json")]
    events = run_rows(run_dir, "SELECT t_s, kind, message FROM events ORDER BY id")
    assert done.returncode == 0, (done.stdout, done.stderr[-2000:], [e for e in events if e[1] in ("interlock", "run_end")])
    start = next(t for t, kind, msg in events if kind == "step_start" and "capture" in msg)
    end = next(t for t, kind, _ in events if kind == "capture")
    assert end - start > 4.5, "the snap was too quick to outlast the watchdog: the test shows nothing"
    sampled = run_rows(run_dir, f"SELECT DISTINCT t_s FROM samples WHERE t_s > {start} AND t_s < {end}")
    assert len(sampled) >= (end - start) / 2.5, (len(sampled), end - start)


def test_a_watchdog_the_ticks_cannot_keep_alive_is_refused_before_any_run(tmp_path, capsys):
    """safe_mode_s 1 or 2 on a 1 s control period was accepted; every run then aborted within seconds."""
    text = (ROOT / "hw_profiles" / "sim.yaml").read_text()
    assert text.count("safe_mode_s: 10") == 2
    profile = tmp_path / "rig.yaml"
    profile.write_text(text.replace("safe_mode_s: 10", "safe_mode_s: 2", 1))
    for done in (castrig_main(capsys, "check", str(profile)),
                 castrig_main(capsys, "run", ROOT / "recipes" / "demo.yaml", "--profile", profile, "--data", tmp_path / "runs")):
        err = " ".join(done.stderr.split())
        assert done.returncode == 2 and "Traceback" not in err, (done.returncode, err)
        for words in (str(profile), "devices.caster.safe_mode_s = 2", "control.control_period_s (1 s)", "allowed: 3-255 s"):
            assert words in err, (words, err)
    assert not (tmp_path / "runs").exists()
    profile.write_text(text.replace("safe_mode_s: 10", "safe_mode_s: 3", 1))
    assert castrig_main(capsys, "check", str(profile)).returncode == 0


def test_a_finished_run_leaves_its_stopped_pumps_without_a_watchdog_to_run_out(tmp_path, sim_serve):
    from castrig.clock import WallClock
    from castrig.devices.ne1000 import NE1000Pump
    from castrig.links.serial_link import SerialLink

    with sim_serve("--tcp", "0") as served:
        _run_on_served_rig(tmp_path, served, {"name": "short", "steps": [{"type": "purge", "duration_s": 1}]}, safe_mode_s=3)
        time.sleep(4.0)  # past the watchdog
        for role, address in (("caster", 1), ("water_pump", 2)):
            pump = NE1000Pump(SerialLink(served.addresses[role], baudrate=19200, timeout_s=1.0), name=role,
                              address=address, clock=WallClock())
            try:
                pump.connect()
                assert pump.connect_alarms == [], (role, pump.connect_alarms)
            finally:
                pump.link.close()


def test_a_cast_cut_short_by_a_stopped_process_records_what_the_pump_counted_once_stopped(tmp_path, sim_serve):
    """``castrig run`` SIGSTOPped mid-cast for longer than the pumps' watchdog (an outside tester,
    over TCP): the pump went on until its watchdog stopped it, the run aborted (``pump_alarm``)
    and lost its membrane, and the record said the cast was "at least" its last sample before the
    stop (0.036 mL of about 0.085) though the pump, read back safe, could say how much. It says
    at least what the pump counted once stopped."""
    import os
    import signal

    from conftest import start_castrig, wait_until

    profile = yaml.safe_load((ROOT / "hw_profiles" / "sim-serial.yaml").read_text())
    recipe = {"name": "stopped-mid-cast", "steps": [
        {"type": "cast", "volume_ml": 0.5, "rate_ml_min": 0.8},
        {"type": "evaporate", "setpoint_rh_pct": 50, "duration_s": 30, "band_rh_pct": 20, "max_out_of_band_s": 60}]}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    with sim_serve("--tcp", "0") as served:
        for role, cfg in profile["devices"].items():
            cfg["link"]["url"] = served.addresses[role]
        for role in ("caster", "water_pump"):
            profile["devices"][role]["safe_mode_s"] = 2
        profile["control"]["control_period_s"] = 0.5
        (tmp_path / "rig.yaml").write_text(yaml.safe_dump(profile))
        proc = start_castrig("run", str(tmp_path / "recipe.yaml"), "--profile", str(tmp_path / "rig.yaml"),
                             "--data", str(tmp_path / "runs"), "-q")
        try:
            def casting() -> Path | None:
                found = [p.parent for p in (tmp_path / "runs").glob("*/run.json")]
                if found and run_rows(found[0], "SELECT 1 FROM samples WHERE channel = 'caster_infused_ml' AND value > 0.01"):
                    return found[0]
                assert proc.poll() is None, proc.communicate()
                return None

            run_dir = wait_until(casting, timeout_s=60, what="the cast under way")
            os.kill(proc.pid, signal.SIGSTOP)
            time.sleep(4.0)  # twice the watchdog: the pump stops itself after 2 s
            (sampled,) = run_rows(run_dir, "SELECT max(value) FROM samples WHERE channel = 'caster_infused_ml'")[0]
            os.kill(proc.pid, signal.SIGCONT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 3, (out, err[-2000:])
    [(process,)] = run_rows(run_dir, "SELECT process_json FROM membranes WHERE k = 1 AND status = 'lost'")
    cast = json.loads(process)["dispensed"]["cast"]
    assert cast["finished"] is False and cast["volume_ml"] is None, cast
    # 0.8 mL/min for the watchdog's 2 s after the last talk at the least: 0.027 mL more
    assert cast["volume_at_least_ml"] >= sampled + 0.018, (cast, sampled)


def test_a_pumps_watchdog_alarm_after_a_stopped_simulator_is_recorded_once_per_pump(tmp_path, sim_serve):
    """``castrig sim serve`` (the rig over TCP) SIGSTOPped for 12 s mid-run (a purge: nothing
    dispenses, and the profile lets devices be silent 30 s), its pumps' watchdog 3 s: each pump
    stopped itself once (``A?T``), sent that alarm unprompted and reported it again
    in the reply to the run's next command, which came late (the line stalled). The record said
    "caster: alarm T ... sent by the pump on its own" twice, 12-44 ms apart, as if the pump had
    alarmed twice; and a pump whose two ``A?T`` frames the in-step markers read after the stall
    was in no record at all. Now one warning for each pump's one alarm."""
    import signal

    from conftest import start_castrig, wait_until

    profile = yaml.safe_load((ROOT / "hw_profiles" / "sim-serial.yaml").read_text())
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({"name": "stalled-simulator",
                                                          "steps": [{"type": "purge", "duration_s": 18}]}))
    with sim_serve("--tcp", "0") as served:
        for role, cfg in profile["devices"].items():
            cfg["link"]["url"] = served.addresses[role]
        for role in ("caster", "water_pump"):
            profile["devices"][role]["safe_mode_s"] = 3
        profile["control"]["sensor_stale_s"] = profile["control"]["comms_lost_s"] = 30.0
        (tmp_path / "rig.yaml").write_text(yaml.safe_dump(profile))
        proc = start_castrig("run", str(tmp_path / "recipe.yaml"), "--profile", str(tmp_path / "rig.yaml"),
                             "--data", str(tmp_path / "runs"), "-q")
        try:
            run_dir = wait_until(lambda: (found := list((tmp_path / "runs").glob("*/run.json")))
                                 and run_rows(found[0].parent, "SELECT 1 FROM samples") and found[0].parent,
                                 timeout_s=60, what="the run sampling")
            time.sleep(1.0)
            served.stall()
            time.sleep(12.0)
            served.resume()
            out, err = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.communicate()
    assert proc.returncode in (0, 3), (out, err[-2000:])  # (an alarm read in a reply aborts it: pump_alarm)
    events = run_rows(run_dir, "SELECT kind, source, message FROM events")
    shown = "\n".join(map(str, events))
    for pump in ("caster", "water_pump"):
        said = [e for e in events if e[0] == "warning" and e[2] == f"{pump}: alarm T: safe-mode communications "
                "time-out, sent by the pump on its own"]
        assert len(said) <= 1, shown  # one alarm, said once
        # ... and said: as sent on its own, or as the reply that ended the run
        assert said or any(e[0] == "interlock" and f"{pump}: " in e[2] and "alarm T" in e[2] for e in events), shown
