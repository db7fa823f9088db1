"""Content-Security-Policy sources for inline elements, apart from the renderer (report.html, which
loads numpy and the analysis's views): ``castrig serve`` hashes the search map's stylesheet as
it starts (serve/explore.py: FRAME_CSP), before any page asks for a report."""

from __future__ import annotations

import base64
import hashlib


def csp_hash(text: str) -> str:
    """The Content-Security-Policy source that allows one inline element whose content is ``text``."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"
