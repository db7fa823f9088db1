"""A membrane made as its run stopped: the record and the journal agree before a resume plans.

Two writes say a membrane was made: its record (``made``, with ``made_utc``) and the end of the
step that made it (its evaporation, else its cast) in the journal. A kill -9 between them left one
without the other:

- recorded made, its evaporation's end not journaled: the resume called it lost ("the cast film
  dried without RH control ... after 20 s of it", of a 20 s evaporation that had ended under
  control), and dropped the made time it had been given;
  On the twin the step's end also carried the film the twin had formed: without it the resumed
  twin imaged a blank film (opening ratio 0), so the made record keeps the twin's snapshot too;
- its cast's end journaled, the record not written (a recipe without an evaporate step): the
  membrane stayed ``forming`` for ever, without a made time, its images of a membrane never made.

Here the missing half is written from the other one, with the made time stamped when it was made
(never the resume's): the step is not run again, the membrane not lost.
"""

from __future__ import annotations

from typing import Any

from castrig.recipe.membranes import plan_membranes, process_record, step_label
from castrig.recipe.model import Recipe

#: The statistics of an evaporation its step journals, kept in the membrane's process record too.
_EVAPORATION_KEYS = ("rh_error_mean_pct", "rh_error_rms_pct", "out_of_band_s")


def settle_made(recorder: Any, recipe: Recipe, journal: list[Any], t_s: float) -> list[Any]:
    """Write the half a crash left out for every membrane made as its run stopped (at run clock
    ``t_s``, the resume's); the journal as it is now (``journal`` if nothing was written)."""
    records = {mb.membrane_id: mb for mb in recorder.membranes()}
    wrote = False
    for plan in plan_membranes(recipe):
        mid, step = plan.membrane_id(recorder.info.run_id), plan.made_at_step
        mb = records.get(mid)
        ends = [e for e in journal if e.step_index == step and e.state == "done"]
        if mb is not None and mb.status in ("made", "judged") and not ends:
            made_utc = (mb.process or {}).get("made_utc")
            evaporation = (mb.process or {}).get("evaporation") or {}
            data = {k: evaporation[k] for k in _EVAPORATION_KEYS if k in evaporation}
            if (mb.process or {}).get("twin"):  # the twin's film as it was made, for the resume to put back
                data["twin"] = mb.process["twin"]
            data.update(membrane_id=mid, made_utc=made_utc, settled_by_resume="the membrane was recorded made before "
                        "the run stopped; the end of its step was not journaled")
            recorder.add_journal(t_s, step, "done", data)
            recorder.add_event(t_s, "membrane", "runner", f"membrane {mid}: made before the run stopped (recorded made "
                               f"at {made_utc or 'an unrecorded time'}); the end of {step_label(step, recipe.steps[step])} "
                               "journaled now, the step not run again", {"membrane_id": mid, "status": mb.status})
            wrote = True
        elif ends and mb is not None and mb.status == "forming":
            end = ends[-1]
            mb.status, mb.t_end_s = "made", end.t_s
            evap_data = dict(end.data) if plan.evaporate_step is not None else None
            mb.process = process_record(recorder, recipe, plan, mb.t_start_s, end.t_s, evap_data)
            if end.data.get("made_utc"):  # (a run recorded before castrig journaled it: no made time)
                mb.process["made_utc"] = end.data["made_utc"]
            if end.data.get("twin"):  # the twin's film as it was made, as the record written then keeps it
                mb.process["twin"] = end.data["twin"]
            recorder.save_membrane(mb)
            recorder.add_event(t_s, "membrane", "runner", f"membrane {mid}: made ({step_label(step, recipe.steps[step])} "
                               "ended before the run stopped; its record written now)", {"membrane_id": mid, "status": "made"})
            wrote = True
    return recorder.journal() if wrote else journal
