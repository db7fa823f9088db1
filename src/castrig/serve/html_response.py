"""The HTML answer of every `castrig serve` page."""

from __future__ import annotations

from typing import Any

from starlette.responses import HTMLResponse as _HTMLResponse

from castrig.jsontext import plain


class HTMLResponse(_HTMLResponse):
    """Starlette's HTML answer, its text made UTF-8 first (:func:`castrig.jsontext.plain`): a data
    root whose path is not UTF-8 (a folder named in Latin-1 on a NAS) is shown on the runs page,
    and its undecodable byte made every visit to ``/`` a 500."""

    def render(self, content: Any) -> bytes:
        return super().render(plain(content) if isinstance(content, str) else content)
