"""Typed link errors. Each names the resource, so a log line says which cable to look at."""

from __future__ import annotations

from castrig.errors import CastrigError


class LinkError(CastrigError):
    """Something went wrong on a byte link."""

    def __init__(self, resource: str, message: str):
        self.resource = resource
        super().__init__(f"{resource}: {message}")


class LinkTimeout(LinkError):
    """The peer did not answer (completely) in time."""


class LinkClosed(LinkError):
    """The link is closed, or the peer went away (cable pulled, socket dropped)."""


class ProtocolError(LinkError):
    """Bytes arrived but do not make sense for the protocol (bad frame, CRC, garbage)."""
