"""Data roots with paths that are valid but odd, through the castrig process.

- ``--data ../../../../tmp/x`` from a folder three levels deep. The OS stops ".." at "/"; SQLite's
  own path handling refused it ("unable to open database file"), and the run faulted (exit 3).
- A data root named ``Lab #2`` or ``a?b``. The readers' ``file:`` URIs were cut short at the
  ``#`` or ``?``. `status` found no database and showed a completed run with no step, no RH and
  no membranes; the web application showed the same.
"""

from __future__ import annotations

import os

from conftest import ROOT, castrig

SHORT = str(ROOT / "recipes" / "demo-short.yaml")


def test_a_data_root_whose_dots_climb_above_the_root_folder(tmp_path):
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    ups = "/".join([".."] * (len(deep.parts) + 2))  # more ".." than there are folders: "/" stays "/"
    data = f"{ups}{tmp_path}/runs"
    # (a recipe without a capture: where the run folder goes is the point, ~0.8 s of CPU less)
    done = castrig("run", str(ROOT / "tests" / "data" / "short.yaml"), "--data", data, "-q", cwd=deep)
    assert done.returncode == 0 and "completed" in done.stdout, done.stdout + done.stderr
    assert len(list((tmp_path / "runs").glob("*/run.json"))) == 1


def test_a_data_root_with_a_hash_and_a_question_mark_is_read_back(tmp_path):
    data = tmp_path / "Lab #2?x=1"
    done = castrig("run", SHORT, "--data", str(data), "-q")
    assert "completed" in done.stdout, done.stdout + done.stderr
    (run_dir,) = [p.parent for p in data.glob("*/run.json")]
    status = castrig("status", str(run_dir), COLUMNS="300")
    said = " ".join(status.stdout.split())
    assert status.returncode == 0 and "step 8/8" in said and "membranes 1:" in said, said
    assert os.path.isfile(run_dir / "run.sqlite")
