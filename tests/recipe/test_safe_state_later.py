"""A device the safe state could not reach is made safe when it comes back (the gap found last
round: a wet MFC unreachable for longer than safe_state_retry_s stayed open when its cable was
plugged back in, with nobody there overnight to close it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from castrig.recipe.model import Recipe
from castrig.recipe.runner import Runner
from castrig.rig.build import build_rig
from castrig.rig.profile import load_profile
from castrig.store import RunInfo, SqliteRunStore

ROOT = Path(__file__).resolve().parents[2]


def _run_with_wet_mfc_unplugged(tmp_path: Path, keep_trying_s: float, back_after_s: float,
                                abort_after_s: float | None = None, someone_asked: bool = True):
    profile = load_profile(ROOT / "hw_profiles" / "sim.yaml")
    profile = profile.model_copy(update={"control": profile.control.model_copy(update={"safe_state_keep_trying_s": keep_trying_s})})
    rig = build_rig(profile)
    emu, clock = rig.twin.emulators["wet_mfc"], rig.clock
    unplugged: dict[str, float] = {}

    runner: list[Runner] = []

    def plug_back_when_due() -> None:
        if "t" in unplugged and "drop" in emu.faults and clock.now() >= unplugged["t"] + back_after_s:
            emu.clear("drop")  # the cable is back
        if abort_after_s is not None and "t" in unplugged and clock.now() >= unplugged["t"] + abort_after_s \
                and "abort" not in unplugged:
            unplugged["abort"] = clock.now()
            # what the SIGTERM handler does (SIGHUP: someone_asked=False)
            runner[0].request_abort("SIGTERM received" if someone_asked else "SIGHUP received", someone_asked=someone_asked)

    for name in ("sleep", "sleep_until"):  # time passes for the cable as for everything else
        real = getattr(clock, name)

        def passing(x, _real=real):  # type: ignore[no-untyped-def]
            _real(x)
            plug_back_when_due()

        setattr(clock, name, passing)

    def on_status(s) -> None:  # type: ignore[no-untyped-def]
        if s.step_name == "wait" and s.step_elapsed_s > 5 and "t" not in unplugged:
            unplugged["t"] = clock.now()
            emu.inject("drop")  # the wet MFC's cable is pulled while humid air flows

    recipe = Recipe.model_validate({"name": "t", "steps": [
        {"type": "condition", "setpoint_rh_pct": 60, "band_rh_pct": 1.5, "stable_for_s": 20, "timeout_s": 900},
        {"type": "wait", "duration_s": 600}]})
    rec = SqliteRunStore(tmp_path, synchronous="NORMAL").create_run(RunInfo("t", "t", "-", "sim", "-", "test", 1, "", "now"))
    runner.append(Runner(recipe, rig, rec, on_status=on_status))
    result = runner[0].run()
    clock.sleep(back_after_s + 60)  # long after: the cable is back whatever the runner did
    return result, emu, rec


def test_a_wet_mfc_back_after_the_retries_is_still_switched_off(tmp_path):
    result, emu, rec = _run_with_wet_mfc_unplugged(tmp_path, keep_trying_s=1800, back_after_s=120)
    assert result.outcome == "aborted" and "device_comms" in result.reason
    assert result.safe.safe and emu.setpoint_slpm == 0.0
    first, *_, last = [e for e in rec.events("safe_state")]
    assert first.data["safe"] is False and last.data["safe"] is True
    assert 80 <= last.data["after_s"] <= 130  # made safe ~10 s after the cable came back


@pytest.mark.parametrize("keep_trying_s", [0.0, 60.0])
def test_without_enough_tries_the_wet_mfc_stays_open_and_the_run_says_so(tmp_path, keep_trying_s):
    result, emu, rec = _run_with_wet_mfc_unplugged(tmp_path, keep_trying_s=keep_trying_s, back_after_s=120)
    assert not result.safe.safe and "NOT verified" in rec.events("safe_state")[-1].message
    assert emu.setpoint_slpm > 0.0  # what the tries are for: nothing closed it


def test_sigterm_or_castrig_abort_stops_the_tries(tmp_path):
    """The tries are for a rig left alone; a person or the system asking to stop ends them."""
    result, emu, rec = _run_with_wet_mfc_unplugged(tmp_path, keep_trying_s=1800, back_after_s=1e9, abort_after_s=200)
    last = rec.events("safe_state")[-1]
    assert not result.safe.safe and last.data["safe"] is False
    assert last.data["after_s"] < 250  # stopped at the request, not after 30 min


def test_a_hung_up_terminal_does_not_stop_the_tries(tmp_path):
    """The terminal closes (SIGHUP) while the wet MFC is still unreachable: nobody is left to
    switch it off, so the tries go on and close it when its cable is back (before, the hang-up
    went through the same request as SIGTERM and ended them)."""
    result, emu, rec = _run_with_wet_mfc_unplugged(tmp_path, keep_trying_s=1800, back_after_s=300, abort_after_s=200,
                                                   someone_asked=False)
    last = rec.events("safe_state")[-1]
    assert result.safe.safe and last.data["safe"] is True and emu.setpoint_slpm == 0.0
    assert last.data["after_s"] > 250  # made safe after the cable came back, not stopped at the hang-up
