"""Messages about bad recipes and profiles are in our words (issue 20): each names the file, the
line and column, the field and what is allowed, suggests the name meant for a misspelt field,
step type or choice, and never lets one of pydantic's stock phrases through."""

from __future__ import annotations

import re

import pytest

from castrig.errors import BadInput
from castrig.inputs import PYDANTIC_PHRASES, load_model, read_yaml, yaml_position
from castrig.recipe.model import Recipe
from castrig.reliability import badinputs
from castrig.rig.profile import Profile

#: No line to give: the file is not text, is empty, is one scalar, or the YAML constructor's own
#: error (a date that does not exist, an int of 5000 digits) carries no position.
NO_LINE = {"binary_junk.yaml", "utf16.yaml", "empty.yaml", "only_comment.yaml", "top_level_scalar.yaml",
           "yaml_bad_date.yaml", "yaml_int_5000_digits.yaml"}

ENTRIES = [e for e in badinputs.load_index() if e["as"] in ("recipe", "profile")]


def _message(entry) -> str:
    model = Profile if entry["as"] == "profile" else Recipe
    with pytest.raises(BadInput) as e:
        load_model(model, badinputs.CORPUS / entry["file"])
    return str(e.value)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_every_corpus_message_names_file_line_field_and_range_in_our_words(entry):
    msg = _message(entry)
    for phrase in PYDANTIC_PHRASES:
        assert phrase.lower() not in msg.lower(), f"pydantic's {phrase!r} slipped through: {msg}"
    assert "<unicode string>" not in msg and "special characters are not allowed" not in msg, msg  # (PyYAML's own words)
    for line in msg.splitlines():
        assert line.startswith(str(badinputs.CORPUS / entry["file"])), line
        if entry["file"] not in NO_LINE:
            assert re.search(r"line \d+, column \d+", line), line
        # a value outside a numeric range says the range
        if re.search(r"must be (more than|at least|less than|at most) ", line):
            assert "(allowed: " in line, line


def test_the_corpus_is_the_whole_sample():
    assert len(ENTRIES) >= 50 and len({e["as"] for e in ENTRIES}) == 2


def _refused(tmp_path, text: str, model=Recipe, name: str = "recipe.yaml") -> str:
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(BadInput) as e:
        load_model(model, f)
    return str(e.value)


RECIPE = """name: t
steps:
  - type: purge
    duration_s: 30
  - {type: cast, volume_ml: 0.2, rate_ml_min: 5 min}
"""


def test_a_number_with_its_unit_gets_our_sentence_and_its_position(tmp_path):
    msg = _refused(tmp_path, RECIPE)
    assert msg == (f"{tmp_path / 'recipe.yaml'}: steps[1].rate_ml_min = '5 min': must be a number in mL/min, not text "
                   "(write the number alone: the unit is in the field's name) (allowed: > 0; <= 50); line 5, column 47")


@pytest.mark.parametrize("text,want", [
    ("name: t\nsteps:\n  - {type: condtion, setpoint_rh_pct: 70}\n",
     "steps[0].type = 'condtion': is not a known type; did you mean 'condition'?"),
    ("name: t\nsteps:\n  - {type: condition, setpoint_rh: 70}\n",
     "steps[0].setpoint_rh = 70: is not a known field; did you mean 'setpoint_rh_pct'?"),
    ("name: t\nstep:\n  - {type: wait, duration_s: 5}\n", "step = [{'type': 'wait', 'duration_s': 5}]: is not a known field; did you mean 'steps'?"),
    ("name: t\nsolvent: chloroforme\nsteps: [{type: wait, duration_s: 5}]\n",
     "solvent = 'chloroforme': must be one of 'chloroform', 'dichloromethane', 'carbon_disulfide' or 'toluene'; did you mean 'chloroform'?"),
])
def test_did_you_mean(tmp_path, text, want):
    assert want in _refused(tmp_path, text)


def test_unknown_field_points_at_its_key_and_range_errors_at_the_value(tmp_path):
    text = "name: t\nsteps:\n  - type: wait\n    duraton_s: 5\n"
    msg = _refused(tmp_path, text)
    assert "steps[0].duraton_s = 5: is not a known field; did you mean 'duration_s'?; line 4, column 5" in msg
    msg = _refused(tmp_path, "name: t\nsteps:\n  - type: wait\n    duration_s: -5\n")
    assert "steps[0].duration_s = -5: must be more than 0 s (allowed: > 0; <= 86400); line 4, column 17" in msg


def test_a_missing_field_points_at_the_mapping_that_lacks_it(tmp_path):
    msg = _refused(tmp_path, "name: t\nsteps:\n  - {type: wait}\n")
    assert msg.endswith("steps[0].duration_s: is required (allowed: > 0; <= 86400); line 3, column 5")


def test_rules_between_fields_point_at_the_field_they_name(tmp_path):
    msg = _refused(tmp_path, "name: t\nsteps:\n  - {type: wait, duration_s: 5}\n  - {type: analyse}\n")
    assert msg.endswith("recipe.yaml: steps[1] (analyse) needs a capture step before it; line 4, column 5")


def test_profile_messages_use_units_and_positions(tmp_path):
    text = ("name: p\ndevices:\n  rh_near: {model: hmt330, link: {kind: sim}}\n"
            "control:\n  sample_period_s: fast\n  comms_lost_s: 0\n")
    msg = _refused(tmp_path, text, Profile, "profile.yaml")
    assert "control.sample_period_s = 'fast': must be a number in s, not text (allowed: > 0; <= 3600); line 5, column 20" in msg
    assert "control.comms_lost_s = 0: must be more than 0 s (allowed: > 0; <= 600); line 6, column 17" in msg


def test_positions_survive_anchors_and_merge_keys(tmp_path):
    text = "name: t\nsteps:\n  - &w {type: wait, duration_s: 5}\n  - {<<: *w, duration_s: -1}\n"
    msg = _refused(tmp_path, text)
    assert "steps[1].duration_s = -1: must be more than 0 s" in msg and "line 4, column 26" in msg


def test_positions_are_kept_only_for_data_read_from_yaml(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("name: t\nsteps:\n  - {type: wait, duration_s: 5}\n")
    data = read_yaml(f)
    assert yaml_position(data, ("steps", 0, "duration_s")) == (3, 30)
    assert yaml_position(data, ("steps", 0, "duration_s"), key=True) == (3, 18)
    assert yaml_position(data, ("steps", 0, "nothing")) == (3, 5)  # the nearest enclosing value
    assert yaml_position(dict(data), ("steps",)) is None  # a copy is not the document read
    msg = str(pytest.raises(BadInput, load_model, Recipe, f, {"name": "t", "steps": []}).value)
    assert "must have at least 1 item" in msg and "line" not in msg


def test_memory_for_positions_is_bounded(tmp_path):
    from castrig import inputs

    for i in range(3 * inputs._NODES_KEPT):
        f = tmp_path / f"r{i}.yaml"
        f.write_text("name: t\nsteps: []\n")
        read_yaml(f)
    assert len(inputs._NODES) <= inputs._NODES_KEPT


@pytest.mark.parametrize("text,want", [
    ("name: t\nsteps: [{type: wait, duration_s: 5}]\n1: 2\n", "(top level): the key 1 is a number, not a name"),
    ("name: t\nyes: 3\nsteps: [{type: wait, duration_s: 5}]\n", "(top level): the key True is a yes/no, not a name"),
    ("name: t\n~: 3\nsteps: [{type: wait, duration_s: 5}]\n", "(top level): the key None is empty, not a name"),
])
def test_a_key_that_yaml_reads_as_no_text_is_named_as_a_key(tmp_path, text, want):
    """``1: 2`` in a recipe said ``[1] = 2: Keys should be strings`` (pydantic's words, the key
    shown as a list index)."""
    msg = _refused(tmp_path, text)
    assert f"{tmp_path / 'recipe.yaml'}: {want} (allowed: names as text;" in msg, msg
    assert "Keys should" not in msg and "[1]" not in msg
