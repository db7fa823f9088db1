"""A recipe whose YAML holds a character PyYAML refuses (NUL, another control character), a tab
a line separator or a byte order mark inside the file: `castrig run` and `check` say, on one line, the file, the field, the line and
column and what is allowed -- not PyYAML's 'unacceptable character #x0000: special characters are
not allowed' and its second line 'in "<unicode string>", position 8'."""

from __future__ import annotations

import pytest

from conftest import castrig, refused

RECIPE = "name: {name}\ngrade: claim1\nsupport_pore_um: 5\nsteps:\n  - {{type: prewet, volume_ml: 0.1, rate_ml_min: {rate}}}\n"


@pytest.mark.parametrize("command, text, said", [
    ("run", RECIPE.format(name="de\0mo", rate="1.0"), "name (line 1, column 9): not valid YAML: control character U+0000 (allowed: printable text)"),
    ("check", RECIPE.format(name="demo", rate="1\x1b.0"),
     "steps[0].rate_ml_min (line 5, column 50): not valid YAML: control character U+001B (allowed: printable text)"),
    ("check", RECIPE.format(name="demo", rate="1.0").replace("grade:", "\tgrade:"),
     "grade (line 2, column 1): not valid YAML: a tab (allowed: spaces to indent"),
    ("check", RECIPE.format(name="de\u2028mo", rate="1.0"),
     "name (line 1, column 9): not valid YAML: line separator U+2028, a line break to YAML that no editor shows as one (allowed: "),
    ("check", RECIPE.format(name="demo", rate="1.0").replace("grade:", "\ufeffgrade:"),
     "grade (line 2, column 1): not valid YAML: byte order mark U+FEFF, invisible, inside the file (two files joined?) (allowed: "),
], ids=["nul-in-the-name-run", "escape-in-a-step", "tab-indent", "line-separator", "bom-inside"])
def test_a_character_yaml_refuses_is_named_with_its_field(tmp_path, command, text, said):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text, encoding="utf-8")
    args = (command, str(recipe), "--data", str(tmp_path / "runs")) if command == "run" else (command, str(recipe))
    message = refused(castrig(*args), f"{recipe}: {said}")
    assert "<unicode string>" not in message and "special characters" not in message and "token" not in message, message
    assert not (tmp_path / "runs").exists()


def test_a_byte_order_mark_at_the_start_is_the_files_own(tmp_path):
    """A BOM at the very start (Windows Notepad's UTF-8) is no error: the recipe is valid."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("\ufeff" + RECIPE.format(name="demo", rate="1.0"), encoding="utf-8")
    done = castrig("check", str(recipe))
    assert done.returncode == 0 and "valid recipe" in done.stdout, done.stdout + done.stderr
