"""Read-only checks against a real device: ``pytest tests/hardware --device /dev/ttyUSB0
--device-model hmt330``. Skipped without --device; nothing here is faked or emulated, and
nothing moves (no pump runs, no flow changes)."""

from __future__ import annotations

import pytest

from castrig.clock import WallClock
from castrig.links.serial_link import SerialLink

pytestmark = pytest.mark.device

SERIAL = {"ne1000": (19200, 8, "N"), "alicat": (19200, 8, "N"), "hmt330": (4800, 7, "E")}


@pytest.fixture
def link(device_port, device_model, device_baud):
    if device_model is None:
        pytest.skip("give --device-model ne1000|alicat|hmt330 with --device")
    baud, bits, parity = SERIAL[device_model]
    link = SerialLink(device_port, baudrate=device_baud or baud, bytesize=bits, parity=parity, timeout_s=2.0)
    yield link
    link.close()


def test_ne1000_answers_version_and_state(link, device_model, device_address):
    if device_model != "ne1000":
        pytest.skip("not an NE-1000")
    from castrig.devices.ne1000 import NE1000Pump

    pump = NE1000Pump(link, name="pump", address=device_address, clock=WallClock())
    pump.connect()
    assert pump.version().startswith("NE")
    assert not pump.state().moving


def test_alicat_poll_parses(link, device_model):
    if device_model != "alicat":
        pytest.skip("not an Alicat")
    from castrig.devices.alicat import AlicatMFC

    mfc = AlicatMFC(link, name="mfc", full_scale_slpm=1e9, clock=WallClock())
    reading = mfc.read()
    assert reading.gas and reading.pressure_psia > 0


def test_hmt330_reads_plausible_rh(link, device_model):
    if device_model != "hmt330":
        pytest.skip("not an HMT330")
    from castrig.devices.hmt330 import HMT330

    sensor = HMT330(link, name="hmt", clock=WallClock())
    reading = sensor.read()
    assert 0.0 <= reading.rh_pct <= 100.0 and -40.0 < reading.temperature_c < 80.0
