"""The emulators against drivers castrig did not write: a lab's own scripts talk to `castrig sim
serve` as they would to the instruments.

Our drivers and our emulators were written from the same reading of the manuals, so a test of
one against the other cannot find where that reading is wrong. Two public drivers, written from
the same manuals by others, can: NESP-Lib (New Era pumps, pyserial, basic and safe mode with its
own CRC and heartbeat) on the served pty, and NuMat's ``alicat`` (asyncio) on the served TCP port.
Both are test dependencies (pyproject's ``test`` extra).
"""

from __future__ import annotations

import asyncio
import time

import pytest

pytestmark = pytest.mark.timeout(90)  # NESP-Lib reads without a timeout: a silent pty would block


def test_nesp_lib_drives_both_served_pumps_in_basic_and_safe_mode(sim_serve):
    from nesp_lib import Port, Pump, PumpingDirection, Status

    with sim_serve() as served:  # on ptys
        with Port(served.addresses["water_pump"], baud_rate=19200) as port:  # the second pump: who it is
            assert Pump(port, address=2).model_number == 1000
        for role, address in (("caster", 1),):  # the whole sequence on one (the emulator is one class)
            with Port(served.addresses[role], baud_rate=19200) as port:
                # the constructor switches the pump to basic mode with a safe-mode (STX, CRC) packet
                # and reads the firmware version: an NE-1000
                pump = Pump(port, address=address)
                assert pump.model_number == 1000 and pump.firmware_version == (3, 928)
                pump.syringe_diameter_mm = 4.699
                assert pump.syringe_diameter_mm == pytest.approx(4.699)
                pump.pumping_direction = PumpingDirection.INFUSE
                assert pump.pumping_direction is PumpingDirection.INFUSE
                pump.pumping_volume_ml = 0.01  # sent as "VOL UL" then "VOL 10"
                assert pump.pumping_volume_ml == pytest.approx(0.01)
                # beyond this syringe's fastest rate (51 mm/min of plunger: 0.88 ml/min) the pump
                # answers ?OOR, which NESP-Lib raises as ValueError
                with pytest.raises(ValueError):
                    pump.pumping_rate_ml_per_min = 1.2
                pump.pumping_rate_ml_per_min = 0.6  # sent in µl/min: "RAT600UM"
                assert pump.pumping_rate_ml_per_min == pytest.approx(0.6)
                pump.volume_infused_clear()
                pump.volume_withdrawn_clear()
                assert pump.volume_infused_ml == 0.0 and pump.status is Status.STOPPED

                # the pump ends the phase at its volume target by itself (1 s at 0.6 ml/min)
                t0 = time.monotonic()
                pump.run(wait_while_running=True)
                assert 0.9 < time.monotonic() - t0 < 6.0
                assert pump.status is Status.STOPPED
                assert pump.volume_infused_ml == pytest.approx(0.01, abs=2e-4)
                assert pump.volume_withdrawn_ml == 0.0

                # safe mode: every command framed and checked by CRC; NESP-Lib's heartbeat (every
                # half timeout) keeps a 5 s watchdog from running out while the script sleeps past it.
                # Its heartbeat thread has half the watchdog of slack: with 1 s (0.5 s) and 3 s (1.5 s)
                # a loaded 2-core CI machine ran the watchdog out (the pump's unprompted alarm then
                # broke NESP-Lib's next reply: a checksum error, and its caller waited for good)
                pump.safe_mode_timeout_s = 5
                assert pump.safe_mode_timeout_s == 5
                time.sleep(6.0)
                assert pump.status is Status.STOPPED  # an alarm would raise StatusAlarmException
                pump.safe_mode_timeout_s = 0
                assert pump.safe_mode_timeout_s == 0


def test_numat_alicat_reads_and_sets_both_served_mfcs_over_tcp(sim_serve):
    from alicat import FlowController

    async def drive(address: str, unit: str) -> None:
        async with FlowController(address, unit=unit) as fc:
            frame = await fc.get()
            assert set(frame) >= {"pressure", "temperature", "volumetric_flow", "mass_flow", "setpoint", "gas"}
            assert frame["gas"] == "Air" and frame["setpoint"] == 0.0
            assert frame["pressure"] == pytest.approx(14.7, abs=0.2)
            assert "10v" in await fc.get_firmware()
            # "AS1.25" answered with a frame whose setpoint field it checks
            await fc.set_flow_rate(1.25)
            await asyncio.sleep(0.5)
            frame = await fc.get()
            assert frame["setpoint"] == pytest.approx(1.25)
            assert 0.2 < frame["mass_flow"] < 1.4  # on its way (first-order response)
            # gas by register 46, read back
            await fc.set_gas("N2")
            assert (await fc.get())["gas"] == "N2"
            await fc.set_gas("Air")
            # the front-panel lock shows in the frame as LCK
            await fc.lock()
            await fc.get()
            assert fc.button_lock is True
            await fc.unlock()
            await fc.get()
            assert fc.button_lock is False
            pid = await fc.get_pid()
            assert pid["loop_type"] in ("PD/PDF", "PD2I") and int(pid["P"]) > 0
            await fc.set_flow_rate(0.0)
            assert (await fc.get())["setpoint"] == 0.0

    with sim_serve("--tcp", "0") as served:
        for role, unit in (("dry_mfc", "A"), ("wet_mfc", "B")):
            asyncio.run(drive(served.addresses[role].removeprefix("socket://"), unit))


def test_numat_alicat_holds_tares_and_is_refused_a_pressure_control_point(sim_serve):
    """NuMat's driver sends the older firmware's ``$$H``, ``$$C``, ``$$V`` and ``$$PC`` (hold the
    valve, cancel it, tare flow, tare pressure): the emulator answered ``?`` to all four (an
    outside tester), and NuMat, which ignores the reply of a hold and looks for a bare ``?`` after
    a tare, believed each done. And register 122 set to a pressure control point was taken and
    ignored, the next setpoint clamped to the flow's full scale. The emulator now answers the
    ``$$`` forms as the plain ones, and refuses a control point other than mass flow (it models
    no pressure control), which NuMat's ``set_pressure`` then raises."""
    import socket
    from urllib.parse import urlsplit

    from alicat import FlowController

    def ask(sock: socket.socket, command: bytes) -> bytes:
        sock.sendall(command + b"\r")
        reply = b""
        while not reply.endswith(b"\r"):
            reply += sock.recv(256)
        return reply

    async def drive(address: str) -> None:
        async with FlowController(address, unit="B") as fc:
            await fc.tare_volumetric()
            await fc.tare_pressure()
            with pytest.raises((OSError, ValueError)):
                await fc.set_pressure(10.0)
            assert (await fc.get())["control_point"] == "mass flow"

    with sim_serve("--tcp", "0") as served:
        u = urlsplit(served.addresses["wet_mfc"])
        with socket.create_connection((u.hostname, u.port), timeout=10) as sock:
            ask(sock, b"BS1.0")
            time.sleep(0.5)
            held = ask(sock, b"B$$H")
            assert held.startswith(b"B ") and b"HLD" in held, held
            flow = float(held.split()[4])
            ask(sock, b"BS3.0")
            time.sleep(0.5)
            # the valve held: the flow does not follow the new setpoint (only the sensor's noise)
            assert abs(float(ask(sock, b"B").split()[4]) - flow) < 0.05
            freed = ask(sock, b"B$$C")
            assert b"HLD" not in freed, freed
            for tare in (b"B$$V", b"B$$PC"):
                assert ask(sock, tare) != b"B ?\r", tare
            assert ask(sock, b"BW122=34") == b"B ?\r"
            assert ask(sock, b"BW122=37").startswith(b"B   122 = 37")
            ask(sock, b"BS0")
        asyncio.run(drive(served.addresses["wet_mfc"].removeprefix("socket://")))


def test_a_generic_scpi_client_over_pyvisa_gets_ieee_488_2_answers(sim_serve):
    """A lab's generic SCPI script (pyvisa, pyvisa-py's TCPIP SOCKET) against the served chamber:
    the mandatory IEEE 488.2 common queries (*ESR?, *STB?, *TST?) and *WAI were "undefined
    header" (-113) and answered nothing, so such a script's first status poll timed out; a tab
    between a header and its data (488.2: any white space) was -113 too (an outside tester)."""
    import pyvisa

    with sim_serve("--tcp", "0", profile="hw_profiles/sim-chamber.yaml") as served:
        rm = pyvisa.ResourceManager("@py")
        inst = rm.open_resource(served.addresses["chamber"], read_termination="\n", write_termination="\n", timeout=3000)
        try:
            assert inst.query("*TST?").strip() == "0"
            inst.write("*WAI")
            assert inst.query("*ESR?").strip() == "0" and inst.query("*STB?").strip() == "0"
            inst.write("HUM\t46")
            assert inst.query("HUM?").strip() == "46.0"
            assert inst.query("SYST:ERR?").strip() == '0,"No error"'
            inst.write("HUM 146")  # out of range: an execution error (ESR bit 4) queued (STB bit 2)
            assert inst.query("*STB?").strip() == "4"
            assert inst.query("*ESR?").strip() == "16" and inst.query("*ESR?").strip() == "0"  # read clears
            assert inst.query("SYST:ERR?").strip() == '-222,"Data out of range"'
            inst.write("*ESE 32")
            inst.write("NOPE")  # a command error, enabled: the status byte's event bit
            assert int(inst.query("*STB?")) & 32
            inst.write("*CLS")
            assert inst.query("*STB?").strip() == "0" and inst.query("*ESE?").strip() == "32"
        finally:
            inst.close()
            rm.close()
