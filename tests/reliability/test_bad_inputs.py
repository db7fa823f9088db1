"""The bad-input corpus (tests/data/bad_inputs/index.yaml): ≥ 40 malformed recipes and profiles,
each refused with exit 2, the file, the field and the allowed range or choices named, no
traceback, no run folder — by `castrig check` and by `castrig run`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from castrig.reliability import badinputs

ENTRIES = badinputs.load_index()


def test_the_corpus_is_big_and_indexed():
    files = {p.name for p in badinputs.CORPUS.iterdir() if p.name != "index.yaml"}
    indexed = {e["file"] for e in ENTRIES} | {"profile_no_camera.yaml"}
    assert files == indexed  # every file has its expectation, every expectation its file
    assert len(ENTRIES) >= 40
    kinds = {e["as"] for e in ENTRIES}
    assert {"recipe", "profile", "recipe-run", "recipe-run-nocam"} <= kinds


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_bad_input_is_refused_cleanly(entry):
    for r in badinputs.try_entry(entry):
        assert r.clean, f"{r.command}: {r.problems}\n{r.message}"


@pytest.mark.parametrize("name", ["binary_junk.yaml", "duration_bool.yaml", "profile_duplicate_port.yaml"])
def test_through_the_real_entry_point(tmp_path, name):
    f = badinputs.CORPUS / name
    argv = ["check", str(f)]
    done = subprocess.run([sys.executable, "-m", "castrig", *argv], cwd=badinputs.ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr and name in done.stderr


def test_the_check_can_fail(tmp_path):
    """A valid recipe listed as bad is reported, not waved through."""
    good = tmp_path / "good.yaml"
    good.write_text((badinputs.ROOT / "tests" / "data" / "short.yaml").read_text())
    (r1, r2) = badinputs.try_entry({"file": "good.yaml", "as": "recipe", "expect": ["nope"]}, corpus=tmp_path)
    assert not r1.clean and any("exit 0" in p for p in r1.problems)
