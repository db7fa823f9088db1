"""A camera reached through a byte link with castrig's simple frame protocol (see
:mod:`castrig.sim.camera` for the bytes): the twin's camera, in-process or over a socket."""

from __future__ import annotations

import json

import numpy as np

from castrig.devices.camera import CameraReadError
from castrig.devices.roles import Camera, Frame, Illumination
from castrig.links import Link, LinkError


class NetCamera(Camera):
    def __init__(self, link: Link, *, name: str, timeout_s: float = 10.0):
        self.name = name
        self.link = link
        self.timeout_s = timeout_s

    def identify(self, *, timeout_s: float | None = None) -> str:
        """``*IDN?``: the camera's ``vendor,model,serial,version`` (CameraReadError if nothing answers)."""
        reply = self._line("*IDN?", timeout_s=timeout_s)
        if not reply:
            raise CameraReadError(self.name, "*IDN?", "empty reply")
        return reply

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
            raise CameraReadError(self.name, command, reply or "empty reply")
        try:
            header = json.loads(reply[3:])
            n = int(header["nbytes"])
            dtype = np.dtype(header["dtype"]).newbyteorder("<")
            shape = tuple(int(x) for x in header["shape"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CameraReadError(self.name, command, f"bad frame header {reply[:80]!r}") from exc
        try:
            data = self.link.read_exactly(n, timeout_s=self.timeout_s)
        except LinkError as exc:
            raise CameraReadError(self.name, command, str(exc)) from exc
        image = np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
        return Frame(image, float(header["pixel_size_um"]), float(header["exposure_ms"]), illumination, dict(header.get("metadata") or {}))

    def close(self) -> None:
        self.link.close()
