"""While the run makes the rig safe, and while it tries again to reach a safe state it could not
verify, ``castrig status`` says so — never ``running``.

Met by the audit: the served twin killed mid-run, the interlock tripped, "safe state NOT verified",
run_end aborted, then the safe state's tries for up to 30 min; meanwhile ``castrig status`` printed
``running · step 2/8 condition``, ``status --json`` had status running and outcome_reason null, and
control/status.json stayed ``state: running`` with t_s frozen.

Outside in: the real CLI (the run in a process of its own; status and abort through the CLI's
entry point, conftest ``castrig_main``) against ``castrig sim serve`` over TCP, the server killed (every device's
link gone); the tries' period and span shortened through the profile's documented settings
(``control.safe_state_every_s``, ``control.safe_state_keep_trying_s``, docs/profiles.md).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from conftest import ROOT, castrig_main, only_run_dir, profile_with_addresses, run_rows, start_castrig, wait_until

RECIPE = """
name: unsafe
steps:
  - {type: purge, duration_s: 600}
"""


def _profile(tmp_path: Path, addresses: dict[str, str]) -> Path:
    path = profile_with_addresses(ROOT / "hw_profiles" / "sim-serial.yaml", addresses, tmp_path / "p.yaml")
    data = yaml.safe_load(path.read_text())
    data["control"].update(sensor_stale_s=2.0, comms_lost_s=2.0, safe_state_retry_s=1.0,
                           safe_state_keep_trying_s=120.0, safe_state_every_s=1.0)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _status_json(capsys, run_dir: Path) -> dict:
    res = castrig_main(capsys, "status", "--json", str(run_dir))
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_status_says_the_rig_is_not_safe_while_the_safe_state_is_tried_again(tmp_path, sim_serve, reap, capsys):
    recipe = tmp_path / "unsafe.yaml"
    recipe.write_text(RECIPE)
    with sim_serve("--tcp", "0") as served:
        profile = _profile(tmp_path, served.addresses)
        data = tmp_path / "data"
        proc = reap(start_castrig("run", str(recipe), "--profile", str(profile), "--data", str(data), "-q"))
        run_dir = wait_until(lambda: (r := only_run_dir(data)) and run_rows(r, "select 1 from events where kind = 'setpoint'") and r,
                             timeout_s=30, what="the purge under way")
        served.proc.kill()  # every device's link gone at once: the safe state cannot be verified
        served.proc.wait(timeout=10)
        wait_until(lambda: run_rows(run_dir, "select 1 from events where kind = 'run_end'") or proc.poll() is not None,
                   timeout_s=30, what="the interlock and run_end")
        assert proc.poll() is None, proc.stderr.read()[-3000:]  # type: ignore[union-attr]

        shown = wait_until(lambda: (d := _status_json(capsys, run_dir))["status"] == "unsafe_retrying" and d, timeout_s=20,
                           what="status unsafe_retrying")
        assert shown["outcome_reason"] and "aborted" in shown["outcome_reason"], shown
        safe = shown["safe_state"]
        assert safe["state"] == "unsafe_retrying" and safe["unverified"] and safe["every_s"] == 1.0, safe
        assert "NOT verified" in shown["detail"]
        from castrig.store import live as R  # what `castrig serve` answers (/api/runs, /api/runs/{uid})

        assert R.summary(run_dir)["status"] == "unsafe_retrying" and R.detail(run_dir)["safe_state"]["unverified"]
        line = castrig_main(capsys, "status", str(run_dir)).stdout
        assert "unsafe_retrying" in line and "NOT verified" in line and "running" not in line.split(" · ")[0], line
        assert "left: step" not in line, line  # no time left in a run that is ending
        # nor in `castrig watch` and the web page, which show detail()'s step_left_s / run_left_s
        assert shown["step_left_s"] is None and shown["run_left_s"] is None, shown
        assert R.detail(run_dir)["step_left_s"] is None and R.detail(run_dir)["run_left_s"] is None
        listed = castrig_main(capsys, "runs", "--data", str(data)).stdout  # the runs table says it too, not `running`
        assert "unsafe_retrying" in listed and " running " not in listed, listed
        # the tries go on: the count moves and the status is fresh (not frozen at the trip)
        wait_until(lambda: (_status_json(capsys, run_dir).get("safe_state") or {}).get("tries", 0) > safe["tries"], timeout_s=15,
                   what="another try")

        t0 = time.monotonic()
        stop = castrig_main(capsys, "abort", str(run_dir))  # the operator ends the tries
        # taken, and the rig is still not known safe: exit 5, "see to it at the rig" (not 0)
        assert stop.returncode == 5 and "NOT verified" in stop.stdout + stop.stderr, stop.stdout + stop.stderr
        assert proc.wait(timeout=30) == 3 and time.monotonic() - t0 < 20
    info = json.loads((run_dir / "run.json").read_text())
    assert info["outcome"] == "aborted"


def test_a_sigterm_while_the_rig_is_made_safe_ends_the_tries_too(tmp_path, sim_serve, reap):
    """systemctl stop sends one SIGTERM. Landing while the rig was being made safe (before the tries
    of an unverified safe state began; a seeded moment: conftest SIGNAL_AT_SAFE_STATE, as the first
    make_safe starts) it was only noted, and the tries then went on for safe_state_keep_trying_s
    (here 120 s; 30 min by default) until the service manager's SIGKILL. Now it ends them too: the
    run ends aborted, its safe state NOT verified, well inside that time."""
    from conftest import SIGNAL_AT_SAFE_STATE, with_sitecustomize

    recipe = tmp_path / "unsafe.yaml"
    recipe.write_text(RECIPE)
    with sim_serve("--tcp", "0") as served:
        profile = _profile(tmp_path, served.addresses)
        data = tmp_path / "data"
        proc = reap(start_castrig("run", str(recipe), "--profile", str(profile), "--data", str(data), "-q",
                                  SIGNAL_AT_SAFE_STATE="SIGTERM", SIGNAL_TIMES="1", **with_sitecustomize(tmp_path, SIGNAL_AT_SAFE_STATE)))
        run_dir = wait_until(lambda: (r := only_run_dir(data)) and run_rows(r, "select 1 from events where kind = 'setpoint'") and r,
                             timeout_s=30, what="the purge under way")
        served.proc.kill()  # every device's link gone: the safe state cannot be verified
        served.proc.wait(timeout=10)
        t0 = time.monotonic()
        assert proc.wait(timeout=60) == 3
        assert time.monotonic() - t0 < 40  # not the 120 s of tries
    info = json.loads((run_dir / "run.json").read_text())
    assert info["outcome"] == "aborted" and info["ended_utc"], info
