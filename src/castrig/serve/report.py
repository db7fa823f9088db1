"""A run's page saved as one self-contained HTML file: the live page's design, with its data inside.

The live page (``/runs/{uid}``) becomes the run's report once the run has ended; this module
writes that same page — the same stylesheet and script, inlined — with the run's samples, events,
status and micrographs (PNG data URIs) embedded as JSON, so it opens from a disk or a mail
attachment without castrig. ``GET /runs/{uid}/report.html`` serves it.
"""

from __future__ import annotations

import base64
import html
import json
from importlib import resources
from pathlib import Path
from typing import Any

from castrig.serve import runs as R

#: Samples per channel kept in a saved page (an 8-hour run at 1 Hz is decimated; the page zooms).
MAX_POINTS_PER_CHANNEL = 20_000


def _static(name: str) -> str:
    return resources.files("castrig.serve").joinpath("static", name).read_text()


def _decimate(rows: list[list[float]], n: int) -> list[list[float]]:
    if len(rows) <= n:
        return rows
    step = len(rows) / n
    return [rows[int(i * step)] for i in range(n)] + [rows[-1]]


def embedded_data(run_dir: Path) -> dict[str, Any]:
    from castrig.serve.app import _image_png

    run_dir = Path(run_dir)
    samples = R.samples(run_dir)
    samples["channels"] = {ch: [[round(t, 3), v] for t, v in _decimate(rows, MAX_POINTS_PER_CHANNEL)]
                           for ch, rows in samples["channels"].items()}
    with R.open_ro(run_dir) as db:
        events = R.events(db, 0, limit=100_000)
    run = R.detail(run_dir)
    images = {}
    for im in run.get("images", []):
        png = _image_png(run_dir, int(im["id"]))
        if png is not None:
            images[str(im["id"])] = "data:image/png;base64," + base64.b64encode(png).decode()
    return {"samples": samples, "events": events, "run": run, "images": images}


def page_html(run_dir: Path) -> str:
    run_dir = Path(run_dir)
    data = json.dumps(embedded_data(run_dir), separators=(",", ":")).replace("</", "<\\/")
    uid = html.escape(run_dir.name)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>run {uid}</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{_static('live.css')}</style></head><body>"
            f"<header>castrig · run {uid} · saved report</header><main><div id='run' data-uid='{uid}'></div></main>"
            f'<script type="application/json" id="castrig-data">{data}</script>'
            f"<script>{_static('live.js').replace('</', '<' + chr(92) + '/')}</script></body></html>")


def write_page(run_dir: Path, out: Path | None = None) -> Path:
    """Write the run's page, self-contained, to ``out`` (default ``RUN/run-page.html``)."""
    out = Path(out) if out is not None else Path(run_dir) / "run-page.html"
    out.write_text(page_html(run_dir))
    return out
