"""The emulators parse whole runs of bytes at a time (issue 19: no per-byte Python work in the hot
path); what they answer must not depend on how the bytes were cut: one chunk, byte by byte, or
random cuts give the same replies at the same times, overlong lines, backspaces, ESC, echo and
the NE-1000's switch into safe mode included."""

from __future__ import annotations

import random

import pytest

from castrig.sim.alicat import AlicatEmulator
from castrig.sim.hmt330 import HMT330Emulator
from castrig.sim.ne1000 import NE1000Emulator, safe_packet


def _hmt(echo: bool):
    return HMT330Emulator("rh", source=lambda t: (55.0, 22.0), seed=3, echo=echo)


STREAMS = {
    "alicat": (lambda: AlicatEmulator("mfc", full_scale_slpm=5.0, seed=1),
               b"A\rAS2.5\r" + b"X" * 300 + b"\rA\r\rALS 1.2\rAVE\rB\r" + b"A" * 256 + b"\rA\r"),
    "hmt330-echo": (lambda: _hmt(True), b"SEND\r\nECHO OFF\rSEND\rSEX\x08ND\r" + b"Q" * 260 + b"\rECHO ON\rSEND\r\x1bSEND\r"),
    "hmt330": (lambda: _hmt(False), b"SEND\r\nR\r\x1bS\rSEND 0\rFORM 4.2 \"RH=\" RH #r #n\rSEND\r" + b"Z" * 600 + b"\rSEND\r"),
    "ne1000": (lambda: NE1000Emulator("pump", address=0, seed=2),
               b"DIA 26.59\rRAT 1.0 MM\rVOL 0.2\r" + b"9" * 300 + b"\rDIR INF\rRUN\r\rSAF 10\r" + safe_packet(b"DIS") + b"RAT\r"),
}


def _same_bytes(name: str, cuts: list[int]) -> bytes:
    """Everything the device sent, the stream's pieces all arriving at one moment (so the physics
    is the same whatever the cuts), read once afterwards."""
    make, data = STREAMS[name]
    emu = make()
    start = 0
    for end in cuts + [len(data)]:
        emu.receive(data[start:end], 1.0)
        start = end
    return emu.transmit(5.0)


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_replies_do_not_depend_on_how_the_bytes_were_cut(name):
    data = STREAMS[name][1]
    whole = _same_bytes(name, [])
    assert whole  # the stream makes the device talk
    assert _same_bytes(name, list(range(1, len(data)))) == whole  # byte by byte
    rng = random.Random(7)
    for _ in range(5):
        cuts = sorted(rng.sample(range(1, len(data)), 12))
        assert _same_bytes(name, cuts) == whole
