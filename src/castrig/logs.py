"""A run's log: JSON lines in the run folder for machines, a short line for people (:class:`RunLog`,
structlog's format written by castrig); what modules log outside a run, through structlog."""

from __future__ import annotations

import datetime
import json
import sys
import traceback
from pathlib import Path
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
                structlog.configure(logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()))
                _configured = True
            self._logger = structlog.get_logger(self._name)
        return getattr(self._logger, method)


class _CurrentStderr:
    """``sys.stderr`` as it is when a message is written, not as it was at the first message:
    structlog's configuration is global and kept, and the CLI called in-process (the tests'
    ``castrig_main``) with its streams captured wrote a later command's warning to the first
    one's captured stream, closed since ("I/O operation on closed file")."""

    def write(self, text: str) -> int:
        stream = sys.stderr or sys.stdout  # (Python's None for a closed fd 2 outside the CLI: stdout, as structlog did)
        try:
            return stream.write(text) if stream is not None else len(text)
        except (OSError, ValueError):  # a closed or vanished stream: a warning never ends its caller
            return len(text)

    def flush(self) -> None:
        stream = sys.stderr or sys.stdout
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


class RunLog:
    """Open for the length of a run; ``logger`` is a bound structlog-style logger (:class:`RunLogger`).

    Its lines are those structlog wrote here until castrig wrote them itself: each event with
    ``level`` (an ``exception`` is an ``error``), ``wall_utc`` (ISO 8601, UTC, ``Z``) and, given
    ``exc_info``, ``exception`` (the traceback) -- JSON with sorted keys in ``log.jsonl`` (a value
    JSON has no form for as its ``repr``), structlog's console line (:func:`console_line`) on
    ``console``. Importing structlog for it cost ~0.1 s of CPU at every run, resume and queue
    (asyncio, rich.traceback, pygments, attrs), a third of what a run that captures nothing spends."""

    def __init__(self, run_dir: Path | None, *, console: TextIO | None = sys.stderr, console_level: str = "warning", clock_epoch: Any = None):
        self._file = None
        if run_dir is not None:
            try:
                self._file = open(run_dir / "log.jsonl", "a", encoding="utf-8", buffering=1)
            except OSError as exc:  # a full or read-only folder: the run's record still says what matters
                self.write_error = exc
        self._console = console
        self._console_level = _LEVELS[console_level]
        self.logger = RunLogger(self._emit, {})

    def _emit(self, method: str, event: dict[str, Any]) -> None:
        event["level"] = "warning" if method == "warn" else "error" if method == "exception" else method
        event["wall_utc"] = datetime.datetime.now(tz=datetime.timezone.utc).isoformat().replace("+00:00", "Z")
        exc_info = _exc_info(event.pop("exc_info", None))
        if exc_info is not None:
            event["exception"] = "".join(traceback.format_exception(*exc_info)).removesuffix("\n")
        if self._file is not None:
            try:
                self._file.write(json.dumps(event, sort_keys=True, default=repr) + "\n")
            except OSError as exc:  # a full disk: the run's record (SQLite) says what matters
                self._drop_file(exc)
        if self._console is not None and _LEVELS.get(method, 20) >= self._console_level:
            self._console.write(console_line(event) + "\n")

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


class RunLogger:
    """What the runner logs through: ``info``/``warning``/``error``/... (an event and its fields),
    ``exception`` (an error with the exception being handled), ``bind`` (fields for every later
    event), as structlog's bound loggers take them."""

    def __init__(self, emit: Any, context: dict[str, Any]):
        self._emit = emit
        self._context = context

    def bind(self, **fields: Any) -> RunLogger:
        return RunLogger(self._emit, {**self._context, **fields})

    def _log(self, method: str, event: str, args: tuple[Any, ...], fields: dict[str, Any]) -> None:
        self._emit(method, {**self._context, **fields, "event": event % args if args else event})

    def debug(self, event: str, *args: Any, **fields: Any) -> None:
        self._log("debug", event, args, fields)

    def info(self, event: str, *args: Any, **fields: Any) -> None:
        self._log("info", event, args, fields)

    def warning(self, event: str, *args: Any, **fields: Any) -> None:
        self._log("warning", event, args, fields)

    warn = warning

    def error(self, event: str, *args: Any, **fields: Any) -> None:
        self._log("error", event, args, fields)

    def critical(self, event: str, *args: Any, **fields: Any) -> None:
        self._log("critical", event, args, fields)

    def exception(self, event: str, *args: Any, **fields: Any) -> None:
        fields.setdefault("exc_info", True)
        self._log("error", event, args, fields)


def _exc_info(given: Any) -> tuple[Any, Any, Any] | None:
    """The (type, exception, traceback) an event's ``exc_info`` names, as structlog reads it: an
    exception, such a tuple, or true for the one being handled (None if there is none)."""
    if isinstance(given, BaseException):
        return type(given), given, given.__traceback__
    if isinstance(given, tuple) and len(given) == 3 and isinstance(given[1], BaseException):
        return given
    if given:
        handled = sys.exc_info()
        return handled if handled[1] is not None else None
    return None


def console_line(event: dict[str, Any]) -> str:
    """``event`` as structlog's ``ConsoleRenderer(colors=False)`` writes it: ``[level    ]``, the
    event padded to 30 characters, then ``key=value`` sorted by key (a text value bare unless it
    holds a space, tab, line end, ``=`` or quote), then the exception's traceback on its own lines."""
    fields = dict(event)
    exception = fields.pop("exception", None)
    head = []
    if "timestamp" in fields:
        head.append(str(fields.pop("timestamp")))
    if "level" in fields:
        head.append(f"[{str(fields.pop('level')).ljust(9)}]")
    if "event" in fields:
        head.append(str(fields.pop("event")).ljust(30))
    head += [f"[{fields.pop(key)}]" for key in ("logger", "logger_name") if key in fields]
    line = " ".join(part for part in head + [f"{key}={_console_value(fields[key])}" for key in sorted(fields)] if part).rstrip(" ")
    return line if exception is None else f"{line}\n{exception}"


def _console_value(value: Any) -> str:
    if isinstance(value, str) and not set(value) & {" ", "\t", "=", "\r", "\n", '"', "'"}:
        return value
    return repr(value)
