"""A line that goes away between a write and its drain (a USB adapter pulled, a pty's server
restarted): pyserial's posix flush calls termios.tcdrain, whose termios.error (not an OSError)
came through the link as it was, and the run ended "faulted: internal error error: (5,
'Input/output error')" where the line should have been lost and reopened (met in
tests/links/test_reopened_as_another_device_cli.py, 1 run in ~10). The OS call is the boundary
faked here; the pty, pyserial and the link are real."""

from __future__ import annotations

import errno
import os
import termios

import pytest
import serial.serialposix

from castrig.links.errors import LinkClosed
from castrig.links.serial_link import SerialLink


def test_a_drain_that_fails_with_eio_is_a_lost_line_that_reopens(monkeypatch):
    master, slave = os.openpty()
    try:
        link = SerialLink(os.ttyname(slave), timeout_s=0.5)

        def gone(fd):
            raise termios.error(errno.EIO, "Input/output error")

        with monkeypatch.context() as m:
            m.setattr(serial.serialposix.termios, "tcdrain", gone)
            with pytest.raises(LinkClosed, match="write failed: .*Input/output error"):
                link.write(b"SEND\r")
        # lost, not broken: the next write reopens the line and goes out
        link.write(b"SEND\r")
        assert os.read(master, 64).endswith(b"SEND\r")
        link.close()
    finally:
        os.close(master)
        os.close(slave)
