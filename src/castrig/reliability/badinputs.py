"""The bad-input corpus (``tests/data/bad_inputs/index.yaml``): each file must be refused cleanly.

"Cleanly" = exit 2, a message that names the file and contains the index's expected strings
(the field, the allowed range or choices), no traceback, no run folder under the data root, and
in under :data:`TIME_LIMIT_S` seconds of CPU (and :data:`WAIT_LIMIT_S` of waiting: a hang).
``as: surface`` entries are micrographs, tried with ``castrig analyse surface``; the hostile files
too big to commit are made at test time (:data:`GENERATED`, :func:`write_generated`).
The CLI is driven in-process (``castrig.cli.main.main``) with stderr captured, so the corpus is
cheap enough for CI; a subprocess spot check in the tests covers the real entry point.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT / "tests" / "data" / "bad_inputs"
SIM_PROFILE = ROOT / "hw_profiles" / "sim.yaml"
SHORT_RECIPE = ROOT / "tests" / "data" / "short.yaml"


@dataclass
class BadInputResult:
    file: str
    command: str
    exit_code: int
    message: str
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cpu_s: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.problems


def load_index(corpus: Path = CORPUS) -> list[dict[str, Any]]:
    return [e for e in yaml.safe_load((corpus / "index.yaml").read_text())["inputs"] if e["as"] != "profile-good"]


def _cli(argv: list[str]) -> tuple[int, str]:
    from castrig.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except BaseException as exc:  # noqa: BLE001 - anything escaping main() is a traceback
            import traceback

            return -1, err.getvalue() + "Traceback (escaped main): " + "".join(traceback.format_exception(exc))
    return code, err.getvalue() + out.getvalue()


def commands(entry: dict[str, Any], corpus: Path, data: Path) -> list[list[str]]:
    """The command lines a corpus entry is tried with."""
    f = str(corpus / entry["file"])
    kind = entry["as"]
    if kind == "recipe":
        return [["check", f], ["run", f, "--data", str(data), "-q"]]
    if kind == "recipe-run":
        return [["run", f, "--data", str(data), "-q"]]
    if kind == "recipe-fit":  # valid alone; refused by `check --profile` and by `run`, before the folder exists
        return [["check", f, "--profile", str(SIM_PROFILE)], ["run", f, "--data", str(data), "-q"]]
    if kind == "recipe-run-nocam":
        return [["run", f, "--profile", str(corpus / "profile_no_camera.yaml"), "--data", str(data), "-q"]]
    if kind in ("profile", "profile-limits"):  # profile-limits: valid fields, beyond what its devices can do
        return [["check", f], ["run", str(SHORT_RECIPE), "--profile", f, "--data", str(data), "-q"]]
    if kind == "surface":
        return [["analyse", "surface", f, "--json"]]
    raise ValueError(f"{entry['file']}: unknown 'as' {kind!r}")


def try_entry(entry: dict[str, Any], corpus: Path = CORPUS) -> list[BadInputResult]:
    out = []
    for argv in commands(entry, corpus, Path("unused")):
        with tempfile.TemporaryDirectory(prefix="castrig-bad-") as tmp:
            data = Path(tmp) / "runs"
            argv = [str(data) if a == "unused" else a for a in argv]
            t0, c0 = time.perf_counter(), time.process_time()
            code, text = _cli(argv)
            r = BadInputResult(entry["file"], argv[0], code, text, seconds=time.perf_counter() - t0,
                               cpu_s=time.process_time() - c0)
            r.problems += time_problems(r.cpu_s, r.seconds)
            if len(text) > 4000:
                r.problems.append(f"a {len(text)}-character message (values must be cut)")
            if code != 2:
                r.problems.append(f"exit {code}, expected 2")
            if "Traceback" in text:
                r.problems.append("traceback in the output")
            flat = " ".join(text.split())  # rich may wrap long lines
            if entry["file"] not in flat:
                r.problems.append("the message does not name the file")
            for want in entry["expect"]:
                if " ".join(want.split()) not in flat:
                    r.problems.append(f"the message lacks {want!r}")
            if data.exists() and any(p.is_dir() for p in data.iterdir()):
                r.problems.append("a run folder was created")
            out.append(r)
    return out


def run_corpus(corpus: Path = CORPUS, generated: bool = True) -> list[BadInputResult]:
    """Every committed entry, and (``generated``) the :data:`GENERATED` ones made in a temporary folder."""
    results: list[BadInputResult] = []
    for entry in load_index(corpus):
        results += try_entry(entry, corpus)
    if generated:
        with tempfile.TemporaryDirectory(prefix="castrig-hostile-") as tmp:
            for entry in write_generated(Path(tmp)):
                results += try_entry(entry, Path(tmp))
    return results


# -- hostile files (issue 15): bombs, deep nesting, control characters, hostile images ----------
#
# The small ones are committed in the corpus (``index.yaml``, made by :func:`write_hostile`); the
# big ones are made at test time by :func:`write_generated` (a megabyte of YAML or a bomb TIFF has
# no business in the repository). Every one must be refused in under :data:`TIME_LIMIT_S` seconds
# of CPU, :data:`WAIT_LIMIT_S` of waiting and :data:`MEMORY_LIMIT_MB` MB. CPU, not the wall clock,
# is what a refusal costs whatever else the machine does: a 900 KB YAML value costs ~2.4 s of CPU
# to scan, and took 5.9 s of wall time in a suite run beside two other jobs on two cores.

TIME_LIMIT_S = 5.0
WAIT_LIMIT_S = 30.0
MEMORY_LIMIT_MB = 500


def time_problems(cpu_s: float, seconds: float) -> list[str]:
    """What a refusal's time breaks: :data:`TIME_LIMIT_S` of CPU, :data:`WAIT_LIMIT_S` of waiting."""
    out = []
    if cpu_s > TIME_LIMIT_S:
        out.append(f"took {cpu_s:.1f} s of CPU (allowed: {TIME_LIMIT_S:g} s)")
    if seconds > WAIT_LIMIT_S:
        out.append(f"took {seconds:.1f} s to answer (allowed: {WAIT_LIMIT_S:g} s; a hang?)")
    return out


def tiff_bytes(width: int, height: int, *, bits: int = 32, sample_format: int = 1, compression: int = 8,
               data: bytes | None = None, resolution: tuple[int, int] | None = None, unit: int = 3,
               samples: int = 1) -> bytes:
    """A minimal little-endian TIFF by hand: one strip holding ``data`` (default: a deflate
    stream of a few zero bytes), whatever size it *declares* — the shape of a decompression bomb
    or of a file whose tags lie."""
    import struct
    import zlib

    data = zlib.compress(bytes(1024)) if data is None else data
    entries: list[tuple[int, int, int, int]] = []  # tag, type, count, value/offset
    extra = b""
    n_tags = 10 + (3 if resolution else 0)
    ifd_size = 2 + 12 * n_tags + 4
    base = 8 + ifd_size
    res_off = base
    if resolution:
        extra += struct.pack("<II", *resolution) * 2
    bps_off = base + len(extra)
    if samples > 1:
        extra += struct.pack("<" + "H" * samples, *([bits] * samples))
    strip_off = base + len(extra)
    entries += [(256, 4, 1, width), (257, 4, 1, height),
                (258, 3, samples, bits if samples == 1 else bps_off), (259, 3, 1, compression),
                (262, 3, 1, 2 if samples >= 3 else 1), (273, 4, 1, strip_off), (277, 3, 1, samples),
                (278, 4, 1, height), (279, 4, 1, len(data))]
    if resolution:
        entries += [(282, 5, 1, res_off), (283, 5, 1, res_off + 8), (296, 3, 1, unit)]
    entries.append((339, 3, 1, sample_format))
    entries.sort()
    assert len(entries) == n_tags
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        if typ == 3 and count == 1:
            ifd += struct.pack("<HHIHH", tag, typ, count, value, 0)
        else:
            ifd += struct.pack("<HHII", tag, typ, count, value)
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + extra + data


def png_bomb_bytes(width: int = 50000, height: int = 50000) -> bytes:
    """A PNG whose header declares ``width`` × ``height`` RGBA pixels over a tiny IDAT."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(100))) + chunk(b"IEND", b"")


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = ["name: laughs", 'a0: &a0 ["lol"' + ', "lol"' * (width - 1) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    lines.append(f"steps: [*a{levels - 1}]")
    return "\n".join(lines) + "\n"


def _recipe(name: str = "hostile", label: str = "", description: str = "") -> str:
    out = f"name: {name}\n"
    if description:
        out += f"description: {description}\n"
    return out + "steps:\n  - {type: wait, duration_s: 10" + (f", label: {label}" if label else "") + "}\n"


def _float_tiff(path: Path, dtype: Any, poison: float) -> None:
    import numpy as np
    import tifffile

    a = np.linspace(0.0, 1.0, 64 * 64, dtype=dtype).reshape(64, 64)
    a[10:20, 10:20] = poison
    tifffile.imwrite(path, a, resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit=3)


def write_hostile(folder: Path) -> list[str]:
    """(Re)write the small hostile files of the committed corpus into ``folder``; their
    expectations are in ``index.yaml``. Returns the file names."""
    import numpy as np
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    texts = {
        "yaml_billion_laughs.yaml": billion_laughs(),
        "yaml_alias_cycle.yaml": "name: &a [1, *a]\nsteps:\n  - {type: wait, duration_s: 10}\n",
        "yaml_deep_nesting.yaml": "name: deep\nsteps: " + "[" * 200 + "]" * 200 + "\n",
        "yaml_bad_date.yaml": _recipe(description="2026-02-30"),
        "yaml_int_5000_digits.yaml": "name: x\nsteps:\n  - {type: wait, duration_s: " + "9" * 5000 + "}\n",
        "name_nul_escape.yaml": _recipe(name='"bad\\0name"'),
        "name_newline_escape.yaml": _recipe(name='"two\\nlines"'),
        "label_escape_char.yaml": _recipe(label='"red \\e[31m text"'),
        "description_c1_char.yaml": _recipe(description='"ok\\x85\\x9b then"'),
        "name_lone_surrogate.yaml": _recipe(name='"half \\uD800 pair"'),
        "name_5000_chars.yaml": _recipe(name="n" * 5000),
        "label_binary_nul.yaml": _recipe(label="!!binary YQBi"),  # b"a\0b": pydantic takes bytes as text
    }
    profile = (ROOT / "hw_profiles" / "sim.yaml").read_text(encoding="utf-8")
    texts["profile_name_control.yaml"] = profile.replace("name: sim", 'name: "sim\\x07bell"', 1)
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    blobs = {
        "surface_bomb.tif": tiff_bytes(46000, 46000),
        "surface_bomb.png": png_bomb_bytes(),
        "surface_pixel_size_tiny.tif": tiff_bytes(32, 32, bits=8, compression=1, data=bytes(32 * 32), resolution=(10**9, 1)),
        "surface_pixel_size_huge.tif": tiff_bytes(32, 32, bits=8, compression=1, data=bytes(32 * 32), resolution=(1, 1)),
        "surface_truncated.tif": tiff_bytes(64, 64, bits=16, compression=1, data=bytes(100), resolution=(20000, 1)),
        "surface_zero_width.tif": tiff_bytes(0, 2**32 - 1, bits=16, compression=1, samples=3),
    }
    for name, blob in blobs.items():
        (folder / name).write_bytes(blob)
    _float_tiff(folder / "surface_nan.tif", np.float32, float("nan"))
    _float_tiff(folder / "surface_inf.tif", np.float64, float("inf"))
    tifffile.imwrite(folder / "surface_stack.tif", np.zeros((3, 32, 32), np.uint8), photometric="minisblack",
                     resolution=(20000, 20000), resolutionunit=3)
    tifffile.imwrite(folder / "surface_complex.tif", np.zeros((16, 16), np.complex64), resolution=(20000, 20000),
                     resolutionunit=3)
    return sorted(texts) + sorted(blobs) + ["surface_complex.tif", "surface_inf.tif", "surface_nan.tif", "surface_stack.tif"]


#: hostile files too big to commit, made at test time: (file, as, expect, maker)
GENERATED: list[dict[str, Any]] = [
    {"file": "yaml_deep_100000.yaml", "as": "recipe", "expect": ["nested too deep", "at most 64 levels"],
     "make": lambda p: p.write_text("name: " + "[" * 100_000 + "\n")},
    {"file": "yaml_too_big.yaml", "as": "recipe", "expect": ["too big for a YAML input", "at most 1000000 bytes"],
     "make": lambda p: p.write_text(_recipe() + "# " + "x" * 1_100_000 + "\n")},
    {"file": "yaml_value_900k.yaml", "as": "recipe", "expect": ["name = 'nnnn", "(900002 characters)", "at most 80 characters"],
     "make": lambda p: p.write_text(_recipe(name="n" * 900_000))},
    {"file": "yaml_laughs_wide.yaml", "as": "profile", "expect": ["after expanding aliases"],
     "make": lambda p: p.write_text("devices: {}\n" + billion_laughs(5, 200).replace("name: laughs", "name: wide"))},
    {"file": "surface_bomb_2mb.tif", "as": "surface", "expect": ["image too large", "46000×46000", "CASTRIG_MAX_IMAGE_PIXELS"],
     "make": lambda p: p.write_bytes(tiff_bytes(46000, 46000, data=os.urandom(2_000_000)))},
    {"file": "surface_bomb_rgb.tif", "as": "surface", "expect": ["image too large"],
     "make": lambda p: p.write_bytes(tiff_bytes(20000, 20000, bits=16, samples=3))},
]


def write_generated(folder: Path) -> list[dict[str, Any]]:
    """Make the :data:`GENERATED` files in ``folder``; their entries, ready for :func:`try_entry`."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for e in GENERATED:
        e["make"](folder / e["file"])
        out.append({k: v for k, v in e.items() if k != "make"})
    return out


class Measured(NamedTuple):
    """One ``castrig`` command, measured from outside: ``cpu_s`` is what it cost whatever else the
    machine was doing (the test's bound, beside a suite on every core); ``seconds`` what its
    user waited."""

    exit: int
    text: str  # stderr + stdout
    seconds: float
    peak_mb: float
    cpu_s: float


def measure_cli(argv: list[str]) -> Measured:
    """Run the real ``castrig`` command (the script next to this Python, else ``python -m
    castrig``): its exit code, output, wall seconds, and peak RSS and CPU from ``os.wait4``."""
    import subprocess
    import sys

    script = Path(sys.executable).with_name("castrig")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "castrig"]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", suffix=".json") as usage_file:
        t0 = time.perf_counter()
        # Through a small launcher: Linux carries a process's peak RSS across exec, so a child
        # forked straight from a big process (a long pytest session) would report the parent's size.
        p = subprocess.Popen([sys.executable, "-c", _LAUNCHER, usage_file.name, *cmd, *argv], stdout=out, stderr=err,
                             cwd=ROOT)
        p.wait()
        seconds = time.perf_counter() - t0
        usage = json.loads(Path(usage_file.name).read_text() or '{"status": 1, "maxrss_kb": 0, "cpu_s": 0}')
        out.seek(0)
        err.seek(0)
        text = err.read().decode("utf-8", "replace") + out.read().decode("utf-8", "replace")
    return Measured(usage["status"], text, seconds, usage["maxrss_kb"] / 1024, usage["cpu_s"])


_LAUNCHER = """
import json, os, subprocess, sys
p = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(p.pid, 0)
p.returncode = 0
open(sys.argv[1], "w").write(json.dumps({"status": os.waitstatus_to_exitcode(status), "maxrss_kb": usage.ru_maxrss,
                                         "cpu_s": usage.ru_utime + usage.ru_stime}))
"""


def hostile_report() -> list[dict[str, Any]]:
    """Every hostile entry (committed ``yaml_*``/``name_*``/``surface_*``… files of issue 15 and the
    :data:`GENERATED` ones) through the real CLI: exit code, seconds, peak MB, message length."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="castrig-hostile-") as tmp:
        hostile = set(write_hostile(Path(tmp) / "committed"))
        entries = [(e, CORPUS) for e in load_index() if e["file"] in hostile]
        entries += [(e, Path(tmp)) for e in write_generated(Path(tmp))]
        for e, folder in entries:
            f = str(folder / e["file"])
            argv = ["analyse", "surface", f, "--json"] if e["as"] == "surface" else ["check", f]
            code, text, seconds, mb, cpu_s = measure_cli(argv)
            rows.append({"file": e["file"], "command": " ".join(argv[:-1] if e["as"] == "surface" else argv[:1]),
                         "exit": code, "seconds": round(seconds, 3), "cpu_s": round(cpu_s, 3), "peak_mb": round(mb, 1),
                         "message_chars": len(text),
                         "traceback": "Traceback" in text})
    return rows


def _main() -> None:
    rows = hostile_report()
    for r in sorted(rows, key=lambda r: -r["seconds"]):
        print(f"{r['file']:34s} exit {r['exit']}  {r['seconds']:6.2f} s ({r['cpu_s']:5.2f} s CPU)  {r['peak_mb']:7.1f} MB  "
              f"{r['message_chars']:5d} chars{'  TRACEBACK' if r['traceback'] else ''}")
    worst_s = max(rows, key=lambda r: r["seconds"])
    worst_mb = max(rows, key=lambda r: r["peak_mb"])
    print(f"worst time: {worst_s['file']} {worst_s['seconds']:.2f} s; worst memory: {worst_mb['file']} {worst_mb['peak_mb']:.1f} MB")


# -- storage faults and rig limits (issue 15): the real CLI, exit codes, time and peak memory ----
#
# Each case is one command line with the exit code it must give and the words its output must
# hold; "clean" also means no traceback and (run cases) a run.json that is not left `running`.
# Disk-full cases need a small tmpfs (root); they are counted as skipped, with the reason, when
# mounting is not permitted.


def _mount_tmpfs(kib: int) -> Path | None:
    import subprocess

    d = tempfile.mkdtemp(prefix="castrig-full-")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", d], capture_output=True)
    if done.returncode != 0:
        os.rmdir(d)
        return None
    return Path(d)


def _mount_read_only(src: Path) -> Path | None:
    import subprocess

    d = tempfile.mkdtemp(prefix="castrig-ro-")
    for cmd in (["mount", "--bind", str(src), d], ["mount", "-o", "remount,ro,bind", d]):
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            subprocess.run(["umount", d], capture_output=True)
            os.rmdir(d)
            return None
    return Path(d)


def _umount(d: Path) -> None:
    import subprocess

    subprocess.run(["umount", "-l", str(d)], capture_output=True)
    os.rmdir(d)


def _c200_recipe(folder: Path, rh: int) -> Path:
    import re

    text = (ROOT / "recipes" / "demo.yaml").read_text()
    text = re.sub(r"(?m)^concentration_mg_ml: .*$", "concentration_mg_ml: 200", text)
    path = folder / f"c200_rh{rh}.yaml"
    path.write_text(re.sub(r"setpoint_rh_pct: [0-9.]+", f"setpoint_rh_pct: {rh}", text))
    return path


def storage_report() -> list[dict[str, Any]]:
    """Every storage-fault and rig-limit case through the real CLI: case, exit (expected), clean,
    problems, seconds, peak MB. Skipped cases (no permission to mount) have ``skipped`` set."""
    import shutil

    rows: list[dict[str, Any]] = []

    def case(name: str, argv: list[str], want_exit: int | tuple[int, ...], words: list[str] = (),  # type: ignore[assignment]
             run_json: Path | None = None) -> None:
        code, text, seconds, mb, cpu_s = measure_cli(argv)
        flat = " ".join(text.split())
        wanted = (want_exit,) if isinstance(want_exit, int) else want_exit
        problems = []
        if code not in wanted:
            problems.append(f"exit {code}, expected {' or '.join(map(str, wanted))}")
        if "Traceback" in text:
            problems.append("traceback in the output")
        problems += [f"the output lacks {w!r}" for w in words if w not in flat]
        problems += time_problems(cpu_s, seconds)
        if mb > MEMORY_LIMIT_MB:
            problems.append(f"peak {mb:.0f} MB (allowed: {MEMORY_LIMIT_MB} MB)")
        if run_json is not None:
            for info_path in run_json.glob("*/run.json"):
                if json.loads(info_path.read_text()).get("outcome") == "running":
                    problems.append(f"{info_path} left running")
        rows.append({"case": name, "exit": code, "clean": not problems, "problems": problems,
                     "seconds": round(seconds, 3), "cpu_s": round(cpu_s, 3), "peak_mb": round(mb, 1), "skipped": None})

    def skipped(name: str, why: str) -> None:
        rows.append({"case": name, "exit": None, "clean": None, "problems": [], "seconds": 0.0, "cpu_s": 0.0, "peak_mb": 0.0, "skipped": why})

    with tempfile.TemporaryDirectory(prefix="castrig-storage-") as tmp:
        tmp_p = Path(tmp)
        case("runs --grade claim9", ["runs", "--grade", "claim9"], 2, ["claim1, claim2, claim3, claim4"])
        case("runs --data /nonexistent", ["runs", "--data", str(tmp_p / "nonexistent")], 2, ["no such folder"])
        case("check profile: total flow above MFC full scale",
             ["check", str(CORPUS / "profile_total_flow_above_full_scale.yaml")], 2, ["full_scale_slpm = 5"])
        case("check --profile: purge flow above MFC full scale",
             ["check", str(CORPUS / "purge_flow_above_full_scale.yaml"), "--profile", str(SIM_PROFILE)], 2, ["allowed: up to 5"])
        for rh in (20, 40):
            data = tmp_p / f"c200-{rh}"
            case(f"run: 200 mg/mL at RH {rh} (twin answers or 'outside the model')",
                 ["run", str(_c200_recipe(tmp_p, rh)), "--data", str(data), "-q"], (0, 3), [], run_json=data)
            if rows[-1]["exit"] == 3 and "outside the model" not in measure_cli(["runs", "--data", str(data)])[1] \
                    and not any("outside the model" in p.read_text() for p in data.glob("*/run.json")):
                rows[-1]["problems"].append("exit 3 without 'outside the model'")
                rows[-1]["clean"] = False
        base = tmp_p / "base"
        code, text, *_ = measure_cli(["run", str(SHORT_RECIPE), "--data", str(base), "-q"])
        (good,) = [p for p in base.iterdir() if p.is_dir()]
        spoil = {"truncated run.json": ("run.json", lambda p: p.write_text(p.read_text()[:50])),
                 "run.json not an object": ("run.json", lambda p: p.write_text("[1, 2]")),
                 "empty run.sqlite": ("run.sqlite", lambda p: p.write_bytes(b"")),
                 "garbage run.sqlite": ("run.sqlite", lambda p: p.write_bytes(os.urandom(8192)))}
        for label, (name, how) in spoil.items():
            data = tmp_p / label.replace(" ", "_")
            run_dir = data / good.name
            shutil.copytree(good, run_dir)
            how(run_dir / name)
            for argv in (["report", str(run_dir), "--out", str(tmp_p / "r.html")], ["export", str(run_dir), "--to", str(tmp_p / "x")],
                         ["resume", str(run_dir), "-q"]):
                case(f"{label}: {argv[0]}", argv, 2, ["damaged run folder"])
            case(f"{label}: runs", ["runs", "--data", str(data)], 0, ["damaged"])
        to = tmp_p / "export-symlink"
        to.mkdir()
        (to / "samples.csv").symlink_to(tmp_p / "precious.txt")
        (tmp_p / "precious.txt").write_text("keep me")
        # refused, nothing written (9619d34: export never replaces files it did not write; this
        # check still expected exit 0 and the link replaced, and failed every campaign since)
        case("export --to DIR with a symlink in DIR", ["export", str(good), "--to", str(to)], 2,
             ["samples.csv: a symbolic link", "nothing was written"])
        if (tmp_p / "precious.txt").read_text() != "keep me" or not (to / "samples.csv").is_symlink():
            rows[-1]["problems"].append("followed or replaced the symlink")
            rows[-1]["clean"] = False
        ro = _mount_read_only(base)
        if ro is None:
            skipped("read-only data root", "cannot make a read-only bind mount (needs root)")
        else:
            try:
                out = tmp_p / "ro-out"
                out.mkdir()
                run_dir = ro / good.name
                case("read-only data root: runs", ["runs", "--data", str(ro)], 0, [good.name[:15]])
                case("read-only run: report --out", ["report", str(run_dir), "--out", str(out / "r.html")], 0)
                case("read-only run: report (no --out)", ["report", str(run_dir)], 2, ["--out"])
                case("read-only run: export", ["export", str(run_dir), "--to", str(out / "x")], 0)
                case("read-only data root: lots", ["lots", "--data", str(ro)], 0)
            finally:
                _umount(ro)
        for label, kib, recipe in (("disk full mid-run", 400, ROOT / "recipes" / "overnight.yaml"),
                                   ("disk full when the run folder is made", 40, SHORT_RECIPE)):
            disk = _mount_tmpfs(kib)
            if disk is None:
                skipped(label, "cannot mount a small tmpfs (needs root)")
                continue
            try:
                case(label, ["run", str(recipe), "--data", str(disk / "runs"), "-q"], 3, ["disk full"], run_json=disk / "runs")
            finally:
                _umount(disk)
    return rows


def format_storage_report(rows: list[dict[str, Any]]) -> str:
    tried = [r for r in rows if r["skipped"] is None]
    clean = sum(r["clean"] for r in tried)
    worst_s = max(tried, key=lambda r: r["cpu_s"])
    worst_mb = max(tried, key=lambda r: r["peak_mb"])
    lines = [f"storage faults and rig limits: {clean}/{len(tried)} handled cleanly "
             f"({sum(r['skipped'] is not None for r in rows)} skipped); worst time {worst_s['cpu_s']:.2f} s of CPU "
             f"({worst_s['case']}), worst memory {worst_mb['peak_mb']:.0f} MB ({worst_mb['case']}); limits "
             f"{TIME_LIMIT_S:g} s of CPU, {WAIT_LIMIT_S:g} s of waiting, {MEMORY_LIMIT_MB} MB"]
    for r in rows:
        if r["skipped"]:
            lines.append(f"  skipped {r['case']}: {r['skipped']}")
        elif not r["clean"]:
            lines.append(f"  FAILED {r['case']}: {r['problems']}")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m castrig.reliability.badinputs: time and memory of each case
    _main()
    storage = storage_report()
    for r in sorted((r for r in storage if r["skipped"] is None), key=lambda r: -r["seconds"]):
        print(f"{r['case'][:60]:60s} exit {r['exit']}  {r['seconds']:6.2f} s ({r['cpu_s']:5.2f} s CPU)  {r['peak_mb']:7.1f} MB"
              f"{'' if r['clean'] else '  FAILED ' + str(r['problems'])}")
    print(format_storage_report(storage))
