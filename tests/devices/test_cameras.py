"""Camera back ends: simulator, folder replay (TIFF/PNG), OpenCV (video file, network stream), GenICam (the
``viky.cti`` software producer shipped in the ``genicam`` wheel)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from castrig.devices.camera import (
    CameraError,
    CameraReadError,
    CameraSourceError,
    FolderCamera,
    GenICamCamera,
    NoImageError,
    OpenCVCamera,
    SimCamera,
    to_grey,
)
from castrig.devices.roles import DeviceError, Frame, Illumination

R, T, S = Illumination.REFLECTED, Illumination.TRANSMITTED, Illumination.SECTION


def ramp(value: int, shape=(12, 16), dtype=np.uint8) -> np.ndarray:
    img = np.full(shape, value, dtype=dtype)
    img[0, 0] = 0
    return img


# -- helpers ------------------------------------------------------------------------------------
def test_to_grey_weights_and_dtypes():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 255
    assert to_grey(rgb)[0, 0] == 76  # round(0.299 * 255)
    assert to_grey(rgb, bgr=True)[0, 0] == 29  # red channel read as blue
    assert to_grey(np.ones((3, 4, 1), np.uint16)).shape == (3, 4)
    rgba16 = np.full((2, 2, 4), 1000, np.uint16)
    out = to_grey(rgba16)
    assert out.dtype == np.uint16 and out[0, 0] == 1000
    with pytest.raises(ValueError):
        to_grey(np.zeros((2, 2, 2, 2)))


# -- simulator ----------------------------------------------------------------------------------
def test_sim_camera_passes_frames_and_names_itself():
    calls = []

    def render(ill):
        calls.append(ill)
        return Frame(ramp(100), pixel_size_um=0.25, exposure_ms=12.0, illumination=ill, metadata={"truth": 1})

    cam = SimCamera("scope", render=render)
    f = cam.snap(T)
    assert calls == [T] and f.illumination is T and f.pixel_size_um == 0.25 and f.exposure_ms == 12.0
    assert f.metadata == {"truth": 1, "camera": "scope", "backend": "sim", "exposure_known": True}
    assert cam.snap("reflected").illumination is R
    assert cam.frames_taken == 2


def test_sim_camera_rejects_wrong_renderer_output():
    cam = SimCamera("scope", render=lambda ill: Frame(ramp(1), 1.0, 1.0, Illumination.SECTION))
    with pytest.raises(CameraReadError, match="scope"):
        cam.snap(R)
    cam = SimCamera("scope", render=lambda ill: "not a frame")  # type: ignore[arg-type,return-value]
    with pytest.raises(CameraError):
        cam.snap(R)
    cam = SimCamera("scope", render=lambda ill: Frame(np.zeros((2, 2, 3)), 1.0, 1.0, ill))
    with pytest.raises(CameraReadError, match="2-D"):
        cam.snap(R)


# -- folder: PNG --------------------------------------------------------------------------------
def write_png(path: Path, image: np.ndarray, dpi: float | None = None) -> None:
    from PIL import Image

    img = Image.fromarray(image)
    if dpi is None:
        img.save(path)
    else:
        img.save(path, dpi=(dpi, dpi))


def test_folder_png_cycles_per_illumination_in_sorted_order(tmp_path):
    for i, name in enumerate(["b_reflected.png", "a_reflected.PNG", "a_transmitted.png", "c_reflected.png"]):
        write_png(tmp_path / name, ramp(10 * (i + 1)))
    (tmp_path / "notes_reflected.txt").write_text("not an image")
    cam = FolderCamera("replay", folder=tmp_path, pixel_size_um=0.5, exposure_ms=3.0)
    seen = [cam.snap(R).metadata["source_path"] for _ in range(4)]
    assert [Path(p).name for p in seen] == ["a_reflected.PNG", "b_reflected.png", "c_reflected.png", "a_reflected.PNG"]
    f = cam.snap(T)
    assert f.image[1, 1] == 30 and f.image.dtype == np.uint8 and f.image.shape == (12, 16)
    assert f.pixel_size_um == 0.5 and f.exposure_ms == 3.0 and f.illumination is T
    assert f.metadata["camera"] == "replay" and f.metadata["replay_index"] == 0
    with pytest.raises(NoImageError) as info:
        cam.snap(S)
    assert "replay" in str(info.value) and "*_section.*" in str(info.value)
    assert isinstance(info.value, DeviceError)


def test_folder_png_pixel_size_from_phys_and_colour_to_grey(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 1] = 200
    write_png(tmp_path / "x_reflected.png", rgb, dpi=25400 / 0.8)  # 0.8 µm pixels
    f = FolderCamera("replay", folder=tmp_path).snap(R)
    assert f.image.ndim == 2 and f.image[0, 0] == round(0.7154 * 200)  # as `castrig analyse` reads it (Rec. 709)
    assert f.pixel_size_um == pytest.approx(0.8, rel=1e-3)
    assert f.exposure_ms == 0.0 and f.metadata["exposure_known"] is False
    # An explicit pixel size wins over the file's.
    assert FolderCamera("replay", folder=tmp_path, pixel_size_um=2.0).snap(R).pixel_size_um == 2.0


def test_folder_png_without_pixel_size_is_typed_error(tmp_path):
    write_png(tmp_path / "x_reflected.png", ramp(5))
    with pytest.raises(CameraReadError, match="pixel_size_um"):
        FolderCamera("replay", folder=tmp_path).snap(R)


@pytest.mark.parametrize("width_m", ["inf", "nan", "0", "-1e-7", "2,5e-7"])
def test_folder_tiff_whose_instrument_field_is_no_pixel_size_is_typed_error(tmp_path, width_m):
    """An FEI PixelWidth of inf reached the run as pixel_size_um=inf (the reader handed the bad
    value on so that analyse could name it); the camera must refuse it as it refuses none, and
    (a review) name the field as analyse does, not only "carries no pixel size"."""
    import tifffile

    tifffile.imwrite(tmp_path / "x_reflected.tif", ramp(5),
                     extratags=[(34682, "s", 0, f"[Scan]\r\nPixelWidth={width_m}\r\n", True)])
    with pytest.raises(CameraReadError, match="pixel_size_um") as info:
        FolderCamera("replay", folder=tmp_path).snap(R)
    assert "FEI/Thermo tag 34682" in str(info.value), str(info.value)


def test_folder_custom_patterns_and_no_cycle(tmp_path):
    write_png(tmp_path / "top_1.png", ramp(1))
    write_png(tmp_path / "top_2.png", ramp(2))
    cam = FolderCamera("sem", folder=tmp_path, pixel_size_um=0.1, patterns={"reflected": "top_*"}, cycle=False)
    assert [cam.snap(R).image[1, 1] for _ in range(2)] == [1, 2]
    with pytest.raises(NoImageError, match="replay finished"):
        cam.snap(R)
    cam.rewind()
    assert cam.snap(R).image[1, 1] == 1


def test_folder_missing_and_vanishing(tmp_path):
    with pytest.raises(CameraSourceError) as info:
        FolderCamera("replay", folder=tmp_path / "nope")
    assert "replay" in str(info.value) and "nope" in str(info.value)
    sub = tmp_path / "d"
    sub.mkdir()
    cam = FolderCamera("replay", folder=sub, pixel_size_um=1)
    sub.rmdir()
    with pytest.raises(CameraSourceError):
        cam.snap(R)


def test_folder_unreadable_image_is_typed_error(tmp_path):
    (tmp_path / "x_reflected.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(CameraReadError, match="cannot read"):
        FolderCamera("replay", folder=tmp_path, pixel_size_um=1, ready_timeout_s=0).snap(R)


def test_folder_picks_up_new_images(tmp_path):
    cam = FolderCamera("replay", folder=tmp_path, pixel_size_um=1)
    with pytest.raises(NoImageError):
        cam.snap(R)
    write_png(tmp_path / "late_reflected.png", ramp(9))
    assert cam.snap(R).image[1, 1] == 9


# -- folder: TIFF (through castrig.tiffio) ------------------------------------------------------
def write_tiff(path: Path, image: np.ndarray, pixel_size_um: float | None) -> None:
    import tifffile

    kwargs = {}
    if pixel_size_um is not None:
        per_cm = 1e4 / pixel_size_um
        kwargs = {"resolution": (per_cm, per_cm), "resolutionunit": "CENTIMETER"}
    tifffile.imwrite(path, image, **kwargs)


def test_folder_tiff_pixel_size_from_resolution_tags(tmp_path):
    pytest.importorskip("castrig.tiffio")
    write_tiff(tmp_path / "m01_reflected.tif", ramp(200, dtype=np.uint16), 0.25)
    write_tiff(tmp_path / "m01_section.tiff", ramp(50), None)
    cam = FolderCamera("replay", folder=tmp_path)
    f = cam.snap(R)
    assert f.image.dtype == np.uint16 and f.image[1, 1] == 200
    assert f.pixel_size_um == pytest.approx(0.25, rel=1e-4)
    assert f.metadata["pixel_size_source"] == "file: TIFF resolution tags"
    with pytest.raises(CameraReadError, match="pixel size"):
        cam.snap(S)
    assert FolderCamera("replay", folder=tmp_path, pixel_size_um=1.5).snap(S).pixel_size_um == 1.5


# -- OpenCV -------------------------------------------------------------------------------------
@pytest.fixture
def video(tmp_path):
    cv2 = pytest.importorskip("cv2")
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (32, 24))
    assert writer.isOpened()
    for value in (40, 120, 200):
        frame = np.full((24, 32, 3), value, np.uint8)
        writer.write(frame)
    writer.release()
    return path


def test_opencv_video_file_frames_grey_and_loops(video):
    cam = OpenCVCamera("uvc", source=str(video), pixel_size_um=1.2, exposure_ms=8.0)
    try:
        frames = [cam.snap(R) for _ in range(4)]
    finally:
        cam.close()
    levels = [int(round(float(f.image.mean()))) for f in frames]
    assert all(f.image.shape == (24, 32) and f.image.dtype == np.uint8 for f in frames)
    assert [abs(a - b) <= 3 for a, b in zip(levels, [40, 120, 200, 40])] == [True] * 4
    assert [f.metadata["frame_index"] for f in frames] == [0, 1, 2, 0]
    assert frames[0].pixel_size_um == 1.2 and frames[0].exposure_ms == 8.0
    assert frames[0].metadata["camera"] == "uvc" and frames[1].illumination is R
    with pytest.raises(CameraSourceError, match="closed"):
        cam.snap(R)


@pytest.fixture
def mjpeg_camera():
    """A network camera's MJPEG stream over HTTP (multipart/x-mixed-replace, as IP cameras serve
    ``/video.mjpg``) behind Basic authentication as lab:s3cret, on loopback; ``stall=True``: a
    server that takes the connection and never answers. Yields ``start(stall=False) -> port``."""
    import base64
    import http.server
    import socket
    import socketserver
    import threading
    import time

    cv2 = pytest.importorskip("cv2")
    frame = np.full((24, 32, 3), 90, np.uint8)
    frame[4:12, 4:20] = 210
    jpg = cv2.imencode(".jpg", frame)[1].tobytes()
    stop = threading.Event()

    class Camera(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"lab:s3cret").decode():
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="camera"')
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            try:
                while not stop.is_set():
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (len(jpg), jpg))
                    time.sleep(0.02)
            except OSError:  # (the camera closed)
                pass

    opened = []

    def start(stall: bool = False) -> int:
        if stall:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(4)  # (the kernel takes the connection; nothing reads or answers)
            opened.append(s)
            return s.getsockname()[1]
        srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Camera)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        opened.append(srv)
        return srv.server_address[1]

    yield start
    stop.set()
    for o in opened:
        if isinstance(o, socketserver.BaseServer):
            o.shutdown()
            o.server_close()
        else:
            o.close()


def test_opencv_network_camera_by_url_gives_frames_and_keeps_its_password_out(mjpeg_camera):
    """The profile's camera ``source`` is "a camera index or a device path/URL", but a URL was taken
    for a video file: rtsp:// and http:// cameras ended "video file ... does not exist" and could
    not be used at all. A URL is now a live stream (OpenCV's FFmpeg backend): its frames are grey,
    the frames' recorded source and every message carry no password, and a server that never
    answers is said unreachable within the stream's time-out (FFmpeg's own wait was 30 s)."""
    import time

    port = mjpeg_camera()
    url = f"http://lab:s3cret@127.0.0.1:{port}/video.mjpg"
    cam = OpenCVCamera("net", source=url, pixel_size_um=0.5, exposure_ms=4.0)
    try:
        frames = [cam.snap(R), cam.snap(T)]
    finally:
        cam.close()
    assert [f.image.shape for f in frames] == [(24, 32)] * 2 and frames[0].image.dtype == np.uint8
    assert abs(int(frames[0].image[8, 10]) - 210) <= 6 and abs(int(frames[0].image[20, 28]) - 90) <= 6
    assert frames[1].metadata["source"] == f"http://lab:***@127.0.0.1:{port}/video.mjpg", frames[1].metadata
    assert frames[0].metadata["frame_index"] is None and cam.exposure_set is False  # (live: no index, no exposure set)

    with pytest.raises(CameraSourceError) as wrong:
        OpenCVCamera("net", source=url.replace("s3cret", "wrong-pw"), pixel_size_um=0.5, stream_timeout_s=2.0)
    assert "wrong-pw" not in str(wrong.value) and "cannot open the stream" in str(wrong.value), wrong.value

    stalled = f"rtsp://lab:s3cret@127.0.0.1:{mjpeg_camera(stall=True)}/stream"
    t0 = time.monotonic()
    with pytest.raises(CameraSourceError, match="within 1 s") as silent:
        OpenCVCamera("net", source=stalled, pixel_size_um=0.5, stream_timeout_s=1.0)
    assert time.monotonic() - t0 < 10 and "s3cret" not in str(silent.value), silent.value

    # (review) a file:// URL, a drive letter, a path with :// further on are no stream: as one, a
    # video file's frames had no index, earlier runs' frames were taken again, the replay stopped
    from castrig.devices.camera import is_stream_url

    assert [is_stream_url(s) for s in ("rtsp://h/s", "HTTP://h/v.mjpg", "file:///v.avi", "C://v.avi", "/data/a://b")] == [
        True, True, False, False, False]


def test_opencv_discard_frames(video):
    cam = OpenCVCamera("uvc", source=video, pixel_size_um=1.0, discard_frames=1)
    try:
        assert abs(float(cam.snap(T).image.mean()) - 120) <= 3
        assert cam.snap(T).metadata["exposure_known"] is False
    finally:
        cam.close()


def test_opencv_video_replay_resumed_goes_on_after_the_frames_its_run_recorded(video):
    """A resumed run opens the camera anew: a video file's replay started over at its first frame,
    and the membrane cast after the resume was imaged as the first one was (as a folder camera's
    was: tests/recipe/test_folder_camera_resume_cli.py drives that through castrig resume)."""
    first = OpenCVCamera("uvc", source=str(video), pixel_size_um=1.0)
    try:
        recorded = [("reflected", first.snap(R).metadata) for _ in range(2)]  # frames 0 and 1, then the crash
    finally:
        first.close()
    resumed = OpenCVCamera("uvc", source=str(video), pixel_size_um=1.0)
    try:
        resumed.resume_after(recorded)
        frame = resumed.snap(R)
    finally:
        resumed.close()
    assert frame.metadata["frame_index"] == 2 and abs(float(frame.image.mean()) - 200) <= 3


def test_opencv_video_file_skips_the_frames_earlier_runs_took_and_says_when_none_are_left(video, tmp_path):
    """Each `castrig run` opened a video file at its first frame: a second run imaged the first
    run's membrane (tests/recipe/test_video_camera_two_runs_cli.py drives that). Now the frames
    the data root's other runs took are skipped, also when the replay cycles, and with none left
    the capture says so (NoImageError: the run stops safe, as a folder camera's does)."""
    def frame(index, source=video):
        return ("reflected", {"backend": "opencv", "camera": "uvc", "source": str(source), "frame_index": index})

    cam = OpenCVCamera("uvc", source=str(video), pixel_size_um=1.0)
    try:
        assert cam.skip_earlier([frame(0), frame(1), frame(2, tmp_path / "other.avi")]) == {"reflected": "frame 1"}
        assert [cam.snap(R).metadata["frame_index"] for _ in range(3)] == [2, 2, 2]  # (never 0 or 1 again)
    finally:
        cam.close()
    cam = OpenCVCamera("uvc", source=str(video), pixel_size_um=1.0)  # a resumed run that took frame 1 itself
    try:
        cam.resume_after([frame(1)])
        cam.skip_earlier([frame(0)])  # (an earlier run's: the replay goes on after this run's own, not back to 1)
        assert cam.snap(R).metadata["frame_index"] == 2
    finally:
        cam.close()
    cam = OpenCVCamera("uvc", source=str(video), pixel_size_um=1.0)
    try:
        cam.skip_earlier([frame(0), frame(1), frame(2)])
        with pytest.raises(NoImageError, match="were taken by earlier runs of this data root .the last: frame 2."):
            cam.snap(R)
    finally:
        cam.close()


def test_opencv_missing_source_is_typed(tmp_path):
    pytest.importorskip("cv2")
    with pytest.raises(CameraSourceError, match="uvc"):
        OpenCVCamera("uvc", source=str(tmp_path / "none.avi"), pixel_size_um=1.0)
    (tmp_path / "junk.avi").write_bytes(b"not a video at all")
    with pytest.raises(CameraSourceError, match="cannot open"):
        OpenCVCamera("uvc", source=str(tmp_path / "junk.avi"), pixel_size_um=1.0)


def test_opencv_absent_gives_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` raise ImportError
    with pytest.raises(ImportError, match="opencv-python-headless") as info:
        OpenCVCamera("uvc", source=0, pixel_size_um=1.0)
    assert isinstance(info.value, CameraError) and "uvc" in str(info.value)


# -- GenICam (software GenTL producer) ----------------------------------------------------------
@pytest.fixture(scope="module")
def viky_cti():
    pytest.importorskip("harvesters.core")
    genicam = pytest.importorskip("genicam")
    cti = Path(genicam.__file__).parent / "viky.cti"
    if not cti.is_file():
        pytest.skip("the genicam wheel ships no viky.cti producer")
    return cti


def test_genicam_software_producer(viky_cti):
    cam = GenICamCamera("gige", cti=viky_cti, device="1", pixel_size_um=0.5, exposure_ms=4.0)
    try:
        f = cam.snap(R)
        assert f.image.ndim == 2 and f.image.shape == (400, 400) and f.image.dtype == np.uint8
        assert f.pixel_size_um == 0.5 and f.metadata["pixel_format"] == "RGBa8"
        assert f.exposure_ms == 4.0  # the producer has no ExposureTime node: the given value
        assert cam.snap(S).illumination is S
    finally:
        cam.close()
    with pytest.raises(CameraSourceError):
        cam.snap(R)


def test_genicam_mono_and_unknown_device(viky_cti):
    cam = GenICamCamera("gige", cti=[viky_cti], pixel_size_um=1.0, pixel_format="Mono8")
    try:
        f = cam.snap(T)
        assert f.metadata["pixel_format"] == "Mono8" and f.image.shape == (400, 400)
    finally:
        cam.close()
    with pytest.raises(CameraSourceError, match="no camera 'XYZ'"):
        GenICamCamera("gige", cti=viky_cti, device="XYZ", pixel_size_um=1.0)
    with pytest.raises(CameraSourceError, match="does not exist"):
        GenICamCamera("gige", cti=viky_cti.parent / "missing.cti", pixel_size_um=1.0)


def test_folder_replay_of_a_replayed_image_keeps_one_level_of_metadata(tmp_path):
    """An image a run recorded from the folder camera, replayed again: the reader's own fields in
    its metadata (where the pixel size came from, how the file was read) were copied into the
    new frame's, came back under ``file_metadata`` when read, and nested one level deeper at
    each replay. The frame now says them anew; the file's other metadata is kept as it was."""
    from castrig.tiffio import write_micrograph

    write_micrograph(tmp_path / "a_reflected.tif", ramp(120, dtype=np.uint16), 0.25,
                     metadata={"exposure_ms": 4.0, "operator": "ada", "pixel_size_source": "camera"})
    f = FolderCamera("replay", folder=tmp_path).snap(R)
    assert f.metadata["operator"] == "ada" and f.exposure_ms == 4.0
    assert f.metadata["pixel_size_source"] == "file: TIFF resolution tags" and "file_metadata" not in f.metadata
    again = tmp_path / "again"
    again.mkdir()
    write_micrograph(again / "b_reflected.tif", f.image, f.pixel_size_um, metadata=f.metadata)
    g = FolderCamera("replay", folder=again).snap(R)
    assert "file_metadata" not in g.metadata and g.metadata["operator"] == "ada"


@pytest.mark.parametrize("exposure", ["abc", -1.0, True])
def test_folder_image_whose_exposure_is_no_time_is_typed_error(tmp_path, exposure):
    from castrig.tiffio import write_micrograph

    write_micrograph(tmp_path / "a_reflected.tif", ramp(120, dtype=np.uint16), 0.25, metadata={"exposure_ms": exposure})
    with pytest.raises(CameraReadError, match="exposure_ms"):
        FolderCamera("replay", folder=tmp_path).snap(R)


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
def test_a_folder_camera_reads_images_by_their_content_not_their_name(tmp_path, rendered_membrane):
    """Micrographs saved by other software under another extension (a TIFF named .png, a PNG named
    .tif): `castrig analyse` read them by their first bytes, the folder camera by their name, so
    the TIFF's pixel size was "missing" and the run aborted (interlock camera_missing, exit 3) on
    images analyse measures. Through the real `castrig run`, on the twin's rig with a folder camera.
    (The twin's micrographs: the session's rendered membrane, conftest ``rendered_membrane``.)"""
    import shutil

    import yaml
    from PIL import Image

    from conftest import ROOT, castrig, run_rows

    folder = tmp_path / "camera"
    folder.mkdir()
    shutil.copy(rendered_membrane / "m000_reflected.tif", folder / "m000_reflected.png")  # a TIFF named .png
    from castrig.tiffio import read_micrograph

    section, section_px, _ = read_micrograph(rendered_membrane / "m000_section.tif")
    Image.fromarray(section).save(folder / "m000_section.tif", format="PNG", dpi=(25400 / section_px,) * 2)  # a PNG named .tif
    profile = yaml.safe_load((ROOT / "hw_profiles" / "sim.yaml").read_text())
    profile["devices"]["camera"] = {"model": "folder", "folder": str(folder)}
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(profile))
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({"name": "replayed", "steps": [
        {"type": "capture", "views": ["reflected", "section"], "fields": 1}]}))
    done = castrig("run", str(tmp_path / "recipe.yaml"), "--profile", str(tmp_path / "rig.yaml"),
                   "--data", str(tmp_path / "runs"), "-q")
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = [p.parent for p in (tmp_path / "runs").glob("*/run.json")]
    sizes = dict(run_rows(run_dir, "SELECT illumination, pixel_size_um FROM images"))
    _, reflected_px, _ = read_micrograph(rendered_membrane / "m000_reflected.tif")
    assert sizes["reflected"] == pytest.approx(reflected_px, rel=1e-4), sizes
    assert sizes["section"] == pytest.approx(section_px, rel=1e-3), sizes


def test_a_folder_camera_without_images_is_said_as_the_run_starts(tmp_path):
    """An empty camera folder was found at the capture step, after the film was cast (an outside
    tester: camera_missing, the membrane made and never analysed). Images may arrive while a run
    goes on, so the run starts, with a warning for each view it will capture that has none yet,
    recorded before its first step."""
    import yaml

    from conftest import ROOT, castrig, run_rows

    (tmp_path / "camera").mkdir()
    profile = yaml.safe_load((ROOT / "hw_profiles" / "sim.yaml").read_text())
    profile["devices"]["camera"] = {"model": "folder", "folder": str(tmp_path / "camera"), "pixel_size_um": 0.25}
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(profile))
    done = castrig("run", str(ROOT / "recipes" / "demo-short.yaml"), "--profile", str(tmp_path / "rig.yaml"),
                   "--data", str(tmp_path / "runs"), "-q")
    assert done.returncode == 3, done.stdout + done.stderr  # the capture still finds no image
    (run_dir,) = [p.parent for p in (tmp_path / "runs").glob("*/run.json")]
    first_step = run_rows(run_dir, "SELECT min(t_s) FROM journal")[0][0]
    warned = run_rows(run_dir, "SELECT t_s, message FROM events WHERE kind = 'warning' AND message LIKE '%image in%'")
    assert sorted(m.split()[2] for _, m in warned) == ["reflected", "section", "transmitted"], warned
    assert all(t <= first_step for t, _ in warned), (warned, first_step)


@pytest.mark.parametrize("dpi, says", [(72, "352.73"), (1e8, "0.000254 µm from PNG pHYs chunk")])
def test_folder_png_whose_pixel_size_is_none_analyse_takes_is_typed_error(tmp_path, dpi, says):
    write_png(tmp_path / "x_reflected.png", ramp(5), dpi=dpi)
    with pytest.raises(CameraReadError, match="pixel_size_um") as info:
        FolderCamera("replay", folder=tmp_path).snap(R)
    assert says in str(info.value) and "x_reflected.png" in str(info.value) and "0.0005–50" in str(info.value)


def test_a_run_on_folder_images_saved_at_a_screens_72_dpi_stops_instead_of_storing_nonsense(tmp_path, rendered_membrane):
    """An outside tester: PNGs saved by an image program at its default 72 dpi, replayed by the
    folder camera: the run took 352.8 µm per pixel from them, stored D 6071 µm (truth 4.3) and a
    thickness of 10.8 mm, and exited 0. The file's pixel size is checked as `castrig analyse`
    checks it; the run stops at the capture, naming the file. (The twin's micrographs: the
    session's rendered membrane, conftest ``rendered_membrane``.)"""
    import tifffile
    from PIL import Image

    from conftest import ROOT, castrig

    (tmp_path / "cam").mkdir()
    for view in ("reflected", "transmitted", "section"):
        Image.fromarray(tifffile.imread(rendered_membrane / f"m000_{view}.tif")).save(tmp_path / "cam" / f"m01_{view}.png", dpi=(72, 72))
    profile = (ROOT / "hw_profiles" / "sim.yaml").read_text()
    profile = re.sub(r"camera: .*", f"camera: {{model: folder, folder: '{tmp_path / 'cam'}'}}", profile)
    (tmp_path / "folder.yaml").write_text(profile)
    done = castrig("run", str(ROOT / "recipes" / "demo-short.yaml"), "--profile", str(tmp_path / "folder.yaml"),
                   "--data", str(tmp_path / "runs"), "-q")
    assert done.returncode != 0, done.stdout
    said = " ".join((done.stdout + done.stderr).split())
    assert "aborted" in said and "m01_reflected.png: pixel size 352.73" in said and "from PNG pHYs chunk" in said, said[-2000:]
    metrics = list((tmp_path / "runs").rglob("metrics.json"))
    assert not metrics, [m.read_text()[:200] for m in metrics]


# -- the twin's camera over a link (NetCamera) ---------------------------------------------------
@pytest.mark.parametrize("header, why", [
    ({"shape": [3, 3], "dtype": "uint8", "nbytes": 4}, "nbytes 4"),  # bytes that do not fill the shape: numpy's ValueError
    ({"shape": [100000, 100000], "dtype": "uint8", "nbytes": 10**10}, "at most 67108864 bytes"),
    ({"shape": [2, 2], "dtype": "object", "nbytes": 32}, "dtype 'object'"),
    ({"shape": [4], "dtype": "uint8", "nbytes": 4}, "shape [4]"),
    ({"shape": [2, 2], "dtype": "uint8", "nbytes": True}, "nbytes True"),
])
def test_net_camera_refuses_a_frame_header_before_reading_its_bytes(header, why):
    """A header is checked before its bytes are read: a camera announcing a 10 GB frame had a
    run read 3.9 GB in 10 s; one whose bytes did not fill its shape ended in numpy's ValueError."""
    import json

    from castrig.devices.netcam import NetCamera
    from castrig.links.scripted import ScriptedLink

    reply = b"OK " + json.dumps({**header, "pixel_size_um": 1, "exposure_ms": 1}).encode() + b"\n" + bytes(4)
    cam = NetCamera(ScriptedLink([(b"SNAP reflected\n", reply)]), name="camera", timeout_s=0.05)
    with pytest.raises(CameraReadError, match="bad frame header") as err:
        cam.snap(R)
    assert why in str(err.value)


@pytest.mark.parametrize("reply", [b"\x01\xfe garbage \xff\n", b"OK\n", b"A +014.70 +025.00 Air\n"])
def test_net_camera_identity_must_be_one(reply):
    """``*IDN?`` at the rig's opening took any line for the camera's identity: an address where
    another device or garbage answered opened the rig, and the run was aborted at its first
    capture, the membrane cast and never imaged. Now the rig is not opened (exit 5), the reply shown
    as repr (its control bytes were printed raw)."""
    from castrig.devices.netcam import NetCamera
    from castrig.links.scripted import ScriptedLink

    cam = NetCamera(ScriptedLink([(b"*IDN?\n", reply)]), name="camera", timeout_s=0.05)
    with pytest.raises(CameraReadError, match=r"no camera's identity: .* \(allowed: vendor,model,serial,version\)") as err:
        cam.identify()
    assert "\x01" not in str(err.value)
    assert NetCamera(ScriptedLink([(b"*IDN?\n", b"CASTRIG,SIMCAM,000001,1.0\n")]), name="camera").identify() == "CASTRIG,SIMCAM,000001,1.0"


def _png_of_rows(image: np.ndarray, rows: int, dpi: float) -> bytes:
    """A grey PNG declaring all of ``image`` whose (cleanly ended) compressed data holds only its
    first ``rows`` rows: a file whose writer had not written the rest."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w = image.shape
    raw = b"".join(b"\x00" + image[r].tobytes() for r in range(rows))
    per_m = round(dpi / 0.0254)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"pHYs", struct.pack(">IIB", per_m, per_m, 1)) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def test_a_folder_camera_waits_for_an_image_still_being_written_and_never_measures_a_cut_one(tmp_path):
    """The microscope software still writing a PNG as the capture comes: Pillow read one whose
    data ended after half its rows as a whole image, the rest black, and the run measured it; one
    cut mid-stream ended the capture ("image file is truncated"). Now the camera reads through
    castrig's own reader, waits while the file is incomplete (the camera's ready_timeout_s) and
    takes it once whole; one that stays incomplete is refused, named, in that time."""
    import threading
    import time

    rng = np.random.default_rng(3)
    image = rng.integers(20, 235, (120, 160), dtype=np.uint8)
    whole = _png_of_rows(image, 120, dpi=25400 / 0.5)
    path = tmp_path / "m01_reflected.png"
    path.write_bytes(_png_of_rows(image, 60, dpi=25400 / 0.5))  # half its rows: stays so
    cam = FolderCamera("replay", folder=tmp_path, ready_timeout_s=0.2)
    t0 = time.monotonic()
    with pytest.raises(CameraReadError, match="m01_reflected.png.*still incomplete after 0.2 s.*not measured"):
        cam.snap(R)
    assert time.monotonic() - t0 < 2.0
    path.write_bytes(whole[: len(whole) // 2])  # cut mid-stream, the writer at work: whole 0.15 s later
    writer = threading.Timer(0.15, path.write_bytes, args=(whole,))
    writer.start()
    try:
        frame = FolderCamera("replay", folder=tmp_path, ready_timeout_s=5).snap(R)
    finally:
        writer.join()
    np.testing.assert_array_equal(frame.image, image)
    assert frame.pixel_size_um == pytest.approx(0.5, rel=1e-3)


def test_a_run_whose_camera_image_stays_cut_short_stops_at_the_capture_and_measures_nothing(tmp_path):
    """The same through the real `castrig run` (the twin's rig, a folder camera): a top view whose
    data ends after half its rows had been captured and measured, the rest black, exit 0. Now the
    camera waits its ready_timeout_s (the profile's) and the capture stops, naming the file."""
    import yaml

    from conftest import ROOT, castrig, run_rows

    (tmp_path / "cam").mkdir()
    image = np.random.default_rng(4).integers(20, 235, (96, 128), dtype=np.uint8)
    (tmp_path / "cam" / "m01_reflected.png").write_bytes(_png_of_rows(image, 48, dpi=25400 / 0.5))
    profile = yaml.safe_load((ROOT / "hw_profiles" / "sim.yaml").read_text())
    profile["devices"]["camera"] = {"model": "folder", "folder": str(tmp_path / "cam"), "ready_timeout_s": 0.2}
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(profile))
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({"name": "replayed", "steps": [
        {"type": "capture", "views": ["reflected"], "fields": 1}]}))
    done = castrig("run", str(tmp_path / "recipe.yaml"), "--profile", str(tmp_path / "rig.yaml"),
                   "--data", str(tmp_path / "runs"), "-q")
    assert done.returncode == 3, done.stdout + done.stderr[-2000:]
    (run_dir,) = [p.parent for p in (tmp_path / "runs").glob("*/run.json")]
    assert run_rows(run_dir, "SELECT count(*) FROM images") == [(0,)]
    said = " ".join(m for (m,) in run_rows(run_dir, "SELECT message FROM events"))
    assert "m01_reflected.png" in said and "still incomplete after 0.2 s" in said, said[-2000:]
