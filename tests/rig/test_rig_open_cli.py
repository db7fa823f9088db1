"""A device that is there but is not the one the profile names — the commissioning mistakes a lab
makes (an MFC's unit id, a chamber on the wrong port) — from the outside: ``castrig run``
against ``castrig sim serve`` says "cannot open the rig" naming the device (exit 5) before a
run folder exists. The MFCs and the SCPI chamber were opened without a word exchanged: the run
started and the first step's setpoint met the silence, a device_comms abort later."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, campaign, castrig, castrig_main, profile_with_addresses

QUICK = {"name": "quick", "steps": [{"type": "purge", "duration_s": 2}]}


def _run_on(tmp_path: Path, addresses: dict[str, str], change: Callable[[dict], None],
            recipe: dict = QUICK) -> tuple[int, str]:
    """``castrig run recipe`` (a two-second purge) on sim-serial.yaml at ``addresses``, the profile
    first changed by ``change(data)``: (exit code, stdout and stderr on one line)."""
    profile = profile_with_addresses(ROOT / "hw_profiles" / "sim-serial.yaml", addresses, tmp_path / "rig.yaml")
    data = yaml.safe_load(profile.read_text())
    change(data)
    profile.write_text(yaml.safe_dump(data))
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    got = castrig("run", str(path), "--profile", str(profile), "--data", str(tmp_path / "runs"), timeout_s=60)
    return got.returncode, " ".join((got.stdout + got.stderr).split())


def _no_run_folder(tmp_path: Path) -> bool:
    return not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("*/run.json"))


def test_an_mfc_with_another_unit_id_is_rig_not_reachable_before_any_run_folder(tmp_path, sim_serve):
    served_as = []

    def unit_z(data: dict) -> None:
        served_as.append(data["devices"]["wet_mfc"]["unit_id"])
        data["devices"]["wet_mfc"]["unit_id"] = "Z"  # the unit answers to its own letter only

    with sim_serve("--tcp", "0") as served:
        code, said = _run_on(tmp_path, served.addresses, unit_z)
    assert code == 5, said
    assert "cannot open the rig" in said and "device wet_mfc" in said and "'Z'" in said, said
    assert served_as != ["Z"] and "Traceback" not in said and _no_run_folder(tmp_path)


CAPTURES = {"name": "captures", "steps": [{"type": "purge", "duration_s": 2},
                                          {"type": "capture", "views": ["reflected"], "fields": 1}]}


def _one_second(data: dict) -> None:
    data["devices"]["camera"]["link"]["timeout_s"] = 1.0


def test_a_camera_address_where_nothing_answers_is_rig_not_reachable_for_a_recipe_that_captures(tmp_path, sim_serve):
    """The camera's address reaching a port that takes the connection and says nothing (another
    program's, or a port typed from the wrong row): the camera was opened without a word, the run
    conditioned, cast and evaporated, and met the silence at its first capture -- a membrane made
    and never imaged. Now a recipe that captures asks its *IDN? before the rig opens."""
    with sim_serve("--tcp", "0") as served, socket.create_server(("127.0.0.1", 0)) as silent:
        code, said = _run_on(tmp_path, dict(served.addresses, camera=f"socket://127.0.0.1:{silent.getsockname()[1]}"),
                             _one_second, CAPTURES)
    assert code == 5, said
    assert "cannot open the rig" in said and "camera" in said and "*IDN?" in said and "Traceback" not in said, said
    assert _no_run_folder(tmp_path)


def test_a_recipe_without_a_capture_runs_with_the_camera_silent(tmp_path, sim_serve):
    """The camera switched off for a purge, a conditioning or a night of casts imaged later: the
    rig opens without it (only a recipe that captures needs it to answer)."""
    with sim_serve("--tcp", "0") as served, socket.create_server(("127.0.0.1", 0)) as silent:
        code, said = _run_on(tmp_path, dict(served.addresses, camera=f"socket://127.0.0.1:{silent.getsockname()[1]}"),
                             _one_second)
    assert code == 0 and "completed" in said and "safe state verified" in said, said


#: Twin parameters a profile may not hold, and what is said of each (the first is the one met).
BAD_TWIN_PARAMS = [
    ({"chamber": {"volume_l": "x"}}, "sim.params: chamber.volume_l = 'x': expected a finite number"),
    ({"film": {"cv_base": float("nan")}}, "sim.params: film.cv_base = 'nan': expected a finite number"),
    ({"film": {"nope": 1}}, "sim.params: film.nope: no such parameter of the twin's film"),
    ({"chamber": 5}, "sim.params: chamber = '5': expected a mapping"),
]


def _twin_profile(tmp_path: Path, params: dict) -> Path:
    profile = yaml.safe_load((ROOT / "hw_profiles" / "sim.yaml").read_text())
    profile["sim"]["params"] = params
    path = tmp_path / "twin.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


@pytest.mark.parametrize("params, says", BAD_TWIN_PARAMS)
def test_every_bad_twin_parameter_is_refused_by_the_profiles_loader(tmp_path, params, says):
    """Each kind of bad ``sim.params`` is a BadInput naming the file and the parameter from
    load_profile, the loader `check` and `run` both read the profile with (in-process: the CLI's
    two processes per kind are the test below, for the first kind in CI, for all with -m slow)."""
    from castrig.errors import BadInput
    from castrig.rig.profile import load_profile

    path = _twin_profile(tmp_path, params)
    with pytest.raises(BadInput) as refused:
        load_profile(path)
    assert says in " ".join(str(refused.value).split()) and refused.value.file == str(path)


@pytest.mark.parametrize("params, says", campaign(BAD_TWIN_PARAMS, ci={0}))
def test_twin_parameters_are_checked_before_a_run_folder_is_made(tmp_path, params, says):
    """`check` passed ``sim.params: {chamber: {volume_l: x}}``; `run` then ended in a TypeError
    traceback (exit 1) and left a crashed run folder at every try (NaN was taken silently).
    (CI: that first kind; the loader's message for each kind is checked in-process above.)"""
    path = _twin_profile(tmp_path, params)
    for argv in (["check", str(path)], ["run", str(ROOT / "recipes" / "demo-short.yaml"), "--profile", str(path),
                                        "--data", str(tmp_path / "runs")]):
        done = castrig(*argv)
        said = " ".join(done.stderr.split())
        assert done.returncode == 2 and says in said and "Traceback" not in said, (argv, said)
    assert not list(tmp_path.glob("runs/*/run.json"))


def test_a_pump_found_pumping_is_a_warning_and_its_volume_is_not_this_runs(tmp_path, sim_serve, capsys, monkeypatch):
    """The caster started by hand (or left pumping by a dead process) before `castrig run`: the
    run stopped it with an "info" line, `status` said "no warning", and its samples recorded the
    volume pumped before the run (caster_infused_ml 0.25 mL during the purge, before any cast)."""
    import time

    from conftest import only_run_dir, run_rows

    with sim_serve("--tcp", "0") as served:
        host, port = served.addresses["caster"].removeprefix("socket://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as pump:  # NE-1000 basic mode, address 1
            for cmd in (b"1STP\r", b"1VOL 2000\r", b"1RUN\r"):  # (STP: its power-on alarm answered first)
                pump.sendall(cmd)
                time.sleep(0.2)
            time.sleep(1.0)  # infusing towards 2000 µL at its last rate: still moving as the run opens it
        code, said = _run_on(tmp_path, served.addresses, lambda data: None)
    assert code == 0, said
    run_dir = only_run_dir(tmp_path / "runs")
    (warning,) = run_rows(run_dir, "SELECT message FROM events WHERE kind = 'warning' AND source = 'caster'")
    assert "found pumping as the rig opened" in warning[0]
    infused = [v for (v,) in run_rows(run_dir, "SELECT value FROM samples WHERE channel = 'caster_infused_ml'")]
    assert infused and max(infused) == 0.0, infused
    monkeypatch.setenv("COLUMNS", "300")
    status = castrig_main(capsys, "status", str(run_dir))
    assert "found pumping" in status.stdout and "no warning" not in status.stdout, status.stdout


def test_an_mfc_left_streaming_is_put_back_to_polling_and_the_run_goes_on(tmp_path, sim_serve):
    """The dry MFC left streaming by other software (``A@=@``: frames without its id, polls to A
    unanswered): the first streamed frame passed for the answer to castrig's poll, every
    setpoint's reply was a frame, the run aborted (device_comms) and its safe state, never
    verified, was retried for 30 minutes."""
    import time

    from conftest import only_run_dir, run_rows

    with sim_serve("--tcp", "0") as served:
        host, port = served.addresses["dry_mfc"].removeprefix("socket://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as mfc:
            mfc.sendall(b"A@=@\r")
            time.sleep(0.3)
        code, said = _run_on(tmp_path, served.addresses, lambda data: None)
        with socket.create_connection((host, int(port)), timeout=5) as mfc:  # polled again: it answers under A
            mfc.sendall(b"A\r")
            assert mfc.recv(200).startswith(b"A "), "the MFC was left streaming"
    assert code == 0 and "Traceback" not in said and "NOT verified" not in said, said
    run_dir = only_run_dir(tmp_path / "runs")
    (warning,) = run_rows(run_dir, "SELECT message FROM events WHERE kind = 'warning' AND source = 'dry_mfc'")
    assert "found streaming as the rig opened" in warning[0]
    assert run_rows(run_dir, "SELECT count(*) FROM samples WHERE channel = 'dry_flow_slpm'")[0][0] > 0


def test_a_stray_byte_on_an_mfc_line_does_not_make_the_rig_unreachable(tmp_path, sim_serve):
    """One 'A' left on the dry MFC's line (a stray byte, a client that died mid-command) ran into
    castrig's first poll ('AA': reply 'A ?'), and `castrig run` said the rig was not reachable
    (exit 5). Over served ptys, as on a real serial line."""
    import os

    with sim_serve("--pty") as served:
        fd = os.open(served.addresses["dry_mfc"], os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, b"A")
        finally:
            os.close(fd)
        code, said = _run_on(tmp_path, served.addresses, lambda data: None)
    assert code == 0 and "Traceback" not in said, said


def test_frames_another_client_left_on_the_camera_line_are_not_read_as_answers(tmp_path, sim_serve):
    """Twenty SNAPs asked on the served camera's pty and never read: the next `castrig run` read
    their image bytes as its *IDN? answer ("no b'\\n' within 65536 bytes"), exit 5, and so did
    every run after it."""
    import os
    import time

    with sim_serve("--pty") as served:
        fd = os.open(served.addresses["camera"], os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, b"SNAP section\n" * 20)
            time.sleep(1.0)
        finally:
            os.close(fd)
        code, said = _run_on(tmp_path, served.addresses, lambda data: None, CAPTURES)
    assert code == 0 and "completed" in said and "Traceback" not in said, said


def test_a_pump_kept_in_basic_mode_is_said_as_the_run_starts(tmp_path, sim_serve):
    """An outside pass flipped one bit of a basic-mode pump's reply (no checksum there): 'I0.000'
    read as 'I8.000', recorded as 0.008 mL dispensed before the pump moved, with no word that the
    profile had chosen a mode without integrity checks. It is allowed, and now said."""
    from conftest import only_run_dir, run_rows

    def basic(data: dict) -> None:
        data["devices"]["water_pump"]["safe_mode_s"] = None

    with sim_serve("--tcp", "0") as served:
        code, said = _run_on(tmp_path, served.addresses, basic)
    assert code == 0, said
    warned = run_rows(only_run_dir(tmp_path / "runs"), "SELECT source, message FROM events WHERE message LIKE '%basic mode%'")
    assert [source for source, _ in warned] == ["water_pump"] and "no checksum" in warned[0][1], warned


def test_a_frame_that_starts_after_the_opening_drain_is_skipped_by_the_cameras_identify(tmp_path, sim_serve):
    """The camera still rendering a frame another client asked for (a 4096 px frame takes 1.5 s):
    the line is quiet for the opening drain's 1 s, then the frame comes, and *IDN? read its header
    line as its answer: "no camera's identity: 'OK {...'", exit 5 (the next run worked). The
    identify now skips a frame whose header says its size, and takes the answer after it."""
    import json
    import time

    from conftest import LoopbackServer

    pixels = bytes(range(256)) * 4096  # 1 MiB: a 1024 x 1024 8-bit frame, its bytes holding many b"\n"
    header = {"shape": [1024, 1024], "dtype": "uint8", "nbytes": len(pixels), "pixel_size_um": 0.25,
              "exposure_ms": 5.0, "metadata": {}}
    small = {**header, "shape": [8, 8], "nbytes": 64}

    def camera(conn: socket.socket) -> None:
        time.sleep(1.1)  # rendering: the line quiet just longer than the opening drain's 1 s
        conn.sendall(b"OK " + json.dumps(header).encode() + b"\n" + pixels)
        asked = b""
        while data := conn.recv(4096):
            asked += data
            while b"\n" in asked:
                line, asked = asked.split(b"\n", 1)
                if line.strip() == b"*IDN?":
                    conn.sendall(b"CASTRIG,SIMCAM,000008,1.0\n")
                elif line.startswith(b"SNAP"):
                    conn.sendall(b"OK " + json.dumps(small).encode() + b"\n" + bytes(64))

    with sim_serve("--tcp", "0") as served, LoopbackServer(camera) as cam:
        code, said = _run_on(tmp_path, dict(served.addresses, camera=f"socket://127.0.0.1:{cam.port}"), lambda data: None,
                             {"name": "capture", "steps": [{"type": "capture", "views": ["reflected"], "fields": 1}]})
    assert code == 0 and "completed" in said and "Traceback" not in said, said


def test_daisy_chained_pumps_named_by_their_port_and_a_symlink_to_it_share_one_line(tmp_path, sim_serve):
    """Two pumps on one daisy chain (addresses 1 and 2), the caster named by its port and the water
    pump by a stable symlink to it (``/dev/serial/by-id/...``): one line to ``castrig check`` and
    the device locks, but the rig opened it twice (shared by the URL as written) and the second
    open met the first's exclusive lock: ``castrig safe`` refused its own rig (exit 5 'cannot open
    ... Could not exclusively lock port'). Now one line: the rig is made safe (exit 0)."""
    data = yaml.safe_load((ROOT / "hw_profiles" / "sim-serial.yaml").read_text())
    for role in ("caster", "water_pump"):  # (sim serve: one line, its pumps answering by address)
        data["devices"][role]["link"]["url"] = str(tmp_path / "pump-line")
    (tmp_path / "serve.yaml").write_text(yaml.safe_dump(data))
    with sim_serve("--pty", profile=str(tmp_path / "serve.yaml")) as served:
        assert served.addresses["caster"] == served.addresses["water_pump"]
        (tmp_path / "usb-pumps").symlink_to(served.addresses["water_pump"])
        rig = profile_with_addresses(tmp_path / "serve.yaml", {**served.addresses, "water_pump": str(tmp_path / "usb-pumps")},
                                     tmp_path / "rig.yaml")
        done = castrig("safe", "--profile", str(rig), timeout_s=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "safe state verified" in done.stdout and "caster stopped; water_pump stopped" in done.stdout, done.stdout
