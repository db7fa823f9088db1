"""The reliability table: faults per kind and how each ended; crash, link and bad-input tallies."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any


def fault_rows(trials: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per fault kind: injected, recovered, safe-stopped, failed, lost samples, tracebacks."""
    rows: dict[str, dict[str, Any]] = defaultdict(lambda: {"injected": 0, "recovered": 0, "safe_stopped": 0, "failed": 0,
                                                          "not_reached": 0, "lost_samples": 0, "tracebacks": 0})
    for t in trials:
        r = rows[t.kind]
        if t.verdict == "not_reached":
            r["not_reached"] += 1
        else:
            r["injected"] += 1
            r[t.verdict] += 1
        r["lost_samples"] += t.lost_samples
        r["tracebacks"] += t.tracebacks
    out = [{"kind": k, **v} for k, v in sorted(rows.items())]
    total = {"kind": "TOTAL", **{c: sum(r[c] for r in out) for c in out[0] if c != "kind"}} if out else None
    return out + ([total] if total else [])


def format_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(str(r[c]).rjust(w) if isinstance(r[c], int) else str(r[c]).ljust(w) for c, w in zip(columns, widths))
            for r in rows]
    return "\n".join([line, sep, *body])


FAULT_COLUMNS = ("kind", "injected", "recovered", "safe_stopped", "failed", "lost_samples", "tracebacks", "not_reached")
