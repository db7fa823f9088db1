"""The JSON answer of every `castrig serve` route."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse as _JSONResponse

from castrig import jsontext


class JSONResponse(_JSONResponse):
    """Starlette's JSON answer, written by :func:`castrig.jsontext.dumps`: a record JSON cannot
    hold as it is (a sample of inf, a BLOB message, a folder name that is not UTF-8) was a 500."""

    def render(self, content: Any) -> bytes:
        return jsontext.dumps(content, ensure_ascii=False, indent=None, separators=(",", ":")).encode("utf-8")
