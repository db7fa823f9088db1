"""Load a YAML file into a pydantic model, or fail with one clear sentence.

The sentence names the file, the field (``steps[2].setpoint_rh_pct``) and the allowed range or
choices, taken from the model itself, so the message and the validation can never disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from castrig.errors import BadInput

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read: {exc}", file=str(path)) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise BadInput(f"{path}{where}: not valid YAML: {problem}", file=str(path)) from None


def load_model(model: type[M], path: str | Path, data: Any = None) -> M:
    """Validate ``data`` (default: the YAML in ``path``) as ``model``."""
    path = Path(path)
    if data is None:
        data = read_yaml(path)
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a mapping of fields at the top level, got {type(data).__name__}", file=str(path))
    _reject_bools(model, path, data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = _loc(_strip_tags(tuple(exc.errors()[0]["loc"]), data))
        raise BadInput(format_validation_error(path, model, exc, data), file=str(path), field=first) from None


def format_validation_error(path: Path, model: type[BaseModel], exc: ValidationError, data: Any) -> str:
    lines = []
    for err in exc.errors():
        loc = _strip_tags(tuple(err["loc"]), data)
        field = _loc(loc)
        value = _value_at(data, loc)
        allowed = _allowed(model, loc, data)
        # a whole mapping or list repeated back is noise: the message says what is wrong with it
        got = "" if value is _MISSING or isinstance(value, dict) else f" = {value!r}"
        msg = err["msg"]
        if err["type"] == "missing":
            msg = "is required"
        elif err["type"] == "extra_forbidden":
            msg = "is not a known field"
        elif err["type"] in ("union_tag_not_found", "union_tag_invalid"):
            key = str((err.get("ctx") or {}).get("discriminator", "type")).strip("'")
            tags = _tags(model, loc, data, key)
            field = f"{field}.{key}"
            tag = value.get(key) if isinstance(value, dict) else None
            got = "" if tag is None else f" = {tag!r}"
            msg = ("is required" if tag is None else f"is not a known {key}") + (
                f" (allowed: one of {', '.join(repr(t) for t in tags)})" if tags else "")
        line = f"{path}: {field}{got}: {msg}"
        if allowed and err["type"] not in ("literal_error", "enum"):
            line += f" (allowed: {allowed})"
        lines.append(line)
    return "\n".join(lines)


_MISSING = object()


def _tags(model: type[BaseModel], loc: tuple[Any, ...], data: Any, key: str) -> list[Any]:
    """The tags a discriminated union at ``loc`` accepts (the step types, the link kinds)."""
    import typing

    field = _field_at(model, loc, data) if loc else None
    if field is None:
        return []
    out: list[Any] = []

    def walk(ann: Any) -> None:
        origin = typing.get_origin(ann)
        if origin in (typing.Annotated, list, tuple, typing.Union, getattr(__import__("types"), "UnionType", None)):
            for a in typing.get_args(ann):
                walk(a)
        elif isinstance(ann, type) and issubclass(ann, BaseModel) and key in ann.model_fields:
            out.extend(_choices(ann.model_fields[key].annotation))

    walk(field.annotation)
    return out


def _reject_bools(model: type[BaseModel], path: Path, root: Any, node: Any = _MISSING, loc: tuple[Any, ...] = ()) -> None:
    """``duration_s: yes`` is YAML for True, which pydantic would take as 1.0: refuse a boolean
    wherever the model wants a number."""
    node = root if node is _MISSING else node
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        here = loc + (key,)
        if isinstance(value, bool):
            field = _field_at(model, here, root)
            if field is not None and _wants_number(field.annotation):
                where = _loc(here)
                raise BadInput(f"{path}: {where} = {value!r}: expected a number, not a yes/no"
                               + (f" (allowed: {describe_field(field)})" if describe_field(field) else ""),
                               file=str(path), field=where)
        else:
            _reject_bools(model, path, root, value, here)


def _wants_number(annotation: Any) -> bool:
    import typing

    leaves: set[Any] = set()

    def walk(ann: Any) -> None:
        args = typing.get_args(ann)
        if typing.get_origin(ann) is typing.Literal:
            leaves.update(type(a) for a in args)
        elif args:
            for a in args:
                walk(a)
        else:
            leaves.add(ann)

    walk(annotation)
    return bool(leaves & {int, float}) and bool not in leaves


def _strip_tags(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """Drop the discriminator values pydantic inserts into ``loc`` (``steps.1.condition.x``)."""
    out: list[Any] = []
    cur = data
    for part in loc:
        if isinstance(part, str) and isinstance(cur, dict) and part not in cur and cur.get("type", cur.get("model", cur.get("kind"))) == part:
            continue
        out.append(part)
        cur = _value_at(cur, (part,)) if cur is not _MISSING else _MISSING
    return tuple(out)


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _value_at(data: Any, loc: tuple[Any, ...]) -> Any:
    cur = data
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            cur = cur[part]
        else:
            return _MISSING
    return cur


def _allowed(model: type[BaseModel], loc: tuple[Any, ...], data: Any) -> str:
    """The bounds or choices declared on the field at ``loc`` (best effort)."""
    field = _field_at(model, loc, data)
    if field is None:
        return ""
    return describe_field(field)


def describe_field(field: FieldInfo) -> str:
    bounds = {}
    for meta in field.metadata:
        for name in ("gt", "ge", "lt", "le"):
            v = getattr(meta, name, None)
            if v is not None:
                bounds[name] = v
    parts = []
    lo = ("> ", bounds["gt"]) if "gt" in bounds else (">= ", bounds["ge"]) if "ge" in bounds else None
    hi = ("< ", bounds["lt"]) if "lt" in bounds else ("<= ", bounds["le"]) if "le" in bounds else None
    if lo and hi and lo[0] == ">= " and hi[0] == "<= ":
        parts.append(f"{lo[1]:g} to {hi[1]:g}")
    else:
        if lo:
            parts.append(f"{lo[0]}{lo[1]:g}")
        if hi:
            parts.append(f"{hi[0]}{hi[1]:g}")
    choices = _choices(field.annotation)
    if choices:
        parts.append("one of " + ", ".join(repr(c) for c in choices))
    return "; ".join(parts)


def _choices(annotation: Any) -> list[Any]:
    import enum
    import typing

    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return list(typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [m.value for m in annotation]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            out += _choices(arg)
        return out
    return []


def _field_at(model: type[BaseModel], loc: tuple[Any, ...], data: Any) -> FieldInfo | None:
    """Walk models, lists, dicts and tagged unions along ``loc`` to the field's FieldInfo."""
    cur_model: Any = model
    cur_data = data
    field: FieldInfo | None = None
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if isinstance(part, int) or cur_model is None:
            cur_data = _value_at(cur_data, (part,))
            continue
        if not (isinstance(cur_model, type) and issubclass(cur_model, BaseModel)):
            # a tag inserted by a discriminated union ('wait', 'cast' ...): skip it
            continue
        field = cur_model.model_fields.get(part)
        if field is None:
            return None
        cur_data = _value_at(cur_data, (part,))
        cur_model = _inner_model(field.annotation, cur_data, parts)
    return field


def _inner_model(annotation: Any, data: Any, rest: list[Any]) -> Any:
    import typing

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _inner_model(args[0], data, rest)
    if origin in (list, tuple):
        if rest and isinstance(rest[0], int):
            idx = rest.pop(0)
            item = data[idx] if isinstance(data, list) and 0 <= idx < len(data) else None
            return _inner_model(args[0], item, rest)
        return None
    if origin is dict:
        if rest:
            key = rest.pop(0)
            item = data.get(key) if isinstance(data, dict) else None
            return _inner_model(args[1], item, rest)
        return None
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if not models:
            inner = [_inner_model(a, data, rest) for a in args if typing.get_origin(a) is not None]
            return next((m for m in inner if m is not None), None)
        if rest and isinstance(rest[0], str) and not any(rest[0] in m.model_fields for m in models):
            tag = rest.pop(0)  # the discriminator value pydantic puts in loc
            for m in models:
                lit = m.model_fields.get("type")
                if lit is not None and tag in _choices(lit.annotation):
                    return m
        if isinstance(data, dict) and "type" in data:
            for m in models:
                lit = m.model_fields.get("type")
                if lit is not None and data["type"] in _choices(lit.annotation):
                    return m
        return models[0]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None
