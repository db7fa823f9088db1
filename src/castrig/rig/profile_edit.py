"""Write commissioned values (RH loop gains, a camera's pixel size) into a profile file.

The operator's file keeps everything it had: comments, key order, alignment, flow mappings
(``camera: {model: sim, pixel_size_um: 0.25}``). Only the value tokens of the keys set are
replaced; a missing key is inserted beside its siblings (block style: a line above the first
sibling, at its indentation; flow style: ``, key: value`` before the closing brace), a missing
section is appended at the end. Positions come from PyYAML's composer (the exact source marks of
every node), so no YAML is re-dumped. The new text is validated as a profile before it replaces
the file, atomically (temp file, fsync, rename): a crash leaves the old file or the new one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import yaml

from castrig.errors import BadInput
from castrig.atomic import atomic_write_bytes


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = f"{value:.6g}"
        return text if any(c in text for c in ".ein") else text + ".0"
    return str(value)


def _compose(text: str, file: str) -> yaml.MappingNode:
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise BadInput(f"{file}: not YAML ({exc})", file=file) from None
    if not isinstance(root, yaml.MappingNode):
        raise BadInput(f"{file}: expected a mapping of fields at the top level", file=file)
    return root


def _find(mapping: yaml.MappingNode, key: str) -> yaml.Node | None:
    for k, v in mapping.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v
    return None


def set_value(text: str, keys: tuple[str, ...], value: object, *, file: str = "<profile>") -> str:
    """``text`` with ``keys`` (e.g. ``("control", "kp")``) set to ``value``, everything else as it was."""
    node: yaml.Node = _compose(text, file)
    for depth, key in enumerate(keys):
        assert isinstance(node, yaml.MappingNode)
        child = _find(node, key)
        last = depth == len(keys) - 1
        if child is None:
            return _insert(text, node, keys[depth:], value, file, top=depth == 0)
        if last:
            if not isinstance(child, yaml.ScalarNode):
                raise BadInput(f"{file}: {'.'.join(keys)} is not a single value", file=file, field=".".join(keys))
            a, b = child.start_mark.index, child.end_mark.index
            key_end = next(k.end_mark.index for k, v in node.value if v is child and isinstance(k, yaml.ScalarNode)
                           and k.value == key)
            if a < key_end or text[a:a + 1] == "&":
                # an anchored value (&px 0.25), or an alias of one (*px: the node found lies before
                # its key): replacing it dropped the anchor, and every *px after it was undefined
                # (a ComposerError traceback), or would change every field that refers to it
                how = "an alias (*name) of another field's value" if a < key_end else "a YAML anchor (&name) other fields may refer to"
                raise BadInput(f"{file}: {'.'.join(keys)} is written as {how}; castrig writes plain values only "
                               "(allowed: write the value out in that field)", file=file, field=".".join(keys))
            return text[:a] + _fmt(value) + text[b:]
        if not isinstance(child, yaml.MappingNode):
            raise BadInput(f"{file}: {'.'.join(keys[:depth + 1])} is not a mapping", file=file,
                           field=".".join(keys[:depth + 1]))
        node = child
    raise AssertionError("unreachable")


def _nested(keys: tuple[str, ...], value: object, indent: int, step: int = 2) -> str:
    lines = []
    for i, key in enumerate(keys[:-1]):
        lines.append(" " * (indent + i * step) + f"{key}:")
    lines.append(" " * (indent + (len(keys) - 1) * step) + f"{keys[-1]}: {_fmt(value)}")
    return "\n".join(lines) + "\n"


def _insert(text: str, mapping: yaml.MappingNode, keys: tuple[str, ...], value: object, file: str, top: bool) -> str:
    if mapping.flow_style:
        if len(keys) > 1:
            inner = "{" + ", ".join(f"{k}: " for k in keys[1:]).rstrip(": ") + f": {_fmt(value)}" + "}" * (len(keys) - 1)
            item = f"{keys[0]}: {inner}"
        else:
            item = f"{keys[0]}: {_fmt(value)}"
        close = text.rindex("}", 0, mapping.end_mark.index)
        sep = ", " if mapping.value else ""
        return text[:close] + sep + item + text[close:]
    if top or not mapping.value:
        tail = "" if text.endswith("\n") else "\n"
        return text + tail + "\n" + _nested(keys, value, 0)
    first_key = mapping.value[0][0]
    line_start = text.rfind("\n", 0, first_key.start_mark.index) + 1
    return text[:line_start] + _nested(keys, value, first_key.start_mark.column) + text[line_start:]


def write_profile_values(path: str | Path, updates: Mapping[tuple[str, ...], object]) -> str:
    """Set every ``keys -> value`` of ``updates`` in the profile file at ``path``; validate the
    result as a profile; replace the file atomically. Returns the new text."""
    from castrig.inputs import load_model
    from castrig.rig.profile import Profile

    path = Path(path)
    with _write_lock(path):
        text = path.read_text()
        for keys, value in updates.items():
            text = set_value(text, keys, value, file=str(path))
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:  # (what set_value could not foresee: refused, the file untouched)
            raise BadInput(f"{path}: the profile would not be YAML after the change ({exc}); nothing written",
                           file=str(path)) from None
        load_model(Profile, path, data)  # BadInput naming the field if the new value is out of range
        atomic_write_bytes(path, text.encode())
    return text


def check_writable(path: str | Path, keys: Iterator[tuple[str, ...]] | list[tuple[str, ...]]) -> None:
    """BadInput now if :func:`write_profile_values` could not set ``keys`` in the profile at
    ``path`` (a value written as a YAML anchor or alias, a section that is a list): checked before
    a step test of minutes or hours, whose result --write would then have failed to keep."""
    path = Path(path)
    text = path.read_text()
    for k in keys:
        text = set_value(text, k, 0.0, file=str(path))


@contextmanager
def _write_lock(path: Path) -> Iterator[None]:
    """The profile file locked (``flock``) from the read of its text to the rename of the new
    one: `tune rh --write` and `calibrate camera --write` on one profile at once each read the
    old text and the last to rename dropped the other's value. The lock is on the file itself
    (no lock file left beside the operator's profile); a writer that waited re-opens the file
    when the one before it renamed a new file into its place."""
    import fcntl
    import os

    while True:
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                yield
                return
        finally:
            os.close(fd)  # (releases the lock)
