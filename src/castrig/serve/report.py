"""A run's page saved as one self-contained HTML file: the live page's design, with its data inside.

The live page (``/runs/{uid}``) becomes the run's report once the run has ended; the saved form
is written by the report's one renderer (:mod:`castrig.report.html`, also behind ``castrig
report``): the same stylesheet and script, inlined, with the run's samples, events, status,
membranes and micrographs embedded as JSON, so it opens from a disk or a mail attachment without
castrig. ``GET /runs/{uid}/report.html`` serves it; ``GET /api/runs/{uid}/report`` gives the live
page the same report data (micrographs by URL instead of inlined).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from castrig.report.html import MAX_POINTS_PER_CHANNEL, embedded_data, page_csp, page_html, report_data

__all__ = ["MAX_POINTS_PER_CHANNEL", "embedded_data", "live_report_data", "page_csp", "page_html", "write_page"]


def live_report_data(run_dir: Path) -> dict[str, Any]:
    """The report data for the live page: micrographs from the server's image route, overlays inline."""
    run_dir = Path(run_dir)
    uid = quote(run_dir.name, safe="")
    return report_data(run_dir, image_url=lambda image_id: f"/runs/{uid}/images/{image_id}.png")


def write_page(run_dir: Path, out: Path | None = None) -> Path:
    """Write the run's page, self-contained, to ``out`` (default ``RUN/report.html``)."""
    from castrig.report.html import build_report

    return build_report(Path(run_dir), out)
