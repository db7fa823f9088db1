"""A run's page as its report: one renderer for the live page and the saved file (``castrig report``)."""

from __future__ import annotations

from castrig.report.html import REPORT_NAME, build_report, load_run

__all__ = ["REPORT_NAME", "build_report", "load_run", "report_link"]


def report_link(run_dir: str) -> str:
    """Where a run's report is (for the queue summary): ``RUN_DIR/report.html``."""
    from pathlib import Path

    return str(Path(run_dir) / REPORT_NAME)
