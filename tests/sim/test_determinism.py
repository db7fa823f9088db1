"""Same recipe, profile and seed → byte-identical records and images; another seed differs."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from castrig.cli.main import main
from castrig.tiffio import read_micrograph

ROOT = Path(__file__).resolve().parents[2]


def _fingerprint(data: Path) -> dict[str, str]:
    """Hashes of every record and image, with the run's id (stamped from the wall clock, and part
    of every membrane id) and the journal's made_utc (the wall clock's time a membrane was made)
    taken out: the run clock and all it drives must repeat, the date not."""
    (run_dir,) = [p for p in data.iterdir() if p.is_dir()]
    run_id = run_dir.name.encode()
    db = sqlite3.connect(run_dir / "run.sqlite")
    out = {}
    for table, cols in (("samples", "t_s, channel, value"), ("events", "t_s, kind, source, message, data_json"),
                        ("journal", "t_s, step_index, state, data_json"), ("images", "t_s, name, illumination, pixel_size_um")):
        rows = db.execute(f"select {cols} from {table} order by rowid").fetchall()
        if table == "journal":  # a membrane's made_utc is the wall clock's, journaled as its step ends
            rows = [(*r[:3], json.dumps({k: v for k, v in json.loads(r[3]).items() if k != "made_utc"}, sort_keys=True)
                     if r[3] else r[3]) for r in rows]
        out[table] = hashlib.sha256(repr(rows).encode().replace(run_id, b"RUN")).hexdigest()
    for img in sorted((run_dir / "images").glob("*.tif")):  # pixels, pixel size and metadata, not the TIFF's layout
        pixels, pixel_size_um, meta = read_micrograph(img)
        described = json.dumps(meta, sort_keys=True, default=str).encode().replace(run_id, b"RUN")
        out[img.name] = hashlib.sha256(pixels.tobytes() + repr(pixel_size_um).encode() + described).hexdigest()
    return out


def _run(recipe: str, data: Path, seed: int) -> dict[str, str]:
    code = main(["run", str(ROOT / "recipes" / recipe), "--profile", str(ROOT / "hw_profiles" / "sim.yaml"),
                 "--data", str(data), "--seed", str(seed), "-q"])
    assert code == 0
    return _fingerprint(data)


@pytest.fixture(scope="session")
def demo_seed_7(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> dict[str, str]:
    """The fingerprint of recipes/demo.yaml run with seed 7, run once per session (both tests below
    compare a run with it; ``made_once``: on two xdist workers, made in one process, compared in
    another -- a run repeats across processes, not only within one)."""
    from conftest import made_once

    def make(data: Path) -> None:
        data.mkdir(parents=True)
        _run("demo.yaml", data, seed=7)

    return _fingerprint(made_once(tmp_path_factory, worker_id, "demo-seed-7", make))


# the four-cast night in the full set (-m slow, ~10 s of CPU); CI keeps the demo, and the per-membrane
# seeds in tests/sim/test_twin_resume_images.py (a resumed capture images the same membrane)
@pytest.mark.parametrize("recipe", ["demo.yaml", pytest.param("overnight.yaml", marks=pytest.mark.slow)])
def test_same_seed_same_bytes(tmp_path, recipe, request):
    a = request.getfixturevalue("demo_seed_7") if recipe == "demo.yaml" else _run(recipe, tmp_path / "a", seed=7)
    b = _run(recipe, tmp_path / "b", seed=7)
    assert a == b
    assert any(k.endswith(".tif") for k in a)


def test_another_seed_differs(tmp_path, demo_seed_7):
    a = demo_seed_7
    c = _run("demo.yaml", tmp_path / "c", seed=8)
    assert a["samples"] != c["samples"]
    assert all(a[k] != c[k] for k in a if k.endswith(".tif"))
