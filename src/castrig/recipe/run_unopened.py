"""A new run whose rig cannot be opened makes safe what answers, says it, and stops (exit 5).

``castrig run`` (and a queue's next recipe) with one device that could not be opened -- a dead
pump's port, a pty that is gone -- ended "cannot open the rig" having sent nothing. After a run
killed -9 mid-evaporate and not resumed, the wet air it left on went on flowing through the new
run's refusal, and nothing said to run ``castrig safe``. Now every device that answers is made
safe (:func:`castrig.rig.safe_what_answers.make_safe_what_answers`, as ``castrig safe`` and a
resume that cannot open the rig do) and the refusal says what was and was not made safe. No run
folder is made: nothing ran, there is no run to record it in. ``castrig tune rh`` likewise: a
step test killed -9 leaves the wet air stepping, and the next one met a dead port.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

from castrig.errors import RigUnreachable


def make_safe_and_refuse(profile: Any, profile_path: Path, *, seed: int | None, purpose: str,
                         exc: RigUnreachable, command: str = "run",
                         nothing_ran: str = "no run was started (no run folder made)") -> NoReturn:
    """Make safe what answers of ``profile``'s rig, Ctrl-C held meanwhile (said, then acted on as
    the ``command`` stops), and raise :class:`RigUnreachable` with ``exc``, ``nothing_ran`` and
    what was made safe."""
    from castrig.recipe.ctrl_c_holds import DeferredCtrlC
    from castrig.rig.safe_what_answers import make_safe_what_answers_said

    hold = DeferredCtrlC(command=command)
    try:
        words, record = make_safe_what_answers_said(profile, purpose=f"{purpose} (making safe what answers)", seed=seed)
        tail = f"{nothing_ran}: the rig could not be opened, so castrig made safe what answers: {words}"
        if not record["safe"] and not record.get("owned_by_another"):  # (its owner makes it safe as it ends)
            tail += (f"; make the rest safe at the devices, or castrig safe --profile {profile_path} "
                     "once they answer")
        hold.stop_here(tail)
    finally:
        hold.restore()
    raise RigUnreachable(f"{exc}\n{tail}") from None
