"""The reference of recipes and profiles, and their JSON Schemas, generated from the models.

``docs/recipes.md`` and ``docs/profiles.md`` are written from the pydantic models' own field
descriptions, units (``json_schema_extra={"unit": ...}``), bounds and defaults, plus the prose
and worked examples kept here and in ``docs/examples/``; ``src/castrig/schemas/*.schema.json``
are the models' JSON Schemas (what ``castrig schema recipe|profile`` prints). Nothing in them is
written by hand, so they cannot drift: ``tests/docs/test_docs.py`` regenerates them and fails
when the committed files differ. Regenerate with::

    .venv/bin/python -m castrig.docs_gen
"""

from __future__ import annotations

import enum
import json
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from castrig.inputs import describe_field, unit_of

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
SCHEMA_KINDS = ("recipe", "profile")
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def model_of(kind: str) -> type[BaseModel]:
    if kind == "recipe":
        from castrig.recipe.model import Recipe

        return Recipe
    if kind == "profile":
        from castrig.rig.profile import Profile

        return Profile
    raise ValueError(f"unknown schema {kind!r} (allowed: one of {', '.join(SCHEMA_KINDS)})")


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of a recipe or a profile: pydantic's, with descriptions, units and ranges."""
    schema = model_of(kind).model_json_schema(mode="validation")
    head = {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": f"castrig {kind}",
        "description": schema.pop("description", None) or f"A castrig {kind} file (YAML).",
    }
    schema.pop("title", None)
    return {**head, **schema}


def schema_text(kind: str) -> str:
    return json.dumps(json_schema(kind), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


# -- field tables ---------------------------------------------------------------------------------
def _type_text(ann: Any) -> str:
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is typing.Annotated:
        return _type_text(args[0])
    if origin is typing.Literal:
        return "choice"
    if origin in (typing.Union, types.UnionType):
        parts = [a for a in args if a is not type(None)]
        models = [a for a in parts if isinstance(a, type) and issubclass(a, BaseModel)]
        if models and len(models) == len(parts) > 1:
            return "one of " + ", ".join(f"[{_title(m)}](#{_anchor(m)})" for m in models)
        text = " or ".join(dict.fromkeys(_type_text(a) for a in parts))
        return text
    if origin in (list, tuple):
        if origin is tuple:
            return f"[{', '.join(_type_text(a) for a in args)}]"
        inner = args[0]
        if typing.get_origin(inner) is typing.Literal:
            return "list, each one of " + ", ".join(repr(a) for a in typing.get_args(inner))
        return f"list of {_type_text(inner)}"
    if origin is dict:
        return "mapping"
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return f"[{_title(ann)}](#{_anchor(ann)})"
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return "choice"
    return {float: "number", int: "integer", str: "text", bool: "yes/no"}.get(ann, getattr(ann, "__name__", str(ann)))


def _title(model: type[BaseModel]) -> str:
    return model.__name__


def _anchor(model: type[BaseModel]) -> str:
    return model.__name__.lower()


def _default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    else:
        value = field.default
    if value is None:
        return "none"
    if isinstance(value, BaseModel):
        if not value.model_fields_set:
            return "all defaults"
        return "{" + ", ".join(f"{k}: {getattr(value, k)}" for k in type(value).model_fields if k in value.model_fields_set) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if value == {}:
        return "{}"
    return _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    return f"{value}"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_TAG_WHY = {"type": "Selects the step type.", "kind": "Selects the kind of link.", "model": "Selects the device model."}


def field_rows(model: type[BaseModel], skip: tuple[str, ...] = ()) -> list[tuple[str, str, str, str, str, str]]:
    """(field, type, unit, allowed, default, why) for every field of ``model``."""
    rows = []
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        rows.append((f"`{name}`", _type_text(field.annotation), unit_of(field), allowed_text(field),
                     _default_text(field), field.description or _TAG_WHY.get(name, "")))
    return rows


def allowed_text(field: FieldInfo) -> str:
    """The field's bounds or choices as error messages state them, plus lengths and patterns."""
    parts = [describe_field(field)] if describe_field(field) else []
    lo = next((m.min_length for m in field.metadata if getattr(m, "min_length", None) is not None), None)
    hi = next((m.max_length for m in field.metadata if getattr(m, "max_length", None) is not None), None)
    pattern = next((m.pattern for m in field.metadata if getattr(m, "pattern", None) is not None), None)
    unit = "characters" if _type_text(field.annotation) == "text" else "items"
    if lo is not None and hi is not None:
        parts.append(f"{lo} to {hi} {unit}")
    elif lo is not None:
        parts.append(f"at least {lo} {'character' if unit == 'characters' else 'item'}{'s' if lo != 1 else ''}")
    elif hi is not None:
        parts.append(f"at most {hi} {unit}")
    if pattern is not None:
        parts.append(f"matching `{pattern}`")
    return "; ".join(parts)


def field_table(model: type[BaseModel], skip: tuple[str, ...] = ()) -> str:
    head = "| field | type | unit | allowed | default | why |\n| --- | --- | --- | --- | --- | --- |\n"
    return head + "".join("| " + " | ".join(_md(c) for c in row) + " |\n" for row in field_rows(model, skip))


def models_in(root: type[BaseModel]) -> list[type[BaseModel]]:
    """Every model reachable from ``root``'s fields, in the order first met."""
    seen: list[type[BaseModel]] = []

    def walk(ann: Any) -> None:
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            if ann not in seen:
                seen.append(ann)
                for f in ann.model_fields.values():
                    walk(f.annotation)
            return
        for a in typing.get_args(ann):
            walk(a)

    walk(root)
    return seen


def _doc(model: type[BaseModel]) -> str:
    doc = (model.__doc__ or "").strip()
    if not doc or doc.startswith(("!!!", "Usage docs")) or model.__doc__ == BaseModel.__doc__:
        return ""
    return " ".join(doc.split("\n\n")[0].split())


def _example(name: str) -> str:
    text = (EXAMPLES / name).read_text()
    return f"`docs/examples/{name}`:\n\n```yaml\n{text}```\n"


#: A recipe with typical mistakes; its messages are shown in recipes.md as castrig prints them.
_BAD_RECIPE = """name: screen
steps:
  - {type: purge, duration_s: 60}
  - {type: condtion, setpoint_rh_pct: 62}
  - {type: prewet, volume_ml: 0.3, rate_ml_min: 1.0}
  - {type: cast, volume_ml: 0.2, rate_ml_min: 5 min}
  - {type: evaporate, setpoint_rh_pct: 62, duration_s: 600, band_rh: 3}
  - {type: capture, views: [reflected, infrared]}
"""


def _sample_errors() -> str:
    """What ``castrig check`` says about :data:`_BAD_RECIPE` (generated: it cannot drift)."""
    import tempfile

    from castrig.errors import BadInput
    from castrig.inputs import load_model
    from castrig.recipe.model import Recipe

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recipe.yaml"
        path.write_text(_BAD_RECIPE)
        try:
            load_model(Recipe, path)
        except BadInput as exc:
            message = str(exc).replace(str(path), "recipe.yaml")
        else:  # pragma: no cover - the sample must stay bad
            raise RuntimeError("docs_gen._BAD_RECIPE is valid: make it bad again")
    return "$ cat recipe.yaml\n" + _BAD_RECIPE + "$ castrig check recipe.yaml\n" + "\n".join(
        "error: " + line if i == 0 else line for i, line in enumerate(message.splitlines())) + "\n"


# -- recipes.md -----------------------------------------------------------------------------------
def recipes_md() -> str:
    from castrig.recipe import model as m

    steps = [m.PurgeStep, m.ConditionStep, m.PrewetStep, m.CastStep, m.EvaporateStep, m.CaptureStep,
             m.AnalyseStep, m.WaitStep]
    out = [
        "<!-- Generated by `python -m castrig.docs_gen` from the models in src/castrig/recipe/model.py;"
        " edit those, not this file (tests/docs/test_docs.py fails when they disagree). -->\n",
        "# Recipes\n",
        "A recipe is a YAML file that says what the rig does, step by step: purge, bring RH to a "
        "setpoint, pre-wet the support, cast, hold RH while the film dries, image, judge. "
        "`castrig check RECIPE` validates one without touching the rig (exit 0 valid, 2 not, with the "
        "file, line, field and allowed range named); `castrig run RECIPE` runs it.\n",
        "Every number carries its unit in its name: `_s` seconds, `_ml` millilitres, `_ml_min` mL/min, "
        "`_rh_pct` %RH (relative humidity near the membrane), `_slpm` standard litres per minute, "
        "`_mg_ml` mg/mL, `_um` micrometres. Write plain numbers (`rate_ml_min: 0.5`, not `0.5 mL/min`); "
        "unknown fields are refused (a misspelt field would otherwise be silently ignored).\n",
        "## Editor support\n",
        "Put this line at the top of a recipe and the YAML language server (VS Code's YAML extension, "
        "and other editors using it) validates the file and completes field names, step types and "
        "choices as you type, showing each field's description, unit and range:\n",
        "```text\n# yaml-language-server: $schema=./recipe.schema.json\n```\n",
        "with the schema written next to your recipes by `castrig schema recipe > recipe.schema.json` "
        "(the path is relative to the recipe). In this repository the schema ships in the package: "
        "`$schema=../src/castrig/schemas/recipe.schema.json` from `recipes/`, as the examples below do. "
        "The schema checks each field on its own; the rules between steps below are checked by "
        "`castrig check` only.\n",
        "## The recipe\n",
        field_table(m.Recipe),
        "## The order of steps\n",
        "- Steps run in the order written. The RH loop runs from the first `condition` or `evaporate` "
        "to the end of the run; `purge` switches it off (dry air only) until the next one.\n"
        "- **Every `cast` starts a new membrane** (`<run id>-m1`, `-m2`, … in cast order) on a fresh "
        "support position. Its steps are the `prewet` before it (after the previous membrane's steps), "
        "the cast, the `evaporate` after it, and the `capture`s and `analyse`s before the next "
        "membrane's pre-wet or cast. `purge`, `condition` and `wait` belong to the rig, not to a membrane.\n"
        "- **A `capture` or `analyse` belongs to the last `cast` before it.** A capture with no cast "
        "before it images whatever is under the camera and belongs to no membrane.\n"
        "- **An `analyse` needs a `capture` of its own membrane before it**: it measures every capture "
        "of the membrane of the last `cast` before it (a surface capture and a section capture together; a "
        "view captured twice: its latest capture, the event log says which steps it used), so a capture between that cast and the analyse "
        "(a capture of an earlier membrane does not count; with no cast before it, any capture before "
        "it). **A membrane is analysed once**: it has one verdict, which lists every grade it meets "
        "whatever grade the `analyse` names; to measure a later capture, put the one analyse after it. "
        "`castrig check` (and `run`, `queue`) refuse the recipe otherwise, naming the step; `castrig "
        "resume` of a run of such a recipe started by an earlier castrig refuses too, saying why (it would "
        "stop at that step again). Judging needs `reflected` for the pores, "
        "`transmitted` for the through-pore fraction and `section` for the thickness; a metric whose "
        "view was not captured is reported as unknown.\n"
        "- A `condition` before the first `prewet`/`cast` makes sure the chamber is at the RH the film "
        "needs before the solution touches the support; an `evaporate` right after the `cast` holds it "
        "while the breath figure forms, with its own band and out-of-band limit (a `wait` holds the "
        "current setpoint too, but its time does not count as the membrane's evaporation).\n"
        "- **A `condition` settles only once its setpoint is reached and RH has held in the band for "
        "`stable_for_s`** — after the ramp, when it has `ramp_rh_pct_per_min`. A ramp starts from the "
        "setpoint the step before left (a `condition`'s or an `evaporate`'s; after a `purge`, from the "
        "measured RH). `castrig check` refuses a `condition` that could never settle before its "
        "`timeout_s`: `stable_for_s` longer than `timeout_s`, or a ramp from a known setpoint that with "
        "the hold takes longer (the run would fault there; `castrig resume` of a run that recorded such a "
        "recipe refuses too, saying why); leave RH time to follow the ramp too.\n"
        "- **An `evaporate` that starts out of its band** (after a `purge`, or after a set point whose band "
        "is not inside its own) must get there within `max_out_of_band_s`. On the twin `castrig check` "
        "refuses one whose chamber needs longer even with its loop saturated (the run would surely "
        "abort), and otherwise says, as a note, that it cannot promise it (the loop is slower than "
        "saturated; a real chamber's speed is not in its profile): a `condition` at its set point right "
        "before it, or a longer `max_out_of_band_s`, makes it sure.\n"
        "- The profile must have the devices the steps need: `prewet` a `water_pump`, `cast` a "
        "`caster`, `condition`/`evaporate` RH control (`dry_mfc` + `wet_mfc`, or a `chamber`), "
        "`capture` a `camera`. `castrig check RECIPE` (against `--profile P`, else the default profile "
        "`hw_profiles/sim.yaml` that `castrig run` uses) and `castrig run` also check what "
        "those devices can do, before anything moves:\n"
        "  - a pump's `rate_ml_min` between the least and the most its syringe allows (an NE-1000 "
        "refuses a rate it cannot pump with `?OOR`, mid-run);\n"
        "  - a pump's `volume_ml` a multiple of what its 4 digits can show for the syringe (a volume "
        "that shows as `0.000` means pumping without end), and all the volumes of a recipe together "
        "within `syringe_volume_ml` (there is no refill step; `castrig queue` checks all its runs "
        "together, recipes × repetitions, and `queue --resume` the runs left, against a refilled syringe);\n"
        "  - dispensing (`volume_ml` / `rate_ml_min`) at most a day per step;\n"
        "  - a purge's `flow_slpm` within the dry line's full scale, and every `setpoint_rh_pct` within "
        "what the chamber accepts (or, on the twin, what its chamber levels off at: its dry and wet lines "
        "mixed at the loop's wet fraction limits, with the leak to the room). A set point beyond that level "
        "passes, with a note, where its band reaches it (the chamber sits at the level, inside the band): "
        "a condition's band must hold the level (its readings must stay within it for `stable_for_s`), an "
        "evaporate's must come within the probe's noise of it (a reading must come into it within "
        "`max_out_of_band_s`).\n"
        "- After a crash, `castrig resume` records the membrane that was forming as lost and goes on "
        "with the next one; a capture or analyse is repeated idempotently. It first holds the steps it "
        "has left to the rig as `castrig run` does at its start (each set point against what the chamber "
        "reaches and the range its controller reports): beyond it, the rig is made safe and the resume "
        "refused (exit 2), the run folder left as it was.\n",
        "## Step types\n",
        "Every step is a mapping with a `type`; the step types and their fields:\n",
    ]
    for s in steps:
        tag = typing.get_args(s.model_fields["type"].annotation)[0]
        out.append(f'<a id="{_anchor(s)}"></a>\n\n### `{tag}`\n')
        out.append(_doc(s) + "\n")
        out.append(field_table(s, skip=("type",)))
    out += [
        "## Worked examples\n",
        "Each of these passes `castrig check` (a test makes sure).\n",
        "### A two-RH screening\n",
        _example("two-rh-screening.yaml"),
        "Run it on the twin: `castrig run docs/examples/two-rh-screening.yaml`; `castrig runs --grade claim1` "
        "and the report then show two membranes, one per cast.\n",
        "### An overnight production night\n",
        _example("overnight-production.yaml"),
        "### A wall-clock rig\n",
        "The same recipes run on real hardware given a profile with `clock: wall`: see "
        "[profiles.md](profiles.md#a-wall-clock-rig) and `castrig run RECIPE --profile docs/examples/wall-clock-rig.yaml`.\n",
        "## When a recipe is refused\n",
        "The message names the file, the line and column, the field, what was wrong and what is "
        "allowed, for example:\n",
        "```text\n" + _sample_errors() + "```\n",
    ]
    return "\n".join(out)


# -- profiles.md ----------------------------------------------------------------------------------
def profiles_md() -> str:
    from castrig.rig import profile as p

    out = [
        "<!-- Generated by `python -m castrig.docs_gen` from the models in src/castrig/rig/profile.py;"
        " edit those, not this file (tests/docs/test_docs.py fails when they disagree). -->\n",
        "# Hardware profiles\n",
        "A profile is a YAML file that says which devices a rig has, how each is reached (its link), "
        "how RH is controlled and how the digital twin behaves. One per rig; `hw_profiles/sim.yaml` "
        "(the default of `castrig run`) is the whole rig simulated in virtual time. "
        "`castrig check PROFILE` validates one (a file with `devices:` is taken as a profile).\n",
        "## Editor support\n",
        "```text\n# yaml-language-server: $schema=./profile.schema.json\n```\n",
        "with the schema written by `castrig schema profile > profile.schema.json`, or, in this "
        "repository, `$schema=../src/castrig/schemas/profile.schema.json` from `hw_profiles/`. The rules "
        "between devices below (shared ports, MFC pairs, virtual clock) are checked by `castrig check` only.\n",
        "## The profile\n",
        field_table(p.Profile),
        "## Rules between fields\n",
        "- `clock: virtual` runs faster than real time and works only when every device is on a "
        "`sim` link; any `serial` or `visa` link needs `clock: wall`.\n"
        "- `dry_mfc` and `wet_mfc` come as a pair; RH control needs that pair or a `chamber`.\n"
        "- Two devices may share a port only as a bus the protocol allows: NE-1000 pumps on a daisy "
        "chain (each its own `address`) or Alicat units on one line (each its own `unit_id`), at the same "
        "line settings.\n"
        "- `control.wet_fraction_min` < `wet_fraction_max`; `rh_sensor_range_pct` 0 <= low < high <= 100; a chamber's `reach_rh_pct` too.\n"
        "- A Watlow F4T's `temperature_loop` and `rh_loop` differ.\n",
    ]
    sections = [("Devices", [p.DevicesConfig]),
                ("Links", [p.SimLinkConfig, p.SerialLinkConfig, p.VisaLinkConfig]),
                ("Pumps, flow controllers, sensors", [p.NE1000Config, p.AlicatConfig, p.HMT330Config]),
                ("Chambers", [p.ScpiChamberConfig, p.WatlowF4Config, p.WatlowF4TConfig]),
                ("Cameras", [p.SimCameraConfig, p.FolderCameraConfig, p.OpenCVCameraConfig]),
                ("Control", [p.ControlConfig]),
                ("The twin", [p.SimConfig])]
    listed = {p.Profile}
    for title, models in sections:
        out.append(f"## {title}\n")
        for mdl in models:
            listed.add(mdl)
            tag = next((typing.get_args(mdl.model_fields[k].annotation)[0] for k in ("kind", "model")
                        if k in mdl.model_fields), None)
            head = f"`{tag}` ({mdl.__name__})" if tag is not None else mdl.__name__
            out.append(f'<a id="{_anchor(mdl)}"></a>\n\n### {head}\n')
            if _doc(mdl):
                out.append(_doc(mdl) + "\n")
            out.append(field_table(mdl))
    missing = [mdl.__name__ for mdl in models_in(p.Profile) if mdl not in listed]
    if missing:  # a new device model must get its place in the reference
        raise RuntimeError(f"profiles.md has no section for {', '.join(missing)}: add it to docs_gen.profiles_md")
    out += [
        "## Worked examples\n",
        "### A wall-clock rig\n",
        _example("wall-clock-rig.yaml"),
        "### The twin over real links\n",
        "`hw_profiles/sim-serial.yaml` reaches the twin's emulators over sockets served by "
        "`castrig sim serve --tcp 47100`, in real time: the drivers, links and timing are those of "
        "the hardware, only the far end is simulated.\n",
    ]
    return "\n".join(out)


def outputs() -> dict[Path, str]:
    """Every generated file and its text."""
    files = {DOCS / "recipes.md": recipes_md(), DOCS / "profiles.md": profiles_md()}
    for kind in SCHEMA_KINDS:
        files[SCHEMAS / f"{kind}.schema.json"] = schema_text(kind)
    return files


def write_all() -> list[Path]:
    written = []
    for path, text in outputs().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover
    for p in write_all():
        print(f"wrote {p}")
