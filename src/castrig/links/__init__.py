"""Byte links: serial (pyserial URLs), VISA (pyvisa) and the in-process simulator link."""

from castrig.links.base import Link, with_retries
from castrig.links.errors import LinkClosed, LinkError, LinkTimeout, ProtocolError
from castrig.links.scripted import ScriptedLink, expected_protocol
from castrig.links.sim_link import SimLink

__all__ = [
    "Link",
    "LinkClosed",
    "LinkError",
    "LinkTimeout",
    "ProtocolError",
    "ScriptedLink",
    "SimLink",
    "expected_protocol",
    "with_retries",
]
