"""The fault catalogue and its schedule: what can go wrong overnight, and when to make it happen.

A :class:`Fault` is one thing breaking (a device's link timing out, a pump alarm, the disk
filling, the clock jumping) for ``duration_s`` of virtual time; a :class:`FaultPoint` is where in
a recipe it starts (a step, and seconds into that step). Faults act through the emulators — the
drivers see exactly the bytes a broken device would send — or below the store (a SQLite
connection that answers "database or disk is full"), or on the clock.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from castrig.clock import VirtualClock
from castrig.recipe import model as m

#: Generic link faults (every emulator) by harness name -> emulator fault name.
LINK_FAULTS: dict[str, str] = {
    "timeout": "no_reply",
    "garbage": "garbage",
    "truncated": "truncate",
    "port_vanishes": "drop",
}

#: Faults of a chamber's own controller (Watlow F4/F4T) by harness name -> emulator fault name:
#: exception replies (04, server device failure) and, on Modbus RTU, replies with a bad CRC.
CHAMBER_FAULTS: dict[str, str] = {
    "exception_reply": "exception",
    "crc_error": "crc_error",
    "chamber_stuck": "stuck",
}

#: How long each kind lasts (virtual s). Short link glitches are within the drivers' retry
#: budget (3 attempts x 1 s timeout); longer ones need the runner's comms tolerance or stop it.
DURATIONS: dict[str, float] = {
    "timeout": 2.5,
    "garbage": 2.5,
    "truncated": 2.5,
    "port_vanishes": 6.0,
    "pump_stall": 120.0,
    "pump_alarm": 0.0,
    "mfc_not_following": 120.0,
    # held at the front panel (or by another client): lasts until someone cancels the hold
    "mfc_valve_held": math.inf,
    "rh_stuck": 400.0,
    "rh_noisy": 120.0,
    "rh_out_of_range": 30.0,
    "rh_sensor_error": 30.0,
    "camera_fails": 30.0,
    "exception_reply": 2.5,
    "crc_error": 2.5,
    "chamber_stuck": 120.0,
    "disk_full": math.inf,
    "clock_jump": 0.0,
}


@dataclass(frozen=True)
class Fault:
    """One kind of failure of one target (a device role, ``store`` or ``clock``)."""

    kind: str
    target: str
    duration_s: float
    arg: str | float | None = None

    @property
    def label(self) -> str:
        extra = "" if self.arg is None else f"({self.arg:g})" if isinstance(self.arg, float) else f"({self.arg})"
        return f"{self.kind}{extra}:{self.target}"


@dataclass(frozen=True)
class FaultPoint:
    """Where a fault starts: ``offset_s`` of virtual time after step ``step`` started."""

    step: int
    offset_s: float


def catalogue(roles: Iterable[str]) -> list[Fault]:
    """Every fault the harness knows, for a rig with these device roles (a mapping of role to
    device config also says which models: a Watlow chamber gets its controller's faults)."""
    models = {r: getattr(c, "model", None) for r, c in roles.items()} if isinstance(roles, Mapping) else {}
    roles = list(roles)
    out: list[Fault] = []
    for kind in LINK_FAULTS:
        out += [Fault(kind, role, DURATIONS[kind]) for role in roles]
    for pump in ("caster", "water_pump"):
        if pump in roles:
            out.append(Fault("pump_stall", pump, DURATIONS["pump_stall"]))
            out += [Fault("pump_alarm", pump, 0.0, kind) for kind in "RSTEO"]
    out += [Fault("mfc_not_following", r, DURATIONS["mfc_not_following"]) for r in ("dry_mfc", "wet_mfc") if r in roles]
    if "wet_mfc" in roles:
        out.append(Fault("mfc_valve_held", "wet_mfc", DURATIONS["mfc_valve_held"]))
    if "rh_near" in roles:
        out += [Fault(k, "rh_near", DURATIONS[k]) for k in ("rh_stuck", "rh_noisy", "rh_out_of_range", "rh_sensor_error")]
    if "camera" in roles:
        out.append(Fault("camera_fails", "camera", DURATIONS["camera_fails"]))
    if models.get("chamber") in ("watlow_f4", "watlow_f4t"):
        kinds = ["exception_reply", "chamber_stuck"] + (["crc_error"] if models["chamber"] == "watlow_f4" else [])
        out += [Fault(k, "chamber", DURATIONS[k]) for k in kinds]
    out.append(Fault("disk_full", "store", math.inf))
    # 5 s: under every watchdog (must be ridden out); 15 s: over the pumps' 10 s safe-mode
    # watchdog (a frozen host: the pumps stop themselves); 3600 s: a suspended host
    out += [Fault("clock_jump", "clock", 0.0, s) for s in (5.0, 15.0, 3600.0)]
    return out


def nominal_step_s(step: Any) -> float:
    """How long a step lasts when nothing goes wrong (virtual s; capture/analyse take none)."""
    if isinstance(step, (m.PrewetStep, m.CastStep)):
        return 60.0 * step.volume_ml / step.rate_ml_min
    if isinstance(step, m.ConditionStep):
        return step.stable_for_s + 60.0
    return float(getattr(step, "duration_s", 0.0) or 0.0)


def schedule(faults: list[Fault], recipe: m.Recipe, *, seed: int, sample: int | None = None) -> list[tuple[Fault, FaultPoint]]:
    """Each fault at each step, at a seeded time inside the step; ``sample`` draws that many.

    A seeded sample keeps every fault kind and every step represented before repeating any, so
    a small CI sample still covers the catalogue's families and the recipe's steps.
    """
    rng = random.Random(seed)
    cells = [(f, i) for f in faults for i in range(len(recipe.steps))]
    if sample is not None and sample < len(cells):
        rng.shuffle(cells)
        by_kind: dict[str, list[tuple[Fault, int]]] = {}
        for c in cells:
            by_kind.setdefault(c[0].kind, []).append(c)
        picked: list[tuple[Fault, int]] = []
        steps_seen: set[int] = set()
        # round-robin over kinds, preferring steps not yet covered
        for _ in itertools.count():
            progressed = False
            for kind in sorted(by_kind):
                pool = by_kind[kind]
                if not pool or len(picked) >= sample:
                    continue
                j = next((k for k, c in enumerate(pool) if c[1] not in steps_seen), 0)
                c = pool.pop(j)
                picked.append(c)
                steps_seen.add(c[1])
                if len(steps_seen) == len(recipe.steps):
                    steps_seen.clear()
                progressed = True
            if len(picked) >= sample or not progressed:
                break
        cells = picked
    out = []
    for fault, i in cells:
        span = nominal_step_s(recipe.steps[i])
        offset = round(rng.uniform(0.0, 0.8 * span), 1) if span > 0 else 0.0
        out.append((fault, FaultPoint(i, offset)))
    return out


class ScheduledClock(VirtualClock):
    """Virtual time that fires scheduled actions at their exact time, even mid-exchange.

    A fault window therefore opens and closes in virtual time wherever the runner is — inside a
    driver's retries, a pump step or a capture — not only between control ticks.
    """

    def __init__(self) -> None:
        super().__init__()
        self._actions: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._firing = False

    def at(self, t: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._actions, (t, next(self._seq), action))
        if t <= self._t:
            self._fire_due()

    def jump(self, seconds: float) -> None:
        """The clock steps forward without anyone having slept (a frozen host, a suspend)."""
        self._t += seconds

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot sleep a negative time ({seconds} s)")
        self.sleep_until(self._t + seconds)

    def sleep_until(self, t: float) -> None:
        while self._actions and self._actions[0][0] <= t and not self._firing:
            self._t = max(self._t, self._actions[0][0])
            self._fire_due()
        if t > self._t:
            self._t = float(t)
        self._fire_due()

    def _fire_due(self) -> None:
        if self._firing:
            return
        self._firing = True
        try:
            while self._actions and self._actions[0][0] <= self._t:
                _, _, action = heapq.heappop(self._actions)
                action()
        finally:
            self._firing = False


class FullDiskConnection:
    """A SQLite connection whose writes fail with SQLITE_FULL once ``full`` is set.

    Stands in for the run's real connection, below the store, so the store's own handling of a
    full disk is what gets exercised. Reads keep working, as they do on a full disk.
    """

    #: Statements that need free pages (a BEGIN does not; the INSERT or the COMMIT fails).
    _WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "COMMIT")

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn
        self.full = False
        self.failed_writes = 0

    def _check(self, sql: str) -> None:
        if self.full and sql.lstrip().upper().startswith(self._WRITES):
            self.failed_writes += 1
            raise sqlite3.OperationalError("database or disk is full")

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._check(sql)
        return self._conn.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._check(sql)
        return self._conn.executemany(sql, *args)

    def executescript(self, sql: str) -> sqlite3.Cursor:
        self._check(sql)
        return self._conn.executescript(sql)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)
