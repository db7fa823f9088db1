"""`castrig safe`: after a kill -9 of `castrig tune rh` mid step test the wet air stayed at the
step test's level until someone ran something else, and nothing only made the rig safe (`castrig
resume` needs a run folder, and goes on with the run). Now `castrig safe --profile P` opens the rig
(refused while another process owns it: exit 4, nothing sent), says what it found, brings it to
the safe state every run's end and resume use, read back, and exits 0 -- the wet MFC read over
its own line afterwards says 0."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from castrig.devices.alicat import parse_frame
from conftest import ROOT, Proxy, castrig, profile_with_addresses, signal_self, wait_until, with_sitecustomize

#: A sitecustomize: the process is killed with SIGKILL (no handler runs) as soon as the step test
#: has set the wet and dry air of its first level (``MfcRhLoop.apply`` returned: the controllers
#: took their setpoints) -- a kill -9 mid step test, at a seeded moment.
KILL_9_ONCE_THE_WET_AIR_IS_SET = signal_self("castrig.control.rh_loop:MfcRhLoop.apply", "SIGKILL", after=True)


def _wet_mfc(address: str, unit: str = "B") -> tuple[float, float] | None:
    """(setpoint, mass flow) slpm of the served wet MFC, polled over its socket as any client does
    (its line is free once its owner has gone); None while it is not."""
    u = urlsplit(address)
    try:
        with socket.create_connection((u.hostname, u.port), timeout=5) as s:
            s.sendall(f"{unit}\r".encode())
            reply = b""
            while not reply.endswith(b"\r"):
                chunk = s.recv(256)
                if not chunk:
                    return None
                reply += chunk
    except OSError:
        return None
    frame = parse_frame(reply.decode(), unit_id=unit)
    return frame.setpoint_slpm, frame.mass_flow_slpm


def test_castrig_safe_brings_the_wet_air_a_killed_step_test_left_on_to_zero_read_back_over_the_wire(tmp_path, sim_serve):
    from castrig.rig.ownership import claim_rig
    from castrig.rig.profile import load_profile

    with sim_serve("--tcp", "0") as served:
        profile = profile_with_addresses(ROOT / "hw_profiles" / "sim-serial.yaml", served.addresses, tmp_path / "rig.yaml")
        killed = castrig("tune", "rh", "--profile", str(profile), "--plot", str(tmp_path / "t.svg"), timeout_s=60,
                         **with_sitecustomize(tmp_path, KILL_9_ONCE_THE_WET_AIR_IS_SET))
        assert killed.returncode == -9, (killed.returncode, killed.stderr[-2000:])
        said = " ".join(killed.stderr.split())
        assert f"if it is killed instead: castrig safe --profile {profile}" in said, said
        wire = served.addresses["wet_mfc"]
        setpoint, _ = wait_until(lambda: _wet_mfc(wire), timeout_s=10, what="the wet MFC's line free")
        assert setpoint > 0.1, setpoint  # the step test's wet air, left on

        with claim_rig(load_profile(profile), purpose="another process owning the rig"):
            busy = castrig("safe", "--profile", str(profile), timeout_s=30)
        assert busy.returncode == 4 and "Traceback" not in busy.stderr, busy.stderr[-2000:]
        assert "busy" in busy.stderr and "found on" not in busy.stdout, busy.stdout + busy.stderr
        assert _wet_mfc(wire)[0] == setpoint  # nothing sent

        done = castrig("safe", "--profile", str(profile), timeout_s=60)
        out = " ".join(done.stdout.split())
        assert done.returncode == 0 and "Traceback" not in done.stderr, (done.returncode, out, done.stderr[-2000:])
        assert f"wet_mfc setpoint {setpoint:g} slpm" in out, out  # what it found, as the killed test left it
        assert "safe state verified:" in out and "wet_mfc.off" in out and "dry_mfc.purge" in out, out
        assert "now: caster stopped; water_pump stopped; dry_mfc setpoint 1 slpm" in out and "wet_mfc setpoint 0 slpm" in out, out
        setpoint_after, flow_after = _wet_mfc(wire)
        assert setpoint_after == 0 and abs(flow_after) <= 0.05, (setpoint_after, flow_after)


def test_castrig_abort_of_a_killed_run_names_castrig_safe(tmp_path, capsys):
    """`castrig abort` of a run whose process was killed -9 said "not running (status crashed);
    nothing sent" -- nothing about the rig its process left as it last drove it. Now it names
    `castrig safe` (and `castrig resume`), in-process: refused before anything is sent."""
    from conftest import castrig_main, crashed_membrane_run, refused

    run_dir = crashed_membrane_run(tmp_path / "runs", "20260101-000001-night")
    refused(castrig_main(capsys, "abort", str(run_dir)), "status crashed", "castrig safe --profile",
            f"castrig resume {run_dir}")


#: A sitecustomize: ``$STOP_SIGNAL`` reaches the process the moment it starts making the rig
#: safe (``make_safe`` called: the devices open, nothing yet sent) -- an operator's Ctrl-C, or a
#: SIGTERM, at a seeded moment.
STOP_AS_THE_RIG_IS_MADE_SAFE = """
import os, signal
import castrig.control.safety as _safety
_make_safe = _safety.make_safe
def _stopped_then_made_safe(*a, **kw):
    os.kill(os.getpid(), getattr(signal, os.environ["STOP_SIGNAL"]))
    return _make_safe(*a, **kw)
_safety.make_safe = _stopped_then_made_safe
"""


def _exchange(address: str, line: str, end: bytes, device: str) -> bytes:
    """One command to a served device over its socket, as a terminal sends it; its reply, up to ``end``."""
    u = urlsplit(address)
    with socket.create_connection((u.hostname, u.port), timeout=5) as s:
        s.sendall(line.encode())
        reply = b""
        while not reply.endswith(end):
            chunk = s.recv(256)
            assert chunk, f"the {device} closed its line"
            reply += chunk
    return reply


def _set_wet_air(address: str, slpm: float, unit: str = "B") -> None:
    """The wet MFC's setpoint, sent over its socket as the killed run last sent it."""
    _exchange(address, f"{unit}LS {slpm:g}\r", b"\r", "wet MFC")


def test_castrig_safe_makes_the_devices_it_reaches_safe_names_the_dead_one_and_a_stop_keeps_its_exit_code(tmp_path, sim_serve):
    """A dead pump port (its cable out) made `castrig safe` exit 5 having sent nothing: the wet air
    a killed run left on kept flowing. Now every device that answers is made safe and read back,
    the unreached one is named, and the exit is 3 (not verified). A Ctrl-C while it works was
    waited out and the exit was 0, as if nothing had come; now it ends as `castrig resume` and
    `tune rh` end one during their safe state: the state said, then 130 (SIGTERM: 3). First, on the
    same served rig, `castrig resume` of a run killed -9 mid-evaporate meets a dead caster port
    (:func:`_a_resume_that_cannot_open_the_rig_makes_safe_what_answers`): now it makes safe what answers too."""
    import yaml

    with sim_serve("--tcp", "0") as served, socket.socket() as dead:
        _a_resume_that_cannot_open_the_rig_makes_safe_what_answers(tmp_path, served)  # (the same served rig: its start's CPU once)
        dead.bind(("127.0.0.1", 0))  # (bound, never listening: a connection is refused, no one else takes it)
        profile = profile_with_addresses(ROOT / "hw_profiles" / "sim-serial.yaml", served.addresses, tmp_path / "rig.yaml")
        data = yaml.safe_load(profile.read_text())
        del data["devices"]["camera"]  # (no safe state; its open waits a second for its line to fall quiet)
        profile.write_text(yaml.safe_dump(data, sort_keys=False))
        data["devices"]["caster"]["link"]["url"] = f"socket://127.0.0.1:{dead.getsockname()[1]}"
        no_caster = tmp_path / "no-caster.yaml"
        no_caster.write_text(yaml.safe_dump(data, sort_keys=False))
        wire = served.addresses["wet_mfc"]
        _a_new_run_that_cannot_open_the_rig_makes_safe_what_answers(tmp_path, no_caster, wire)
        _set_wet_air(wire, 0.5)  # (a low flow: it falls to off within a second once closed)
        wait_until(lambda: (_wet_mfc(wire) or (0, 0))[1] > 0.2, timeout_s=10, what="the wet air flowing")

        done = castrig("safe", "--profile", str(no_caster), timeout_s=60)
        out, err = " ".join(done.stdout.split()), " ".join(done.stderr.split())
        assert done.returncode == 3 and "Traceback" not in err, (done.returncode, out, err[-2000:])
        assert "NOT REACHED on sim-serial: caster (" in err and "Connection refused" in err, err
        assert "safe state NOT verified: caster.reached: not reached, not made safe" in out, out
        assert "now: water_pump stopped; dry_mfc setpoint 1 slpm" in out and "wet_mfc setpoint 0 slpm" in out, out
        setpoint_after, flow_after = _wet_mfc(wire)
        assert setpoint_after == 0 and abs(flow_after) <= 0.05, (setpoint_after, flow_after)

        for sig, code in (("SIGINT", 130), ("SIGTERM", 3)):
            stopped = castrig("safe", "--profile", str(profile), timeout_s=60, STOP_SIGNAL=sig,
                              **with_sitecustomize(tmp_path, STOP_AS_THE_RIG_IS_MADE_SAFE))
            out, err = " ".join(stopped.stdout.split()), " ".join(stopped.stderr.split())
            assert stopped.returncode == code and "Traceback" not in err, (sig, stopped.returncode, out, err[-2000:])
            assert "safe state verified:" in out and "wet_mfc.off" in out, out
            assert f"{sig} received: it waited for the safe state (verified) and the rig's close" in err, err
            assert ("interrupted" in err) == (sig == "SIGINT"), err


def test_castrig_safe_says_a_pump_that_answered_then_failed_is_reached_but_not_verified_not_unreached(tmp_path, sim_serve):
    """A caster whose line answered the first query and then went silent (its adapter stuck, the
    pump's firmware hung mid-reply), or then answered garbage, failed as the rig opened, and
    `castrig safe` counted it "not reached" -- with the other devices' ports dead too: exit 5,
    "none of its devices with a safe state answered; nothing was made safe", as if its cable were
    out. It did answer, and may be pumping: now it is said apart, "reached but not verified safe",
    first, and the exit is 3."""
    import contextlib
    import urllib.parse

    import yaml

    answered: list[bytes] = []
    then = {"silent": b"", "garbage": b"\x02\xff\x00garbage\x03\r\n"}
    with sim_serve("--tcp", "0") as served, contextlib.ExitStack() as stack:
        dead = {role: stack.enter_context(socket.socket()) for role in ("water_pump", "dry_mfc", "wet_mfc")}
        for sock in dead.values():
            sock.bind(("127.0.0.1", 0))  # (bound, never listening: a connection is refused)
        u = urllib.parse.urlsplit(served.addresses["caster"])
        for how, after in then.items():
            answered.clear()
            asked: list[bytes] = []

            def first_reply_only(request: bytes, reply: bytes) -> bytes:
                asked.append(request)
                answered.append(reply)
                return reply if len(answered) == 1 else after

            with Proxy((u.hostname, u.port), reply=first_reply_only) as proxy:
                profile = profile_with_addresses(ROOT / "hw_profiles" / "sim-serial.yaml", served.addresses,
                                                 tmp_path / "rig.yaml")
                data = yaml.safe_load(profile.read_text())
                del data["devices"]["camera"]  # (no safe state)
                for role, sock in dead.items():
                    data["devices"][role]["link"]["url"] = f"socket://127.0.0.1:{sock.getsockname()[1]}"
                data["devices"]["caster"]["link"].update(url=proxy.url, timeout_s=0.2)
                profile.write_text(yaml.safe_dump(data, sort_keys=False))
                done = castrig("safe", "--profile", str(profile), timeout_s=60)
            out, err = " ".join(done.stdout.split()), " ".join(done.stderr.split())
            assert done.returncode == 3 and "Traceback" not in err, (how, done.returncode, out, err[-2000:])
            assert answered and answered[0], (how, answered)  # (it did answer once)
            assert "REACHED BUT NOT VERIFIED SAFE on sim-serial (it may still be running): caster (" in err, (how, err)
            assert "bytes came back from it" in err, (how, err)
            assert "NOT REACHED on sim-serial: water_pump (" in err, (how, err)
            assert "caster" not in err.split("NOT REACHED on")[1], (how, err)
            assert ("safe state NOT verified: caster.verified: reached, but NOT made safe: it answered, then failed "
                    "as it was opened, its state unknown (") in out, (how, out)
            assert "it may still be running: make it safe at the device" in out, (how, out)
            assert "water_pump.reached: not reached, not made safe" in out, (how, out)
            # a best-effort STP went over its line all the same, twice (the pump got it; no reply came back, and
            # a first STP only pauses a running pump)
            assert any(b"STP" in r for r in asked), (how, asked)
            assert "; STP sent twice, no stopped state came back (" in err.split("NOT REACHED on")[0], (how, err)
            assert "STP sent twice, no stopped state came back" in out and "now: caster unknown (not read back)" in out, (how, out)


def _caster(address: str, command: str, pump: int = 1) -> str:
    """One basic-mode command to the served caster over its socket, as a terminal sends it; the
    reply frame's text (``01S``: address 1, stopped; ``01I``: infusing)."""
    return _exchange(address, f"{pump}{command}\r", b"\x03", "caster").strip(b"\x02\x03").decode()


def test_castrig_safe_stops_a_pump_that_answered_then_failed_to_open_with_a_best_effort_stp(tmp_path, sim_serve):
    """A caster left infusing whose version reply the driver does not know (another firmware, a
    line that garbles that one reply) failed as the rig opened: `castrig safe` said "reached but
    not verified safe (it may still be running)", sent it nothing and exited 3 -- the caster
    went on infusing. Now a best-effort STP (a safe-mode packet, what its driver's stop sends)
    goes over its line: the pump stops, reads back stopped, and the safe state is verified
    (exit 0), the failed open still said. A line that stays silent after the first reply gets
    the STP too, and says it was sent but not verified (exit 3, the other test)."""
    import urllib.parse

    import yaml

    sent: list[bytes] = []

    def unknown_version(request: bytes, reply: bytes) -> bytes:
        sent.append(request)
        return reply.replace(b"NE1000V", b"NX-CLONE") if b"VER" in request else reply

    with sim_serve("--tcp", "0") as served:
        wire = served.addresses["caster"]
        for command in ("RAT1.0MM", "VOL0", "RUN"):
            _caster(wire, command)
        assert _caster(wire, "").startswith("01I"), "the caster infusing"  # (left so by a killed run)
        u = urllib.parse.urlsplit(wire)
        with Proxy((u.hostname, u.port), reply=unknown_version) as proxy:
            profile = profile_with_addresses(ROOT / "hw_profiles" / "sim-serial.yaml", served.addresses, tmp_path / "rig.yaml")
            data = yaml.safe_load(profile.read_text())
            del data["devices"]["camera"]  # (no safe state)
            data["devices"]["caster"]["link"]["url"] = proxy.url  # (its time-out the profile's: a loaded machine's replies come late)
            profile.write_text(yaml.safe_dump(data, sort_keys=False))
            done = castrig("safe", "--profile", str(profile), timeout_s=60)
        out, err = " ".join(done.stdout.split()), " ".join(done.stderr.split())
        assert done.returncode == 0 and "Traceback" not in err, (done.returncode, err[-2000:], out)
        assert "REACHED, FAILED TO OPEN, STOPPED by a best-effort STP on sim-serial: caster (" in err, err
        assert "STP answered and read back stopped" in err and "NX-CLONE" in err, err
        assert "REACHED BUT NOT VERIFIED" not in err, err
        assert "safe state verified:" in out and "caster.stopped" in out, out
        assert "now: water_pump stopped;" in out and "caster stopped (a best-effort STP, read back)" in out, out
        assert _caster(wire, "").startswith("01S"), "the caster stopped"
        blind = [r for r in sent if b"STP" in r]
        assert blind and all(r.startswith(b"\x02") for r in blind), sent  # (packets: taken in either mode)
        assert not any(w in r for r in sent[sent.index(blind[0]):] for w in (b"RUN", b"RAT", b"DIA", b"VOL")), sent


def _a_resume_that_cannot_open_the_rig_makes_safe_what_answers(tmp_path: Path, served: Any) -> None:
    """A run killed -9 mid-evaporate (the wet air on), resumed with its caster's port dead (the
    cable out): `castrig resume` exited 5 "cannot open the rig" having sent nothing -- the wet MFC
    still flowing afterwards, and no word of `castrig safe`. Now it makes safe every device that
    answers (as `castrig safe` does), says what was and was not made safe, records that in the
    run's events without claiming the run (run.json as the crash left it), and still exits 5."""
    import json

    import yaml

    from conftest import run_rows, run_then_kill_9

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: evaporating\nsteps:\n  - {type: cast, volume_ml: 0.005, rate_ml_min: 0.5}\n"
                      "  - {type: evaporate, setpoint_rh_pct: 80, duration_s: 600}\n")
    u = urlsplit(served.addresses["caster"])
    caster_line = Proxy((u.hostname, u.port))  # (closed after the kill: its port refuses, a cable out)
    profile = profile_with_addresses(ROOT / "hw_profiles" / "sim-serial.yaml", served.addresses, tmp_path / "evaporating-rig.yaml")
    data = yaml.safe_load(profile.read_text())
    del data["devices"]["camera"]  # (the recipe captures nothing; its open waits a second for its line)
    data["devices"]["caster"]["link"]["url"] = caster_line.url
    profile.write_text(yaml.safe_dump(data, sort_keys=False))
    wire = served.addresses["wet_mfc"]
    try:
        run_dir = run_then_kill_9(recipe, tmp_path / "runs", lambda d: run_rows(
            d, "select 1 from samples where channel='wet_setpoint_slpm' and value > 0.2 and t_s > "
               "(select max(t_s) from journal where step_index=1 and state='started')"),
            args=("--profile", str(profile)))
    finally:
        caster_line.close()
    before = json.loads((run_dir / "run.json").read_text())
    setpoint, _ = wait_until(lambda: _wet_mfc(wire), timeout_s=10, what="the wet MFC's line free")
    assert setpoint > 0.2, setpoint  # the evaporation's wet air, left on by the kill

    resumed = castrig("resume", str(run_dir), "-q", timeout_s=60)
    err = " ".join(resumed.stderr.split())
    assert resumed.returncode == 5 and "Traceback" not in err, (resumed.returncode, err[-3000:])
    setpoint_after, flow_after = _wet_mfc(wire)
    assert setpoint_after == 0 and abs(flow_after) <= 0.05, (setpoint_after, flow_after, err)  # before: still 0.5+
    assert "cannot open the rig" in err and "device caster (" in err, err
    assert "the resume made safe what answers: made safe (read back): dry_mfc, water_pump, wet_mfc;" in err, err
    assert "NOT made safe: caster (not reached: " in err and "Connection refused" in err, err
    assert f"The run stays resumable: castrig resume {run_dir} once every device answers" in err, err
    assert f"castrig safe --profile {profile}" in err and "recorded in the run's events" in err, err
    (message, data_json), = run_rows(run_dir, "select message, data_json from events where kind='safe_state'")
    recorded = json.loads(data_json)
    assert message.startswith("resume could not open the rig; made safe (read back): dry_mfc, water_pump, wet_mfc; NOT made "
                              "safe: caster (not reached: "), message
    assert recorded["verified"]["wet_mfc.off"] is True and recorded["verified"]["caster.reached"] is False, recorded
    assert recorded["stopped_utc"] and "resume_not_opened" in recorded, recorded
    after = json.loads((run_dir / "run.json").read_text())  # not claimed: the crashed part as it was, resumable
    assert (after["outcome"], after["parts"], after.get("pid")) == ("running", before["parts"], before.get("pid")), after


def _a_new_run_that_cannot_open_the_rig_makes_safe_what_answers(tmp_path: Path, no_caster: Path, wire: str) -> None:
    """The wet air left on (a run killed -9 and not resumed), then a new `castrig run` with the
    caster's port dead: it exited 5 "cannot open the rig" having sent nothing, the wet MFC still
    flowing. Now it makes safe what answers, says what was and was not, makes no run folder, and
    still exits 5. `castrig tune rh` on the same dead port likewise (it too had sent nothing)."""
    recipe = tmp_path / "cast.yaml"
    recipe.write_text("name: cast\nsteps:\n  - {type: cast, volume_ml: 0.005, rate_ml_min: 0.5}\n")
    _set_wet_air(wire, 0.5)
    wait_until(lambda: (_wet_mfc(wire) or (0, 0))[1] > 0.2, timeout_s=10, what="the wet air flowing")
    done = castrig("run", str(recipe), "--profile", str(no_caster), "--data", str(tmp_path / "new-runs"), "-q", timeout_s=60)
    err = " ".join(done.stderr.split())
    assert done.returncode == 5 and "Traceback" not in err, (done.returncode, err[-3000:])
    setpoint_after, flow_after = _wet_mfc(wire)
    assert setpoint_after == 0 and abs(flow_after) <= 0.05, (setpoint_after, flow_after, err)  # before: still 0.5
    assert "cannot open the rig" in err and "device caster (" in err, err
    assert ("no run was started (no run folder made): the rig could not be opened, so castrig made safe what answers: "
            "made safe (read back): dry_mfc, water_pump, wet_mfc; NOT made safe: caster (not reached: ") in err, err
    assert f"castrig safe --profile {no_caster} once they answer" in err, err
    assert not [p for p in (tmp_path / "new-runs").glob("*") if p.is_dir()], "a run folder was made"

    _set_wet_air(wire, 0.5)  # (a step test killed -9 leaves it so) and `castrig tune rh` meets the dead port
    wait_until(lambda: (_wet_mfc(wire) or (0, 0))[1] > 0.2, timeout_s=10, what="the wet air flowing")
    tuned = castrig("tune", "rh", "--profile", str(no_caster), "--plot", str(tmp_path / "t.svg"), timeout_s=60)
    err = " ".join(tuned.stderr.split())
    assert tuned.returncode == 5 and "Traceback" not in err, (tuned.returncode, err[-3000:])
    assert _wet_mfc(wire)[0] == 0, err  # before: still 0.5
    assert ("no step test was run: the rig could not be opened, so castrig made safe what answers: made safe (read "
            "back): dry_mfc, water_pump, wet_mfc; NOT made safe: caster (not reached: ") in err, err


def test_a_rig_another_process_took_meanwhile_is_said_owned_with_nothing_sent_and_no_advice_to_act_on_it(tmp_path, reap):
    """A run whose rig could not be opened makes safe what answers; if another process owns the
    rig by then (it took it between the failed open and the make-safe), nothing is sent. The
    refusal said so and then advised "make the rest safe at the devices, or castrig safe": acting
    on a rig another run drives (a review finding). Now it says the rig is owned and nothing was
    sent, and gives no such advice; still RigUnreachable (exit 5)."""
    import pytest

    from castrig.errors import RigUnreachable
    from castrig.recipe.run_unopened import make_safe_and_refuse
    from castrig.rig.profile import load_profile
    from conftest import hold_rig

    nowhere = {role: f"socket://127.0.0.1:{9 + i}" for i, role in enumerate(
        ("caster", "water_pump", "dry_mfc", "wet_mfc", "rh_near", "rh_room", "camera"))}  # (never opened: owned first)
    profile = profile_with_addresses(ROOT / "hw_profiles" / "sim-serial.yaml", nowhere, tmp_path / "rig.yaml")
    owner = hold_rig(reap, profile)
    with pytest.raises(RigUnreachable) as refused:
        make_safe_and_refuse(load_profile(profile), profile, seed=None, purpose="castrig run r.yaml",
                             exc=RigUnreachable("cannot open the rig: device caster: connection refused"))
    said = " ".join(str(refused.value).split())
    assert "nothing was made safe, nothing was sent: another process owns the rig now" in said, said
    assert f"pid {owner.pid}" in said and "castrig safe" not in said and "at the devices" not in said, said
