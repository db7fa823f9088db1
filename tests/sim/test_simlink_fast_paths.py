"""SimLink's own read_until / read_frame / read_available (the twin's usual exchange in fewer
calls) against the general Link loops: replies cut in pieces, several lines in one chunk,
garbage before a frame, and the deadline counted from the start of the read."""

from __future__ import annotations

import pytest

from castrig.clock import VirtualClock
from castrig.links import LinkTimeout, SimLink
from castrig.sim.emulator import Emulator


class Scripted(Emulator):
    """Answers any input with the scripted pieces, each at its own delay after the input."""

    def __init__(self, pieces: list[tuple[float, bytes]]):
        super().__init__("scripted", turnaround_s=0.0)
        self.pieces = pieces

    def receive_bytes(self, data: bytes, t: float) -> None:
        for delay, chunk in self.pieces:
            self._out.append((t + delay, chunk))


def _link(pieces: list[tuple[float, bytes]], timeout_s: float = 1.0) -> tuple[SimLink, VirtualClock]:
    clock = VirtualClock()
    return SimLink(Scripted(pieces), clock, timeout_s=timeout_s), clock


def test_two_lines_in_one_chunk_come_one_at_a_time():
    link, clock = _link([(0.01, b"one\rtwo\r")])
    link.write(b"q\r")
    assert link.read_until(b"\r") == b"one\r"
    assert link.read_until(b"\r") == b"two\r"
    assert clock.now() == pytest.approx(0.01)


def test_a_line_cut_in_pieces_is_joined():
    link, clock = _link([(0.01, b"par"), (0.05, b"tial\rrest")])
    link.write(b"q\r")
    assert link.read_until(b"\r") == b"partial\r"
    assert clock.now() == pytest.approx(0.05)
    assert link.read_available() == b"rest"


def test_the_deadline_counts_from_the_start_of_the_read():
    link, clock = _link([(0.3, b"no terminator")], timeout_s=0.5)
    link.write(b"q\r")
    with pytest.raises(LinkTimeout, match="got b'no terminator'"):
        link.read_until(b"\r")
    assert clock.now() == pytest.approx(0.5)


def test_no_reply_times_out_at_the_deadline():
    link, clock = _link([], timeout_s=0.25)
    link.write(b"q\r")
    with pytest.raises(LinkTimeout, match="no reply"):
        link.read_until(b"\r")
    assert clock.now() == pytest.approx(0.25)


def _take(buf: bytes) -> tuple[bytes | None, int]:
    """Frames are ``<...>``; anything before a ``<`` is garbage; a frame without ``>`` waits."""
    start = buf.find(b"<")
    if start < 0:
        return None, len(buf)
    if start > 0:
        return None, start
    end = buf.find(b">")
    if end < 0:
        return None, 0
    return buf[: end + 1], end + 1


def test_read_frame_whole_cut_and_after_garbage():
    link, _ = _link([(0.01, b"<a>")])
    link.write(b"q")
    assert link.read_frame(_take) == b"<a>"

    link, clock = _link([(0.01, b"xx<b"), (0.02, b"c><d>")])
    link.write(b"q")
    assert link.read_frame(_take) == b"<bc>"
    assert clock.now() == pytest.approx(0.02)
    assert link.read_frame(_take) == b"<d>"


def test_read_frame_partial_stays_buffered_after_a_timeout():
    link, clock = _link([(0.1, b"<half")], timeout_s=0.4)
    link.write(b"q")
    with pytest.raises(LinkTimeout, match="got b'<half'"):
        link.read_frame(_take)
    assert clock.now() == pytest.approx(0.4)
    assert link.read_available() == b"<half"
