"""Errors that cross layers. Each carries a message meant for a person, not a traceback."""

from __future__ import annotations


class CastrigError(Exception):
    """Base of every error castrig raises on purpose."""


class BadInput(CastrigError):
    """Input from a person (a file, a flag) that cannot be used.

    The message names the file, the field and the allowed range or choices; the CLI prints it
    and exits 2 without a traceback and before any run folder exists.
    """

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None):
        self.file = file
        self.field = field
        super().__init__(message)


class Busy(CastrigError):
    """A run folder or a device is owned by another live process (exit 4); nothing was sent."""

    def __init__(self, message: str, *, holder: object = None):
        self.holder = holder
        super().__init__(message)


class RigUnreachable(CastrigError):
    """A device of the profile could not be opened before the run started (exit 5); no run folder."""
