"""What a parameter typer built takes -- a number (and its range), a path, its own parser -- read
the same whichever typer is installed.

typer up to 0.28 hands click a ``ParamType`` (``p.type``: ``IntRange``, ``FloatRange``, a
``Path``, a ``FuncParamType`` for a parser of our own); typer 0.29 keeps the annotation in
``p.type_descriptor`` and the range on ``p.min``/``p.max``, and coerces every value through a
pydantic TypeAdapter it builds per option at parse (~0.1 s of CPU in every ``castrig`` process:
pyproject.toml says why typer is held below 0.29). The number and path checks
(cli/number_options.py, cli/path_options.py) ask here, so neither depends on which.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any


def _click_type_names(p: Any) -> set[str]:
    """The class names along ``p.type``'s MRO (typer ≤ 0.28); empty on typer 0.29."""
    t = getattr(p, "type", None)
    return {c.__name__ for c in type(t).__mro__} if t is not None else set()


def _annotation(p: Any) -> Any:
    return getattr(getattr(p, "type_descriptor", None), "annotation", None)


def has_own_parser(p: Any) -> bool:
    """The option was given a parser (or a click type) of its own, which says itself what it takes."""
    info = getattr(getattr(p, "type_descriptor", None), "parameter_info", None)
    if info is not None:
        return getattr(info, "parser", None) is not None or getattr(info, "click_type", None) is not None
    return "FuncParamType" in _click_type_names(p)


def number_kind(p: Any) -> type | None:
    """``int`` or ``float`` for a parameter that takes a whole number or a number, else None
    (flags and booleans included)."""
    if getattr(p, "type_descriptor", None) is not None:
        ann = _annotation(p)
        kinds = (ann, *typing.get_args(ann))
        return int if int in kinds and bool not in kinds else float if float in kinds else None
    names = _click_type_names(p)
    return int if "IntParamType" in names else float if "FloatParamType" in names else None


def number_range(p: Any) -> tuple[float | None, float | None]:
    """(min, max) typer was given for a number parameter (None where unbounded)."""
    if getattr(p, "type_descriptor", None) is not None:
        return getattr(p, "min", None), getattr(p, "max", None)
    t = getattr(p, "type", None)
    return getattr(t, "min", None), getattr(t, "max", None)


def takes_paths(p: Any) -> bool:
    """The parameter is typed as a path (or a list of them)."""
    if getattr(p, "type_descriptor", None) is None:
        return bool({"Path", "TyperPath"} & _click_type_names(p))
    todo, seen = [_annotation(p)], set()
    while todo:
        a = todo.pop()
        if a is Path:
            return True
        if id(a) not in seen:
            seen.add(id(a))
            todo.extend(typing.get_args(a))
    return False
