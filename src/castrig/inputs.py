"""Load a YAML file into a pydantic model, or fail with one clear sentence.

The sentence names the file, the field (``steps[2].setpoint_rh_pct``) and the allowed range or
choices, taken from the model itself, so the message and the validation can never disagree.

Every recipe, profile, filter, co-culture and explore file comes through :func:`read_yaml`, which
also guards against hostile files before anything else sees them (issue 15): at most
:data:`MAX_YAML_BYTES` of text, collections nested at most :data:`MAX_DEPTH` deep, aliases that
expand to at most :data:`MAX_NODES` nodes and :data:`MAX_CHARS` characters (no "billion laughs"),
no alias into its own anchor (no cyclic data), no key given twice in one mapping (YAML would
keep the last one silently), and no control characters in any text (NUL breaks
the PostgreSQL push of a run; tab and newline are allowed where text may span lines).
Values repeated back in a message are cut to :data:`MAX_SHOWN` characters.

Messages are in our words, not pydantic's (issue 20): ``steps[3].rate_ml_min = '5 min': must be a
number in mL/min, not text (allowed: > 0; <= 50); line 9, column 45`` — the unit from the field's
``json_schema_extra``, "did you mean" for a misspelt field, step type or choice, and the line and
column of the offending value, from the marks of the YAML nodes :func:`read_yaml` keeps for the
last few documents it read (:func:`yaml_position`).
"""

from __future__ import annotations

import difflib
import math
import os
import re
import stat
import unicodedata
from collections import OrderedDict
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from castrig.errors import BadInput

M = TypeVar("M", bound=BaseModel)

MAX_YAML_BYTES = 1_000_000  # a recipe is a few KB; the biggest profile a few tens of KB
MAX_DEPTH = 64  # nested mappings/lists; ours need fewer than 8
MAX_NODES = 100_000  # nodes after alias expansion
MAX_CHARS = 4_000_000  # scalar characters after alias expansion
MAX_ALIASES = 1_000
MAX_SHOWN = 80  # characters of a value repeated back in a message
MAX_MESSAGE_LINES = 12

#: Unicode bidi controls that reorder the text around them (category Cf): the embeddings and
#: overrides LRE RLE PDF LRO RLO (U+202A-U+202E) and the isolates LRI RLI FSI PDI (U+2066-U+2069).
#: The marks LRM/RLM/ALM stay allowed: they only steer neutral characters in right-to-left text.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

#: mapping keys whose text must stay on one line (names, labels, ids, who did it)
SINGLE_LINE_KEYS = ("name", "label", "operator", "id", "grade", "lot", "title")


def short(value: Any, limit: int = MAX_SHOWN) -> str:
    """``repr(value)`` cut to ``limit`` characters (a hostile value must not flood a message)."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a value that cannot be shown is shown by its type
        text = f"<{type(value).__name__}>"
    return _cut(text, limit)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(text)} characters)"


class _Refused(yaml.YAMLError):
    """A document refused while read; ``value``: the scalar refused (shown, cut), whose field
    :func:`parse_yaml` names from ``mark``; ``invalid``: the YAML itself is wrong (not a
    value it reads in a way nobody meant)."""

    def __init__(self, problem: str, mark: Any = None, *, value: str | None = None, invalid: bool = True):
        self.problem = problem
        self.problem_mark = mark
        self.value = value
        self.invalid = invalid
        self.field: str | None = None  # (a list with too many entries: its field)
        super().__init__(problem)

    def sentence(self) -> str:
        said = f"not valid YAML: {self.problem}" if self.invalid else self.problem
        return f"{self.value}: {said}" if self.value is not None else said


def _scalar_problem(exc: BaseException) -> str:
    """What a constructor's error says, without Python's advice on its own limits."""
    return (str(exc) or type(exc).__name__).split("; use sys.set_int_max_str_digits")[0]


class _GuardedLoader(yaml.SafeLoader):
    """The safe loader with budgets: nesting depth, alias expansion (nodes and characters),
    alias count; an alias into a collection that is not finished yet (a cycle) is refused."""

    def __init__(self, stream: Any, limits: dict[tuple[str, ...], int] | None = None):
        super().__init__(stream)
        #: most entries of the list at each field path (``("regions",)``, ``("steps", "[]", "x")``):
        #: refused at the first entry too many, before the rest of the file is even parsed
        self._limits = limits or {}
        self._path: list[str | int | None] = []
        self._depth = 0
        self._nodes = 0
        self._chars = 0
        self._aliases = 0
        self._sizes: dict[str, tuple[int, int]] = {}

    def _spend(self, nodes: int, chars: int, mark: Any) -> None:
        self._nodes += nodes
        self._chars += chars
        # ("after expanding aliases" only where there are some: a 20 000-step recipe has none)
        how = " after expanding aliases" if self._aliases else ""
        if self._nodes > MAX_NODES:
            raise _Refused(f"too many values: more than {MAX_NODES}{how} (allowed: at most {MAX_NODES})", mark)
        if self._chars > MAX_CHARS:
            raise _Refused(f"too much text: more than {MAX_CHARS} characters{how} (allowed: at most {MAX_CHARS})", mark)

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        """A scalar the safe constructor cannot build (an integer of 5000 digits, a date like
        2026-02-30) is refused with its line and column: the bare message named no field."""
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:
            if isinstance(exc, yaml.YAMLError):
                raise
            value = short(node.value) if isinstance(node, yaml.ScalarNode) else None
            raise _Refused(_scalar_problem(exc), node.start_mark, value=value) from None

    def construct_yaml_int(self, node: Any) -> int:
        """An integer both YAML versions read alike: ``010`` is 8 to YAML 1.1 (PyYAML, castrig)
        but 10 to YAML 1.2 (the JSON schema editors), and ``1:30`` is 90 to YAML 1.1 but text to
        YAML 1.2: ``duration_s: 010`` ran 8 s. Refused, with both readings."""
        text = str(node.value).replace("_", "").lstrip("+-")
        self._refuse_grouped(node, super().construct_yaml_int)
        if ":" in text:
            raise _Refused(f"a base-60 number (YAML 1.1 reads it as {super().construct_yaml_int(node)}, YAML 1.2 "
                           "as text) (allowed: one number, e.g. seconds for a duration; in quotes for text)",
                           node.start_mark, value=short(node.value), invalid=False)
        value = super().construct_yaml_int(node)
        if text.startswith("0b"):
            raise _Refused(f"a binary number (YAML 1.1 reads it as {value}, YAML 1.2 as text) (allowed: the number in "
                           f"decimal, {value}; in quotes for text)", node.start_mark, value=short(node.value), invalid=False)
        if len(text) > 1 and text[0] == "0" and text[1] not in "xb" and value != int(str(node.value).replace("_", ""), 10):
            raise _Refused(f"a number with a leading zero (YAML 1.1 reads it as octal {value}, YAML 1.2 as "
                           f"{int(str(node.value).replace('_', ''), 10)}) (allowed: the number without leading zeros; "
                           "in quotes for text)", node.start_mark, value=short(node.value), invalid=False)
        return value

    def construct_yaml_float(self, node: Any) -> float:
        """A base-60 float (``1:30.5``, 90.5 to YAML 1.1, text to YAML 1.2) is refused as
        :meth:`construct_yaml_int` refuses ``1:30``."""
        self._refuse_grouped(node, super().construct_yaml_float)
        if ":" in str(node.value):
            raise _Refused(f"a base-60 number (YAML 1.1 reads it as {super().construct_yaml_float(node):g}, YAML 1.2 "
                           "as text) (allowed: one number; in quotes for text)",
                           node.start_mark, value=short(node.value), invalid=False)
        return super().construct_yaml_float(node)

    @staticmethod
    def _refuse_grouped(node: Any, construct: Any) -> None:
        """``1_800`` is 1800 to YAML 1.1 but text to YAML 1.2 (a JSON schema editor calls the
        recipe wrong, castrig ran it), and ``1_0.5`` was 10.5: digits grouped with ``_`` are
        refused, naming what to write instead (a base-60 ``1_0:30`` is said as base 60)."""
        written = str(node.value)
        if "_" not in written or ":" in written:
            return
        value = construct(node)
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        raise _Refused(f"a number with '_' between its digits (YAML 1.1 reads it as {shown}, YAML 1.2 as text) "
                       f"(allowed: the digits alone, {shown}; in quotes for text)", node.start_mark,
                       value=short(node.value), invalid=False)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        """A key given twice in one mapping is refused (issue: ``duration_s: 300, duration_s:
        30000`` ran 30000 s, the last one silently winning). Checked on the mapping's own keys,
        before ``<<`` merges are flattened in: a key that overrides a merged one is not a repeat."""
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node)
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable: the safe constructor says so itself
                    continue
                if first is not None:
                    raise _Refused(f"duplicate key {short(key)}: given again here, first on line {first.line + 1} "
                                   "(allowed: each key once in a mapping; the earlier value would be silently dropped)",
                                   key_node.start_mark)
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _Refused(f"too many aliases (allowed: at most {MAX_ALIASES})", event.start_mark)
            size = self._sizes.get(event.anchor)
            if size is None and event.anchor in self.anchors:
                raise _Refused(f"alias *{_cut(event.anchor, 40)} refers to a collection that contains it (a cycle)", event.start_mark)
            if size is not None:
                self._spend(size[0], size[1], event.start_mark)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f"nested too deep (allowed: at most {MAX_DEPTH} levels of lists and mappings)", event.start_mark)
        before = (self._nodes, self._chars)
        self._spend(1, len(event.value) if isinstance(event, yaml.ScalarEvent) else 0, event.start_mark)
        if self._limits:
            self._count(parent, index, event)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if self._limits:
                self._path.pop()
        if event.anchor is not None:
            self._sizes[event.anchor] = (self._nodes - before[0], self._chars - before[1])
        return node


    def _count(self, parent: Any, index: Any, event: Any) -> None:
        """Note where the node about to be composed sits (its field path) and refuse an entry
        of a list beyond its field's limit: a co-culture of 20 000 regions (2 allowed), just
        under the size limit, was parsed whole (4-12 s of PyYAML) before the model refused it."""
        if isinstance(parent, yaml.SequenceNode):
            steps = [k for k in self._path if k is not None]
            limit = self._limits.get(tuple("[]" if isinstance(k, int) else k for k in steps))
            if limit is not None and isinstance(index, int) and index >= limit:
                field = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in steps).lstrip(".")
                refused = _Refused(f"{field}: more than {limit} entries (allowed: at most {limit})", event.start_mark,
                                   invalid=False)
                refused.field = field
                raise refused
            self._path.append(index if isinstance(index, int) else None)
        elif isinstance(parent, yaml.MappingNode) and isinstance(index, yaml.ScalarNode):
            self._path.append(str(index.value))
        else:  # the document, or a mapping's key
            self._path.append(None)


def read_yaml(path: str | Path, limits: dict[tuple[str, ...], int] | None = None) -> Any:
    """The YAML document in ``path`` as plain data (safe types only), or :class:`BadInput`;
    ``limits``: most entries of a list by field path (:func:`list_limits`)."""
    return parse_yaml(path, read_yaml_bytes(path), limits)


def list_limits(model: type[BaseModel], prefix: tuple[str, ...] = (), depth: int = 0) -> dict[tuple[str, ...], int]:
    """The ``max_length`` of each list field of ``model`` (and of the models in it), by its
    path in a file (``("regions",)``; a list's entries are ``"[]"``): what :func:`read_yaml`
    refuses as it parses, before a file's thousands of entries are parsed and validated."""
    import typing

    out: dict[tuple[str, ...], int] = {}
    if depth > 6:
        return out
    for name, info in model.model_fields.items():
        key = prefix + (info.alias or name,)
        limit = next((m.max_length for m in info.metadata if getattr(m, "max_length", None) is not None), None)
        if limit is not None and typing.get_origin(info.annotation) is list:
            out[key] = int(limit)
        for inner in _models_in(info.annotation):
            out.update(list_limits(inner[0], key + inner[1], depth + 1))
    return out


def _models_in(annotation: Any) -> list[tuple[type[BaseModel], tuple[str, ...]]]:
    """The pydantic models an annotation holds (itself, in an Optional, as a list's entries),
    with the path step to them (``()``, or ``("[]",)`` for a list's entries)."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, ())]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:  # (a discriminated union of steps)
        return _models_in(args[0])
    if origin is list and args:
        return [(m, ("[]",) + step) for m, step in _models_in(args[0])]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return [found for a in args for found in _models_in(a)]
    return []


def read_yaml_bytes(path: str | Path) -> bytes:
    """The bytes of the YAML input ``path``, read once (a pipe, ``<(cat recipe.yaml)``, cannot be
    read twice), bounded; :class:`BadInput` if missing, unreadable, too big or not a file to read
    (:func:`_open_input`)."""
    path = Path(path)
    try:
        with _open_input(path) as fh:
            raw = fh.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file", file=str(path)) from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {_cut(str(exc), 200)}", file=str(path)) from None
    if len(raw) > MAX_YAML_BYTES:
        raise BadInput(f"{path}: too big for a YAML input (allowed: at most {MAX_YAML_BYTES} bytes)", file=str(path))
    return raw


def _open_input(path: Path) -> Any:
    """``path`` opened to be read, never waiting: a named pipe (FIFO) with no writer made
    ``castrig check`` and ``run`` wait for ever. A regular file is read, and so is the shell's
    pipe (``<(cat recipe.yaml)``, ``/dev/fd/N``: an anonymous pipe, whose writer is there); a
    named pipe, a device, a socket or a folder is :class:`BadInput`. Looked at before it is
    opened (a serial port is not touched), and again once open, without blocking."""
    _refuse_non_regular(path, os.stat(path))
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        _refuse_non_regular(path, os.fstat(fd))  # (swapped for a pipe since it was looked at)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _refuse_non_regular(path: Path, st: os.stat_result) -> None:
    """BadInput unless ``st`` is a regular file's or an anonymous pipe's."""
    if stat.S_ISREG(st.st_mode) or (stat.S_ISFIFO(st.st_mode) and st.st_dev == _pipe_device()):
        return
    kind = next((k for test, k in _KINDS if test(st.st_mode)), "a file of another kind")
    raise BadInput(f"{path}: not a regular file but {kind} (allowed: a YAML file, or the shell's <(cat FILE))",
                   file=str(path))


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO): castrig would wait on it for a writer"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _pipe_device() -> int:
    """The device number of the kernel's anonymous pipes (pipefs): a ``/dev/fd/N`` pipe has it,
    a named pipe the file system's it is in."""
    r, w = os.pipe()
    try:
        return os.fstat(r).st_dev
    finally:
        os.close(r)
        os.close(w)


_GuardedLoader.add_constructor("tag:yaml.org,2002:int", _GuardedLoader.construct_yaml_int)
_GuardedLoader.add_constructor("tag:yaml.org,2002:float", _GuardedLoader.construct_yaml_float)

# ``2.4e9`` and ``1e-6`` are numbers, as YAML 1.2, JSON and the JSON schema editors use read them;
# PyYAML (YAML 1.1) reads a float only with a dot and a signed exponent, so they came in as text
# (and a quoted number, text indeed, could not be told from them)
_GuardedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def parse_yaml(path: str | Path, raw: bytes, limits: dict[tuple[str, ...], int] | None = None) -> Any:
    """The YAML document ``raw`` (read from ``path``, named in messages) as plain data, or
    :class:`BadInput`; ``limits``: see :func:`read_yaml`."""
    path = Path(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: cannot read: not UTF-8 text ({_cut(str(exc), 120)})", file=str(path)) from None
    stray = text.find(_BOM, 1)
    if stray > 0:  # (one at the very start is the file's own, and YAML's reader drops it)
        raise _not_yaml(path, text, yaml.reader.ReaderError(str(path), stray, ord(_BOM), "unicode", "a byte order mark"),
                        limits)
    loader = node = None
    try:
        loader = _GuardedLoader(text, limits)  # the reader refuses unprintable characters right here
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
        nodes = loader._nodes
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = _loc_of(node, mark) if isinstance(exc, _Refused) and exc.value is not None and mark else None
        if loc:  # a value refused: its field, as a model's refusal names it
            raise BadInput(f"{path}: {_loc(loc)} = {_cut(exc.sentence(), 400)}; line {mark.line + 1}, column {mark.column + 1}",
                           file=str(path), field=_loc(loc)) from None
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        if isinstance(exc, _Refused):
            raise BadInput(f"{path}{where}: {_cut(exc.sentence(), 400)}", file=str(path), field=exc.field) from None
        raise _not_yaml(path, text, exc, limits) from None
    except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
        # a scalar the safe constructor cannot build (a date like 2026-02-30, an int of 5000 digits)
        problem = _scalar_problem(exc)
        raise BadInput(f"{path}: not valid YAML: {_cut(problem, 200)}", file=str(path)) from None
    finally:
        if loader is not None:
            loader.dispose()
    if isinstance(data, (dict, list)) and node is not None and nodes <= _NODES_MAX:
        _remember_nodes(data, node)
    check_text_fields(path, data)
    return data


#: Characters YAML reads as line breaks that nobody sees as one (NEL, the Unicode line and paragraph
#: separators): PyYAML said "could not find expected ':'" of ``name: a\u2028b``.
_ODD_BREAKS = "\x85\u2028\u2029"
#: A byte order mark: YAML's reader takes one anywhere, as part of a key or a value, where nobody
#: sees it: ``\ufeffgrade`` was "is not a known field; did you mean 'grade'?".
_BOM = "\ufeff"


def _not_yaml(path: Path, text: str, exc: yaml.YAMLError, limits: dict[tuple[str, ...], int] | None) -> BadInput:
    """PyYAML's refusal of ``text`` (read from ``path``) as one line that names the file, the field
    (when the document, the refused characters made spaces, can be read that far) and what is
    allowed. A NUL or another control character came out as PyYAML's own two lines: 'unacceptable
    character #x0000: special characters are not allowed / in "<unicode string>", position 8'; a
    tab as "found character '\\t' that cannot start any token"; neither named the field."""
    mark = getattr(exc, "problem_mark", None)
    index = mark.index if mark is not None else getattr(exc, "position", None)
    odd = next((i for i, ch in enumerate(text) if ch in _ODD_BREAKS), None)
    tab = "'\\t'" in str(getattr(exc, "problem", "")) or "tab character" in str(getattr(exc, "problem", ""))
    if isinstance(exc, yaml.reader.ReaderError) and isinstance(index, int) and text[index] == _BOM:
        problem = ("byte order mark U+FEFF, invisible, inside the file (two files joined?) (allowed: one at the very start "
                   "of the file only)")
    elif isinstance(exc, yaml.reader.ReaderError) and isinstance(index, int):
        ch = text[index]
        problem = f"control character U+{ord(ch):04X} (allowed: printable text)"
    elif odd is not None and (index is None or odd <= index):
        index = odd
        problem = (f"line separator U+{ord(text[odd]):04X}, a line break to YAML that no editor shows as one "
                   "(allowed: printable text on one line, ordinary line breaks between lines)")
    elif tab:
        problem = "a tab (allowed: spaces to indent and to separate; a tab only inside a quoted value)"
    else:
        problem = f"not valid YAML: {_cut(str(getattr(exc, 'problem', None) or type(exc).__name__), 200)}"
    problem = problem if problem.startswith("not valid YAML: ") else f"not valid YAML: {problem}"
    if not isinstance(index, int):
        return BadInput(f"{path}: {problem}", file=str(path))
    before = text[:index]
    line, column = before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1
    field = _yaml_field_at(text, index, limits)
    named = f": {field}" if field else ""
    return BadInput(f"{path}{named} (line {line}, column {column}): {problem}", file=str(path), field=field)


def _yaml_field_at(text: str, index: int, limits: dict[tuple[str, ...], int] | None) -> str | None:
    """The field (``steps[1].type``) whose key or value holds character ``index`` of ``text``, read
    with every character PyYAML refuses, every odd line break and every tab made a space (the
    same budgets as :func:`parse_yaml`); else the key written on that line; else None."""
    clean = yaml.reader.Reader.NON_PRINTABLE.sub(" ", text).translate({ord(ch): " " for ch in _ODD_BREAKS + _BOM + "\t"})
    loader = None
    try:
        loader = _GuardedLoader(clean, limits)
        node = loader.get_single_node()
        loc = _loc_around(node, index) if node is not None else None
        if loc:
            return _loc(loc)
    except (yaml.YAMLError, RecursionError, MemoryError, ValueError):
        pass
    finally:
        if loader is not None:
            loader.dispose()
    start, end = clean.rfind("\n", 0, index) + 1, clean.find("\n", index)
    key = re.match(r"\s*(?:-\s+)*([A-Za-z_][\w.-]*)\s*:", clean[start:] if end < 0 else clean[start:end])
    return key.group(1) if key else None


def _loc_around(node: Any, index: int, loc: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    """The loc of the innermost key or value of ``node`` whose text holds character ``index``."""
    def holds(n: Any) -> bool:
        return n.start_mark.index <= index < max(n.end_mark.index, n.start_mark.index + 1)

    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            name = k.value if isinstance(k, yaml.ScalarNode) else "?"
            if holds(k):
                return loc + (name,)
            if holds(v):
                return _loc_around(v, index, loc + (name,)) or loc + (name,)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            if holds(v):
                return _loc_around(v, index, loc + (i,)) or loc + (i,)
    return None


def _loc_of(node: Any, mark: Any, loc: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    """The loc (``("steps", 0, "duration_s")``) of the scalar at ``mark`` in the node tree
    ``node`` (a key: its own loc), or None."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            name = k.value if isinstance(k, yaml.ScalarNode) else "?"
            if k.start_mark.index == mark.index or v.start_mark.index == mark.index and isinstance(v, yaml.ScalarNode):
                return loc + (name,)
            found = _loc_of(v, mark, loc + (name,))
            if found is not None:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            if v.start_mark.index == mark.index and isinstance(v, yaml.ScalarNode):
                return loc + (i,)
            found = _loc_of(v, mark, loc + (i,))
            if found is not None:
                return found
    return None


#: The node trees (with their marks) of the last documents read, by the identity of their data.
_NODES: "OrderedDict[int, tuple[Any, yaml.Node]]" = OrderedDict()
_NODES_KEPT = 8
_NODES_MAX = 20_000  # a document with more nodes is not kept (a recipe has a few hundred)


def _remember_nodes(data: Any, node: yaml.Node) -> None:
    _NODES[id(data)] = (data, node)  # holding ``data`` keeps its id from being reused
    _NODES.move_to_end(id(data))
    while len(_NODES) > _NODES_KEPT:
        _NODES.popitem(last=False)


def yaml_position(data: Any, loc: tuple[Any, ...], *, key: bool = False) -> tuple[int, int] | None:
    """(line, column), 1-based, of the value at ``loc`` in the YAML document ``data`` was read
    from (of its key when ``key``); the nearest enclosing value when ``loc`` is not in the file
    (a field that is missing); ``None`` when ``data`` did not come from :func:`read_yaml`."""
    entry = _NODES.get(id(data))
    if entry is None or entry[0] is not data:
        return None
    node: yaml.Node = entry[1]
    mark = node.start_mark
    for part in loc:
        nxt: yaml.Node | None = None
        key_node: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                    key_node, nxt = k, v
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            nxt = node.value[part]
        if nxt is None:
            break
        node = nxt
        mark = key_node.start_mark if key and key_node is not None and part == loc[-1] else node.start_mark
    return mark.line + 1, mark.column + 1


def _quoted(data: Any, loc: tuple[Any, ...]) -> bool | None:
    """Whether the scalar at ``loc`` was written in quotes (None: not known, not from a file)."""
    entry = _NODES.get(id(data))
    if entry is None or entry[0] is not data:
        return None
    node: Any = entry[1]
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
        else:
            return None
    return node.style in ("'", '"') if isinstance(node, yaml.ScalarNode) else None


def _where(data: Any, loc: tuple[Any, ...], *, key: bool = False) -> str:
    pos = yaml_position(data, loc, key=key)
    return f"; line {pos[0]}, column {pos[1]}" if pos else ""


def check_text(value: str, field: str, *, file: str | Path | None = None, multiline: bool = False,
               max_length: int | None = None) -> str:
    """``value`` if it is printable text, else :class:`BadInput` naming ``field`` (and ``file``).

    Refused: control characters (NUL, ESC, DEL, C1 …) and lone surrogates — they break the
    PostgreSQL push and terminals; tab and newline are allowed when ``multiline``; and the bidi
    controls of :data:`BIDI_CONTROLS`, which make a name show as another (``demo\u202egpj.exe``). The single
    validation point for free text from the command line too (``--operator``).
    """
    field = _cut(field, MAX_SHOWN)
    where = f"{file}: {field}" if file is not None else field
    if not isinstance(value, str):
        raise BadInput(f"{where} = {short(value)}: expected text", file=None if file is None else str(file), field=field)
    if max_length is not None and len(value) > max_length:
        raise BadInput(f"{where} = {short(value)}: too long (allowed: at most {max_length} characters)",
                       file=None if file is None else str(file), field=field)
    for i, ch in enumerate(value):
        if multiline and ch in "\t\n":
            continue
        if ch in BIDI_CONTROLS:
            allowed = "text without bidi overrides, embeddings or isolates"
            raise BadInput(f"{where} = {short(value)}: bidi control character U+{ord(ch):04X} "
                           f"({unicodedata.name(ch)}) at position {i}: it reorders how the text around it is "
                           f"shown (allowed: {allowed})", file=None if file is None else str(file), field=field)
        if 0xDC80 <= ord(ch) <= 0xDCFF:  # a byte Python could not decode (surrogateescape): argv in another encoding
            raise BadInput(f"{where} = {short(value)}: byte 0x{ord(ch) - 0xDC00:02X} at position {i} is not "
                           f"{_argv_encoding()} text (allowed: printable text; typed in a Latin-1 terminal, or castrig "
                           "run under the C locale with PYTHONUTF8=0? use a UTF-8 locale, e.g. LANG=C.UTF-8)",
                           file=None if file is None else str(file), field=field)
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cs"):
            allowed = "printable text; tab and newline allowed" if multiline else "printable text on one line"
            raise BadInput(f"{where} = {short(value)}: control character U+{ord(ch):04X} at position {i} (allowed: {allowed})",
                           file=None if file is None else str(file), field=field)
    return value


def _argv_encoding() -> str:
    """The encoding the command line and file names are read in ('utf-8'; 'ascii' under LC_ALL=C
    with PYTHONUTF8=0), as people name it."""
    import sys

    name = sys.getfilesystemencoding()
    return "UTF-8" if name.replace("-", "").lower() == "utf8" else name.upper()


def check_text_fields(path: str | Path, data: Any) -> None:
    """Refuse control characters in every key and string of ``data`` (see :func:`check_text`),
    and binary values (``!!binary``: pydantic would take bytes as text, unchecked)."""
    stack: list[tuple[tuple[Any, ...], Any, bool]] = [((), data, True)]
    while stack:
        loc, node, multiline = stack.pop()
        if isinstance(node, str):
            try:
                check_text(node, _loc(loc), file=path, multiline=multiline)
            except BadInput as exc:
                is_key = bool(loc) and str(loc[-1]).endswith(" (a key)")
                where = _where(data, loc[:-1] if is_key else loc, key=is_key)
                raise BadInput(f"{exc}{where}", file=exc.file, field=exc.field) from None
        elif isinstance(node, (bytes, bytearray)):
            raise BadInput(f"{path}: {_cut(_loc(loc), MAX_SHOWN)}: binary data (!!binary) is not accepted (allowed: text, numbers, lists, mappings)"
                           + _where(data, loc), file=str(path), field=_loc(loc))
        elif isinstance(node, dict):  # pushed in reverse: the first problem in the file is reported
            for key, value in reversed(list(node.items())):
                single = isinstance(key, str) and (key.lower() in SINGLE_LINE_KEYS or key.lower().endswith(("_id", "_name")))
                stack.append((loc + (key,), value, not single))
                if isinstance(key, (str, bytes, bytearray)):
                    stack.append((loc + (f"{short(key)} (a key)",), key, False))
        elif isinstance(node, (list, tuple, set, frozenset)):
            for i, value in reversed(list(enumerate(node))):
                stack.append((loc + (i,), value, True))


def load_model(model: type[M], path: str | Path, data: Any = None) -> M:
    """Validate ``data`` (default: the YAML in ``path``) as ``model``."""
    path = Path(path)
    if data is None:
        data = read_yaml(path, list_limits(model))
    else:
        check_text_fields(path, data)
    if not isinstance(data, dict):
        got = {type(None): "an empty file", list: "a list", str: "text"}.get(type(data), type(data).__name__)
        raise BadInput(f"{path}: expected a mapping of fields at the top level (`name: …` lines), got {got}"
                       + _where(data, ()), file=str(path))
    _reject_bools(model, path, data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for key, kind in getattr(model, "OTHER_KINDS", {}).items():
            if key in data:  # a field by which the file is another kind: one line, not a field-by-field list
                raise BadInput(f"{path}: this is {kind}, not a {model.__name__.lower()}", file=str(path)) from None
        first = _loc(_strip_tags(tuple(_errors_of_the_written_shape(exc.errors(), data)[0]["loc"]), data))
        raise BadInput(format_validation_error(path, model, exc, data), file=str(path), field=first) from None


def format_validation_error(path: Path, model: type[BaseModel], exc: ValidationError, data: Any) -> str:
    """One line per problem: file, field, value, what is wrong in our words, what is allowed, and
    where in the file (``; line 9, column 45``)."""
    lines = []
    errors = _errors_of_the_written_shape(exc.errors(), data)
    for err in errors:
        loc = _strip_tags(tuple(err["loc"]), data)
        field = _loc(loc)
        value = _value_at(data, loc)
        info = _field_at(model, loc, data) if loc else None
        allowed = describe_field(info) if info is not None else ""
        # a whole mapping or list repeated back is noise: the message says what is wrong with it
        got = "" if value is _MISSING or isinstance(value, dict) else f" = {short(value)}"
        at_key = False
        kind = err["type"]
        if kind == "extra_forbidden":
            known = list(getattr(_model_at(model, loc[:-1], data), "model_fields", {}))
            hint = _did_you_mean(loc[-1] if loc else "", known)
            msg = "is not a known field" + hint
            at_key = True
            # (the range of a field of that name in another kind of device is no help: "width_px:
            # is not a known field (allowed: 64 to 4096)" for an opencv camera. Without a close
            # name to suggest, the known ones)
            allowed = ", ".join(known) if not hint and 0 < len(known) <= 12 else ""
        elif kind in ("union_tag_not_found", "union_tag_invalid"):
            key = str((err.get("ctx") or {}).get("discriminator", "type")).strip("'")
            tags = _tags(model, loc, data, key)
            field = f"{field}.{key}"
            tag = value.get(key) if isinstance(value, dict) else None
            got = "" if tag is None else f" = {short(tag)}"
            msg = ("is required" if tag is None else f"is not a known {key}" + _did_you_mean(tag, tags)) + (
                f" (allowed: one of {', '.join(repr(t) for t in tags)})" if tags else "")
            if tag is not None:
                loc = loc + (key,)
        elif kind == "invalid_key":
            # (pydantic: "[1] = 2: Keys should be strings" for `1: 2`, the key shown as a list index)
            key = err.get("input")
            loc = tuple(loc[:-1])
            field, got, allowed = _loc(loc), "", ""
            msg = (f"the key {short(key)} is {_kind_of(key)}, not a name (allowed: names as text; YAML reads an "
                   "unquoted 1, yes or ~ as a number, a yes/no or empty: put such a name in quotes)")
        elif kind == "value_error":
            msg, named = _own_words_of_validator(str(err["msg"]), _model_at(model, loc, data))
        else:
            msg = _in_our_words(err, value, info)
            ranges = _union_models(info) if info is not None and not isinstance(value, dict) else []
            if ranges:  # `rh_pct: abc` where a number or a range is allowed: say both
                fields = sorted(ranges[0].model_fields, key=lambda f: ranges[0].model_fields[f].annotation is bool)  # flags last
                msg += f", or a range `{{{', '.join(f'{f}: …' for f in fields)}}}`"
        if kind == "value_error" and named is not None:
            # "wet_fraction_min = 0.9 must be below …": the validator names the field; point at it
            line = f"{path}: {_cut(_loc(loc + named), MAX_SHOWN)}{_cut(msg, 400)}"
            loc = loc + named
        else:
            line = f"{path}: {_cut(field, MAX_SHOWN)}{got}: {_cut(str(msg), 400)}"
        if allowed and kind not in ("literal_error", "enum", "union_tag_not_found", "union_tag_invalid", "value_error"):
            line += f" (allowed: {allowed})"
        line += _where(data, loc, key=at_key)
        lines.append(line)
        if len(lines) == MAX_MESSAGE_LINES and len(errors) > MAX_MESSAGE_LINES:
            lines.append(f"{path}: … and {len(errors) - MAX_MESSAGE_LINES} more problems")
            break
    return "\n".join(lines)


#: pydantic's stock phrases; none of them may reach a person (tests/house/test_messages.py)
PYDANTIC_PHRASES = ("Input should", "Value error,", "Field required", "Extra inputs are not permitted",
                    "String should", "List should", "Tuple should", "Dictionary should", "unable to parse",
                    "valid dictionary", "Assertion failed", "validation error", "errors.pydantic.dev",
                    "Object has no attribute", "Unable to extract tag", "function-after[", "function-before[")


def _is_number_text(value: str) -> bool:
    """``"0.015"``: a number that YAML reads as text because it was quoted."""
    try:
        float(value)
    except ValueError:
        return False
    return bool(value.strip())


def _kind_of(value: Any) -> str:
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, bool):
        return "a yes/no"
    if value is None:
        return "empty"
    if isinstance(value, (int, float)):
        return "a number"
    return type(value).__name__


def _in_our_words(err: Any, value: Any, info: FieldInfo | None) -> str:
    """pydantic's error as we say it: what the value must be, with the field's unit."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    unit = unit_of(info) if info is not None else ""
    in_unit = f" in {unit}" if unit else ""
    not_this = f", not {_kind_of(value)}" if value is not _MISSING else ""
    if kind == "missing":
        return "is required"
    if kind in ("float_parsing", "float_type", "int_parsing", "int_type", "decimal_parsing", "decimal_type"):
        whole = "a whole number" if kind.startswith("int") else "a number"
        hint = ""
        if isinstance(value, str) and re.match(r"^\s*[-+]?[0-9.]+(e[-+]?[0-9]+)?\s*\S", value, re.I):
            hint = " (write the number alone: the unit is in the field's name)"
        return f"must be {whole}{in_unit}{not_this}{hint}"
    if kind in ("int_from_float",):
        return f"must be a whole number{in_unit}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"):
        if isinstance(value, float) and math.isnan(value) or kind == "finite_number":
            return f"must be a finite number{in_unit}"
        bound = next((ctx[k] for k in ("gt", "ge", "lt", "le") if k in ctx), None)
        words = {"greater_than": "more than", "greater_than_equal": "at least", "less_than": "less than",
                 "less_than_equal": "at most"}[kind]
        return f"must be {words} {_num(bound)}{(' ' + unit) if unit else ''}"
    if kind in ("literal_error", "enum"):
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"must be one of {ctx.get('expected', '')}" + (_did_you_mean(value, choices) if isinstance(value, str) else "")
    if kind == "string_too_long":
        return f"is too long: at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return "must not be empty" if n == 1 else f"is too short: at least {n} characters"
    if kind == "string_pattern_mismatch":
        return f"has the wrong form: must match {ctx.get('pattern')!s}"
    if kind == "string_type":
        return f"must be text{not_this}"
    if kind in ("dict_type", "model_type", "model_attributes_type", "dataclass_type"):
        return f"must be a mapping of fields (`key: value` lines){not_this}"
    if kind in ("list_type", "tuple_type", "set_type"):
        return f"must be a list{not_this}"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"must have at least {n} item{'s' if n != 1 else ''}"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be yes or no (true/false){not_this}"
    msg = str(err["msg"])  # a kind we have no words for yet: at least not pydantic's voice
    for theirs, ours in (("Input should be", "must be"), ("Input should", "must"), ("String should", "must"),
                         ("List should", "must"), ("Value error, ", "")):
        msg = msg.replace(theirs, ours)
    return msg


def _own_words_of_validator(msg: str, here: Any) -> tuple[str, tuple[Any, ...] | None]:
    """A model validator's message without pydantic's "Value error, "; when it opens with a field
    of the model it validated (``steps[0] (analyse) needs …``), that field's loc and the rest."""
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    m = re.match(r"^([A-Za-z_]\w*)(?:\[(\d+)\])?", msg)
    if m is None or m.group(1) not in getattr(here, "model_fields", {}):
        return msg, None
    named: tuple[Any, ...] = (m.group(1),) if m.group(2) is None else (m.group(1), int(m.group(2)))
    return msg[m.end():], named


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


def _did_you_mean(word: Any, choices: list[Any]) -> str:
    """``; did you mean 'condition'?`` for a misspelt name (difflib), else nothing."""
    if not isinstance(word, str) or not choices:
        return ""
    names = [str(c) for c in choices]
    close = difflib.get_close_matches(word.lower(), [n.lower() for n in names], n=1, cutoff=0.6)
    if not close:
        return ""
    match = next(n for n in names if n.lower() == close[0])
    return f"; did you mean {match!r}?" if match != word else ""


def unit_of(field: FieldInfo) -> str:
    """The unit a field declares (``json_schema_extra={"unit": ...}``, on it or on its alias)."""
    for extra in [field.json_schema_extra] + [getattr(m, "json_schema_extra", None) for m in field.metadata]:
        if isinstance(extra, dict) and extra.get("unit"):
            return str(extra["unit"])
    return ""


def _model_at(model: type[BaseModel], loc: tuple[Any, ...], data: Any) -> Any:
    """The model class whose fields live at ``loc`` (the root model for ``()``)."""
    cur_model: Any = model
    cur_data = data
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if isinstance(part, int) or not (isinstance(cur_model, type) and issubclass(cur_model, BaseModel)):
            cur_data = _value_at(cur_data, (part,))
            continue
        field = cur_model.model_fields.get(part)
        if field is None:
            return None
        cur_data = _value_at(cur_data, (part,))
        cur_model = _inner_model(field.annotation, cur_data, parts)
    return cur_model


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
    wherever the model wants a number. And a quoted number (``kp: "0.015"``), which pydantic
    would take too but the JSON schema editors use refuses: one rule for both, the schema's."""
    node = root if node is _MISSING else node
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        here = loc + (key,)
        if isinstance(value, bool) or isinstance(value, str) and _is_number_text(value):
            field = _field_at(model, here, root)
            if field is not None and _wants_number(field.annotation, text_too=isinstance(value, str)):
                where = _loc(here)
                unit = unit_of(field)
                what = "a yes/no" if isinstance(value, bool) else _number_as_text(root, here, value)
                raise BadInput(f"{path}: {where} = {short(value)}: expected a number{' in ' + unit if unit else ''}, not {what}"
                               + (f" (allowed: {describe_field(field)})" if describe_field(field) else "") + _where(root, here),
                               file=str(path), field=where)
        else:
            _reject_bools(model, path, root, value, here)


def _number_as_text(root: Any, loc: tuple[Any, ...], value: str) -> str:
    """Why the number-like ``value`` at ``loc`` is text: in quotes, or written as YAML 1.1 reads
    no number (``09``, a leading zero with an 8 or 9: "remove the quotes" was the advice)."""
    if _quoted(root, loc) is not False:
        return "text (remove the quotes: a number in quotes is text)"
    if re.fullmatch(r"[-+]?0[0-9_]+", value):
        return "text (YAML 1.1 reads a number with a leading zero and an 8 or 9 as text: write it without the leading zero)"
    return "text (YAML reads it as text: write a plain number)"


def _wants_number(annotation: Any, text_too: bool = False) -> bool:
    """Whether the field takes a number and not a yes/no (``text_too``: nor text)."""
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
    return bool(leaves & {int, float}) and bool not in leaves and not (text_too and str in leaves)


#: How pydantic labels a member of a plain (smart) union in an error's loc: ``float``,
#: ``RhRange``, ``function-after[_ordered(), RhRange]`` — never a field name (snake_case).
_UNION_MEMBER = re.compile(r"^(?:function-(?:after|before|wrap|plain)\[.*\]|[A-Z]\w*|float|int|str|bool|none|"
                           r"(?:list|dict|tuple|set|literal|constrained-\w+)\[.*\])$")
_SCALAR_MEMBERS = ("float", "int", "str", "bool", "none")


def _strip_tags(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """Drop the discriminator values pydantic inserts into ``loc`` (``steps.1.condition.x``) and
    its labels of a plain union's members (``rh_pct.function-after[_ordered(), RhRange].low``):
    the loc as the person wrote it (``rh_pct.low``)."""
    return _strip_tags_and_members(loc, data)[0]


def _strip_tags_and_members(loc: tuple[Any, ...], data: Any) -> tuple[tuple[Any, ...], list[str]]:
    """:func:`_strip_tags`, and the union members' labels it dropped."""
    out: list[Any] = []
    members: list[str] = []
    cur = data
    for part in loc:
        if isinstance(part, str) and isinstance(cur, dict) and part not in cur and cur.get("type", cur.get("model", cur.get("kind"))) == part:
            continue
        if isinstance(part, str) and out and not (isinstance(cur, dict) and part in cur) and _UNION_MEMBER.match(part):
            members.append(part)
            continue
        out.append(part)
        cur = _value_at(cur, (part,)) if cur is not _MISSING else _MISSING
    return tuple(out), members


def _errors_of_the_written_shape(errors: list[Any], data: Any) -> list[Any]:
    """Of a plain union's errors, those of the member the person wrote: a mapping where a range
    or a number is allowed is judged as the range (not also "must be a number"), a number as the
    number. All of them when that leaves none."""
    kept = []
    for err in errors:
        members = _strip_tags_and_members(tuple(err["loc"]), data)[1]
        if members:
            written = _value_at(data, _union_prefix(tuple(err["loc"]), data))
            scalar = members[-1].split("[")[0] in _SCALAR_MEMBERS
            if isinstance(written, dict) == scalar:
                continue  # the other member's complaint
        kept.append(err)
    return kept or list(errors)


def _union_models(field: FieldInfo) -> list[type[BaseModel]]:
    """The models of a plain union field (``RhRange | float``: [RhRange]); [] for any other field."""
    import types
    import typing

    if typing.get_origin(field.annotation) not in (typing.Union, types.UnionType):
        return []
    return [a for a in typing.get_args(field.annotation) if isinstance(a, type) and issubclass(a, BaseModel)]


def _union_prefix(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """The written loc up to the last union member label in ``loc`` (where the union is)."""
    last = max(i for i, part in enumerate(loc) if isinstance(part, str) and _UNION_MEMBER.match(part))
    return _strip_tags(tuple(loc[:last]), data)


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
        # (discriminated by a step's `type`, a device's `model` or a link's `kind`: a field that
        # another member lacks was described from the first member — "width_px: is not a known
        # field (allowed: 64 to 4096)" for an opencv camera)
        keys = ("type", "model", "kind")
        if rest and isinstance(rest[0], str) and not any(rest[0] in m.model_fields for m in models):
            tag = rest.pop(0)  # the discriminator value pydantic puts in loc
            for key in keys:
                for m in models:
                    lit = m.model_fields.get(key)
                    if lit is not None and tag in _choices(lit.annotation):
                        return m
        for key in keys:
            if isinstance(data, dict) and key in data:
                for m in models:
                    lit = m.model_fields.get(key)
                    if lit is not None and data[key] in _choices(lit.annotation):
                        return m
        return models[0]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None
