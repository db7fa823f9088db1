"""A run killed (kill -9) while a pump dispenses, resumed at once, on a real-time rig.

Found against `castrig sim serve` over TCP: the pump the dead process left pumping refuses the
syringe diameter the rig sends as it opens (``?NA``: not applicable while it moves), so
``castrig resume`` ended "cannot open the rig" (exit 5) with no stop sent and no safe state
recorded — and the pump went on until its syringe or its own watchdog ran out. A pump found
moving as the rig opens is stopped first: nobody owns what it is doing.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from conftest import ROOT, castrig, run_rows, run_then_kill_9


def test_resume_right_after_a_kill_mid_cast_stops_the_pump_and_goes_on(tmp_path, sim_serve):
    recipe = {"name": "kill-mid-cast", "steps": [
        {"type": "prewet", "volume_ml": 0.02, "rate_ml_min": 1.0},
        {"type": "cast", "volume_ml": 0.2, "rate_ml_min": 0.5},  # 24 s of pumping
        {"type": "purge", "duration_s": 1},
    ]}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    with sim_serve("--tcp", "0") as served:
        profile = yaml.safe_load((ROOT / "hw_profiles" / "sim-serial.yaml").read_text())
        for role, cfg in profile["devices"].items():
            cfg["link"]["url"] = served.addresses[role]
        for role in ("caster", "water_pump"):
            profile["devices"][role]["safe_mode_s"] = None  # nothing but castrig stops the pump
        (tmp_path / "rig.yaml").write_text(yaml.safe_dump(profile))
        seen: list[float] = []

        def a_second_into_the_cast(run_dir: Path) -> bool:
            if not seen and run_rows(run_dir, "SELECT 1 FROM events WHERE message LIKE 'caster:%dispensing%'"):
                seen.append(time.monotonic())
            return bool(seen) and time.monotonic() - seen[0] >= 1.0

        run_dir = run_then_kill_9(tmp_path / "recipe.yaml", tmp_path / "runs", a_second_into_the_cast,
                                  args=("--profile", str(tmp_path / "rig.yaml")))
        resumed = castrig("resume", str(run_dir), "-q")
        events = run_rows(run_dir, "SELECT kind, source, message FROM events ORDER BY id")
    assert resumed.returncode == 0, (resumed.stderr, events[-8:])
    found = [e for e in events if e[0] == "warning" and "found pumping" in e[2]]
    assert found and found[0][1] == "caster", events
    assert any(kind == "safe_state" for kind, _, _ in events)
