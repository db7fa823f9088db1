"""``castrig check RECIPE`` without ``--profile`` checks against the profile ``castrig run`` would
use (DESIGN §7: default profile ``hw_profiles/sim.yaml``) and says which one.

An outside tester's find: a cast at 50 mL/min was "valid recipe" (exit 0) from ``check``, then
``castrig run`` of the same file refused it (exit 2, "above what devices.caster can pump"): the
recipe was checked alone, against no rig. Real CLI in subprocesses, from a folder of the user's.
"""

from __future__ import annotations

from pathlib import Path

from conftest import ROOT, castrig, one_cast_recipe, refused

FAST_CAST = one_cast_recipe("fast", 0.1, 50)


def test_check_refuses_what_run_refuses_without_a_profile_given(tmp_path: Path):
    recipe = tmp_path / "fast.yaml"
    recipe.write_text(FAST_CAST)
    checked = castrig("check", str(recipe), cwd=tmp_path)
    said = refused(checked, f"{recipe}: steps[1] (cast).rate_ml_min = 50", "above what devices.caster can pump",
                   "allowed: up to", "hw_profiles/sim.yaml")
    ran = castrig("run", str(recipe), "--data", str(tmp_path / "runs"), "-q", cwd=tmp_path)
    assert refused(ran, "rate_ml_min = 50").split("error: ")[-1] == said.split("error: ")[-1]  # the same refusal
    assert not (tmp_path / "runs").exists() or not any(p.is_dir() for p in (tmp_path / "runs").iterdir())


def test_check_says_which_profile_the_recipe_fits(tmp_path: Path):
    done = castrig("check", str(ROOT / "recipes" / "demo.yaml"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "valid recipe, fits" in done.stdout and "hw_profiles/sim.yaml" in done.stdout and "default profile" in done.stdout
    given = castrig("check", "recipes/demo.yaml", "--profile", "hw_profiles/sim-chamber.yaml")
    assert given.returncode == 0 and "fits hw_profiles/sim-chamber.yaml" in given.stdout, given.stdout + given.stderr
    assert "default profile" not in given.stdout
