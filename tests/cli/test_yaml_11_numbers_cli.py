"""Numbers that YAML 1.1 (PyYAML, castrig's reader) and YAML 1.2 (the JSON schema editors, most
other tools) read differently: ``duration_s: 010`` was 8 s (octal) and ``1:30`` 90 s (base 60),
with ``castrig check`` saying the recipe was valid. They are refused naming the file, the field,
both readings and what to write; ``09`` (text to YAML 1.1) is not told to "remove the quotes" it
never had."""

from __future__ import annotations

import pytest

from castrig.errors import BadInput
from castrig.inputs import load_model
from castrig.recipe.model import Recipe
from castrig.rig.profile import Profile
from conftest import ROOT, castrig, castrig_main, refused

RECIPE = "name: t\nsteps:\n  - {type: purge, duration_s: 10}\n"


def test_check_refuses_a_duration_with_a_leading_zero_naming_both_readings(tmp_path, capsys):
    (tmp_path / "r.yaml").write_text(RECIPE.replace("10}", "010}"))
    said = refused(castrig_main(capsys, "check", str(tmp_path / "r.yaml")), str(tmp_path / "r.yaml"),
                   "steps[0].duration_s = '010': a number with a leading zero (YAML 1.1 reads it as octal 8, YAML 1.2 as 10)",
                   "(allowed: the number without leading zeros; in quotes for text); line 3, column 31")
    assert "valid recipe" not in said


@pytest.mark.parametrize("written, said", [
    ("1:30", "steps[0].duration_s = '1:30': a base-60 number (YAML 1.1 reads it as 90, YAML 1.2 as text)"),
    ("1:30.5", "steps[0].duration_s = '1:30.5': a base-60 number (YAML 1.1 reads it as 90.5, YAML 1.2 as text)"),
    ("-010", "steps[0].duration_s = '-010': a number with a leading zero (YAML 1.1 reads it as octal -8, YAML 1.2 as -10)"),
    ("09", "steps[0].duration_s = '09': expected a number in s, not text (YAML 1.1 reads a number with a leading zero"),
    ("'09'", "steps[0].duration_s = '09': expected a number in s, not text (remove the quotes"),
    ("0b11", "steps[0].duration_s = '0b11': a binary number (YAML 1.1 reads it as 3, YAML 1.2 as text)"),
    ("1_0.5", "steps[0].duration_s = '1_0.5': a number with '_' between its digits (YAML 1.1 reads it as 10.5, YAML 1.2 as text)"),
])
def test_numbers_read_otherwise_by_yaml_1_2_are_refused_naming_the_field(tmp_path, written, said):
    (tmp_path / "r.yaml").write_text(RECIPE.replace("10}", f"{written}}}"))
    with pytest.raises(BadInput) as err:
        load_model(Recipe, tmp_path / "r.yaml")
    assert said in str(err.value) and "line 3, column 31" in str(err.value), str(err.value)


def test_numbers_both_versions_read_alike_still_pass(tmp_path):
    for written, duration_s in (("07", 7), ("0x10", 16), ("10", 10), ("0", None)):
        (tmp_path / "r.yaml").write_text(RECIPE.replace("10}", f"{written}}}"))
        if duration_s is None:
            with pytest.raises(BadInput, match="must be more than 0"):
                load_model(Recipe, tmp_path / "r.yaml")
        else:
            assert load_model(Recipe, tmp_path / "r.yaml").steps[0].duration_s == duration_s


def test_a_profile_setting_with_a_leading_zero_is_refused(tmp_path):
    text = (ROOT / "hw_profiles" / "sim.yaml").read_text().replace("safe_mode_s: 10}", "safe_mode_s: 010}", 1)
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(BadInput, match=r"devices\.caster\.safe_mode_s = '010': a number with a leading zero"):
        load_model(Profile, tmp_path / "p.yaml")


def test_run_refuses_digits_grouped_with_underscores_and_makes_no_run_folder(tmp_path):
    """``duration_s: 1_800`` was 1800 s to castrig (YAML 1.1) and text to a YAML 1.2 editor;
    ``castrig check`` and ``castrig run`` said nothing. Now refused before anything starts."""
    (tmp_path / "r.yaml").write_text(RECIPE.replace("10}", "1_800}"))
    said = refused(castrig("run", str(tmp_path / "r.yaml"), "--data", str(tmp_path / "data"), "-q"),
                   str(tmp_path / "r.yaml"),
                   "steps[0].duration_s = '1_800': a number with '_' between its digits (YAML 1.1 reads it as 1800, "
                   "YAML 1.2 as text) (allowed: the digits alone, 1800; in quotes for text); line 3, column 31")
    assert "Traceback" not in said and not list((tmp_path / "data").glob("*/run.json"))
