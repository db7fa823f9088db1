"""The report's words for the bounds a verdict did not pass: each bound once, with the grades it
fails (not once per grade).

The grades include one another (claim 2-4 include claim 1), so a through-pore fraction under
claim 1's bound fails all four: said once per grade, one membrane's line named it four times,
and a run of 20 membranes filled "What went wrong" with the same bound eighty times.
"""

from __future__ import annotations

import math
from typing import Any

from castrig.store.export import grade_passes, verdict_rows


def unmet_grades(verdict: Any) -> list[str]:
    """The grades ``verdict`` did not meet, in its order."""
    return [g for g, met in grade_passes(verdict).items() if not met]


def unmet_bounds(verdict: Any, grades: list[str]) -> str:
    """The bounds of ``grades`` that did not pass, each once, as the verdict judged it: failed
    (value, margin), marginal (value, its 95 % interval and flags: the bound lies inside the
    interval), or not measured (no value) -- followed by the grades it fails when it does not
    fail every one of ``grades`` (``"…; for claim4"``). "" when there are none."""
    wanted = set(grades)
    bounds: dict[tuple[Any, ...], tuple[str, list[str]]] = {}
    for r in verdict_rows(verdict, extended=True):
        if r["grade"] not in wanted or r["pass"] is True:
            continue
        key = (r["metric"], r["bound"], r["pass"], r.get("status"))
        if key not in bounds:
            bounds[key] = (_bound_words(r), [])
        if r["grade"] not in bounds[key][1]:
            bounds[key][1].append(r["grade"])
    parts = []
    for words, failing in bounds.values():
        which = "" if set(failing) == wanted else f"; for {', '.join(failing)}"
        parts.append(f"{words[:-1]}{which})")
    return "; ".join(parts)


def _bound_words(r: dict[str, Any]) -> str:
    """One bound's check in words, ending in ``)``."""
    flags = f", flagged {r['flags']}" if r.get("flags") else ""
    if r["pass"] is False:
        return f"{r['metric']} {value_words(r['measured'])} (bound {r['bound']}, margin {value_words(r['margin'])}{flags})"
    if r.get("status") == "marginal" and r["measured"] is not None:
        interval = (f", 95 % interval {value_words(r['interval_low'])}–{value_words(r['interval_high'])}"
                    if r.get("interval_low") is not None else "")
        return f"{r['metric']} {value_words(r['measured'])} marginal (bound {r['bound']}{interval}{flags})"
    return f"{r['metric']} not measured (bound {r['bound']})"


def value_words(x: Any) -> str:
    """A value in words for sentences (not HTML: the page puts every string in as text)."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return "—" if math.isnan(x) else f"{x:.4g}"
    return str(x)
