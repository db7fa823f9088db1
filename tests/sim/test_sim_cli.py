"""`castrig sim serve` and `castrig sim render`, from the outside."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import serial

from castrig.cli.main import main
from castrig.tiffio import read_micrograph

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["--pty", "--tcp"])
def served(request):
    args = [sys.executable, "-m", "castrig", "sim", "serve", request.param]
    if request.param == "--tcp":
        args.append("0")
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        yield json.loads(line)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        assert proc.returncode == 0


def test_serve_prints_addresses_and_devices_answer_in_vendor_bytes(served):
    assert set(served) == {"camera", "caster", "water_pump", "dry_mfc", "wet_mfc", "rh_near", "rh_room"}
    # plain pyserial, as software written to the vendor manuals would do it
    mfc = serial.serial_for_url(served["dry_mfc"], timeout=2)
    mfc.write(b"A\r")
    frame = mfc.read_until(b"\r")
    assert frame.startswith(b"A +") and frame.rstrip().endswith(b"Air")
    mfc.close()
    hmt = serial.serial_for_url(served["rh_near"], timeout=2)
    hmt.write(b"SEND\r")
    time.sleep(0.3)
    assert b"RH=" in hmt.read(hmt.in_waiting or 1) + hmt.read(200)
    hmt.close()
    pump = serial.serial_for_url(served["caster"], timeout=2)
    pump.write(b"1VER\r")
    assert pump.read_until(b"\x03") == b"\x0201A?R\x03"  # the first reply after power-up: reset alarm
    pump.write(b"1VER\r")
    reply = pump.read_until(b"\x03")
    assert reply.startswith(b"\x0201S") and b"NE1000" in reply
    pump.close()


def test_sim_serial_profile_runs_a_recipe_over_sockets(tmp_path):
    """The same rig, driven over real TCP links served by `castrig sim serve` (wall clock)."""
    proc = subprocess.Popen([sys.executable, "-m", "castrig", "sim", "serve", "--profile", "hw_profiles/sim-serial.yaml",
                             "--tcp", "47100"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        addresses = json.loads(proc.stdout.readline())
        assert addresses["camera"] == "socket://127.0.0.1:47100"
        recipe = tmp_path / "tiny.yaml"
        recipe.write_text(
            "name: tiny\nsteps:\n"
            "  - {type: condition, setpoint_rh_pct: 55, band_rh_pct: 2, stable_for_s: 3, timeout_s: 120}\n"
            "  - {type: prewet, volume_ml: 0.05, rate_ml_min: 2}\n"
            "  - {type: wait, duration_s: 3}\n"
            "  - {type: capture, views: [reflected], fields: 1}\n"
        )
        code = main(["run", str(recipe), "--profile", str(ROOT / "hw_profiles" / "sim-serial.yaml"), "--data", str(tmp_path / "runs"), "-q"])
        assert code == 0
        (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
        info = json.loads((run_dir / "run.json").read_text())
        assert info["virtual_time"] is False and info["outcome"] == "completed"
        image, px, _ = read_micrograph(next((run_dir / "images").glob("*.tif")))
        assert image.shape == (512, 512) and px == pytest.approx(0.25)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


def test_render_writes_images_and_truth(tmp_path, capsys):
    assert main(["sim", "render", "--out", str(tmp_path), "--n", "2", "--seed", "3", "--width", "256"]) == 0
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert sorted(truth) == ["m000", "m001"]
    for name, t in truth.items():
        for view, pixel in (("reflected", 0.25), ("transmitted", 0.25), ("section", 0.05)):
            img, px, meta = read_micrograph(tmp_path / f"{name}_{view}.tif")
            assert px == pytest.approx(pixel) and img.ndim == 2
            assert meta["truth"]["mean_pore_diameter_um"] == pytest.approx(t["mean_pore_diameter_um"])
        assert {"opening_ratio", "mean_pore_diameter_um", "pore_diameter_std_um", "through_pore_fraction",
                "mean_thickness_um", "thickness_std_um", "support_pore_diameter_um"} <= set(t)
    again = tmp_path / "again"
    assert main(["sim", "render", "--out", str(again), "--n", "2", "--seed", "3", "--width", "256"]) == 0
    a, _, _ = read_micrograph(tmp_path / "m001_reflected.tif")
    b, _, _ = read_micrograph(again / "m001_reflected.tif")
    assert np.array_equal(a, b)  # reproducible from the seed
    assert main(["sim", "render", "--out", str(tmp_path), "--bit-depth", "12"]) == 2
    assert main(["sim", "render", "--out", str(tmp_path), "--rh", "25"]) == 2
    assert "threshold" in capsys.readouterr().err
