"""Recipe names a lab writes that castrig's folder naming did not expect: a name without ASCII
letters or digits (膜, ``..``, 🧪) ran into a folder ``<stamp>-``; a name of spaces only was a valid
recipe with nothing to tell the run by."""

from __future__ import annotations

import json

import pytest

from conftest import castrig_main


@pytest.mark.parametrize("name, folder_word", [("膜", "recipe"), ("..", "recipe"), ("🧪", "recipe"), ("膜 PS-5", "_PS-5")])
def test_a_recipe_name_without_ascii_letters_names_its_folder_recipe(tmp_path, capsys, name, folder_word):
    """A recipe called 膜, `..` or 🧪 ran into a folder `<stamp>-` (its name's characters all
    replaced and stripped); the folder now ends in `-recipe`, the lists keep the name as written."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps({"name": name, "steps": [{"type": "purge", "duration_s": 5}]}, ensure_ascii=False))
    done = castrig_main(capsys, "run", str(recipe), "--data", str(tmp_path / "runs"), "-q")
    assert done.returncode == 0, done.stderr
    (folder,) = [p.parent for p in (tmp_path / "runs").glob("*/run.json")]
    assert folder.name.endswith(f"-{folder_word}") and not folder.name.endswith("-"), folder.name
    assert json.loads((folder / "run.json").read_text())["recipe_name"] == name


def test_a_recipe_name_of_spaces_only_is_refused(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text('name: "   "\nsteps: [{type: purge, duration_s: 5}]\n')
    done = castrig_main(capsys, "check", str(recipe))
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and "name" in said and "only spaces" in said, said
