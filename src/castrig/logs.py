"""Logs through structlog: JSON lines in the run folder for machines, a short line for people."""

from __future__ import annotations

import sys
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
    """Open for the length of a run; ``logger`` is a bound structlog logger."""

    def __init__(self, run_dir: Path | None, *, console: TextIO | None = sys.stderr, console_level: str = "warning", clock_epoch: Any = None):
        self._file = None
        if run_dir is not None:
            try:
                self._file = open(run_dir / "log.jsonl", "a", encoding="utf-8", buffering=1)
            except OSError as exc:  # a full or read-only folder: the run's record still says what matters
                self.write_error = exc
        self._console = console
        self._console_level = _LEVELS[console_level]
        import structlog  # (a run's: see module_logger)

        self._drop = structlog.DropEvent
        self._json = structlog.processors.JSONRenderer(sort_keys=True)
        self._human = structlog.dev.ConsoleRenderer(colors=False)
        self.logger = structlog.wrap_logger(
            None,
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True, key="wall_utc"),
                structlog.processors.format_exc_info,
                self._emit,
            ],
        )

    def _emit(self, logger: Any, method: str, event: dict[str, Any]) -> str:
        if self._file is not None:
            try:
                self._file.write(self._json(logger, method, dict(event)) + "\n")
            except OSError as exc:  # a full disk: the run's record (SQLite) says what matters
                self._drop_file(exc)
        if self._console is not None and _LEVELS.get(method, 20) >= self._console_level:
            self._console.write(self._human(logger, method, dict(event)) + "\n")
        raise self._drop

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
