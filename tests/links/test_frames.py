"""Frames reassembled from any byte boundaries, garbage dropped, partial frames kept.

The NE-1000's reply framing (``next_frame`` / ``split_frames``) as pure functions fed every
split of a byte stream, and the link underneath: a :class:`SerialLink` on ``socket://`` reads
what has really arrived, not what pyserial's ``in_waiting`` claims (0 or 1 on a socket).
"""

from __future__ import annotations

import itertools
import socket
import time

import pytest

from castrig.devices.ne1000 import next_frame, split_frames
from castrig.links import LinkTimeout
from castrig.links.serial_link import SerialLink
from conftest import LoopbackServer, ne1000_basic as basic, ne1000_packet as packet


ALARM_T = packet("01A?T")  # b"\x02\t01A?T.." as the pump sends it unprompted in safe mode
FRAMES = [ALARM_T, packet("01S"), basic("01SNE1000V3.928"), packet("01PI0.250W0.000ML"), basic("01A?R")]
TEXTS = ["01A?T", "01S", "01SNE1000V3.928", "01PI0.250W0.000ML", "01A?R"]


def feed(chunks: list[bytes]) -> tuple[list[str], bytes, bytes]:
    """What a driver does: append each chunk, take whole frames, keep the partial rest."""
    frames: list[str] = []
    garbage = bytearray()
    buf = b""
    for chunk in chunks:
        got, junk, buf = split_frames(buf + chunk)
        frames += got
        garbage += junk
    return frames, bytes(garbage), buf


def test_a_stream_cut_at_every_pair_of_byte_boundaries_gives_the_same_frames():
    stream = b"".join(FRAMES)
    for i, j in itertools.combinations(range(1, len(stream)), 2):
        frames, garbage, rest = feed([stream[:i], stream[i:j], stream[j:]])
        assert (frames, garbage, rest) == (TEXTS, b"", b""), (i, j)


def test_a_stream_arriving_one_byte_at_a_time():
    stream = b"".join(FRAMES)
    frames, garbage, rest = feed([bytes([b]) for b in stream])
    assert (frames, garbage, rest) == (TEXTS, b"", b"")


@pytest.mark.parametrize("junk", [b"\xff\xfe", b"\x03\x03", b"01S", b"\x02", b"\x02\x01", b"\x02\xff", b"\x0201", b"\x02\x09\x30"])
def test_garbage_before_and_between_frames_is_dropped_up_to_the_next_stx(junk):
    stream = junk + FRAMES[0] + junk + FRAMES[1] + junk + FRAMES[2] + junk + FRAMES[3]
    for cut in range(1, len(stream)):
        frames, garbage, rest = feed([stream[:cut], stream[cut:]])
        # a trailing STX-led junk may be a partial frame still: it is kept, not dropped
        assert frames == TEXTS[:4], (junk, cut)
        assert rest in (b"", junk[junk.find(b"\x02"):] if b"\x02" in junk else b"")
        assert b"NE1000" not in garbage


def test_a_packet_with_a_bad_crc_or_cut_short_is_garbage_and_the_next_frame_is_found():
    bad = bytearray(packet("01S"))
    bad[-2] ^= 0xFF
    cut = packet("01I")[:4]  # the rest never came
    frames, garbage, rest = split_frames(bytes(bad) + cut + ALARM_T)
    assert frames == ["01A?T"] and rest == b""
    assert garbage == bytes(bad) + cut


def test_a_partial_frame_is_kept_for_the_next_read():
    assert next_frame(ALARM_T[:5]) == (None, 0)
    assert split_frames(b"\xff" + ALARM_T[:5]) == ([], b"\xff", ALARM_T[:5])
    assert next_frame(ALARM_T) == ("01A?T", len(ALARM_T))


# -- the link underneath -----------------------------------------------------------------------
@pytest.fixture
def burst_server():
    """A loopback TCP peer that answers every byte it gets with a 64-byte burst."""
    def burst(conn: socket.socket) -> None:
        while conn.recv(16):
            conn.sendall(bytes(range(64)))

    with LoopbackServer(burst) as server:
        yield server.url


def test_serial_link_on_a_socket_reads_what_has_arrived_not_in_waiting(burst_server):
    link = SerialLink(burst_server, timeout_s=1.0)
    try:
        link.write(b"?")
        time.sleep(0.05)  # the whole burst is here
        got = link.read_available(wait_s=1.0)
        assert got == bytes(range(64))  # in_waiting (0 or 1 on socket://) gave 2 bytes a read
        link.unread(got[32:])
        assert link.read_exactly(32) == bytes(range(32, 64))
        with pytest.raises(LinkTimeout):
            link.read_exactly(1, timeout_s=0.05)
    finally:
        link.close()


def test_serial_link_exclusive_only_where_pyserial_takes_it(tmp_path):
    import os
    import pty

    master, slave = pty.openpty()
    try:
        path = os.ttyname(slave)
        first = SerialLink(path, exclusive=True)
        try:
            assert first.exclusive
            from castrig.errors import Busy

            with pytest.raises(Busy, match="held open exclusively by another process"):
                SerialLink(path, exclusive=True)  # the port is ours: a second opener is refused, busy
        finally:
            first.close()
        again = SerialLink(path, exclusive=True)  # released on close
        again.close()
        assert not SerialLink("loop://", exclusive=True).exclusive  # pyserial refuses it for URLs
    finally:
        os.close(master)
        os.close(slave)
