"""The recipe and profile reference (docs/recipes.md, docs/profiles.md) and the JSON Schemas
(src/castrig/schemas/) are generated from the models (castrig.docs_gen): these tests fail when the
committed files and the models disagree, when a field has no description, and when an example in
the docs does not pass `castrig check` (or, for the screening recipe, does not run)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import typing

import jsonschema
import pytest
import yaml

from castrig import docs_gen
from castrig.cli.main import main
from castrig.inputs import _GuardedLoader
from castrig.recipe.model import Recipe
from castrig.reliability import badinputs
from castrig.rig.profile import Profile

ROOT = docs_gen.ROOT
DOC_FILES = [docs_gen.DOCS / "recipes.md", docs_gen.DOCS / "profiles.md"]
#: Numbers without a physical unit (gains, fractions, counts, addresses, ids): everything else has one.
UNITLESS = {"kp", "ki", "kd", "chamber_kp", "chamber_ki", "chamber_kd", "wet_fraction_min", "wet_fraction_max",
            "fields", "address", "unit", "temperature_loop", "rh_loop", "seed"}


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("path", list(docs_gen.outputs()), ids=lambda p: p.name)
def test_generated_files_match_the_models(path):
    want = docs_gen.outputs()[path]
    assert path.is_file(), f"{path} missing: run .venv/bin/python -m castrig.docs_gen"
    assert path.read_text() == want, f"{path} is stale: run .venv/bin/python -m castrig.docs_gen"


@pytest.mark.parametrize("root", [Recipe, Profile], ids=["recipe", "profile"])
def test_every_field_has_a_description_and_every_quantity_a_unit(root):
    missing, no_unit = [], []
    for model in docs_gen.models_in(root):
        for name, field in model.model_fields.items():
            if name in ("type", "kind", "model"):
                continue  # the tag: documented by its section
            if not field.description:
                missing.append(f"{model.__name__}.{name}")
            leaves = {a for a in typing.get_args(field.annotation)} | {field.annotation}
            numeric = bool(leaves & {float, int}) and str not in leaves and typing.get_origin(field.annotation) is not typing.Literal
            if numeric and name not in UNITLESS and not docs_gen.unit_of(field):
                no_unit.append(f"{model.__name__}.{name}")
    assert not missing, f"fields without Field(description=...): {missing}"
    assert not no_unit, f"quantities without json_schema_extra={{'unit': ...}}: {no_unit}"


def test_the_reference_names_every_step_type_and_field():
    text = (docs_gen.DOCS / "recipes.md").read_text()
    for model in docs_gen.models_in(Recipe):
        for name in model.model_fields:
            assert f"`{name}`" in text, name
    for tag in ("purge", "condition", "prewet", "cast", "evaporate", "capture", "analyse", "wait"):
        assert f"### `{tag}`" in text
    assert "Every `cast` starts a new membrane" in text and "belongs to the last `cast` before it" in text
    assert "# yaml-language-server: $schema=" in text
    ptext = (docs_gen.DOCS / "profiles.md").read_text()
    for model in docs_gen.models_in(Profile):
        for name in model.model_fields:
            assert f"`{name}`" in ptext, f"{model.__name__}.{name}"


def _yaml_blocks() -> list[tuple[str, str]]:
    out = []
    for doc in DOC_FILES:
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S)):
            out.append((f"{doc.name}#{i}", block))
    return out


BLOCKS = _yaml_blocks()


def test_the_docs_have_the_three_worked_examples():
    names = {yaml.safe_load(b)["name"] for _, b in BLOCKS}
    assert {"screen-62-75", "production-night", "lab2-rig"} <= names


@pytest.mark.parametrize("where,block", BLOCKS, ids=[w for w, _ in BLOCKS])
def test_every_example_in_the_docs_passes_castrig_check(tmp_path, where, block):
    f = tmp_path / "example.yaml"
    f.write_text(block)
    code, out, err = _cli(["check", str(f)])
    assert code == 0, err
    kind = "profile" if "devices" in yaml.safe_load(block) else "recipe"
    jsonschema.validate(yaml.safe_load(block), docs_gen.json_schema(kind))


def test_the_screening_example_runs_on_the_twin(tmp_path):
    code, out, err = _cli(["run", str(docs_gen.EXAMPLES / "two-rh-screening.yaml"), "--data", str(tmp_path), "-q"])
    assert code == 0, err
    assert "2 membranes" in out + err


# -- the JSON Schemas ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", docs_gen.SCHEMA_KINDS)
def test_castrig_schema_prints_the_shipped_schema(kind):
    code, out, err = _cli(["schema", kind])
    assert code == 0, err
    printed = json.loads(out)
    assert printed == json.loads((docs_gen.SCHEMAS / f"{kind}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(printed)
    assert printed["$schema"].endswith("2020-12/schema")
    text = json.dumps(printed)
    assert '"unit"' in text and '"description"' in text and ("exclusiveMinimum" in text or "minimum" in text)


def test_castrig_schema_refuses_an_unknown_kind():
    code, out, err = _cli(["schema", "filter"])
    assert code == 2 and "allowed: one of recipe, profile" in err


def test_the_schemas_are_package_data():
    text = (ROOT / "pyproject.toml").read_text()
    assert "schemas/*.json" in text
    from importlib.resources import files

    assert json.loads(files("castrig").joinpath("schemas/recipe.schema.json").read_text())["title"] == "castrig recipe"


SHIPPED = sorted((ROOT / "recipes").glob("*.yaml")) + sorted((ROOT / "hw_profiles").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_schema_accepts_every_shipped_recipe_and_profile(path):
    data = yaml.safe_load(path.read_text())
    kind = "profile" if "devices" in data else "recipe"
    printed = json.loads(_cli(["schema", kind])[1])
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in jsonschema.Draft202012Validator(printed).iter_errors(data)]
    assert not errors, errors


#: Refused by a rule between fields (a model validator) or by the text checks of castrig.inputs:
#: a JSON Schema checks each field on its own, so these pass it and only `castrig check` catches them.
BEYOND_THE_SCHEMA = {
    "analyse_before_capture.yaml": "an analyse needs a capture before it",
    "profile_duplicate_mfc_id.yaml": "ports shared only by a bus",
    "profile_socket_url_unparsable.yaml": "a URL that urllib can take apart",
    "profile_socket_url_without_port.yaml": "a TCP URL with its host and port",
    "profile_duplicate_port.yaml": "ports shared only by a bus",
    "profile_duplicate_pump_address.yaml": "ports shared only by a bus",
    "profile_mfc_unpaired.yaml": "MFCs come in pairs",
    "profile_rh_range_reversed.yaml": "low < high",
    "profile_sample_period_below_tick.yaml": "sample period >= control period",
    "profile_bubbler_dry.yaml": "wet line above the dry line",
    "profile_virtual_serial.yaml": "virtual clock needs sim links",
    "profile_wet_fraction_reversed.yaml": "min < max",
    "duration_nan.yaml": "NaN: JSON has none, and every comparison with NaN is false",
    "name_nul_escape.yaml": "control characters",
    "name_newline_escape.yaml": "control characters",
    "label_escape_char.yaml": "control characters",
    "description_c1_char.yaml": "control characters",
    "name_lone_surrogate.yaml": "control characters",
    "profile_name_control.yaml": "control characters",
}


def _corpus() -> list[dict]:
    out = []
    for e in badinputs.load_index():
        if e["as"] not in ("recipe", "profile"):
            continue
        loader = None
        try:  # the guarded loader (alias bombs), without the text checks a schema cannot make
            loader = _GuardedLoader((badinputs.CORPUS / e["file"]).read_bytes().decode("utf-8"))
            data = loader.get_single_data()
        except Exception:  # noqa: BLE001 - not YAML at all: nothing for a schema to judge
            continue
        finally:
            if loader is not None:
                loader.dispose()
        if isinstance(data, dict):
            out.append({**e, "data": data})
    return out


CORPUS = _corpus()


def test_the_corpus_sample_is_big_enough():
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("entry", CORPUS, ids=[e["file"] for e in CORPUS])
def test_the_schema_rejects_the_bad_inputs_the_models_reject(entry):
    schema = docs_gen.json_schema(entry["as"])
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(entry["data"]))
    if entry["file"] in BEYOND_THE_SCHEMA:
        assert not errors, f"{entry['file']} is now caught by the schema too: drop it from BEYOND_THE_SCHEMA"
    else:
        assert errors, f"{entry['file']}: the models refuse it, the schema accepts it"
