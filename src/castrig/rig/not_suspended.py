"""While a process drives the rig it is not suspended: Ctrl-Z (SIGTSTP), a write to the terminal
from the background under ``stty tostop`` (SIGTTOU) or a read of it (SIGTTIN) would stop it with
the rig running uncontrolled — wet air at its last set point, the RH loop and every limit
stopped, a dispense going on — until someone typed ``fg`` (an operator met it so: the shell said
"Stopped")."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


#: Why a process that drives the rig is not suspended, as Ctrl-Z is answered.
DRIVES = "a process that drives the rig is not suspended (the wet air and the pumps would go on with nobody controlling them)"


@contextmanager
def not_suspended(say: Callable[[str], Any], what_stops_it: str, why: str = DRIVES) -> Iterator[None]:
    """Within: Ctrl-Z is answered by ``say`` (that the process is not suspended, ``why``, and
    ``what_stops_it``), SIGTTOU ignored; the handlers before are put back after."""

    def on_tstp(signum: int, frame: Any) -> None:
        say(f"Ctrl-Z: {why}; {what_stops_it}")

    old_tstp = signal.signal(signal.SIGTSTP, on_tstp)
    old_ttou = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    # a read of the terminal from the background (the pause prompt of a `castrig run … &`) stops
    # the process too: ignored, such a read fails (EIO) instead (display.interactive_prompt waits
    # for the foreground before it reads)
    old_ttin = signal.signal(signal.SIGTTIN, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGTSTP, old_tstp)
        signal.signal(signal.SIGTTOU, old_ttou)
        signal.signal(signal.SIGTTIN, old_ttin)
