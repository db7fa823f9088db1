"""`castrig sim serve` puts the Watlow F4 (Modbus RTU, on a pty or a raw TCP port) and F4T (Modbus
TCP on loopback) on real OS links: a generic Modbus client (pymodbus, not our framing) reads and
sets them against the real subprocess, and a short wall-clock recipe runs through them."""

from __future__ import annotations

import json
import struct

import pytest

from conftest import ROOT, castrig, profile_with_addresses

pymodbus_client = pytest.importorskip("pymodbus.client")


def _f32_low_high(words: list[int]) -> float:
    return struct.unpack(">f", struct.pack(">HH", words[1], words[0]))[0]


def test_f4_is_an_rtu_slave_on_a_pty(sim_serve):
    with sim_serve("--pty", profile="hw_profiles/sim-watlow-f4-serial.yaml") as served:
        port = served.addresses["chamber"]
        assert port.startswith("/dev/")
        client = pymodbus_client.ModbusSerialClient(port, baudrate=19200, timeout=1, retries=1)
        assert client.connect()
        try:
            rr = client.read_holding_registers(612, count=2, device_id=1)  # input 2 range: 0.0-100.0 %RH
            assert not rr.isError() and rr.registers == [0, 1000]
            assert client.read_holding_registers(618, count=1, device_id=1).registers == [1]  # %RH
            assert not client.write_register(319, 555, device_id=1).isError()  # loop 2 SP 55.5 %RH
            assert client.read_holding_registers(319, count=1, device_id=1).registers == [555]
            rh = client.read_holding_registers(104, count=1, device_id=1)
            assert not rh.isError() and 0 <= rh.registers[0] <= 1000
            bad = client.write_register(319, 1001, device_id=1)  # 100.1 %RH: out of range
            assert bad.isError() and bad.exception_code == 3
            bad = client.read_holding_registers(101, count=1, device_id=1)
            assert bad.isError() and bad.exception_code == 2
        finally:
            client.close()


def test_f4_rtu_on_tcp_and_f4t_modbus_tcp(sim_serve):
    with sim_serve("--tcp", "0", profile="hw_profiles/sim-watlow-f4-serial.yaml") as served:
        host, port = served.addresses["chamber"].removeprefix("socket://").split(":")
        # RTU frames on a raw socket (a serial-to-Ethernet converter): pymodbus's RTU framer over TCP.
        from pymodbus import FramerType

        client = pymodbus_client.ModbusTcpClient(host, port=int(port), framer=FramerType.RTU, timeout=2, retries=1)
        assert client.connect()
        try:
            assert client.read_holding_registers(616, count=1, device_id=1).registers == [1]
            assert not client.write_register(319, 400, device_id=1).isError()
            assert client.read_holding_registers(319, count=1, device_id=1).registers == [400]
        finally:
            client.close()
    for mode in (("--pty",), ("--tcp", "0")):  # the F4T is a Modbus TCP server either way
        with sim_serve(*mode, profile="hw_profiles/sim-watlow-f4t-serial.yaml") as served:
            host, port = served.addresses["chamber"].removeprefix("socket://").split(":")
            client = pymodbus_client.ModbusTcpClient(host, port=int(port), timeout=2, retries=0)
            assert client.connect()
            try:
                rr = client.read_holding_registers(2936, count=2, device_id=1)  # loop 2 range high
                assert not rr.isError() and _f32_low_high(rr.registers) == 100.0
                words = list(struct.unpack(">HH", struct.pack(">f", 62.5)))[::-1]
                assert not client.write_registers(2942, words, device_id=1).isError()
                assert _f32_low_high(client.read_holding_registers(2942, count=2, device_id=1).registers) == 62.5
                assert not client.write_register(2890, 10, device_id=1).isError()  # loop 2 Auto
                assert client.read_holding_registers(2974, count=1, device_id=1).registers == [10]
                bad = client.write_register(2890, 63, device_id=1)
                assert bad.isError() and bad.exception_code == 3
            finally:
                client.close()


TINY = ("name: tiny-watlow\nsteps:\n"
        "  - {type: condition, setpoint_rh_pct: 55, band_rh_pct: 3, stable_for_s: 2, timeout_s: 90}\n"
        "  - {type: prewet, volume_ml: 0.05, rate_ml_min: 2}\n"
        "  - {type: wait, duration_s: 2}\n")


@pytest.mark.slow  # ~30 s each: a wall-clock condition, pre-wet and safe state
@pytest.mark.parametrize("profile, mode", [("sim-watlow-f4-serial.yaml", "--pty"),
                                           ("sim-watlow-f4t-serial.yaml", "--tcp")])
def test_wall_clock_recipe_through_watlow_on_sim_serve(sim_serve, tmp_path, profile, mode):
    args = ("--pty",) if mode == "--pty" else ("--tcp", "0")
    with sim_serve(*args, profile=f"hw_profiles/{profile}") as served:
        prof = profile_with_addresses(ROOT / "hw_profiles" / profile, served.addresses, tmp_path / profile)
        recipe = tmp_path / "tiny.yaml"
        recipe.write_text(TINY)
        done = castrig("run", str(recipe), "--profile", str(prof), "--data", str(tmp_path / "runs"), "-q", timeout_s=150)
        assert done.returncode == 0, done.stdout + done.stderr
        (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
        info = json.loads((run_dir / "run.json").read_text())
        assert info["virtual_time"] is False and info["outcome"] == "completed"
