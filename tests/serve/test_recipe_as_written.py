"""The recipe as the operator wrote it, on the live page (``/api/runs/{uid}``: store.live.detail)
and in the report: the copy the run took (``RUN/recipe.yaml``) first — never what ``recipe_path``
names now when that is a piped recipe's ``/dev/fd/N`` (in the server's process: nothing, or
another open file) or no regular file at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from castrig.store import RunInfo, open_store
from castrig.store import live as R

AS_WRITTEN = "name: piped\n# as the operator wrote it\nsteps:\n  - {type: purge, duration_s: 1}\n"


def _run(root: Path, recipe_path: str) -> Path:
    rec = open_store(root).create_run(RunInfo(run_id="20260101-000001-piped", recipe_name="piped", recipe_path=recipe_path,
                                              profile_name="p", profile_path="", software_version="t", seed=None, operator="",
                                              started_utc="2026-01-01T00:00:01Z"))
    rec.update_info(outcome="completed", ended_utc="2026-01-01T00:10:00Z")
    rec.close()
    (rec.run_dir / "recipe.yaml").write_text(AS_WRITTEN)
    return rec.run_dir


@pytest.mark.parametrize("where", ["another open file's /dev/fd/N", "a folder", "another recipe file"])
def test_the_run_folders_copy_is_shown_not_what_recipe_path_names_now(tmp_path, where):
    other = tmp_path / "other.yaml"
    other.write_text("name: piped\n# another file\n")
    fd = os.open(other, os.O_RDONLY)
    try:
        path = {"another open file's /dev/fd/N": f"/dev/fd/{fd}", "a folder": str(tmp_path), "another recipe file": str(other)}[where]
        run_dir = _run(tmp_path / "data", path)
        assert R.detail(run_dir)["recipe_as_written"] == AS_WRITTEN

        from castrig.report.html import recipe_as_written
        from castrig.store.base import RunInfo as Info

        text, source = recipe_as_written(run_dir, Info.from_dict(R.read_info(run_dir)))
        assert text == AS_WRITTEN and "recipe.yaml in the run folder" in source
    finally:
        os.close(fd)


def test_without_a_copy_a_path_that_is_no_regular_file_shows_nothing(tmp_path):
    run_dir = _run(tmp_path / "data", "/dev/fd/0")
    (run_dir / "recipe.yaml").unlink()
    assert R.detail(run_dir)["recipe_as_written"] is None
