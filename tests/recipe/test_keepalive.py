"""Safe-mode pumps are kept alive by the packets the runner sends anyway: a sample's DIS query
restarts the NE-1000's watchdog, so no separate keep-alive goes out in that period (issue 19:
fewer exchanges, the same protection)."""

from __future__ import annotations

from pathlib import Path

import pytest

from castrig.recipe.model import Recipe
from castrig.recipe.runner import Runner
from castrig.rig.build import build_rig
from castrig.rig.profile import load_profile
from castrig.store import RunInfo, SqliteRunStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("profile_name", ["sim.yaml", "sim-chamber.yaml"])
def test_a_long_wait_keeps_safe_mode_pumps_alive_with_few_packets(tmp_path, profile_name):
    profile = load_profile(ROOT / "hw_profiles" / profile_name)  # NE-1000s in safe mode, 10 s watchdog
    rig = build_rig(profile)
    packets: dict[str, list[float]] = {}
    for role in ("caster", "water_pump"):
        emu = rig.twin.emulators[role]
        seen = packets.setdefault(role, [])
        on_command = emu._on_command  # noqa: SLF001 - counting what reaches the device, not changing it

        def counted(data, t, *args, _orig=on_command, _seen=seen, **kw):
            _seen.append(t)
            return _orig(data, t, *args, **kw)

        emu._on_command = counted  # noqa: SLF001
    store = SqliteRunStore(tmp_path, synchronous="NORMAL")
    rec = store.create_run(RunInfo("t", "t", "-", "sim", "-", "test", 1, "", "now"))
    recipe = Recipe.model_validate({"name": "t", "steps": [{"type": "wait", "duration_s": 600}]})
    result = Runner(recipe, rig, rec).run()
    assert result.outcome == "completed"
    for role, times in packets.items():
        assert not [e for e in rec.events("interlock")], "a watchdog alarm tripped an interlock"
        assert not rig.twin.emulators[role].alarm, f"{role}: watchdog alarm"
        during = [t for t in times if 60 <= t - times[0] <= 540]
        gaps = [b - a for a, b in zip(during, during[1:])]
        # a safe-mode watchdog (10 s) is never approached: a packet at least every third of it
        # (the keep-alive at the last 1 s tick before it is due: 2.9 s gaps at most; 4.3 s when it
        # went at the first tick after); and no keep-alive on top of a sample's own query (5 s
        # samples, one keep-alive between two: 2.0 packets per sample period; 1.83 per 5 s
        # when the ticks drifted to 1.12 s and the samples to 5.6 s, 2.06 a sample; 2.06 per 5 s
        # when keep-alives ran on their own clock)
        assert max(gaps) <= 10.0 / 3
        assert len(during) / (480 / 5.0) <= 2.0, f"{role}: {len(during)} packets in 480 s"
