"""A run's page as its report: one renderer for the live page and the saved file (``castrig report``)."""

from __future__ import annotations

from typing import Any

#: The report's file name in a run folder (kept here so listings need not load the renderer).
REPORT_NAME = "report.html"


def __getattr__(name: str) -> Any:
    """The renderer (numpy, the plots) loads on first use: `castrig runs` imports report.filters only."""
    if name in ("build_report", "load_run"):
        from castrig.report import html

        return getattr(html, name)
    raise AttributeError(name)

__all__ = ["REPORT_NAME", "build_report", "load_run", "report_link"]


def report_link(run_dir: str) -> str:
    """Where a run's report is (for the queue summary): ``RUN_DIR/report.html``."""
    from pathlib import Path

    return str(Path(run_dir) / REPORT_NAME)
