"""Membrane lots: every completed run whose membrane met a grade is a lot, named by its run id.

The lots are derived from the store (nothing to keep in step by hand); only the intended use
an operator assigns to a lot is stored, in ``DATA/lots.json``. Which grades suit which use is
:data:`SUITABLE_GRADES`: the uses are claims 5 and 6 of the specification, which we read as
using "the composite membrane of any one of claims 1 to 4" — a narrower grade can be required
per build or set-up (``required_grade``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from castrig.errors import BadInput
from castrig.store import open_store
from castrig.store.atomic import atomic_write_json

Use = Literal["blood_filter", "coculture"]
USES: dict[str, str] = {
    "blood_filter": "second-stage leukocyte filter (claims 5, 9-13)",
    "coculture": "cell co-culture diaphragm (claims 6, 14)",
}
SUITABLE_GRADES: dict[str, tuple[str, ...]] = {
    "blood_filter": ("claim1", "claim2", "claim3", "claim4"),
    "coculture": ("claim1", "claim2", "claim3", "claim4"),
}
_ASSIGNMENTS = "lots.json"


@dataclass
class Lot:
    """One membrane lot: the run that made it, what it met, what it measured, what it is for."""

    lot_id: str
    run_dir: str
    recipe_name: str
    started_utc: str
    grades_met: list[str]
    metrics: dict[str, Any] = field(default_factory=dict)
    intended_use: str | None = None

    def suits(self, use: str, required_grade: str | None = None) -> bool:
        grades = (required_grade,) if required_grade else SUITABLE_GRADES[use]
        return any(g in self.grades_met for g in grades)

    @property
    def uses(self) -> list[str]:
        return [u for u in USES if self.suits(u)]


def _assignments(root: Path) -> dict[str, dict[str, Any]]:
    path = root / _ASSIGNMENTS
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}: not valid JSON: {exc}", file=str(path)) from None
    return data if isinstance(data, dict) else {}


def list_lots(root: str | Path | None = None) -> list[Lot]:
    """The lots under a data root: completed runs with at least one grade met."""
    store = open_store(root)
    assigned = _assignments(store.root)
    lots = []
    for r in store.list_runs():
        if r.outcome != "completed" or not r.grades:
            continue
        metrics: dict[str, Any] = {}
        try:
            rec = store.open_run(Path(r.run_dir))
        except BadInput:
            continue  # a damaged folder is not a lot; `castrig runs` shows it
        try:
            metrics = dict(rec.results().get("metrics") or {})
        finally:
            rec.close()
        lots.append(Lot(r.run_id, r.run_dir, r.recipe_name, r.started_utc, list(r.grades), metrics,
                        (assigned.get(r.run_id) or {}).get("intended_use")))
    return lots


def get_lot(lot_id: str, root: str | Path | None = None, *, file: str | None = None, field_name: str = "lot") -> Lot:
    """The lot with this id, or a BadInput naming the file, the field and the lots there are."""
    lots = list_lots(root)
    for lot in lots:
        if lot.lot_id == lot_id:
            return lot
    known = ", ".join(lot.lot_id for lot in lots[-5:]) or "none"
    where = f"{file}: " if file else ""
    raise BadInput(f"{where}{field_name} = {lot_id!r}: no such lot in {open_store(root).root} (lots are completed runs that met a grade; "
                   f"latest: {known}; see `castrig lots`)", file=file, field=field_name)


def assign_use(lot_id: str, use: str, root: str | Path | None = None) -> Lot:
    """Record a lot's intended use, after checking that its grades suit that use."""
    if use not in USES:
        raise BadInput(f"--use {use!r}: unknown use (allowed: one of {', '.join(USES)})", field="--use")
    lot = get_lot(lot_id, root, field_name="LOT")
    if not lot.suits(use):
        raise BadInput(f"lot {lot_id}: grades met {', '.join(lot.grades_met)} do not suit {use} "
                       f"(allowed: one of {', '.join(SUITABLE_GRADES[use])})", field="--use")
    store_root = open_store(root).root
    data = _assignments(store_root)
    data[lot_id] = {"intended_use": use}
    atomic_write_json(store_root / _ASSIGNMENTS, data)
    lot.intended_use = use
    return lot
