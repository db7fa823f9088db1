"""A run on the wall clock whose process is stopped for a while (SIGSTOP, as a debugger or a
suspended computer stops it): RH went uncontrolled and the pumps unwatched, and the record said
nothing of it. Now the first tick after the gap records a ``control_gap`` warning with its length.

A slow tick is no such gap: a device that answers late (here the near-membrane sensor's reply
held 5 s by a TCP proxy, inside its link's time-out) keeps the tick busy, not the process
stopped. Measured from the start of the tick before (before fba9143), it was said as one. And
after either, the ticks (and the samples with them) go on on the run's grid: before, they were
re-anchored at the end of the overrun, a quarter period out of phase for the rest of the run."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from urllib.parse import urlsplit

import yaml

from conftest import Proxy, only_run_dir, proxied_profile, run_rows, start_castrig, step_running, wait_until

PERIOD_S = 0.5  # control and sample period
HOLD_S = 5.0  # the slow reply: its tick ~5.27 s (over GAP_MIN_S, 5 s), that a quarter period off the grid
STOP_S = 5.3  # the SIGSTOP: over GAP_MIN_S too


def test_a_stopped_run_records_the_gap_in_control_a_slow_tick_does_not_and_the_ticks_keep_their_phase(
        tmp_path, sim_serve, reap):
    holds: list[float] = []  # how long the sensor's next replies are held (s)
    held = threading.Event()

    def reply(request: bytes, data: bytes):
        if holds:
            held.set()
            return [holds.pop(0), data]  # the reply comes, late
        return data

    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({"name": "stopped", "steps": [
        {"type": "evaporate", "setpoint_rh_pct": 50, "duration_s": 120, "band_rh_pct": 20, "max_out_of_band_s": 120}]}))
    data = tmp_path / "runs"
    with sim_serve("--tcp", "0") as served:
        address = urlsplit(served.addresses["rh_near"])
        with Proxy((address.hostname, address.port), reply=reply) as line:
            slow_sensor = {"link": {"kind": "serial", "url": "", "timeout_s": 8.0}}  # slow, not silent
            rig = proxied_profile(tmp_path, served, "hw_profiles/sim-serial.yaml", "rh_near", line, {"rh_near": slow_sensor},
                                  control_period_s=PERIOD_S, sample_period_s=PERIOD_S)
            proc = reap(start_castrig("run", str(tmp_path / "recipe.yaml"), "--profile", str(rig), "--data", str(data), "-q"))

            def evaporating():
                assert proc.poll() is None, proc.communicate()
                return (d := only_run_dir(data)) is not None and step_running(0, after_s=0.5)(d) and d

            run_dir = wait_until(evaporating, what="the evaporation under way")
            holds.append(HOLD_S)
            assert held.wait(5), "the sensor was not read"
            time.sleep(HOLD_S + 2.0)  # the slow tick, the ticks caught up, then samples on the grid
            held.clear()
            holds.append(0.3)  # stopped inside a tick, waiting for the sensor's reply
            assert held.wait(5), "the sensor was not read"
            os.kill(proc.pid, signal.SIGSTOP)
            time.sleep(STOP_S)
            os.kill(proc.pid, signal.SIGCONT)
            time.sleep(0.6)  # a tick after the stop
            proc.terminate()  # ends as an abort does (the rig made safe)
            out, err = proc.communicate(timeout=30)
    assert proc.returncode is not None and "Traceback" not in err, (out, err[-2000:])
    gaps = [json.loads(d) for (d,) in run_rows(run_dir, "select data_json from events where source = 'control_gap'")]
    # the stop said, though inside a tick (before: not at all, the tick finished after it and
    # the next came at once); the slow tick not (from the start of the tick before: 5.3 s too)
    assert len(gaps) == 1 and STOP_S - 0.1 <= gaps[0]["gap_s"] < STOP_S + 2, gaps
    others = run_rows(run_dir, "select message from events where kind = 'warning' and source != 'control_gap'")
    assert others == [], others
    times = [t for (t,) in run_rows(run_dir, "select t_s from samples where channel = 'rh_near_pct' order by t_s")]
    slow, stop = [i for i, (a, b) in enumerate(zip(times, times[1:])) if b - a > 5.0]  # the sample before each
    # after the slow tick: at once (the slow tick's own sample, then one for the grid's last due
    # time, and as many as it takes to catch up), then on the run's grid: the last two before the
    # stop a whole number of periods after the last before the slow tick (both stamped after like
    # reads); before: re-anchored at the slow tick's end, a quarter period off
    assert stop - slow >= 4, times[slow:stop + 2]
    off = [round((t - times[slow] + PERIOD_S / 2) % PERIOD_S - PERIOD_S / 2, 3) for t in times[stop - 1:stop + 1]]
    assert max(map(abs, off)) <= 0.1, (times[slow:stop + 2], off)
