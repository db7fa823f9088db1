"""The report draws the run's own segmentation (``segmentation/*.json``, kept by the analyse step)
instead of measuring every micrograph again. It measured them all at every `castrig report`, at
every report `castrig queue` writes after a run and at every refresh of a live page: the demo's
report took 1.7 s of CPU, 1.2 s of it that second analysis, and the outlines it drew were the
second analysis's, not the one the verdict came from. A file that is not the image's (the image
replaced) or not what castrig writes (damaged, written by hand) is not trusted: the image is
measured, as before."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

from conftest import castrig, embedded, with_sitecustomize

#: A sitecustomize that makes the analysis impossible to import: a report under it can only draw
#: what the run kept.
NO_ANALYSIS = '''
import sys

class _NoAnalysis:
    def find_spec(self, name, path=None, target=None):
        if name in ("castrig.analysis.surface", "castrig.analysis.section"):
            raise ImportError("the analysis is not to be run by this report")
        return None

sys.meta_path.insert(0, _NoAnalysis())
'''


def _demo_copy(tmp_path: Path, finished_demo_run) -> Path:
    data, run_id = finished_demo_run
    return Path(shutil.copytree(data / run_id, tmp_path / run_id))


def _report(run_dir: Path, out: Path, **env: str) -> dict:
    done = castrig("report", str(run_dir), "--out", str(out), **env)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return embedded(out.read_text())["report"]


def _micrographs(report: dict) -> dict[str, dict]:
    return {m["name"]: m for mb in report["membranes"] for m in mb["micrographs"]}


def test_the_report_draws_what_the_runs_analysis_kept_and_measures_nothing_again(tmp_path, finished_demo_run):
    run_dir = _demo_copy(tmp_path, finished_demo_run)
    kept = sorted(p.name for p in (run_dir / "segmentation").iterdir())
    assert kept == ["s5_field0_reflected.tif.json", "s5_field0_section.tif.json",
                    "s5_field1_reflected.tif.json", "s5_field1_section.tif.json"], kept
    no_analysis = with_sitecustomize(tmp_path, NO_ANALYSIS)
    drawn = _report(run_dir, tmp_path / "kept.html", **no_analysis)
    shown = _micrographs(drawn)
    for name in ("s5_field0_reflected", "s5_field1_reflected", "s5_field0_section", "s5_field1_section"):
        assert shown[name]["overlay"].startswith("data:image/png;base64,"), name
        assert "analysis failed" not in shown[name]["caption"], shown[name]["caption"]
    assert "pores measured" in shown["s5_field0_reflected"]["caption"]
    assert not [p for p in drawn["problems"] if "analysis of" in p], drawn["problems"]
    # the same page as the report that measures every image itself
    shutil.rmtree(run_dir / "segmentation")
    measured = _report(run_dir, tmp_path / "measured.html")
    assert _micrographs(measured) == shown
    assert measured["membranes"][0]["histogram"] == drawn["membranes"][0]["histogram"]
    # (and the hook bites: without what the run kept, the report under it cannot measure)
    blind = _micrographs(_report(run_dir, tmp_path / "blind.html", **no_analysis))
    assert "analysis failed" in blind["s5_field0_reflected"]["caption"]


def test_a_named_pipe_for_a_kept_segmentation_is_not_waited_for(tmp_path, finished_demo_run):
    """A FIFO in place of a kept file (whoever may write the data root): the report opened it and
    waited for a writer for ever (and with it serve's report page and the report `castrig queue`
    writes after each run). Now it is no file of castrig's: that image is measured instead."""
    run_dir = _demo_copy(tmp_path, finished_demo_run)
    kept = run_dir / "segmentation" / "s5_field0_reflected.tif.json"
    kept.unlink()
    os.mkfifo(kept)
    done = castrig("report", str(run_dir), "--out", str(tmp_path / "r.html"), timeout_s=60)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    shown = _micrographs(embedded((tmp_path / "r.html").read_text())["report"])
    assert shown["s5_field0_reflected"]["overlay"].startswith("data:image/png;base64,")
    assert "pores measured" in shown["s5_field0_reflected"]["caption"]


def test_a_segmentation_not_of_the_image_on_disk_or_not_castrigs_is_not_drawn(tmp_path, finished_demo_run):
    """Field 0's reflected image replaced by field 1's (the file, as a person copying files
    would), field 0's section file damaged: the report under NO_ANALYSIS draws neither from
    what was kept (it says it could not measure them); the other field's two still are."""
    run_dir = _demo_copy(tmp_path, finished_demo_run)
    shutil.copyfile(run_dir / "images" / "s5_field1_reflected.tif", run_dir / "images" / "s5_field0_reflected.tif")
    section = run_dir / "segmentation" / "s5_field0_section.tif.json"
    section.write_text(section.read_text()[:-40])
    shown = _micrographs(_report(run_dir, tmp_path / "r.html", **with_sitecustomize(tmp_path, NO_ANALYSIS)))
    assert "analysis failed" in shown["s5_field0_reflected"]["caption"]
    assert "analysis failed" in shown["s5_field0_section"]["caption"]
    assert "pores measured" in shown["s5_field1_reflected"]["caption"]
    assert shown["s5_field1_section"]["overlay"]


def _spoiled(doc: dict, change: str) -> bytes:
    d = json.loads(json.dumps(doc))
    if change == "not json":
        return b'{"version": 1, "kind": "refl'
    if change == "a list":
        return b"[1, 2]"
    if change == "deep":
        return b"[" * 100_000 + b"]" * 100_000
    if change == "too large":
        return json.dumps(d | {"pad": "x" * (33 << 20)}).encode()
    if change == "version":
        d["version"] = 2
    elif change == "kind":
        d["kind"] = "section"
    elif change == "step":
        d["step"] = 2
    elif change == "digest":
        d["image_sha256"] = "0" * 64
    elif change == "overlay not png":
        d["overlay_png"] = base64.b64encode(b"<svg onload=alert(1)>" * 10).decode()
    elif change == "overlay not base64":
        d["overlay_png"] = "javascript:alert(1)"
    elif change == "overlay of another size":
        png = base64.b64decode(d["overlay_png"])
        d["overlay_png"] = base64.b64encode(png[:16] + (1).to_bytes(4, "big") + png[20:]).decode()
    elif change == "text for a value":
        d["values"]["pore_count"] = "<b>1000</b>"
    elif change == "a value missing":
        del d["values"]["opening_ratio"]
    elif change == "a diameter not finite":
        return json.dumps(d).replace('"diameters_um": [', '"diameters_um": [NaN, ', 1).encode()
    elif change == "a boolean for a value":
        d["values"]["opening_ratio"] = True
    return json.dumps(d).encode()


SPOILERS = ("not json", "a list", "deep", "too large", "version", "kind", "step", "digest", "overlay not png",
            "overlay not base64", "overlay of another size", "text for a value", "a value missing",
            "a diameter not finite", "a boolean for a value")


def test_only_what_castrig_writes_for_that_very_image_is_read(tmp_path, finished_demo_run):
    """Every way a kept file can be damaged or written by hand (bounded: a 33 MB file, a link to
    /dev/zero, 100 000 brackets deep) reads as nothing kept; the intact one reads as written."""
    from castrig.analysis.segmentation import SURFACE_VALUES, shown_step
    from castrig.store import segmentation
    from castrig.tiffio import read_micrograph

    run_dir = _demo_copy(tmp_path, finished_demo_run)
    rel = "images/s5_field0_reflected.tif"
    shape = read_micrograph(run_dir / rel)[0].shape
    digest = segmentation.image_digest(run_dir / rel)
    path = segmentation.path_for(run_dir, rel)
    intact = path.read_bytes()
    view = segmentation.read(run_dir, rel, digest, "reflected", shape, shown_step(shape), SURFACE_VALUES)
    assert view is not None and view["values"]["pore_count"] > 100 and view["overlay_png"].startswith(b"\x89PNG")
    doc = json.loads(intact)
    for change in SPOILERS:
        path.write_bytes(_spoiled(doc, change))
        assert segmentation.read(run_dir, rel, digest, "reflected", shape, shown_step(shape), SURFACE_VALUES) is None, change
    path.unlink()
    os.symlink("/dev/zero", path)
    assert segmentation.read(run_dir, rel, digest, "reflected", shape, shown_step(shape), SURFACE_VALUES) is None


def test_a_micrograph_file_of_64_gb_is_not_hashed(tmp_path, finished_demo_run):
    """A micrograph file grown to 64 GB (sparse: no disk taken; whoever may write the data root),
    its image still readable at its start: the report hashed it whole to find its kept
    segmentation, a minute of CPU per `castrig report` and per report page served (no token on
    loopback, the one decoding slot held). A file over DIGEST_MAX_BYTES is not hashed; the other
    micrographs still draw what the run kept."""
    run_dir = _demo_copy(tmp_path, finished_demo_run)
    with open(run_dir / "images" / "s5_field0_transmitted.tif", "r+b") as fh:
        fh.truncate(64 << 30)
    done = castrig("report", str(run_dir), "--out", str(tmp_path / "r.html"), timeout_s=60,
                   **with_sitecustomize(tmp_path, NO_ANALYSIS))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.cpu_s < 10, done.cpu_s  # (the whole report of the demo: ~0.6 s)
    shown = _micrographs(embedded((tmp_path / "r.html").read_text())["report"])
    assert shown["s5_field0_transmitted"]["src"].startswith("data:image/")
    assert shown["s5_field0_reflected"]["overlay"].startswith("data:image/png;base64,")
