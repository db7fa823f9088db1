"""The shipped profiles say what their pumps' syringes hold, so a recipe that needs more is refused.

An outside tester's find: hw_profiles/sim.yaml (the default) set no ``syringe_volume_ml``, so the
caster's volume was not checked: its 4.699 mm bore is a 1 mL syringe (BD, the NE-1000's syringe
table), yet a 19 mL cast passed ``castrig check`` and ``castrig run`` exited 0, the twin having
"dispensed 19 mL". Now the caster holds 1 mL and the water pump's 8.585 mm bore 3 mL (BD 3 mL)
in every shipped profile; every shipped recipe still fits. Real CLI in subprocesses.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import ROOT, castrig, castrig_main, one_cast_recipe, refused

BIG_CAST = one_cast_recipe("bad", 19, 0.5)

PROFILES = sorted((ROOT / "hw_profiles").glob("*.yaml")) + [ROOT / "docs" / "examples" / "wall-clock-rig.yaml"]


def test_a_cast_beyond_the_twins_caster_syringe_is_refused_by_check_and_run(tmp_path: Path, capsys, monkeypatch):
    recipe = tmp_path / "bigcast.yaml"
    recipe.write_text(BIG_CAST)
    sim = str(ROOT / "hw_profiles" / "sim.yaml")
    words = ("steps[1] (cast).volume_ml = 19", "more than its syringe holds", "allowed: up to 1 mL in all",
             "devices.caster.syringe_volume_ml")
    # (both through the CLI's entry point in this process, castrig_main: refused before anything runs)
    monkeypatch.chdir(tmp_path)
    refused(castrig_main(capsys, "check", str(recipe), "--profile", sim), *words, sim)
    data = tmp_path / "runs"
    monkeypatch.setenv("CASTRIG_DATA", str(data))
    refused(castrig_main(capsys, "run", str(recipe), "-q"), *words)
    assert not data.exists() or not any(p.is_dir() for p in data.iterdir())  # nothing ran, no run folder


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_every_shipped_profile_states_its_syringes_by_their_bore(profile: Path):
    devices = yaml.safe_load(profile.read_text())["devices"]
    held = {4.699: 1.0, 8.585: 3.0}  # BD 1 mL and 3 mL (NE-1000 syringe table)
    for role in ("caster", "water_pump"):
        cfg = devices[role]
        assert cfg.get("syringe_volume_ml") == held[cfg["syringe_diameter_mm"]], (profile.name, role, cfg)


def test_every_shipped_recipe_still_fits_the_default_profile(capsys, monkeypatch):
    """(`castrig check` in this process, castrig_main: the recipes' content is at stake here, and
    fourteen castrig processes cost ~3.5 s of CPU; the command itself is tested as a process in
    tests/cli and tests/house)"""
    monkeypatch.chdir(ROOT)  # (the default profile, as castrig() runs it)
    recipes = sorted((ROOT / "recipes").glob("*.yaml")) + sorted((ROOT / "docs" / "examples").glob("*.yaml"))
    recipes = [r for r in recipes if "devices" not in yaml.safe_load(r.read_text())]
    recipes += [ROOT / "tests" / "data" / n for n in ("short.yaml", "two_rh.yaml", "two_membranes_judged.yaml",
                                                       "long_evaporate.yaml", "two_membranes_long_evaporate.yaml")]
    for r in recipes:
        done = castrig_main(capsys, "check", str(r))
        assert done.returncode == 0 and "fits" in done.stdout, (r, done.stderr[-1000:])


def test_an_explore_space_beyond_the_caster_syringe_is_refused_before_any_trial(tmp_path: Path):
    """Each trial casts once: a space whose largest cast the syringe cannot hold would have its
    trials refused one by one by run's own check; refused up front, naming the bound."""
    data = tmp_path / "runs"
    done = castrig("explore", "--target-grade", "claim1", "--budget", "2", "--fix", "cast_volume_ml=1.5",
                   "--data", str(data), cwd=tmp_path)
    refused(done, "--fix cast_volume_ml = 1.5 mL", "devices.caster.syringe_volume_ml = 1 mL", "allowed: up to 1 mL")
    assert not data.exists()


@pytest.mark.parametrize("bound, field", [("{low: 0.1, high: 1.5}", "cast_volume_ml.high"), ("1.5", "cast_volume_ml")])
def test_an_explore_space_file_beyond_the_caster_syringe_is_refused_naming_the_file_and_field(tmp_path: Path, bound: str,
                                                                                               field: str):
    """An outside tester's find: `explore --space FILE` whose cast volume the caster's syringe
    cannot hold was refused as "cast_volume_ml up to 1.5 mL: more than ... syringe holds
    (... in hw_profiles/sim.yaml)", naming the profile but not the file that asked for 1.5 mL
    nor its field."""
    space = tmp_path / "space.yaml"
    space.write_text(f"cast_volume_ml: {bound}\n")
    data = tmp_path / "runs"
    done = castrig("explore", "--target-grade", "claim1", "--budget", "2", "--space", str(space), "--data", str(data),
                   cwd=tmp_path)
    refused(done, f"{space}: {field} = 1.5 mL", "devices.caster.syringe_volume_ml = 1 mL", "allowed: up to 1 mL")
    assert not data.exists()
