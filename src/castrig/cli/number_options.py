"""Number options refused in the house's words, before click parses anything.

typer's own checks answered ``castrig sim serve --tcp 70000`` with pydantic's voice ("Invalid
value for '--tcp': Input should be less than or equal to 65000"), ``--repeat abc`` with "Input
should be a valid integer, unable to parse string as an integer", and its range check compares
NaN false both ways (``--pitch-um nan``: "must be less than or equal to 100000"). Every option
that takes a whole number or a number is looked at here first: a value that is not one, not
finite, or outside the option's range is :class:`BadInput` (exit 2) naming the option, the value
and what is allowed. Light to import: every command passes through it.
"""

from __future__ import annotations

import math
from typing import Any

from castrig.cli.typer_params import has_own_parser, number_kind, number_range
from castrig.errors import BadInput


def number_options(command: Any) -> dict[str, tuple[Any, type]]:
    """Option string → (option, ``int`` or ``float``) for the options of ``command`` that take a
    number (flags, options of other types and those with a parser of their own are left as they are)."""
    out = {}
    for p in getattr(command, "params", ()):
        kind = number_kind(p)
        if has_own_parser(p):
            continue  # (an option with its own parser says itself what it takes: analyse --pixel-size)
        if kind is None or getattr(p, "is_flag", False) or getattr(p, "nargs", 1) != 1:
            continue
        out.update({opt: (p, kind) for opt in p.opts if opt.startswith("-")})
    return out


def ranged(p: Any) -> bool:
    return any(bound is not None for bound in number_range(p))


def allowed_range(p: Any, kind: type) -> str:
    """What ``p`` allows, in words: ``1 to 1000``, ``at least 0`` (without a range: ``a number``)."""
    lo, hi = number_range(p)
    if lo is not None and hi is not None:
        return f"{lo:g} to {hi:g}"
    if lo is not None or hi is not None:
        return f"at least {lo:g}" if lo is not None else f"at most {hi:g}"
    return "a whole number" if kind is int else "a number"


def refuse_bad_numbers(command: Any, argv: list[str]) -> None:
    """BadInput for the first number option in ``argv`` (``--opt V`` or ``--opt=V``, after the
    subcommand's names) whose value is not a number of its kind, not finite, or out of its range.

    ``argv`` is walked as click reads it: every option that takes a value takes the next word,
    whatever it looks like (``--operator --seed`` is the operator "--seed", not a seed), and
    ``--`` ends the options only where an option may stand."""
    i = 0
    while i < len(argv) and argv[i] in getattr(command, "commands", {}):
        command, i = command.commands[argv[i]], i + 1
    options = number_options(command)
    takes = _values_taken(command)
    k = i
    while k < len(argv):
        word = argv[k]
        if word == "--":  # the rest are arguments, whatever they look like
            return
        if word.startswith("--") and "=" in word:
            (name, value), k = word.split("=", 1), k + 1
        elif word in takes:
            name, value, k = word, (argv[k + 1] if k + 1 < len(argv) else None), k + 1 + takes[word]
        else:
            k += 1
            continue
        if name not in options or value is None:
            continue
        p, kind = options[name]
        allowed = allowed_range(p, kind)
        try:
            number = int(value) if kind is int else float(value)
        except ValueError:
            what = "not a whole number" if kind is int else "not a number"
            raise BadInput(f"{name} {value}: {what}" + (f" (allowed: {allowed})" if ranged(p) else ""), field=name) from None
        if not math.isfinite(number):
            if ranged(p):
                raise BadInput(f"{name} {value}: not a number castrig can use (allowed: {allowed})", field=name)
            continue  # (an option without a range says itself what it makes of it)
        lo, hi = number_range(p)
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            raise BadInput(f"{name} {value}: out of range (allowed: {allowed})", field=name)


def _values_taken(command: Any) -> dict[str, int]:
    """Option string → how many words it takes after it, for the options of ``command`` that
    take any (not flags or counts)."""
    out = {}
    for p in getattr(command, "params", ()):
        if getattr(p, "param_type_name", "") != "option" or getattr(p, "is_flag", False) or getattr(p, "count", False):
            continue
        out.update({opt: max(int(getattr(p, "nargs", 1) or 1), 1) for opt in (*p.opts, *getattr(p, "secondary_opts", ()))})
    return out
