"""``castrig run <(cat recipe.yaml)``: the recipe comes through a pipe, which can be read once.
The run kept ``RUN/recipe.yaml`` by reading the path again after validating it: 0 bytes, and the
report showed an empty "copy taken when the run started". Now it keeps the bytes it validated."""

from __future__ import annotations

import os

from conftest import ROOT, castrig

SHORT = ROOT / "tests" / "data" / "short.yaml"


def test_a_recipe_given_through_a_pipe_is_kept_as_written(tmp_path):
    text = SHORT.read_bytes()
    r, w = os.pipe()
    try:
        os.write(w, text)  # (a few hundred bytes: within the pipe's buffer)
        os.close(w)
        data = tmp_path / "runs"
        done = castrig("run", f"/dev/fd/{r}", "--data", str(data), "-q", pass_fds=(r,))
    finally:
        os.close(r)
    assert done.returncode == 0, done.stdout + done.stderr
    (run_json,) = data.glob("*/run.json")
    assert (run_json.parent / "recipe.yaml").read_bytes() == text
