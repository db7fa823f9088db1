"""Path options and arguments whose name the file system cannot take, refused in the house's words.

Python's ``Path.exists()`` and ``is_dir()`` answer False for a path that is not there, but raise
for one with a name longer than the file system allows (ENAMETOOLONG): ``castrig run --data``,
``lots --data``, ``runs``, ``serve``, ``report RUN_DIR``, ``status RUN_DIR``, ``export --to``,
``explore --folder`` ... each ended in an OSError traceback (exit 1) for a 300-character name.
Every parameter typed as a path is looked at as click hands it over, before the command runs:
such a name is :class:`BadInput` (exit 2) naming the option or argument.
"""

from __future__ import annotations

import os
from typing import Any

from castrig.cli.typer_params import takes_paths
from castrig.errors import BadInput
from castrig.regular import NAME_TOO_LONG

#: Linux's limits: a file or folder name (NAME_MAX), a whole path (PATH_MAX less its NUL)
NAME_MAX_BYTES = 255
PATH_MAX_BYTES = 4095


def name_too_long(value: str | os.PathLike[str]) -> bool:
    raw = os.fsencode(value)
    return len(raw) > PATH_MAX_BYTES or any(len(part) > NAME_MAX_BYTES for part in raw.split(b"/"))


def _hint(p: Any) -> str:
    opts = [o for o in getattr(p, "opts", ()) if o.startswith("-")]
    return opts[0] if opts else str(getattr(p, "name", "") or "path").upper()


def guard_path_params(command: Any) -> None:
    """Wrap the value processing of every path parameter of ``command`` and its subcommands."""
    for p in getattr(command, "params", ()):
        if getattr(p, "_castrig_path_checked", False) or not takes_paths(p):
            continue
        process = p.process_value

        def checked(ctx: Any, value: Any, _process: Any = process, _p: Any = p) -> Any:
            for v in value if isinstance(value, (list, tuple)) else (value,):
                if isinstance(v, (str, os.PathLike)) and name_too_long(v):
                    text = os.fspath(v)
                    shown = text if len(text) <= 80 else f"{text[:60]}…{text[-15:]}"
                    raise BadInput(f"{_hint(_p)} {shown}: {NAME_TOO_LONG}", file=text, field=_hint(_p))
            return _process(ctx, value)

        p.process_value = checked
        p._castrig_path_checked = True
    for sub in getattr(command, "commands", {}).values():
        guard_path_params(sub)
