"""Unicode bidi overrides, embeddings and isolates are refused in recipe/profile text and in
--operator, like control characters: exit 2 naming the field.

Before: ``name: "demo\\u202Egpj.exe"`` (shown as ``demoexe.jpg``) was a valid recipe (exit 0), and
the run folder, run lists and report carried the override.
"""

from __future__ import annotations

import pytest

from conftest import ROOT, castrig_main

DEMO = (ROOT / "recipes" / "demo.yaml").read_text()


@pytest.mark.parametrize("code", ["202A", "202B", "202C", "202D", "202E", "2066", "2067", "2068", "2069"])
def test_a_bidi_control_in_the_recipe_name_is_refused(tmp_path, code, capsys):
    assert "\nname: demo\n" in DEMO
    recipe = tmp_path / "bidi.yaml"
    recipe.write_text(DEMO.replace("\nname: demo\n", f'\nname: "demo\\u{code}gpj.exe"\n'))
    done = castrig_main(capsys, "check", str(recipe))
    err = " ".join(done.stderr.split())
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"{recipe}: name = " in err and f"bidi control character U+{code}" in err and "line 4" in err, err
    assert chr(int(code, 16)) not in done.stderr  # the message shows it escaped, not live


def test_a_bidi_control_in_a_step_label_and_in_operator(tmp_path, capsys):
    recipe = tmp_path / "label.yaml"
    recipe.write_text(DEMO.replace("{type: purge, duration_s: 60}", '{type: purge, duration_s: 60, label: "dry\\u2066 air"}', 1))
    done = castrig_main(capsys, "check", str(recipe))
    assert done.returncode == 2 and "steps[0].label" in done.stderr and "U+2066" in done.stderr, done.stderr
    data = tmp_path / "runs"
    done = castrig_main(capsys, "run", str(ROOT / "recipes" / "demo.yaml"), "--operator", "ana\u202ex", "--data", str(data), "-q")
    assert done.returncode == 2 and "--operator" in done.stderr and "U+202E" in done.stderr, done.stderr
    assert not data.exists() or not any(data.iterdir())


def test_right_to_left_text_with_marks_is_still_text(tmp_path, capsys):
    """Hebrew/Arabic descriptions and the directional marks (LRM, RLM) remain allowed."""
    recipe = tmp_path / "rtl.yaml"
    recipe.write_text(DEMO.replace("\nname: demo\n", '\nname: "ממברנה\\u200f 1"\n'))
    done = castrig_main(capsys, "check", str(recipe))
    assert done.returncode == 0, done.stderr
