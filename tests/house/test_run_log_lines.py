"""A run's log lines (castrig.logs.RunLog) are those structlog wrote: ``log.jsonl`` is read by
people's own scripts and by the report, the console lines by operators. castrig writes them
itself since a run stopped importing structlog (~0.1 s of CPU at every run, resume and queue)."""

from __future__ import annotations

import io
import re
from typing import Any

import structlog

from castrig.logs import RunLog


class _NoJsonForm:
    def __repr__(self) -> str:
        return "<no JSON form>"


def _events(log: Any) -> None:
    """What the runner logs: events with fields, bound fields, an error with the exception being
    handled (``exception``) or given (``exc_info=``), odd values and keys."""
    log = log.bind(run="20260101-000000-demo")
    log.info("step 1/8: purge(duration_s=60.0)", kind="step_start", source="runner", t_s=0.055, step=0,
             data={"a": [1, 2.5]}, spaced="x y", none=None, odd=_NoJsonForm())
    log.warning("a message longer than the thirty characters it is padded to", error="boom", quoted='a"b', eq="k=v")
    log.error("short")
    log.debug("rounded to %d", 3)
    log.critical("crit", logger="fleet", raw=b"by", pair=(1, 2))
    try:
        raise ValueError("no such membrane")
    except ValueError as exc:
        log.exception("internal error")
        log.error("analysis failed", membrane_id="m1", error="why", exc_info=exc)
    log.error("no exception being handled", exc_info=True)
    log.info("", timestamp="")


def _structlog_run_log(console: io.StringIO, file: io.StringIO) -> Any:
    """The processors RunLog ran through structlog before (castrig 0.1, logs.py)."""
    as_json = structlog.processors.JSONRenderer(sort_keys=True)
    human = structlog.dev.ConsoleRenderer(colors=False)

    def emit(logger: Any, method: str, event: dict[str, Any]) -> str:
        file.write(as_json(logger, method, dict(event)) + "\n")
        console.write(human(logger, method, dict(event)) + "\n")
        raise structlog.DropEvent

    return structlog.wrap_logger(None, processors=[
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="wall_utc"),
        structlog.processors.format_exc_info,
        emit,
    ])


def _without_times(text: str) -> str:
    return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "<utc>", text)


def test_a_run_log_writes_the_lines_structlog_wrote(tmp_path) -> None:
    said, kept = io.StringIO(), io.StringIO()
    _events(_structlog_run_log(said, kept))
    console = io.StringIO()
    run_log = RunLog(tmp_path, console=console, console_level="debug")
    _events(run_log.logger)
    run_log.close()
    written = (tmp_path / "log.jsonl").read_text()
    assert _without_times(written) == _without_times(kept.getvalue())
    assert _without_times(console.getvalue()) == _without_times(said.getvalue())
    assert written.count("<utc>") == 0 and _without_times(written).count('"wall_utc": "<utc>"') == 9


def test_the_console_shows_what_reaches_its_level(tmp_path) -> None:
    console = io.StringIO()
    run_log = RunLog(tmp_path, console=console)  # (warnings and worse, as a run without -v)
    _events(run_log.logger)
    run_log.close()
    levels = [line[1:line.index("]")].strip() for line in console.getvalue().splitlines() if line.startswith("[")]
    assert levels == ["warning", "error", "critical", "error", "error", "error"]
    assert (tmp_path / "log.jsonl").read_text().count("\n") == 9
