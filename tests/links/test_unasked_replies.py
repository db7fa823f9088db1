"""Replies a device did not send for the command just sent, over real TCP through `sim serve`:
a reply sent twice (a noisy line, a terminal server repeating a packet) and lines a transmitter
streams unasked. An outside tester met both: every reply after the extra one was one behind and
parsed well — a chamber's temperature recorded as its set point to the end of a run, a humidity
15 s stale fed to the RH loop (an overshoot of 18 %RH). Input already there before a command is
now taken for what it is: the link is put back in step before the reply is trusted."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import yaml

from castrig.devices.hmt330 import HMT330
from castrig.devices.modbus import crc16
from castrig.devices.watlow_f4 import WatlowF4, WatlowF4Error
from castrig.links.serial_link import SerialLink

from conftest import ROOT, Proxy, campaign, run_with_a_proxied_device

F4_PROFILE = "hw_profiles/sim-watlow-f4-serial.yaml"


def _proxied(served, role: str, reply) -> Proxy:
    where = urlsplit(served.addresses[role])
    return Proxy((where.hostname, where.port), reply=reply)


def test_a_chamber_reply_sent_twice_is_not_taken_for_the_next_commands(sim_serve):
    twice = {"on": False}
    with sim_serve("--tcp", "0", profile=F4_PROFILE) as served:
        proxy = _proxied(served, "chamber", lambda request, data: data + data if twice["on"] else data)
        try:
            f4 = WatlowF4(SerialLink(f"socket://127.0.0.1:{proxy.port}", baudrate=19200, timeout_s=1.0), name="chamber")
            f4.connect()
            f4.set_rh_setpoint(61.5)
            twice["on"] = True
            for _ in range(6):
                t, sp, rh = f4.read_temperature_c(), f4.rh_setpoint_pct(), f4.read_rh_pct()
                assert sp == 61.5 and 10 < t < 40 and rh != 61.5, (t, sp, rh)
            assert f4.master.in_step.strays >= 1
            f4.close()
        finally:
            proxy.close()


def test_lines_a_transmitter_streams_unasked_are_not_taken_for_its_readings(sim_serve):
    unasked = b"RH= 12.3 %RH T= 45.6 'C\r\n"
    with sim_serve("--tcp", "0") as served:
        proxy = _proxied(served, "rh_near", lambda request, data: data + unasked)
        try:
            hmt = HMT330(SerialLink(f"socket://127.0.0.1:{proxy.port}", timeout_s=1.0), name="rh_near")
            for _ in range(5):
                r = hmt.read()
                assert r.rh_pct != 12.3 and r.temperature_c != 45.6, r
            hmt.close()
        finally:
            proxy.close()


def _reads_as(register: int, value: int):
    """A proxy's ``reply``: an F4 whose ``register`` reads ``value`` (its reply to a one-register
    read rewritten, CRC and all)."""
    asked = b"\x03" + register.to_bytes(2, "big")

    def reply(request: bytes, data: bytes) -> bytes:
        if request[1:4] == asked and data[1:3] == b"\x03\x02":
            frame = data[:3] + value.to_bytes(2, "big")
            return frame + crc16(frame).to_bytes(2, "little")
        return data
    return reply


#: Register 200, profile status, at 2: a profile running.
_profile_running = _reads_as(200, 2)


def test_a_chamber_left_running_a_profile_is_refused_and_never_called_safe(tmp_path, sim_serve):
    """An outside tester: with a profile running on the F4 (left from another session), a run's
    purge recorded "wet air off" and its safe state "verified: chamber.humidifier_off" from a
    read-back of the static set point, while the profile's steps drove the humidity. A run does
    not start on it (exit 5, naming the chamber), and a profile started during a run makes the
    humidifier read as on: the safe state is not verified."""
    with sim_serve("--tcp", "0", profile=F4_PROFILE) as served:
        proxy = _proxied(served, "chamber", _profile_running)
        try:
            done = run_with_a_proxied_device(tmp_path, served, F4_PROFILE, "chamber", proxy, ROOT / "recipes" / "demo-short.yaml")
        finally:
            proxy.close()
    said = " ".join(done.stderr.split())
    assert done.returncode == 5 and "chamber" in said and "a profile is running on the controller" in said, said
    with sim_serve("--tcp", "0", profile=F4_PROFILE) as served:  # (one client at a time on each port)
        running = {"on": False}
        proxy = _proxied(served, "chamber", lambda req, data: _profile_running(req, data) if running["on"] else data)
        try:
            f4 = WatlowF4(SerialLink(f"socket://127.0.0.1:{proxy.port}", baudrate=19200, timeout_s=1.0), name="chamber")
            f4.connect()
            running["on"] = True  # started at the controller during the run
            with pytest.raises(WatlowF4Error, match="set point at the dry level, but a profile is running"):
                f4.set_humidifier(False)  # (what the safe state reports as its reason)
            assert f4.rh_setpoint_pct() <= f4.dry_level_pct()  # the static set point is at the dry level...
            assert f4.humidifier_on()  # ...but the profile may humidify: not off
            f4.close()
        finally:
            proxy.close()


def test_a_chamber_reading_that_is_no_humidity_is_not_recorded_as_one(tmp_path, sim_serve):
    """An outside tester: an F4 showing a failed input (its RH register at 32767, 3276.7 %RH; or
    -5.0) had it recorded as the chamber's RH, into the report and `sim fit`'s inputs, with no
    event. Left out, with one warning naming the chamber and the value."""
    from conftest import run_rows

    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({"name": "failed-input", "steps": [{"type": "purge", "duration_s": 4}]}))
    with sim_serve("--tcp", "0", profile=F4_PROFILE) as served:
        proxy = _proxied(served, "chamber", _reads_as(104, 0x7FFF))  # input 2 (%RH) failed: 3276.7
        try:
            done = run_with_a_proxied_device(tmp_path, served, F4_PROFILE, "chamber", proxy, tmp_path / "recipe.yaml")
        finally:
            proxy.close()
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = [p.parent for p in (tmp_path / "runs").glob("*/run.json")]
    assert run_rows(run_dir, "SELECT count(*) FROM samples WHERE channel = 'chamber_rh_pct'")[0][0] == 0
    assert run_rows(run_dir, "SELECT count(*) FROM samples WHERE channel = 'chamber_setpoint_rh_pct'")[0][0] > 0  # (sound)
    warned = run_rows(run_dir, "SELECT message FROM events WHERE kind = 'warning' AND source = 'chamber'")
    assert len(warned) == 1 and "RH 3276.7 %RH is no humidity" in warned[0][0], warned


def test_chamber_readings_just_beyond_0_or_100_are_kept_and_a_flickering_bad_one_said_once():
    """A review of the range check: a real input reads a little beyond 0-100 %RH (-0.1 under 4 mA
    in a dry purge, 100.4 with condensation): those are readings. A failed input flickering with
    sound readings gave a warning and a clear at every flip: said once a run now."""
    from types import SimpleNamespace as NS

    from castrig.recipe.runner import Runner

    events = []
    runner = NS(CHAMBER_RH_SOUND_PCT=Runner.CHAMBER_RH_SOUND_PCT, _chamber_bad=False, rig=NS(chamber=NS(name="chamber")),
                event=lambda kind, source, message, data=None: events.append((kind, message)))
    kept = []
    for rh in (-0.1, 100.4, 3276.7, 20.0, 3276.7, 20.0):
        values: dict[str, float] = {}
        Runner._chamber_sample(runner, NS(rh_pct=rh, setpoint_rh_pct=30.0), values)  # type: ignore[arg-type]
        kept.append(values.get("chamber_rh_pct"))
    assert kept == [-0.1, 100.4, None, 20.0, None, 20.0]
    assert [k for k, _ in events] == ["warning"] and "RH 3276.7 %RH is no humidity" in events[0][1]


#: An NE-1000 reply "01S" (stopped) in safe-mode framing, valid CRC: a stale reply on the line.
_STALE_STOPPED = b"\x02\x0701S\x99\x97\x03"


def _cast_with_the_caster_answering(tmp_path, sim_serve, first_status_reply, volume_ml: float = 0.03):
    """A cast (``volume_ml`` at 0.6 mL/min) by the real CLI on `sim serve`'s devices, the caster's
    reply to its first status query after ``RUN`` replaced by ``first_status_reply(real reply)``.
    Returns the run folder, once the run completed."""
    state = {"running": False, "done": False}

    def reply(request: bytes, data: bytes):
        command = request[2:-3]
        if command == b"1RUN":
            state["running"] = True
        elif command == b"1" and state["running"] and not state["done"]:
            state["done"] = True
            return first_status_reply(data)
        return data

    recipe = {"name": "caster", "steps": [{"type": "cast", "volume_ml": volume_ml, "rate_ml_min": 0.6},
                                          {"type": "purge", "duration_s": 1}]}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    with sim_serve("--tcp", "0") as served:
        proxy = _proxied(served, "caster", reply)
        try:
            done = run_with_a_proxied_device(tmp_path, served, "hw_profiles/sim-serial.yaml", "caster", proxy,
                                             tmp_path / "recipe.yaml", control_period_s=0.5)
        finally:
            proxy.close()
    assert state["done"], "the caster's first status reply was never replaced: the test shows nothing"
    assert done.returncode == 0, (done.stdout, done.stderr[-2000:])
    (run_dir,) = [p.parent for p in (tmp_path / "runs").glob("*/run.json")]
    return run_dir


@pytest.mark.parametrize("apart", campaign([False, True], ci={1}))
def test_a_stale_stopped_reply_from_the_caster_neither_ends_a_cast_nor_leaves_the_pump_paused(tmp_path, sim_serve, apart):
    """An outside tester: one stale "stopped" frame just before the caster's real reply to the
    first status query of a cast. Taken for the reply, it ended a healthy cast ('dispensed
    0.0012 mL of 0.03 mL', membrane lost); arriving 10 ms before it, it also put every later
    reply one behind: DIS read the status reply (a ProtocolError fault), the safe state's STP
    read DIS's reply and sent no second STP, and the pump was left PAUSED mid-program, 0.029 mL
    still to go, while the safe state said "verified: caster.stopped". Now a reply nobody asked
    for marks the link out of step, a cast's end is confirmed by a second reading, STP is sent
    until the pump says stopped, and only a stopped pump is safe."""
    from conftest import run_rows

    run_dir = _cast_with_the_caster_answering(
        tmp_path, sim_serve, lambda real: [_STALE_STOPPED, real] if apart else _STALE_STOPPED + real)
    [(dispensed,)] = run_rows(run_dir, "SELECT json_extract(data_json, '$.dispensed_ml') FROM events "
                                       "WHERE kind = 'pump' AND message LIKE 'caster: dispensed%'")
    assert dispensed == pytest.approx(0.03, rel=0.02), dispensed


def test_an_alarm_the_caster_sends_on_its_own_is_recorded(tmp_path, sim_serve):
    """An outside tester: the caster's watchdog stopped it during a stalled line and said so with
    an unsolicited 'A?T', which the driver read and kept to itself: neither the run's events nor
    its log mentioned it. An alarm frame sent after a reply now reaches the record as a warning."""
    import binascii

    from conftest import run_rows

    data = b"01A?T"
    alarm = bytes([2, len(data) + 4]) + data + binascii.crc_hqx(data, 0).to_bytes(2, "big") + b"\x03"
    run_dir = _cast_with_the_caster_answering(tmp_path, sim_serve, lambda real: real + alarm, volume_ml=0.02)
    said = run_rows(run_dir, "SELECT message FROM events WHERE kind = 'warning' AND source = 'caster'")
    assert ("caster: alarm T: safe-mode communications time-out, sent by the pump on its own",) in said, said
