"""A resume whose rig cannot be opened makes safe what answers, records that, and stops (exit 5).

``castrig resume`` of a run killed -9 mid-evaporate, with one device that could not be opened (a
dead pump's port, a pty that is gone), ended "cannot open the rig" having sent nothing: the wet
air the crash left on went on flowing, and nothing said to run ``castrig safe``. Now every device
that answers is made safe (:func:`castrig.rig.safe_what_answers.make_safe_what_answers`, as
``castrig safe`` does), the run's events say what was and was not made safe, and the resume still
ends :class:`RigUnreachable`: the run is not resumed, and stays resumable.

The resume holds the folder (its run.lock) but does not claim the run: run.json keeps the
crashed part as it was (its outcome, host and pid), and the event is written at the run's last
record (its clock does not move on). The event carries the stop as dated before it was written
(``stopped_utc``): its own write must not date the stop for the resume that goes on later
(:func:`earlier_dated_stop`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

from castrig.errors import CastrigError, RigUnreachable
from castrig.utc import parse_utc

#: The key of a resume-not-opened safe state's data (an event of kind ``safe_state``).
NOT_OPENED = "resume_not_opened"


def make_safe_and_stop(run_dir: Path, recorder: Any, profile: Any, *, seed: int | None, last_t: float,
                       stopped: float | None, profile_path: str | None, exc: RigUnreachable,
                       hold: Any) -> NoReturn:
    """Make safe what answers of ``profile``'s rig, say it, record it in ``recorder`` at ``last_t``
    (the stop dated ``stopped``, epoch s), and raise :class:`RigUnreachable` with ``exc`` and that.
    ``hold``: the resume's Ctrl-C hold (:class:`~castrig.recipe.ctrl_c_holds.DeferredCtrlC`):
    a Ctrl-C meanwhile stops it once this is said."""
    from castrig.rig.safe_what_answers import make_safe_what_answers_said
    from castrig.store import utc_now_iso

    again = f"castrig resume {run_dir}"
    by_hand = f"castrig safe --profile {profile_path}" if profile_path else "castrig safe --profile PROFILE"
    words, data = make_safe_what_answers_said(profile, purpose=f"castrig resume {run_dir} (making safe what answers)",
                                              seed=seed)
    data.update({NOT_OPENED: str(exc),
                 "stopped_utc": utc_now_iso(stopped, timespec="milliseconds") if stopped is not None else None})
    message = f"resume could not open the rig; {words}"
    try:
        recorder.add_event(last_t, "safe_state", "control", message, data)
        kept = "recorded in the run's events"
    except (CastrigError, OSError) as why:  # a full disk: said here, the rig is as safe as it is
        kept = f"not recorded in the run's events ({why})"
    tail = (f"{run_dir}: not resumed; the rig could not be opened, so the resume made safe what answers: {words} "
            f"({kept}). The run stays resumable: {again} once every device answers")
    if not data["safe"] and not data.get("owned_by_another"):  # (its owner makes it safe as it ends)
        tail += f"; meanwhile make the rest safe at the devices, or {by_hand} once they answer"
    hold.stop_here(tail)
    raise RigUnreachable(f"{exc}\n{tail}") from None


def earlier_dated_stop(recorder: Any, stopped: float | None) -> float | None:
    """The crashed part's stop (epoch s), as a resume that could not open the rig dated it before
    writing its event (which dates the folder's files itself), where that is earlier than
    ``stopped`` or ``stopped`` is unknown. Only events since the last resume count."""
    for e in reversed(recorder.events()):
        if e.kind == "resume":
            break
        dated = (e.data or {}).get("stopped_utc") if e.kind == "safe_state" and NOT_OPENED in (e.data or {}) else None
        when = parse_utc(dated) if dated else None
        if when is not None and (stopped is None or when.timestamp() < stopped):
            stopped = when.timestamp()
    return stopped
