"""The twin's exchanges worked out once per distinct input (castrig.memo, the HMT330's % line):
the same bytes on the link as working them out every time."""

from __future__ import annotations

import random

import pytest

from castrig.clock import VirtualClock
from castrig.devices.alicat import AlicatMFC
from castrig.links import SimLink
from castrig.memo import remember
from castrig.sim.alicat import AlicatEmulator
from castrig.sim.hmt330 import DEFAULT_FORM, HMT330Emulator, _form_template


class Recorded(AlicatEmulator):
    """The emulator, keeping every line it received and every reply it queued."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lines: list[bytes] = []
        self.replies: list[bytes] = []

    def handle_line(self, line: bytes, t: float) -> None:
        self.lines.append(line)
        super().handle_line(line, t)

    def send(self, data: bytes, t: float) -> None:
        self.replies.append(data)
        super().send(data, t)


def test_a_setpoint_sent_again_is_the_same_line_and_reply_and_zero_keeps_its_sign():
    clock = VirtualClock()
    emu = Recorded("wet_mfc", full_scale_slpm=5.0, response_tau_s=0.5, seed=1)
    mfc = AlicatMFC(SimLink(emu, clock), name="wet_mfc", full_scale_slpm=5.0, clock=clock)
    for flow in (1.2345, 0.0, -0.0, 1.2345, 2, 2.0, 0.0, 1.2345):
        mfc.set_flow_slpm(flow)
        clock.sleep(1.0)
    assert emu.lines == [b"ALS 1.234", b"ALS 0.000", b"ALS -0.000", b"ALS 1.234", b"ALS 2.000", b"ALS 2.000",
                         b"ALS 0.000", b"ALS 1.234"]
    assert emu.replies == [b"A +001.23 +001.23 7 SLPM\r", b"A +000.00 +000.00 7 SLPM\r", b"A +000.00 +000.00 7 SLPM\r",
                           b"A +001.23 +001.23 7 SLPM\r", b"A +002.00 +002.00 7 SLPM\r", b"A +002.00 +002.00 7 SLPM\r",
                           b"A +000.00 +000.00 7 SLPM\r", b"A +001.23 +001.23 7 SLPM\r"]


def test_a_reply_remembered_for_one_unit_is_not_taken_for_another():
    """Two units on their own links, the same setpoint: each checks the reply's id against its own."""
    clock = VirtualClock()
    units = []
    for uid in ("A", "B"):
        emu = Recorded("mfc", full_scale_slpm=5.0, response_tau_s=0.5, seed=1, unit_id=uid)
        units.append((emu, AlicatMFC(SimLink(emu, clock), name=f"mfc_{uid}", full_scale_slpm=5.0, clock=clock, unit_id=uid)))
    for emu, mfc in units:
        mfc.set_flow_slpm(3.3)
    assert [emu.lines for emu, _ in units] == [[b"ALS 3.300"], [b"BLS 3.300"]]
    assert [emu.replies for emu, _ in units] == [[b"A +003.30 +003.30 7 SLPM\r"], [b"B +003.30 +003.30 7 SLPM\r"]]


def test_a_memo_past_its_limit_starts_again():
    memo: dict[int, int] = {}
    for k in range(10):
        assert remember(memo, k, k * k, limit=4) == k * k
    assert memo == {8: 64, 9: 81}


@pytest.mark.parametrize("form", [DEFAULT_FORM, '4.2 "RH=" RH U5 "T=" T U3 #r #n', "RH T", '"%x{}" 3.1 RH " " 2.3 T #r#n',
                                  "T RH #r#n", '6.3 RH U "% %%" 0.0 T #r #n', "ADDR SN RH T", "RH T TD #r #n"])
@pytest.mark.parametrize("metric", [True, False])
def test_the_hmt330_line_by_percent_is_the_line_by_format(form, metric):
    """The reading line (``%`` where the FORM prints RH then T, each once) against the FORM's
    ``str.format`` template, for ordinary and odd values (signed zeros, NaN, huge, tiny)."""
    emu = HMT330Emulator("rh", source=lambda t: (50.0, 20.0), metric=metric, serial_number="X123", address=7)
    template, dew_point, _, _ = _form_template(form, metric, False, emu.address, emu.serial_number)
    rng = random.Random(7)
    values = [(rng.uniform(-5, 105), rng.uniform(-40, 180)) for _ in range(300)]
    values += [(-0.0, -0.0), (float("nan"), float("inf")), (1e300, -1e-300), (99.995, 0.005), (0.0, -0.004)]
    for rh, temp in values:
        t_out = temp if metric else temp * 9 / 5 + 32
        if dew_point:
            continue  # (the dew point's lines are str.format's, as before)
        assert emu._render(form, rh, temp) == template.format(rh, t_out), (form, rh, temp)


def test_a_pump_reply_taken_apart_again_gives_the_same_groups():
    """The NE-1000 driver's reply and DIS groups, from the memo the second time, as the regex gives them."""
    from castrig.devices.ne1000 import _DIS, _DIS_GROUPS, _REPLY, _REPLY_GROUPS, _groups

    replies = ["00S", "01I", "00A?S", "00SI0.200W0.000ML", "00S?OOR", "0S", "00Q", "", "00A?", "00W\n1"]
    dis = ["I0.200W0.000ML", "I.5W1.UL", "I0.2W0.0L", "IW", "0.2", "I0.200W0.000MLX"]
    for _ in range(2):
        for text in replies:
            m = _REPLY.match(text)
            assert _groups(_REPLY, _REPLY_GROUPS, text) == (None if m is None else m.groups()), text
        for text in dis:
            m = _DIS.match(text)
            assert _groups(_DIS, _DIS_GROUPS, text) == (None if m is None else m.groups()), text
