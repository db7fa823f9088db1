"""A camera reached through a byte link with castrig's simple frame protocol (see
:mod:`castrig.sim.camera` for the bytes): the twin's camera, in-process or over a socket."""

from __future__ import annotations

import json
import re

import numpy as np

from castrig.devices.camera import CameraReadError
from castrig.devices.roles import Camera, Frame, Illumination
from castrig.links import Link, LinkError


#: The largest frame a header may announce: a 4096 x 4096 16-bit frame (the twin's largest) is
#: 32 MiB. The bytes are read before they can be looked at: a header announcing 100 GB had the
#: run read 3.9 GB off a socket in its 10 s (and a frame whose bytes do not fill its shape
#: ended the run with a traceback).
MAX_FRAME_BYTES = 64 * 2**20
#: ``*IDN?``'s reply: four comma-separated fields of printable ASCII (``CASTRIG,SIMCAM,000001,1.0``).
_IDENTITY = re.compile(r"[ -+\--~]+(?:,[ -+\--~]*){3}")
_DTYPES = ("uint8", "uint16")
#: Frames and refusals skipped before ``*IDN?``'s answer (each frame read whole): the twin keeps
#: one frame queued at a time, a real backlog is drained before (``devices.camera.open_drain_s``).
_MAX_SKIPPED = 8


def _frame_layout(header: object) -> tuple[int, np.dtype, tuple[int, ...]]:
    """(bytes, dtype, shape) of a frame header, or ValueError: a 2-D image of 8 or 16 bits,
    whose bytes fill its shape, of at most :data:`MAX_FRAME_BYTES`."""
    if not isinstance(header, dict):
        raise ValueError("not a JSON object")
    if header["dtype"] not in _DTYPES:
        raise ValueError(f"dtype {str(header['dtype'])[:20]!r} (allowed: {', '.join(_DTYPES)})")
    dtype = np.dtype(header["dtype"]).newbyteorder("<")
    shape = tuple(header["shape"])
    if len(shape) != 2 or not all(type(x) is int and x > 0 for x in shape):
        raise ValueError(f"shape {str(header['shape'])[:40]} (allowed: [height, width], whole numbers > 0)")
    n = header["nbytes"]
    if type(n) is not int or n != shape[0] * shape[1] * dtype.itemsize or n > MAX_FRAME_BYTES:
        raise ValueError(f"nbytes {str(n)[:24]} (allowed: height x width x {dtype.itemsize}, "
                         f"at most {MAX_FRAME_BYTES} bytes)")
    return n, dtype, shape


class NetCamera(Camera):
    def __init__(self, link: Link, *, name: str, timeout_s: float = 10.0):
        self.name = name
        self.link = link
        self.timeout_s = timeout_s

    def identify(self, *, timeout_s: float | None = None) -> str:
        """``*IDN?``: the camera's ``vendor,model,serial,version`` (CameraReadError if nothing answers).

        Frames still on their way (asked by a client before us, a render that outlasted the
        opening drain's quiet second) come before the answer: each is skipped whole by the size
        its header gives, and the answer taken after them; an ``ERR`` line (another client's
        SNAP refused) is skipped too. Without this a 4096 px frame rendered in 1.5 s had the
        drain end mid-render and *IDN? read the frame's header: the run failed to open (exit 5)."""
        command = "*IDN?"
        timeout_s = timeout_s or self.timeout_s
        try:
            self.link.write(b"*IDN?\n")
            for _ in range(_MAX_SKIPPED):
                reply = self.link.read_until(b"\n", timeout_s=timeout_s).decode("ascii", "replace").strip()
                if reply.startswith("OK ") and self._skipped_frame(reply, timeout_s):
                    continue
                if reply.startswith("ERR"):
                    continue
                break
            else:
                raise CameraReadError(self.name, command, f"no answer after {_MAX_SKIPPED} frames and refusals")
        except LinkError as exc:
            raise CameraReadError(self.name, command, str(exc)) from exc
        if not reply:
            raise CameraReadError(self.name, command, "empty reply")
        if not _IDENTITY.fullmatch(reply):
            # (any line passed: an address where another device answered, or garbage, opened the
            # rig, and the run was aborted at its first capture, the membrane cast and never imaged)
            raise CameraReadError(self.name, command, f"no camera's identity: {reply[:60]!r} "
                                                      "(allowed: vendor,model,serial,version)")
        return reply

    def _skipped_frame(self, line: str, timeout_s: float) -> bool:
        """A frame's header line: its pixels read and dropped (True); False for any other line."""
        try:
            n, _, _ = _frame_layout(json.loads(line[3:]))
        except (ValueError, KeyError, TypeError):
            return False
        self.link.read_exactly(n, timeout_s=timeout_s)
        return True

    def _line(self, command: str, *, timeout_s: float | None = None) -> str:
        try:
            return self.link.query(command.encode() + b"\n", b"\n", timeout_s=timeout_s or self.timeout_s).decode("ascii", "replace").strip()
        except LinkError as exc:
            raise CameraReadError(self.name, command, str(exc)) from exc

    def snap(self, illumination: Illumination) -> Frame:
        illumination = Illumination(illumination)
        command = f"SNAP {illumination.value}"
        reply = self._line(command)
        if not reply.startswith("OK "):
            raise CameraReadError(self.name, command, repr(reply[:80]) if reply else "empty reply")
        try:
            header = json.loads(reply[3:])
            n, dtype, shape = _frame_layout(header)
        except (ValueError, KeyError, TypeError) as exc:
            raise CameraReadError(self.name, command, f"bad frame header {reply[:80]!r}: {exc}") from exc
        try:
            data = self.link.read_exactly(n, timeout_s=self.timeout_s)
        except LinkError as exc:
            raise CameraReadError(self.name, command, str(exc)) from exc
        image = np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
        return Frame(image, float(header["pixel_size_um"]), float(header["exposure_ms"]), illumination, dict(header.get("metadata") or {}))

    def close(self) -> None:
        self.link.close()
