"""The run's safe state and a daisy-chained pump whose replies do not come back in time: it
still hears, but the driver's stop first waits for the reply to its in-step check (``VER``)
and sent nothing else.

Through the real `castrig run` on `castrig sim serve`, the caster (address 0) and the water
pump (address 1) on one line, through a proxy that passes every command on and, once the cast
has started, holds the caster's replies back until the line next carries the water pump's (a
pump that answers late, past its link's time-out): the run aborted on device_comms and said
"caster.stopped: 'STP': no reply" -- while not one STP went out, only VER packets, which kept
the caster's safe-mode watchdog alive: it was still infusing after the run had ended. And the
water pump, stopped, was "NOT verified" too: its stop read the caster's late reply ("reply
from address 00, expected 1"). Now the safe state (its first try and the tries after it) sends
`castrig safe`'s best-effort STP and records it: the caster stops, the safe state stays NOT
verified for it (nothing read back), and the water pump leaves another address's frame unread
as its reply: verified stopped.

Then `castrig resume --after-abort` of that run, the caster infusing again (as a kill -9
mid-cast leaves it) and answering a version its driver does not know: "cannot open the rig"
(exit 5) with the caster still infusing -- the runner's safe state never comes. Now the failed
open sends the pump that answered its best-effort STP first (read back stopped) and says so."""

from __future__ import annotations

import json
import re
import socket
import urllib.parse

import yaml

from conftest import ROOT, Proxy, castrig, ne1000_packet, profile_with_addresses, run_rows


def _prompt(address: str, pump: int, *commands: str, until_free: bool = False) -> bytes:
    """The served pump's state prompt (``I`` infusing, ``S`` stopped) after ``commands``, each
    sent as a safe-mode packet over the line's own socket as any client sends them (taken in
    basic and safe mode), its reply read whole. ``until_free``: returns once sim serve has let
    go of the line (it serves one client at a time, and lingers up to 0.5 s for this one's
    replies still due): a client after it would meet a line that answers late."""
    u = urllib.parse.urlsplit(address)
    with socket.create_connection((u.hostname, u.port), timeout=5) as s:
        for command in (*commands, ""):
            s.sendall(ne1000_packet(f"{pump}{command}"))
            reply = b""
            while not reply or not _whole(_frames(reply)[-1]):
                chunk = s.recv(256)
                assert chunk, "the pumps' line closed"
                reply += chunk
        if until_free:
            s.shutdown(socket.SHUT_WR)
            while s.recv(256):
                pass
    return re.search(rb"%02d([A-Z])" % pump, reply).group(1)


def _whole(frame: bytes) -> bool:
    basic = len(frame) > 1 and 0x30 <= frame[1] <= 0x39
    return len(frame) > 2 and (frame.endswith(b"\x03") if basic else len(frame) == frame[1] + 1)


def _frames(chunk: bytes) -> list[bytes]:
    """The NE-1000 reply frames in ``chunk``: basic (STX, the address digits ... ETX) or safe-mode
    packets (STX, their length byte, ... ETX), as the line delivered them."""
    out, i = [], 0
    while i < len(chunk):
        if chunk[i] != 2 or i + 1 >= len(chunk):
            return out + [chunk[i:]]
        basic = 0x30 <= chunk[i + 1] <= 0x39
        end = (chunk.find(b"\x03", i) + 1 or len(chunk)) if basic else i + chunk[i + 1] + 1
        out.append(chunk[i:end])
        i = end
    return out


def test_a_daisy_chained_caster_answering_late_gets_a_best_effort_stp_in_every_try_of_the_safe_state(tmp_path, sim_serve):
    sent: list[bytes] = []
    line = {"cast_runs": False, "held": b"", "misreadable": 0}

    def caster_replies_late(request: bytes, reply: bytes) -> bytes:
        sent.append(request)
        if line.get("clone"):  # (then: a version reply the driver does not know, all else as it comes)
            return reply.replace(b"NE1000V", b"NX1000V")
        if not line["cast_runs"]:
            line["cast_runs"] = b"0RUN" in request
            return reply
        passed = b""
        for frame in _frames(reply):  # (the caster's replies held back; the water pump's bring them along)
            if frame[1:3] == b"00" or frame[2:4] == b"00":  # (basic or safe-mode framing)
                line["held"] += frame
                continue
            held, line["held"] = line["held"], b""
            line["misreadable"] += bool(held) and any(b"0STP" in r for r in sent)
            passed += held + frame
        return passed

    recipe = {"name": "late-pump", "steps": [{"type": "cast", "volume_ml": 0.5, "rate_ml_min": 0.1}]}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    chain = yaml.safe_load((ROOT / "hw_profiles" / "sim-serial.yaml").read_text())
    del chain["devices"]["camera"]  # (the recipe captures nothing)
    chain["devices"]["caster"]["address"], chain["devices"]["water_pump"]["address"] = 0, 1
    chain["devices"]["water_pump"]["link"] = chain["devices"]["caster"]["link"]  # one line: sim serve serves it so
    (tmp_path / "chain.yaml").write_text(yaml.safe_dump(chain, sort_keys=False))
    with sim_serve("--tcp", "0", profile=str(tmp_path / "chain.yaml")) as served:
        wire = served.addresses["caster"]
        u = urllib.parse.urlsplit(wire)
        with Proxy((u.hostname, u.port), reply=caster_replies_late) as proxy:
            profile = profile_with_addresses(tmp_path / "chain.yaml", served.addresses, tmp_path / "rig.yaml")
            data = yaml.safe_load(profile.read_text())
            for role in ("caster", "water_pump"):
                data["devices"][role]["link"].update(url=proxy.url, timeout_s=0.2)
            data["control"].update(control_period_s=0.5, comms_lost_s=1, safe_state_retry_s=0,
                                   safe_state_keep_trying_s=1, safe_state_every_s=0.5)
            profile.write_text(yaml.safe_dump(data, sort_keys=False))
            done = castrig("run", str(tmp_path / "recipe.yaml"), "--profile", str(profile), "--data",
                           str(tmp_path / "runs"), "-q", timeout_s=60)
            caster, water_pump = _prompt(wire, 0), _prompt(wire, 1)  # (at once: the caster's 10 s watchdog has not run out)
            # the resume of that run, the caster infusing again (as a kill -9 mid-cast leaves it) and
            # answering a version its driver does not know: its open fails, the resume cannot start
            line["clone"] = _prompt(wire, 0, "RAT1.0MM", "VOL0", "RUN", until_free=True) == b"I"
            (run_dir,) = [p.parent for p in (tmp_path / "runs").glob("*/run.json")]
            resumed = castrig("resume", str(run_dir), "--after-abort", "-q", timeout_s=60)
            caster_after_resume = _prompt(wire, 0)
    out = " ".join(done.stdout.split())
    assert line["cast_runs"], "the cast never started: the test shows nothing"
    # never claimed safe on a blind send: nothing of the caster's came back in time
    assert done.returncode == 3 and "Traceback" not in done.stderr, (done.returncode, out, done.stderr[-2000:])
    assert "safe state NOT verified: caster.stopped: " in out, out
    assert caster == b"S" and water_pump == b"S", f"after the run the caster is {caster!r}, the water pump {water_pump!r}"
    # the STPs went out (before: only VER packets after the cut), and nothing that moves a plunger
    after = sent[[i for i, r in enumerate(sent) if b"0RUN" in r][0] + 1:]
    # (one seen a try, the first and the later ones: the proxy sees the command each reply follows,
    # and the second STP, unanswered, is followed at once by the water pump's; the caster's S says it came)
    assert sum(b"0STP" in r for r in after) >= 2, after
    assert not any(w in r for r in after for w in (b"RUN", b"RAT", b"VOL", b"DIA", b"PUR")), after
    assert f"caster.stopped: {proxy.url}: caster: 'STP': not sent: the line is out of step" in out, out  # (as it was)
    assert "; a best-effort stop: STP sent twice, no stopped state came back (" in out, out
    # the water pump's exchanges met the caster's late replies to those STPs, and read their own
    assert line["misreadable"], "no late reply of the caster reached the water pump: the test shows nothing"
    tries = [json.loads(d) for (d,) in run_rows(run_dir, "SELECT data_json FROM events WHERE kind = 'safe_state'")]
    tries, resumes = [t for t in tries if "resume_not_opened" not in t], [t for t in tries if "resume_not_opened" in t]
    assert len(tries) >= 2 and all(t["verified"]["water_pump.stopped"] for t in tries), tries
    assert not any("water_pump" in t["best_effort_stops"] for t in tries), [t["best_effort_stops"].get("water_pump") for t in tries]  # (its own stop read its own reply)
    assert "reply from address" not in " ".join(m for (m,) in run_rows(run_dir, "SELECT message FROM events")), tries
    # in the run's events: each try's best-effort stop, what was sent and that nothing read back
    assert all(t["best_effort_stops"]["caster"]["sent"] for t in tries), tries
    assert not any(t["safe"] or t["best_effort_stops"]["caster"]["stopped"] for t in tries), tries
    # the resume that could not open the caster (exit 5) sent it the best-effort STP first: it stopped
    # (before: 'cannot open the rig', the caster still infusing)
    assert line["clone"], "the caster was not infusing before the resume: the test shows nothing"
    err = " ".join(resumed.stderr.split())
    assert resumed.returncode == 5 and "Traceback" not in err, (resumed.returncode, err[-2000:])
    assert caster_after_resume == b"S", f"after the resume the caster is {caster_after_resume!r}, not stopped"
    assert "cannot open the rig" in err and "device caster (" in err and "NX1000V" in err, err
    assert "; it answered (" in err and "so a best-effort STP went to it: STP answered and read back stopped" in err, err
    # and made safe what answered, the caster's STP read back stopped, on record (fix-resumesafe9)
    assert "the resume made safe what answers: made safe (read back): caster, dry_mfc, water_pump, wet_mfc;" in err, err
    (resume,) = resumes
    assert resume["safe"] and resume["best_effort_stops"]["caster"]["stopped"], resume
