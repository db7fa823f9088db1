"""JSON for pages and APIs from records that may hold what JSON cannot.

A run's records are read as they are, hand edits included: a sample of ``inf`` (JSON has no
Infinity: Python writes it, a browser's ``JSON.parse`` refuses it, Starlette's response refuses
to write it), a BLOB where text belongs, a folder name whose bytes are not UTF-8 (Python's
lone surrogates, which no UTF-8 encoder takes). Each was a 500 on `castrig serve` or a traceback
of `castrig report`. :func:`dumps` writes the usual JSON, and only when that fails writes the
value made plain: a number JSON cannot hold as null, bytes and odd text with U+FFFD.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def loads(text: str | bytes) -> Any:
    """``json.loads(text)`` for a file castrig reads back (run.json, a queue's state, lot
    assignments): one nested deeper than Python's recursion allows (``[[[[...`` 100 000 deep, a
    few hundred KB) is a ValueError like any other bad JSON, where it was a RecursionError that
    ended ``castrig status``, ``report``, ``resume``, ``runs`` and ``queue --resume`` in a traceback."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deep (allowed: JSON as castrig writes it, a few levels)") from None


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps(obj, allow_nan=False, **kwargs)``, whose text encodes as UTF-8; else that of
    :func:`plain` ``(obj)``."""
    try:
        text = json.dumps(obj, allow_nan=False, **kwargs)
        text.encode("utf-8")
        return text
    except (ValueError, TypeError, UnicodeEncodeError):
        return json.dumps(plain(obj), allow_nan=False, **kwargs)


def plain(obj: Any) -> Any:
    """``obj`` with non-finite floats as None, bytes decoded and lone surrogates replaced (U+FFFD)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, str):
        return _text(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).decode("utf-8", errors="replace")
    if isinstance(obj, Mapping):
        return {(_text(k) if isinstance(k, str) else k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def _text(s: str) -> str:
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", errors="surrogateescape" if _escaped_only(s) else "replace").decode("utf-8", errors="replace")


def _escaped_only(s: str) -> bool:
    """Whether every surrogate in ``s`` is one of ``surrogateescape``'s (an undecodable byte of a file name)."""
    return all(0xDC80 <= ord(c) <= 0xDCFF for c in s if 0xD800 <= ord(c) <= 0xDFFF)
