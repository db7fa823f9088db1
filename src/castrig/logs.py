"""Logs through structlog: JSON lines in the run folder for machines, a short line for people."""

from __future__ import annotations

import sys
from pathlib import Path
from collections.abc import Mapping
from typing import Any, TextIO


_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50, "exception": 40}
_configured = False  # structlog's global configuration made (module_logger)


def module_logger(name: str) -> Any:
    """structlog's logger for what a module logs outside a run's :class:`RunLog` (the fleet store's
    warnings), to stderr: on stdout it was mixed into `castrig runs` and `store sync` output,
    which scripts read, even with -q. structlog is loaded and configured at the first message,
    not by the entry point for every command, nor as a module holding such a logger is imported:
    most commands log nothing (structlog costs 0.06 s of CPU: asyncio, rich.traceback)."""
    return _ModuleLogger(name)


class _ModuleLogger:
    """structlog's logger ``name``, made at the first method asked of it (:func:`module_logger`)."""

    def __init__(self, name: str):
        self._name = name
        self._logger: Any = None

    def __getattr__(self, method: str) -> Any:
        global _configured
        if self._logger is None:
            import structlog

            if not _configured:
                structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
                _configured = True
            self._logger = structlog.get_logger(self._name)
        return getattr(self._logger, method)


class RunLog:
    """Open for the length of a run; ``logger`` is a bound logger with structlog's methods (info,
    warning, error, exception ..., bind), its lines as structlog's JSONRenderer and
    ConsoleRenderer(colors=False) wrote them: without structlog, whose import (asyncio,
    rich.traceback, pygments) cost every ``castrig run``, resume and queue 0.05-0.07 s of CPU."""

    def __init__(self, run_dir: Path | None, *, console: TextIO | None = sys.stderr, console_level: str = "warning", clock_epoch: Any = None):
        self._file = None
        if run_dir is not None:
            try:
                self._file = open(run_dir / "log.jsonl", "a", encoding="utf-8", buffering=1)
            except OSError as exc:  # a full or read-only folder: the run's record still says what matters
                self.write_error = exc
        self._console = console
        self._console_level = _LEVELS[console_level]
        self.logger = _BoundLog(self._emit, {})

    def _emit(self, method: str, event: dict[str, Any]) -> None:
        import datetime

        event["level"] = {"warn": "warning", "exception": "error"}.get(method, method)
        event["wall_utc"] = datetime.datetime.now(tz=datetime.timezone.utc).isoformat().replace("+00:00", "Z")
        exc_info = _exc_info(event.pop("exc_info", None))
        if exc_info:
            import traceback

            event["exception"] = "".join(traceback.format_exception(*exc_info)).removesuffix("\n")
        if self._file is not None:
            try:
                self._file.write(_json_line(event) + "\n")
            except OSError as exc:  # a full disk: the run's record (SQLite) says what matters
                self._drop_file(exc)
        if self._console is not None and _LEVELS.get(method, 20) >= self._console_level:
            self._console.write(_human_line(dict(event)) + "\n")

    #: Why the log file stopped being written (a full disk), or None.
    write_error: OSError | None = None

    def _drop_file(self, exc: OSError) -> None:
        self.write_error = exc
        f, self._file = self._file, None
        try:
            if f is not None:
                f.close()
        except OSError:
            pass

    def close(self) -> None:
        """Never raises: a log that cannot be flushed (disk full) must not hide the run's outcome."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                self.write_error = exc
            self._file = None


class _BoundLog:
    """structlog's bound logger, as a run uses it: ``info(event, *args, **kw)`` and the other
    levels, ``exception`` (an error with the exception being handled), ``bind(**kw)``."""

    def __init__(self, emit: Any, context: dict[str, Any]):
        self._emit = emit
        self._context = context

    def bind(self, **kw: Any) -> "_BoundLog":
        return _BoundLog(self._emit, {**self._context, **kw})

    def _log(self, method: str, event: Any, args: tuple[Any, ...], kw: dict[str, Any]) -> None:
        if args:  # structlog's interpolation: one mapping by name, else by position
            event = event % (args[0] if len(args) == 1 and isinstance(args[0], Mapping) and args[0] else args)
        self._emit(method, {**self._context, **kw, "event": event})

    def debug(self, event: Any, *args: Any, **kw: Any) -> None:
        self._log("debug", event, args, kw)

    def info(self, event: Any, *args: Any, **kw: Any) -> None:
        self._log("info", event, args, kw)

    msg = info

    def warning(self, event: Any, *args: Any, **kw: Any) -> None:
        self._log("warning", event, args, kw)

    warn = warning

    def error(self, event: Any, *args: Any, **kw: Any) -> None:
        self._log("error", event, args, kw)

    def critical(self, event: Any, *args: Any, **kw: Any) -> None:
        self._log("critical", event, args, kw)

    fatal = critical

    def exception(self, event: Any, *args: Any, **kw: Any) -> None:
        kw.setdefault("exc_info", True)
        self._log("error", event, args, kw)


def _exc_info(v: Any) -> Any:
    """``exc_info=`` as structlog reads it: an exception, an exc_info tuple, or true for the one
    being handled; None for none."""
    if isinstance(v, BaseException):
        return (type(v), v, v.__traceback__)
    if isinstance(v, tuple) and len(v) == 3 and isinstance(v[0], type) and issubclass(v[0], BaseException) \
            and isinstance(v[1], BaseException):
        return v
    if v:
        now = sys.exc_info()
        return None if now == (None, None, None) else now
    return None


def _json_line(event: dict[str, Any]) -> str:
    """One line of log.jsonl (structlog's JSONRenderer(sort_keys=True): what JSON cannot say, by repr)."""
    import json

    def fallback(obj: Any) -> Any:
        try:
            return obj.__structlog__()
        except AttributeError:
            return repr(obj)

    return json.dumps(event, default=fallback, sort_keys=True)


_QUOTED = set(" \t=\r\n\"'")  # (ConsoleRenderer's: a string holding one is shown by repr)


def _human_line(event: dict[str, Any]) -> str:
    """The console's line (structlog's ConsoleRenderer(colors=False)): ``[level    ] event``
    padded to 30, then ``key=value`` sorted (a string bare unless it holds a space, quote, ``=``
    or line break), the exception's traceback below."""
    exc = event.pop("exception", None)
    level = str(event.pop("level", ""))
    text = str(event.pop("event", ""))
    parts = [f"[{level:<9}]", f"{text:<30}"]
    for key in sorted(event):
        v = event[key]
        parts.append(f"{key}={v if isinstance(v, str) and not set(v) & _QUOTED else repr(v)}")
    return " ".join(parts).rstrip(" ") + ("" if exc is None else "\n" + str(exc))
