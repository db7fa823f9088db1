"""A run's log (castrig.logs.RunLog) is written without structlog, whose import (asyncio,
rich.traceback, pygments) cost every ``castrig run``, resume and queue 0.05-0.07 s of CPU; its
lines stay those structlog wrote: log.jsonl as JSONRenderer(sort_keys=True), the console's as
ConsoleRenderer(colors=False)."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

from castrig.logs import RunLog


def _say_it_all(logger) -> None:
    """The calls a run makes of its log (and a few it could), to ``logger``."""
    bound = logger.bind(run="R1")
    bound.info("hello", kind="k", source="s", t_s=1.5, x=None, f=[1, "a"], p=Path("/x"), e="a=b", g="it's", level="x")
    bound.warning("room sensor read failed", error="timeout: no reply", next_try_in_s=2.0)
    bound.error("step %s of %d", "two", 3)
    bound.info("an event longer than the thirty characters of its column", k="ü")
    logger.info("unbound %s")
    try:
        try:
            1 / 0
        except ZeroDivisionError as exc:
            raise ValueError("v") from exc
    except ValueError as exc:
        bound.exception("internal error")
        bound.error("analysis failed", membrane_id="m1", error="why", exc_info=exc)
        bound.error("as a tuple", exc_info=sys.exc_info())
    bound.error("no exception being handled", exc_info=True)
    bound.warn("warn")
    bound.debug("debug")
    bound.critical("critical")


def test_a_runs_log_lines_are_those_structlog_wrote(tmp_path: Path) -> None:
    import structlog

    console = io.StringIO()
    log = RunLog(tmp_path, console=console, console_level="debug")
    _say_it_all(log.logger)
    log.close()

    json_lines, human_lines = [], []

    def keep(logger, method, event):
        json_lines.append(structlog.processors.JSONRenderer(sort_keys=True)(logger, method, dict(event)))
        human_lines.append(structlog.dev.ConsoleRenderer(colors=False)(logger, method, dict(event)))
        raise structlog.DropEvent

    _say_it_all(structlog.wrap_logger(None, processors=[
        structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True, key="wall_utc"),
        structlog.processors.format_exc_info, keep]))

    def same(text: str) -> str:
        return re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+Z", "T", text)

    assert same((tmp_path / "log.jsonl").read_text()) == same("".join(line + "\n" for line in json_lines))
    assert same(console.getvalue()) == same("".join(line + "\n" for line in human_lines))
