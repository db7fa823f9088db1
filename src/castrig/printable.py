"""Text from files, records and devices as a terminal is given it: control characters escaped.

A file name, a hand-edited run.json (operator, recipe name), an event message or a device's reply
can hold escape sequences: printed as they are, ``ESC ] 8`` made a clickable link to an address of
someone else's choosing and ``ESC [ 8 m`` hid the text after it (Rich passes them through; its own
``strip_control_codes`` leaves ESC). What castrig prints of such text goes through :func:`shown`
(``\\x1b`` for ESC), and every console castrig makes is a :class:`Console`, whose plain strings
(``print`` of a str, a table's str cells) are shown so. Newline and tab stay what they are.
"""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console as _RichConsole
from rich.text import Text

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def shown(text: str) -> str:
    """``text`` with every control character but newline and tab written as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text) if _CONTROL.search(text) else text


class Console(_RichConsole):
    """A Rich console whose plain strings are :func:`shown` (markup, if on, is read after)."""

    def render_str(self, text: str, *args: Any, **kwargs: Any) -> Text:
        return super().render_str(shown(text), *args, **kwargs)
