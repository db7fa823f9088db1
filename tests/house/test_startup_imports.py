"""The commands an operator or a script runs often start without loading numpy: each castrig
process pays its imports, and the suite starts hundreds (``castrig check``, ``runs``, ``lots``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT, castrig


def imported(stderr: str) -> set[str]:
    """Module names from ``PYTHONPROFILEIMPORTTIME`` lines (``import time: self | cum | name``)."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:") and "|" in line}


@pytest.mark.parametrize("args", [
    ("check", str(ROOT / "recipes" / "overnight.yaml")),
    ("runs",),
    ("lots",),
])
def test_listing_and_checking_commands_do_not_load_numpy(tmp_path: Path, args: tuple[str, ...]) -> None:
    if args[0] != "check":
        args = (*args, "--data", str(tmp_path))
    out = castrig(*args, PYTHONPROFILEIMPORTTIME="1")
    assert out.returncode == 0, out.stderr[-2000:]
    mods = imported(out.stderr)
    assert "castrig.cli.main" in mods  # the profile was read
    assert "numpy" not in mods


def test_a_twin_run_that_captures_nothing_does_not_load_the_renderer(tmp_path: Path) -> None:
    """scipy (the micrograph renderer) loads with the first image, not with the twin."""
    recipe = tmp_path / "dry.yaml"
    recipe.write_text("name: dry\ngrade: claim1\npolymer: polystyrene\nsolvent: chloroform\n"
                      "concentration_mg_ml: 5.0\nsupport_pore_um: 5.0\nsteps:\n  - {type: purge, duration_s: 60}\n")
    out = castrig("run", str(recipe), "--data", str(tmp_path / "runs"), PYTHONPROFILEIMPORTTIME="1")
    assert out.returncode == 0, out.stderr[-2000:]
    mods = imported(out.stderr)
    assert "castrig.sim.twin" in mods
    assert "scipy" not in mods
