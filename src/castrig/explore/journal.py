"""The search folder: its settings and an append-only journal of trials, so a killed search goes on.

``FOLDER/search.json`` holds what the search is for (grade, target, seed, space, template,
profile); ``FOLDER/trials.jsonl`` gets one line when a trial starts and one when it ends, each
flushed and fsynced before the search moves on. On resume the finished trials are read back
(they are the optimiser's history: proposals depend only on the seed, the trial number and that
history, so a resumed search proposes exactly what an uninterrupted one would have), and a trial
that started without ending is run again with the same parameters and seed.

One process works on a folder at a time: the coordinating process holds an OS lock on
``FOLDER/explore.lock`` (:mod:`castrig.oslock`, dropped when it dies, even by kill -9), and a
second ``castrig explore`` on the same folder is refused as busy (exit 4) instead of running
every trial a second time. Worker processes of ``--workers N`` take no folder lock.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from castrig.errors import BadInput
from castrig.explore.objective import Outcome
from castrig.explore.space import SearchSpace
from castrig.jsontext import loads
from castrig.redact import redact_urls
from castrig.atomic import atomic_write_json

TrialKind = Literal["search", "confirm", "grid"]


class SearchSettings(BaseModel):
    """What a search is for. Everything but the budget must match to resume a folder."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    grade: Literal["claim1", "claim2", "claim3", "claim4"]
    target_d_um: float = Field(..., gt=0, le=1000)
    tolerance: float = Field(0.10, gt=0, le=1)
    seed: int = Field(0, ge=0)
    budget: int = Field(40, ge=1, le=10_000)
    space: SearchSpace = Field(default_factory=SearchSpace)
    template: dict[str, Any]
    profile: dict[str, Any]
    profile_path: str
    profile_seed: int = 1
    twin: bool = True

    def identity(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"budget", "profile_path"})


@dataclass
class Trial:
    number: int
    kind: str
    params: dict[str, float]
    seed: int
    recipe_path: str
    profile_path: str
    outcome: Outcome | None = None
    run_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.outcome is not None


def differences(old: Any, new: Any, where: str = "") -> list[str]:
    """Where two settings differ, as dotted paths to the innermost differing keys
    (``template.support_pore_um``, ``template.steps.4.duration_s``), not just ``template``."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            out += differences(old.get(k), new.get(k), f"{where}.{k}" if where else str(k))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{where}.{i}")]
    return [] if old == new else [where or "settings"]


class SearchFolder:
    """Reads and appends the state of one search."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.settings_path = self.root / "search.json"
        self.journal_path = self.root / "trials.jsonl"
        self.trials_dir = self.root / "trials"
        self.runs_dir = self.root / "runs"
        self.lock_path = self.root / "explore.lock"

    def claim(self, purpose: str = "castrig explore") -> None:
        """Own the folder (re-entrant in this process) or raise :class:`~castrig.errors.Busy` naming the holder."""
        from castrig import oslock

        oslock.acquire(self.lock_path, purpose=purpose,
                       what=f"search folder {self.root} (another castrig explore works on it; run the command again "
                            f"when it has ended to resume)")

    def release(self) -> None:
        from castrig import oslock

        oslock.release(self.lock_path)

    def exists(self) -> bool:
        return self.settings_path.is_file()

    def open(self, settings: SearchSettings) -> SearchSettings:
        """Start a new search here, or check that the one here is the same search (resume)."""
        if self.exists():
            try:
                old = SearchSettings.model_validate_json(self.settings_path.read_text())
            except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: say which
                raise BadInput(f"{self.settings_path}: not a search of this castrig version: {exc}", file=str(self.settings_path)) from None
            held_password = redact_urls(old.profile) != old.profile
            # a search.json written before profiles were recorded without passwords: the same search
            old = old.model_copy(update={"profile": redact_urls(old.profile)})
            if old.identity() != settings.identity():
                diff = differences(old.identity(), settings.identity())
                raise BadInput(
                    f"{self.settings_path}: this folder holds another search ({old.grade} at {old.target_d_um:g} µm, seed "
                    f"{old.seed}); different: {', '.join(diff[:5])}{f' and {len(diff) - 5} more' if len(diff) > 5 else ''}. Use another --folder, or the same settings to resume it",
                    file=str(self.settings_path), field=diff[0] if diff else None)
            if settings.budget != old.budget or held_password:
                atomic_write_json(self.settings_path, settings.model_dump(mode="json"))
            return settings
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.settings_path, settings.model_dump(mode="json"))
        return settings

    def load_settings(self) -> SearchSettings:
        if not self.exists():
            raise BadInput(f"{self.root}: no search here (no search.json)", file=str(self.root))
        return SearchSettings.model_validate_json(self.settings_path.read_text())

    def _append(self, record: dict[str, Any]) -> None:
        with open(self.journal_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def started(self, t: Trial) -> None:
        self._append({"event": "started", "n": t.number, "kind": t.kind, "params": t.params, "seed": t.seed,
                      "recipe": t.recipe_path, "profile": t.profile_path, "extra": t.extra})

    def finished(self, t: Trial) -> None:
        assert t.outcome is not None
        self._append({"event": "done", "n": t.number, "run_dir": t.run_dir, "outcome": t.outcome.to_dict()})

    def trials(self) -> list[Trial]:
        """Every trial in the journal, in order; a torn last line (killed mid-write) is ignored."""
        out: dict[int, Trial] = {}
        if not self.journal_path.is_file():
            return []
        for line in self.journal_path.read_text(encoding="utf-8").splitlines():
            try:
                rec = loads(line)  # (one nested too deep: a RecursionError traceback of castrig explore)
            except ValueError:
                continue
            if not isinstance(rec, dict) or not isinstance(rec.get("n"), int):
                continue  # (no trial's line: `5` ended castrig explore in a TypeError)
            n = rec["n"]
            if rec["event"] == "started":
                out[n] = Trial(n, rec["kind"], rec["params"], rec["seed"], rec["recipe"], rec["profile"], extra=rec.get("extra", {}))
            elif rec["event"] == "done" and n in out:
                out[n].outcome = Outcome.from_dict(rec["outcome"])
                out[n].run_dir = rec.get("run_dir")
        return [out[k] for k in sorted(out)]
