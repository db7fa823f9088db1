"""The run's safe state and a pump whose replies are lost: it still hears, but the driver's
stop first waits for the reply to its in-step check (``VER``) and sent nothing else.

Through the real `castrig run` on `castrig sim serve`, the caster's line through a proxy that
passes its commands on and, once the cast has started, none of its replies back (a serial
server or adapter that lost its receive direction): the run aborted on device_comms and said
"caster.stopped: 'STP': no reply" -- while not one STP went out, only VER packets, which kept
the caster's safe-mode watchdog alive: it was still infusing after the run had ended. Now the
safe state (first try and the tries after it) sends the best-effort STP of `castrig safe` and
records it; the caster stops, and the safe state stays NOT verified (nothing read back)."""

from __future__ import annotations

import json
import socket
import urllib.parse

import yaml

from conftest import ROOT, Proxy, castrig, ne1000_packet, profile_with_addresses, run_rows


def _caster_prompt(address: str) -> bytes:
    """The served caster's state prompt (``I`` infusing, ``S`` stopped), asked with a safe-mode
    packet over its own socket as any client asks (the run left it armed)."""
    u = urllib.parse.urlsplit(address)
    with socket.create_connection((u.hostname, u.port), timeout=5) as s:
        s.sendall(ne1000_packet("1"))
        reply = b""
        while not reply.endswith(b"\x03"):
            chunk = s.recv(256)
            assert chunk, "the caster closed its line"
            reply += chunk
    return reply[4:5]  # STX, length, '01', then the prompt


def test_a_caster_whose_replies_are_lost_mid_cast_gets_a_best_effort_stp_in_every_try_of_the_safe_state(tmp_path, sim_serve):
    sent: list[bytes] = []
    cut = {"after_run": False}

    def replies_lost_once_the_cast_runs(request: bytes, reply: bytes) -> bytes:
        sent.append(request)
        if cut["after_run"]:
            return b""
        cut["after_run"] = b"RUN" in request
        return reply

    recipe = {"name": "deaf-line", "steps": [{"type": "cast", "volume_ml": 0.5, "rate_ml_min": 0.1}]}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    with sim_serve("--tcp", "0") as served:
        u = urllib.parse.urlsplit(served.addresses["caster"])
        with Proxy((u.hostname, u.port), reply=replies_lost_once_the_cast_runs) as proxy:
            profile = profile_with_addresses(ROOT / "hw_profiles" / "sim-serial.yaml", served.addresses, tmp_path / "rig.yaml")
            data = yaml.safe_load(profile.read_text())
            del data["devices"]["camera"]  # (the recipe captures nothing)
            data["devices"]["caster"]["link"].update(url=proxy.url, timeout_s=0.2)
            data["control"].update(control_period_s=0.5, comms_lost_s=1, safe_state_retry_s=0,
                                   safe_state_keep_trying_s=1, safe_state_every_s=0.5)
            profile.write_text(yaml.safe_dump(data, sort_keys=False))
            done = castrig("run", str(tmp_path / "recipe.yaml"), "--profile", str(profile), "--data",
                           str(tmp_path / "runs"), "-q", timeout_s=60)
        prompt = _caster_prompt(served.addresses["caster"])  # (at once: its 10 s watchdog has not run out)
    out = " ".join(done.stdout.split())
    assert cut["after_run"], "the cast never started: the test shows nothing"
    # never claimed safe on a blind send: nothing came back
    assert done.returncode == 3 and "Traceback" not in done.stderr, (done.returncode, out, done.stderr[-2000:])
    assert "safe state NOT verified: caster.stopped: " in out, out
    assert prompt == b"S", f"the caster is {prompt!r} after the run, not stopped"
    # the STPs went out (before: only VER packets after the cut), and nothing that moves the plunger
    after = sent[[i for i, r in enumerate(sent) if b"RUN" in r][0] + 1:]
    assert sum(b"1STP" in r for r in after) >= 4, after  # (two a try: the first try, then the later ones)
    assert not any(w in r for r in after for w in (b"RUN", b"RAT", b"VOL", b"DIA", b"PUR")), after
    assert "; a best-effort stop: STP sent twice, no stopped state came back (" in out, out
    # in the run's events: each try's best-effort stop, what was sent and that nothing read back
    (run_dir,) = [p.parent for p in (tmp_path / "runs").glob("*/run.json")]
    tries = [json.loads(d) for (d,) in run_rows(run_dir, "SELECT data_json FROM events WHERE kind = 'safe_state'")]
    assert len(tries) >= 2 and all(t["best_effort_stops"]["caster"]["sent"] for t in tries), tries
    assert not any(t["safe"] or t["best_effort_stops"]["caster"]["stopped"] for t in tries), tries
