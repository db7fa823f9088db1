"""The twin's microscope camera behind a byte protocol, so it is reached through a link like
every other device (in-process, or on a socket served by ``castrig sim serve``).

The protocol (castrig's own; real cameras use OpenCV/GenICam back ends instead), LF-terminated:

    *IDN?                 → CASTRIG,SIMCAM,<serial>,1.0
    SNAP <illumination>   → OK <json header>\\n<raw pixels>
                            header: {"shape": [h, w], "dtype": "uint8"|"uint16",
                                     "nbytes": n, "pixel_size_um": …, "exposure_ms": …,
                                     "metadata": {…}}; pixels little-endian, row-major
                          → ERR busy: …  while the last frame is still being sent
    anything else         → ERR <reason>
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from castrig.sim.emulator import LineEmulator

Render = Callable[[str], tuple[np.ndarray, float, float, dict[str, Any]]]
VIEWS = ("reflected", "transmitted", "section")


class CameraEmulator(LineEmulator):
    terminators = (b"\n",)
    device_faults = frozenset({"no_frame"})

    def __init__(self, name: str, *, render: Render, serial: str = "000001", seed: int = 0, turnaround_s: float = 0.05):
        super().__init__(name, seed=seed, turnaround_s=turnaround_s)
        self.render = render
        self.serial = serial
        self._frame: bytes | None = None  # the last frame queued for the line

    def _frame_pending(self) -> bool:
        """The last frame is still queued for the line: the sensor's one frame buffer is taken.

        Without this a flood of SNAPs nobody reads (2000 in one write to ``castrig sim serve``)
        rendered every frame under the twin's lock, stalling every served device for seconds
        per hundred frames and holding them all in memory."""
        frame = self._frame
        return frame is not None and any(chunk is frame for _, chunk in self._out)

    def handle_line(self, line: bytes, t: float) -> None:
        text = line.decode("ascii", "replace").strip()
        words = text.split()
        if text.upper() == "*IDN?":
            self.send(f"CASTRIG,SIMCAM,{self.serial},1.0\n".encode(), t)
        elif len(words) == 2 and words[0].upper() == "SNAP":
            view = words[1].lower()
            if view not in VIEWS:
                self.send(f"ERR unknown illumination {words[1]!r} (allowed: {', '.join(VIEWS)})\n".encode(), t)
            elif "no_frame" in self.faults:
                self.send(b"ERR no frame from sensor\n", t)
            elif self._frame_pending():
                self.send(b"ERR busy: the last frame is still being sent\n", t)
            else:
                image, px, exposure, meta = self.render(view)
                data = np.ascontiguousarray(image).astype(image.dtype.newbyteorder("<"), copy=False).tobytes()
                header = {"shape": list(image.shape), "dtype": image.dtype.name, "nbytes": len(data),
                          "pixel_size_um": px, "exposure_ms": exposure, "metadata": meta}
                self._frame = b"OK " + json.dumps(header, default=_plain).encode() + b"\n" + data
                self.send(self._frame, t)
        else:
            self.send(f"ERR unknown command {text[:40]!r}\n".encode(), t)


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(type(obj).__name__)
