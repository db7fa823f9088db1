"""Microscope cameras: one :class:`~castrig.devices.roles.Camera` role, four back ends.

* :class:`SimCamera` — the digital twin's renderer (the rig builder passes ``render``; this
  module never imports the simulator).
* :class:`FolderCamera` — replays images already on disk: earlier runs, or SEM images brought
  from elsewhere.
* :class:`OpenCVCamera` — UVC microscope cameras (a device index) or a video file, through
  ``opencv-python-headless`` (optional extra ``castrig[opencv]``).
* :class:`GenICamCamera` — GenICam/GenTL machine-vision cameras through ``harvesters`` and a
  vendor's GenTL producer (``.cti``); optional extra (``harvesters``, ``genicam``).

Every frame is a 2-D greyscale array (colour sources are converted with the ITU-R BT.601 luma
weights, as OpenCV and Pillow do; a folder's files as `castrig analyse` reads them, Rec. 709), with the pixel size in µm, the exposure in ms (0.0 when the
source does not know it, flagged by ``metadata["exposure_known"] = False``) and the
illumination it was taken under. The illumination itself (reflected top light, transmitted
light, a section view) is set by the rig's lamps, not by the camera: the camera records it.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from castrig.devices.roles import Camera, DeviceError, Frame, Illumination
from castrig.redact import redact_url


# -- errors -----------------------------------------------------------------------------------
class CameraError(DeviceError):
    """Base of every camera error; names the camera and what it was doing."""


class CameraSourceError(CameraError):
    """The source cannot be used: missing folder, device that does not open, no producer."""


class NoImageError(CameraError):
    """No image matches the illumination asked for (or the replay ran out)."""


class CameraReadError(CameraError):
    """A frame could not be read or converted (unreadable file, grab failed, no pixel size)."""


class CameraBackendMissing(CameraError, ImportError):
    """The optional package a back end needs is not installed."""


# -- helpers ----------------------------------------------------------------------------------
_LUMA = np.array([0.299, 0.587, 0.114])


def to_grey(image: np.ndarray, *, bgr: bool = False) -> np.ndarray:
    """A 2-D greyscale view of ``image``: ``(h, w)`` as is, ``(h, w, 3|4)`` by BT.601 luma.

    Integer images keep their dtype (rounded); a single-channel ``(h, w, 1)`` is squeezed.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] in (3, 4):
        rgb = image[:, :, :3].astype(np.float64)
        if bgr:
            rgb = rgb[:, :, ::-1]
        grey = rgb @ _LUMA
        if np.issubdtype(image.dtype, np.integer):
            info = np.iinfo(image.dtype)
            return np.clip(np.rint(grey), info.min, info.max).astype(image.dtype)
        return grey.astype(image.dtype)
    raise ValueError(f"cannot make a 2-D greyscale image from shape {image.shape}")


def _illumination(value: Illumination | str) -> Illumination:
    return value if isinstance(value, Illumination) else Illumination(str(value).lower())


#: The illuminations' names, as the run's images record them.
_VIEWS = frozenset(ill.value for ill in Illumination)


# -- simulator --------------------------------------------------------------------------------
class SimCamera(Camera):
    """The twin's camera: ``render(illumination) -> Frame`` is given by the rig builder."""

    def __init__(self, name: str, *, render: Callable[[Illumination], Frame]):
        self.name = name
        self._render = render
        self.frames_taken = 0

    def snap(self, illumination: Illumination) -> Frame:
        illumination = _illumination(illumination)
        frame = self._render(illumination)
        command = f"snap({illumination.value})"
        if not isinstance(frame, Frame):
            raise CameraReadError(self.name, command, f"renderer returned {type(frame).__name__}, not a Frame")
        if frame.illumination != illumination:
            raise CameraReadError(
                self.name, command, f"renderer returned a {frame.illumination.value} frame"
            )
        if np.asarray(frame.image).ndim != 2:
            raise CameraReadError(self.name, command, f"renderer returned shape {np.shape(frame.image)}, not 2-D")
        self.frames_taken += 1
        frame.metadata.setdefault("camera", self.name)
        frame.metadata.setdefault("backend", "sim")
        frame.metadata.setdefault("exposure_known", True)
        return frame


# -- folder replay ----------------------------------------------------------------------------
#: Image files a folder camera reads.
IMAGE_EXTENSIONS = (".tif", ".tiff", ".png")

#: Default file naming: ``<anything>_<illumination>.<tif|tiff|png>``, e.g. ``m01_reflected.tif``.
DEFAULT_PATTERN = "*_{illumination}.*"

#: how long a folder camera waits for an image still being written to be whole (s)
DEFAULT_READY_TIMEOUT_S = 5.0

#: between two reads of an image still being written (s)
READY_POLL_S = 0.05


class FolderCamera(Camera):
    """Replays images from a folder, one illumination at a time, in sorted file-name order.

    File naming: each illumination has a glob pattern, by default ``*_reflected.*``,
    ``*_transmitted.*`` and ``*_section.*`` (matched case-insensitively, TIFF or PNG only).
    Name registered pairs alike (``m01_reflected.tif`` / ``m01_transmitted.tif``) and they come
    out together, since each illumination keeps its own cursor. The folder is listed again at
    every snap (images may arrive while a run goes on); after the last image the replay starts
    over (``cycle=True``) or raises :class:`NoImageError`. The images earlier runs took
    (:meth:`skip_earlier`) are never handed again: only those after them, in name order.

    Pixel size: an explicit ``pixel_size_um`` wins; else the file's own (TIFF resolution tags
    or PNG ``pHYs``, read by :func:`castrig.tiffio.read_micrograph` as ``castrig analyse`` reads
    them); else :class:`CameraReadError`.
    Exposure: the file's ``exposure_ms`` metadata, else ``exposure_ms`` given here, else 0.0.

    A file the microscope software is still writing (its data stops short, or it changes while it
    is read) is not ready: read again until it is whole and unchanged over a read, for
    ``ready_timeout_s`` at most, then :class:`CameraReadError`; a cut image is never measured.
    """

    def __init__(
        self,
        name: str,
        *,
        folder: str | Path,
        pixel_size_um: float | None = None,
        pattern: str = DEFAULT_PATTERN,
        patterns: Mapping[Illumination | str, str] | None = None,
        exposure_ms: float | None = None,
        cycle: bool = True,
        ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
    ):
        self.name = name
        # absolute: the runs' records say where each image came from whatever folder they were
        # started in (relative, another lab's `images/` matched this one's, and `../images` not)
        self.folder = Path(folder).absolute()
        if not (isinstance(ready_timeout_s, (int, float)) and math.isfinite(ready_timeout_s) and ready_timeout_s >= 0):
            raise CameraSourceError(name, "open", f"ready_timeout_s must be a time >= 0 s, got {ready_timeout_s!r}")
        self.ready_timeout_s = float(ready_timeout_s)
        if pixel_size_um is not None and not pixel_size_um > 0:
            raise CameraSourceError(name, "open", f"pixel_size_um must be positive, got {pixel_size_um}")
        self.pixel_size_um = pixel_size_um
        self.exposure_ms = exposure_ms
        self.cycle = cycle
        self.patterns: dict[Illumination, str] = {
            ill: pattern.format(illumination=ill.value) for ill in Illumination
        }
        for key, value in (patterns or {}).items():
            self.patterns[_illumination(key)] = value
        self._taken: dict[Illumination, int] = {ill: 0 for ill in Illumination}
        #: the file names earlier runs took, per illumination (:meth:`skip_earlier`)
        self._earlier: dict[Illumination, set[str]] = {ill: set() for ill in Illumination}
        if not self.folder.is_dir():
            raise CameraSourceError(name, "open", f"image folder {str(self.folder)!r} does not exist")

    def files(self, illumination: Illumination) -> list[Path]:
        """The images that match ``illumination``, in the order they are replayed."""
        illumination = _illumination(illumination)
        command = f"snap({illumination.value})"
        if not self.folder.is_dir():
            raise CameraSourceError(self.name, command, f"image folder {str(self.folder)!r} does not exist")
        pattern = self.patterns[illumination].lower()
        return sorted(
            p
            for p in self.folder.iterdir()
            if p.is_file()
            and p.suffix.lower() in IMAGE_EXTENSIONS
            and fnmatch.fnmatchcase(p.name.lower(), pattern)
        )

    def snap(self, illumination: Illumination) -> Frame:
        illumination = _illumination(illumination)
        command = f"snap({illumination.value})"
        files = self.files(illumination)
        if not files:
            raise NoImageError(
                self.name,
                command,
                f"no image matching {self.patterns[illumination]!r} ({', '.join(IMAGE_EXTENSIONS)}) in {str(self.folder)!r}",
            )
        floor = self._first_not_earlier(illumination, files)
        taken = max(self._taken[illumination], floor)
        if floor >= len(files):
            raise NoImageError(self.name, command, f"all {len(files)} images matching {self.patterns[illumination]!r} in "
                               f"{str(self.folder)!r} were taken by earlier runs of this data root (the last: "
                               f"{files[-1].name}); a run never measures another run's image: put this membrane's "
                               "image there (after theirs in file-name order), or replay the folder into another data root")
        if taken >= len(files) and not self.cycle:
            raise NoImageError(self.name, command, f"replay finished: all {len(files)} images were taken")
        path = files[floor + (taken - floor) % (len(files) - floor)]
        image, file_pixel_um, file_meta = self._read(path, command)
        pixel_size_um = self.pixel_size_um if self.pixel_size_um is not None else file_pixel_um
        if pixel_size_um is None or not pixel_size_um > 0:
            bad = file_meta.get("pixel_size_invalid") or {}
            said = (f" ({bad['source']} says {bad['value_um']} µm, not a pixel size)"
                    if isinstance(bad, dict) and "source" in bad and "value_um" in bad else
                    f" (its PNG chunk {bad['chunk']} says {bad['value']})" if isinstance(bad, dict) and "chunk" in bad
                    else "")
            raise CameraReadError(
                self.name, command, f"{path.name} carries no pixel size{said}: give the camera pixel_size_um"
            )
        if self.pixel_size_um is None:
            # the file's, checked as `castrig analyse` checks it: a PNG saved at a screen's 72 dpi
            # said 352.8 µm per pixel, and a run stored D 6071 µm (truth 4.3) and exited 0
            from castrig.errors import BadInput
            from castrig.tiffio import check_pixel_size

            try:
                check_pixel_size(pixel_size_um, file_meta.get("pixel_size_source") or "the file", file=path.name)
            except BadInput as exc:
                raise CameraReadError(self.name, command, f"{exc.args[0].replace('; give --pixel-size UM', '')}; "
                                      "give the camera pixel_size_um") from None
        exposure = file_meta.get("exposure_ms", self.exposure_ms)
        if exposure is not None and not (isinstance(exposure, (int, float)) and not isinstance(exposure, bool)
                                         and math.isfinite(exposure) and exposure >= 0):
            raise CameraReadError(self.name, command, f"{path.name}: exposure_ms {exposure!r} in its metadata "
                                  "is not a time (a number of ms, >= 0)")
        # the file's own metadata, without what the reader itself reports about the file (where
        # its pixel size came from, which page was read...): the frame says that anew below, and
        # kept it came back under file_metadata, one level deeper at each replay of a replay
        from castrig.tiffio import READER_FIELDS

        metadata: dict[str, Any] = {k: v for k, v in file_meta.items() if k not in READER_FIELDS}
        metadata.update(
            camera=self.name,
            backend="folder",
            source_path=str(path),
            replay_index=taken,
            exposure_known=exposure is not None,
            # where in the file, as `castrig analyse` says it ("file: PNG pHYs chunk")
            pixel_size_source="camera" if self.pixel_size_um is not None else
            f"file: {file_meta['pixel_size_source']}" if file_meta.get("pixel_size_source") else "file",
        )
        self._taken[illumination] = taken + 1
        return Frame(
            image=image,
            pixel_size_um=float(pixel_size_um),
            exposure_ms=float(exposure) if exposure is not None else 0.0,
            illumination=illumination,
            metadata=metadata,
        )

    def rewind(self) -> None:
        """Start the replay over for every illumination."""
        self._taken = {ill: 0 for ill in Illumination}

    def resume_after(self, taken: list[tuple[str, dict[str, Any]]]) -> None:
        """Each illumination's replay goes on after the last image of it this camera handed the
        run before the crash (its ``replay_index`` as stored): a resumed run started the folder
        over, and the membrane cast after the resume was measured and judged on the first
        membrane's images (an outside test of a crash between casts)."""
        for illumination, meta in taken:
            index = meta.get("replay_index")
            source = meta.get("source_path")
            if (meta.get("backend") != "folder" or meta.get("camera") != self.name or illumination not in _VIEWS
                    or isinstance(index, bool) or not isinstance(index, int) or index < 0
                    or (isinstance(source, str) and not self._in_folder(source))):
                continue  # another camera's frame, or a record this camera did not write
            ill = Illumination(illumination)
            self._taken[ill] = max(self._taken[ill], index + 1)

    def skip_earlier(self, taken: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
        """Take only the images after those earlier runs took from this folder (``(illumination,
        metadata)`` of their frames, as stored), in file-name order, and never theirs again, also
        when the replay cycles: each run of a data root started at the folder's first file, and a
        second run's membrane was judged on the first run's micrograph. Returns illumination ->
        the last file name earlier runs took (what the run's events say)."""
        last: dict[str, str] = {}
        for illumination, meta in taken:
            source = meta.get("source_path")
            if meta.get("backend") != "folder" or illumination not in _VIEWS or not isinstance(source, str):
                continue
            if not self._in_folder(source):
                continue  # another folder's image
            name = Path(source).name
            self._earlier[Illumination(illumination)].add(name)
            last[illumination] = max(last.get(illumination, name), name)
        return last

    def _in_folder(self, source: str) -> bool:
        try:
            return Path(source).parent.resolve() == self.folder.resolve()
        except OSError:
            return False

    def _first_not_earlier(self, illumination: Illumination, files: list[Path]) -> int:
        """The index in ``files`` after the last one earlier runs took (0: none)."""
        seen = self._earlier[illumination]
        return max((i + 1 for i, p in enumerate(files) if p.name in seen), default=0)

    def _read(self, path: Path, command: str) -> tuple[np.ndarray, float | None, dict[str, Any]]:
        """The image at ``path`` once it is whole: read again while its data stops short or it
        changes under the read (the microscope software still writing it), ``ready_timeout_s`` at
        most. Pillow had filled a PNG's missing rows with black and the run measured them."""
        import time

        from castrig.errors import BadInput

        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            before = _stamp(path)
            try:
                image, pixel_um, meta = _read_file(path)
                why = None if _stamp(path) == before else "it changed while it was read"
            except BadInput as exc:
                text = str(exc.args[0] if exc.args else exc)
                if not _incomplete(text):
                    raise CameraReadError(self.name, command, f"cannot read {str(path)!r}: {text}") from None
                why = text
            except Exception as exc:  # noqa: BLE001 - any reader failure is an unreadable image
                raise CameraReadError(self.name, command, f"cannot read {str(path)!r}: {exc}") from exc
            if why is None:
                return to_grey(np.asarray(image)), pixel_um, meta
            if time.monotonic() >= deadline:
                raise CameraReadError(self.name, command, f"cannot read {str(path)!r}: still incomplete after "
                                      f"{self.ready_timeout_s:g} s (still being written?), not measured: {why}")
            time.sleep(READY_POLL_S)


def _stamp(path: Path) -> tuple[int, int] | None:
    """(size, mtime in ns) of ``path``: what a writer still at work changes."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


#: how castrig's readers say an image's data stops short of what it declares
_INCOMPLETE_WORDS = ("truncated", "stops short", "cut short", "hold no data", "points to no image directory")


def _incomplete(text: str) -> bool:
    return any(word in text for word in _INCOMPLETE_WORDS)


#: bytes a TIFF or PNG file holds at least (a PNG's signature and IHDR chunk)
_HEADER_BYTES = 33


def _read_file(path: Path) -> tuple[np.ndarray, float | None, dict[str, Any]]:
    """A TIFF or PNG (by its first bytes, as `castrig analyse` reads it: a TIFF named .png lost its
    pixel size) through castrig's bounded reader, :func:`castrig.tiffio.read_micrograph`."""
    from castrig.errors import BadInput
    from castrig.image_bounds import png_header
    from castrig.tiffio import is_tiff, read_micrograph

    size = path.stat().st_size
    if size < _HEADER_BYTES:  # (a file just created: its header not written yet)
        raise BadInput(f"{path}: the file is truncated: {size} bytes, shorter than an image's header", file=str(path))
    if not is_tiff(path) and png_header(path) is None:
        raise BadInput(f"{path}: neither a TIFF nor a PNG by its first bytes (allowed: TIFF or PNG)", file=str(path))
    image, pixel_um, meta = read_micrograph(path)  # (a PNG's pHYs chunk read there, as analyse reads it)
    return image, pixel_um, dict(meta or {})


# -- OpenCV -----------------------------------------------------------------------------------
#: How long a network camera's stream may take to open, and to give each frame, before the
#: camera is said unreachable (a device link's read is bounded the same way)
STREAM_TIMEOUT_S = 5.0


def is_stream_url(source: str) -> bool:
    """``source`` names a network stream (a URL with a scheme: ``rtsp://``, ``http://`` ...), not a
    file or device path: not ``file://`` (a video file, replayed and resumed as one; as a stream its
    frames had no index, earlier runs' frames were taken again and the replay stopped at its end),
    nor a path with ``://`` further on or a drive letter (``C://x``)."""
    head, sep, _ = source.partition("://")
    return (bool(sep) and len(head) >= 2 and head[0].isalpha() and all(c.isalnum() or c in "+.-" for c in head)
            and head.lower() != "file")


def _import_cv2(name: str) -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise CameraBackendMissing(
            name, "open", "OpenCV is not installed: pip install 'castrig[opencv]' (opencv-python-headless)"
        ) from exc
    return cv2


class OpenCVCamera(Camera):
    """A UVC camera (``source`` = device index), a network camera's stream (``source`` = a URL,
    ``rtsp://user:pw@host/stream``, ``http://host/video.mjpg``: a live camera, opened through
    OpenCV's FFmpeg backend) or a video file (``source`` = path).

    UVC cameras do not report their pixel size: calibrate with a stage micrometer and give
    ``pixel_size_um``. With ``exposure_ms`` the camera's exposure is fixed through
    ``CAP_PROP_EXPOSURE`` (value ``exposure_ms * exposure_units_per_ms``: the unit is the
    driver's, 100 µs on Linux V4L2, hence the default 10). Live cameras buffer frames: use
    ``discard_frames`` to drop stale ones before the frame that is kept. A video file replays
    and starts over at its end.
    """

    def __init__(
        self,
        name: str,
        *,
        source: int | str,
        pixel_size_um: float,
        exposure_ms: float | None = None,
        exposure_units_per_ms: float = 10.0,
        discard_frames: int = 0,
        stream_timeout_s: float = STREAM_TIMEOUT_S,
    ):
        self.name = name
        self.source = source
        if not pixel_size_um > 0:
            raise CameraSourceError(name, "open", f"pixel_size_um must be positive, got {pixel_size_um}")
        self.pixel_size_um = float(pixel_size_um)
        self.exposure_ms = exposure_ms
        self.discard_frames = discard_frames
        self._cv2 = _import_cv2(name)
        # a URL is a network camera: live, never a file (each one was taken for a video file that
        # "does not exist", so a profile's rtsp:// or http:// camera could not be opened at all)
        self._is_stream = isinstance(source, str) and is_stream_url(source)
        self._is_file = isinstance(source, (str, Path)) and not self._is_stream
        if self._is_file and not Path(source).exists():
            raise CameraSourceError(name, "open", f"video file {redact_url(str(source))!r} does not exist")
        if self._is_file:
            self.source = str(Path(source).absolute())  # (recorded as the frames' source: see FolderCamera)
        if self._is_stream:
            # bounded: FFmpeg waited 30 s for a stream server that took the connection and never
            # answered, and as long again for each frame of one that stopped sending
            ms = int(stream_timeout_s * 1000)
            cv2 = self._cv2
            self._cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG,
                                         [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
            # (recorded as the frames' source and said in messages: without the user's password)
            self.source = redact_url(source)
        else:
            self._cap = self._cv2.VideoCapture(str(source) if self._is_file else int(source))
        if not self._cap.isOpened():
            self._cap.release()
            if self._is_stream:
                raise CameraSourceError(name, "open", f"OpenCV cannot open the stream {self.source!r} within "
                                        f"{stream_timeout_s:g} s (is the camera on the network, its URL and the user's password right?)")
            raise CameraSourceError(name, "open", f"OpenCV cannot open source {redact_url(source) if isinstance(source, str) else source!r}")
        #: Frame indices of this video file that earlier runs of the data root took (see skip_earlier).
        self._earlier: set[int] = set()
        self.exposure_set = False
        if exposure_ms is not None and not self._is_file and not self._is_stream:
            self.exposure_set = bool(
                self._cap.set(self._cv2.CAP_PROP_EXPOSURE, float(exposure_ms) * exposure_units_per_ms)
            )

    def _grab(self, command: str) -> np.ndarray:
        rewound = False
        while True:
            ok, image = self._cap.read()
            if not ok and self._is_file and not rewound:
                self._cap.set(self._cv2.CAP_PROP_POS_FRAMES, 0)  # end of the file: start over
                rewound = True
                continue
            if (not ok or image is None) and rewound and self._earlier:
                raise NoImageError(self.name, command, f"all the frames of {str(self.source)!r} were taken by earlier runs "
                                   f"of this data root (the last: frame {max(self._earlier)}); a run never measures another "
                                   "run's frame: record this membrane's frames there, or replay the file into another data root")
            if not ok or image is None:
                raise CameraReadError(self.name, command, f"no frame from {self.source!r}")
            if self._earlier and int(self._cap.get(self._cv2.CAP_PROP_POS_FRAMES)) - 1 in self._earlier:
                continue  # an earlier run's frame, also when the replay cycles
            return image

    def skip_earlier(self, taken: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
        """Take only the frames after those earlier runs of the data root took from this video
        file (``(illumination, metadata)`` of their frames, as stored), and never theirs again:
        each run opened the file at its first frame, and a second run's membrane was imaged with
        the first run's frame (as a folder camera's was, :meth:`FolderCamera.skip_earlier`).
        Returns illumination -> the last frame earlier runs took (what the run's events say)."""
        if not self._is_file or self._cap is None:
            return {}  # a live camera: its next frame is the stage's now
        last: dict[str, int] = {}
        for illumination, meta in taken:
            index = meta.get("frame_index")
            if (meta.get("backend") != "opencv" or not self._same_file(meta.get("source"))
                    or isinstance(index, bool) or not isinstance(index, int) or index < 0):
                continue  # another camera's frame, or another file's
            self._earlier.add(index)
            last[str(illumination)] = max(last.get(str(illumination), index), index)
        if self._earlier:  # (only ever forward: a resumed run's replay already goes on after its own frames)
            at = int(self._cap.get(self._cv2.CAP_PROP_POS_FRAMES))
            self._cap.set(self._cv2.CAP_PROP_POS_FRAMES, max(at, max(self._earlier) + 1))  # (past the end: _grab starts over)
        return {ill: f"frame {index}" for ill, index in last.items()}

    def _same_file(self, source: Any) -> bool:
        if not isinstance(source, str):
            return False
        try:
            return Path(source).resolve() == Path(self.source).resolve()
        except OSError:
            return False

    def snap(self, illumination: Illumination) -> Frame:
        illumination = _illumination(illumination)
        command = f"snap({illumination.value})"
        if self._cap is None:
            raise CameraSourceError(self.name, command, "camera is closed")
        for _ in range(self.discard_frames):
            self._grab(command)
        image = self._grab(command)
        # The index of the frame just read (after a rewind at the file's end, too).
        position = int(self._cap.get(self._cv2.CAP_PROP_POS_FRAMES)) - 1 if self._is_file else None
        if image.ndim == 3 and image.shape[2] in (3, 4):
            code = self._cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else self._cv2.COLOR_BGRA2GRAY
            image = self._cv2.cvtColor(image, code)
        image = to_grey(image)
        return Frame(
            image=image,
            pixel_size_um=self.pixel_size_um,
            exposure_ms=float(self.exposure_ms) if self.exposure_ms is not None else 0.0,
            illumination=illumination,
            metadata={
                "camera": self.name,
                "backend": "opencv",
                "source": str(self.source),
                "frame_index": position,
                "exposure_known": self.exposure_ms is not None,
            },
        )

    def resume_after(self, taken: list[tuple[str, dict[str, Any]]]) -> None:
        """A video file's replay goes on after the last frame this camera handed the run before
        the crash (its ``frame_index`` as stored), as a folder's does (:meth:`FolderCamera.resume_after`):
        from the file's first frame again, the membrane after the resume got the first one's."""
        if not self._is_file or self._cap is None:
            return  # a live camera: its next frame is the stage's now
        last = None
        for _, meta in taken:
            index = meta.get("frame_index")
            if (meta.get("backend") == "opencv" and meta.get("camera") == self.name and meta.get("source") == str(self.source)
                    and isinstance(index, int) and not isinstance(index, bool) and index >= 0):
                last = index  # the last recorded, in the run's order (a replay starts over at the file's end)
        if last is not None:
            self._cap.set(self._cv2.CAP_PROP_POS_FRAMES, last + 1)  # (past the end: _grab starts over)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


# -- GenICam ----------------------------------------------------------------------------------
_GENICAM_CHANNELS = {
    "Mono8": (1, False),
    "Mono10": (1, False),
    "Mono12": (1, False),
    "Mono16": (1, False),
    "RGB8": (3, False),
    "BGR8": (3, True),
    "RGBa8": (4, False),
    "BGRa8": (4, True),
}


def _info(info: Any, attr: str) -> str | None:
    """A device-info field; producers raise (NotAvailable) for fields they do not support."""
    try:
        value = getattr(info, attr)
    except Exception:  # noqa: BLE001 - GenTL's NotAvailableException and friends
        return None
    return str(value) if value is not None else None


class GenICamCamera(Camera):
    """A GenICam camera through ``harvesters`` and a GenTL producer file (``.cti``).

    ``device`` picks the camera: its index in the producer's list, or a string matched against
    serial number, id, model or user-defined name. Exposure, when given, is written to the SFNC
    ``ExposureTime`` node (µs) if the camera has one and read back into each frame. Each snap
    starts acquisition, fetches one buffer (``timeout_s``) and stops, so a frame is never stale.
    """

    def __init__(
        self,
        name: str,
        *,
        cti: str | Path | list[str | Path],
        pixel_size_um: float,
        device: int | str = 0,
        exposure_ms: float | None = None,
        pixel_format: str | None = None,
        timeout_s: float = 2.0,
    ):
        self.name = name
        if not pixel_size_um > 0:
            raise CameraSourceError(name, "open", f"pixel_size_um must be positive, got {pixel_size_um}")
        self.pixel_size_um = float(pixel_size_um)
        self.timeout_s = timeout_s
        try:
            from harvesters.core import Harvester
        except ImportError as exc:
            raise CameraBackendMissing(name, "open", "GenICam needs: pip install harvesters genicam") from exc
        self._h = Harvester()
        self._ia: Any = None
        try:
            for path in cti if isinstance(cti, list) else [cti]:
                if not Path(path).is_file():
                    raise CameraSourceError(name, "open", f"GenTL producer {str(path)!r} does not exist")
                self._h.add_file(str(path))
            self._h.update()
            infos = list(self._h.device_info_list)
            index = self._select(infos, device)
            self._ia = self._h.create(index)
            nodes = self._ia.remote_device.node_map
            if pixel_format is not None:
                nodes.PixelFormat.value = pixel_format
            self.exposure_ms = exposure_ms
            if exposure_ms is not None and nodes.has_node("ExposureTime"):
                nodes.ExposureTime.value = float(exposure_ms) * 1000.0
        except CameraError:
            self.close()
            raise
        except Exception as exc:  # noqa: BLE001 - GenTL raises its own exception family
            self.close()
            raise CameraSourceError(name, "open", f"{type(exc).__name__}: {exc}") from exc

    def _select(self, infos: list[Any], device: int | str) -> int:
        if not infos:
            raise CameraSourceError(self.name, "open", "the GenTL producer lists no camera")
        if isinstance(device, int):
            if not 0 <= device < len(infos):
                raise CameraSourceError(self.name, "open", f"no camera #{device} ({len(infos)} found)")
            return device
        for i, info in enumerate(infos):
            keys = [_info(info, attr) for attr in ("serial_number", "id_", "model", "user_defined_name")]
            if device in keys:
                return i
        found = ", ".join(f"{_info(i, 'id_')} (serial {_info(i, 'serial_number')})" for i in infos)
        raise CameraSourceError(self.name, "open", f"no camera {device!r}; found {found}")

    def _exposure_now(self) -> float | None:
        nodes = self._ia.remote_device.node_map
        if nodes.has_node("ExposureTime"):
            return float(nodes.ExposureTime.value) / 1000.0
        return self.exposure_ms

    def snap(self, illumination: Illumination) -> Frame:
        illumination = _illumination(illumination)
        command = f"snap({illumination.value})"
        if self._ia is None:
            raise CameraSourceError(self.name, command, "camera is closed")
        try:
            self._ia.start()
            try:
                with self._ia.fetch(timeout=self.timeout_s) as buffer:
                    component = buffer.payload.components[0]
                    fmt = str(component.data_format)
                    width, height = int(component.width), int(component.height)
                    data = np.array(component.data, copy=True)
            finally:
                self._ia.stop()
        except Exception as exc:  # noqa: BLE001 - timeouts and GenTL errors alike
            raise CameraReadError(self.name, command, f"{type(exc).__name__}: {exc}") from exc
        if fmt not in _GENICAM_CHANNELS:
            raise CameraReadError(self.name, command, f"pixel format {fmt} not supported")
        channels, bgr = _GENICAM_CHANNELS[fmt]
        image = data.reshape(height, width, channels) if channels > 1 else data.reshape(height, width)
        exposure = self._exposure_now()
        return Frame(
            image=to_grey(image, bgr=bgr),
            pixel_size_um=self.pixel_size_um,
            exposure_ms=exposure if exposure is not None else 0.0,
            illumination=illumination,
            metadata={
                "camera": self.name,
                "backend": "genicam",
                "pixel_format": fmt,
                "exposure_known": exposure is not None,
            },
        )

    def close(self) -> None:
        if self._ia is not None:
            try:
                self._ia.destroy()
            finally:
                self._ia = None
        self._h.reset()
