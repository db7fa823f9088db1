"""Fit the twin's chamber to recorded runs of a real rig, so the twin predicts that rig.

What is fitted (``SimConfig`` fields, the ones ``castrig sim fit`` writes): the chamber volume
(with the total flow it sets the time constant V/Q), the leak to the room (per minute), the
near-membrane sensor's lag (s) and the wet line's RH (%RH, the bubbler's saturation).

How: each recorded run is **replayed** on the twin's own physics (:class:`castrig.sim.world.World`)
— the recorded flow set points of the dry and wet MFCs (or the chamber controller's recorded set
point, for a chamber with its own controller), the water dispensed onto the support, the room's
RH and the temperature, each held from one sample to the next — and the predicted
near-membrane RH is compared with the recorded one at every sample. The parameters minimise the
sum of squared differences over all runs (:func:`scipy.optimize.least_squares`, trust-region
reflective within physical bounds, parameters scaled by their starting values); the replay RMS
of each run is reported. Runs sampled at the control period replay best: a coarser sample
period blurs the recorded inputs (held constant between samples), which shows in the RMS.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from castrig.errors import BadInput
from castrig.rig.profile import Profile
from castrig.sim.physics import vapour_from_rh
from castrig.sim.world import ChamberModel, InternalController, World
from castrig.store.sqlite_connect import ro_uri

#: Fitted parameters: SimConfig field -> (lower, upper) physical bounds.
PARAMETERS: dict[str, tuple[float, float]] = {
    "chamber_volume_l": (0.02, 100.0),
    "leak_per_min": (0.0, 5.0),
    "sensor_tau_s": (0.0, 300.0),
    "bubbler_rh_pct": (40.0, 100.0),
}
_MFC_INPUTS = ("dry_setpoint_slpm", "wet_setpoint_slpm")


@dataclass
class RecordedRun:
    """The channels of one run that a replay needs (times on the run clock, s)."""

    path: Path
    kind: str  # "mfc" or "chamber"
    t_s: np.ndarray
    rh_near_pct: np.ndarray
    inputs: dict[str, tuple[np.ndarray, np.ndarray]]
    room_rh_pct: float
    temperature_c: float


@dataclass
class FitResult:
    params: dict[str, float]
    start: dict[str, float]
    rms_pct: dict[str, float]
    start_rms_pct: dict[str, float]
    rms_total_pct: float
    evaluations: int
    kind: str
    message: str = ""
    extra: dict[str, float] = field(default_factory=dict)


#: The longest run the fit replays (7 days of run clock): the replay's cost grows with the span.
MAX_RUN_S = 7 * 24 * 3600.0


def load_run(run_dir: str | Path) -> RecordedRun:
    """The replay channels of a run folder (read-only; BadInput naming what is missing)."""
    run_dir = Path(run_dir)
    db_path = run_dir / "run.sqlite"
    if not db_path.is_file():
        raise BadInput(f"{run_dir}: not a run folder (no run.sqlite)", file=str(run_dir))
    db = sqlite3.connect(f"{ro_uri(db_path)}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute("select channel, t_s, value from samples order by t_s").fetchall()
    except sqlite3.DatabaseError as exc:
        raise BadInput(f"{db_path}: cannot read its samples ({exc})", file=str(db_path)) from None
    finally:
        db.close()
    series: dict[str, list[tuple[float, float]]] = {}
    for channel, t, v in rows:
        if v is not None and math.isfinite(v):
            # the replay steps through every second of the span: one time far off (another tool's
            # write, a damaged row) made the fit run without end
            if not (isinstance(t, (int, float)) and 0 <= t <= MAX_RUN_S):
                raise BadInput(f"{db_path}: samples.t_s = {t!r} ({channel}): out of range (allowed: 0 to {MAX_RUN_S:g} s "
                               "from the run's start)", file=str(db_path), field="samples.t_s")
            series.setdefault(channel, []).append((float(t), float(v)))

    def arr(name: str) -> tuple[np.ndarray, np.ndarray]:
        tv = np.asarray(series[name], float)
        return tv[:, 0], tv[:, 1]

    if len(series.get("rh_near_pct", [])) < 10:
        raise BadInput(f"{run_dir}: fewer than 10 samples of rh_near_pct (allowed: a run with RH recorded)",
                       file=str(db_path), field="rh_near_pct")
    if all(c in series for c in _MFC_INPUTS):
        kind, names = "mfc", list(_MFC_INPUTS)
    elif "chamber_setpoint_rh_pct" in series:
        kind, names = "chamber", ["chamber_setpoint_rh_pct"]
    else:
        raise BadInput(f"{run_dir}: no recorded inputs to replay (allowed: dry_setpoint_slpm and wet_setpoint_slpm, "
                       "or chamber_setpoint_rh_pct)", file=str(db_path))
    if "water_pump_infused_ml" in series:
        names.append("water_pump_infused_ml")
    t, rh = arr("rh_near_pct")
    room = float(np.median(arr("rh_room_pct")[1])) if "rh_room_pct" in series else float("nan")
    temp = float(np.median(arr("t_near_c")[1])) if "t_near_c" in series else float("nan")
    return RecordedRun(run_dir, kind, t, rh, {n: arr(n) for n in names}, room, temp)


def _held(t_in: np.ndarray, v_in: np.ndarray):  # type: ignore[no-untyped-def]
    """A recorded input as a function of time, held from each sample to the next."""
    def value(t: float) -> float:
        i = int(np.searchsorted(t_in, t, side="right")) - 1
        return float(v_in[max(i, 0)])
    return value


def replay(run: RecordedRun, params: dict[str, float], profile: Profile) -> np.ndarray:
    """The near-membrane RH the twin with ``params`` predicts at the run's sample times
    (noise-free: the sensor's true reading after its lag)."""
    sim = profile.sim
    room_rh = run.room_rh_pct if math.isfinite(run.room_rh_pct) else sim.room_rh_pct
    temp = run.temperature_c if math.isfinite(run.temperature_c) else sim.room_temperature_c
    chamber = ChamberModel(
        volume_l=params.get("chamber_volume_l", sim.chamber_volume_l), room_temperature_c=temp,
        temperature_drift_c=0.0, room_rh_pct=room_rh,
        bubbler_rh_pct=params.get("bubbler_rh_pct", sim.bubbler_rh_pct), dry_line_rh_pct=sim.dry_line_rh_pct,
        leak_per_min=params.get("leak_per_min", sim.leak_per_min),
        sensor_tau_s=params.get("sensor_tau_s", sim.sensor_tau_s),
    )
    groups = {k: v for k, v in sim.params.items() if k == "chamber"}
    chamber_extra = dict(groups.get("chamber", {}))
    for k in ("volume_l", "bubbler_rh_pct", "leak_per_min", "sensor_tau_s", "room_rh_pct", "room_temperature_c",
              "temperature_drift_c"):
        chamber_extra.pop(k, None)
    t0 = float(run.t_s[0])
    world = World(chamber, params={"chamber": chamber_extra}, t0=t0)
    world.vapour_hpa = vapour_from_rh(float(run.rh_near_pct[0]), temp)
    world.sensor_rh_pct = float(run.rh_near_pct[0])
    ins = run.inputs
    if "water_pump_infused_ml" in ins:
        water = _held(*ins["water_pump_infused_ml"])
        world.water_dispensed_ml = water
        world._water_seen_ml = water(t0)  # noqa: SLF001 - water already on the support at the start stays there
    if run.kind == "mfc":
        world.dry_flow_slpm = _held(*ins["dry_setpoint_slpm"])
        world.wet_flow_slpm = _held(*ins["wet_setpoint_slpm"])
    else:
        setpoint = _held(*ins["chamber_setpoint_rh_pct"])
        dry = world.chamber.dry_line_rh_pct

        def state() -> tuple[float, bool]:
            sp = setpoint(world.t)
            return sp, sp > dry + 0.5
        world.internal = InternalController(state=state, total_flow_slpm=profile.control.total_flow_slpm,
                                            dry_line_rh_pct=dry, wet_line_rh_pct=world.chamber.bubbler_rh_pct)
    out = np.empty(len(run.t_s))
    for i, t in enumerate(run.t_s):
        world.advance(float(t))
        out[i] = world.sensor_rh_pct
    return out


def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(a ** 2)))


def fit(runs: list[RecordedRun], profile: Profile, names: tuple[str, ...] = tuple(PARAMETERS)) -> FitResult:
    """Fit ``names`` (SimConfig fields) from ``profile``'s values to ``runs``."""
    if not runs:
        raise BadInput("no runs to fit")
    kinds = {r.kind for r in runs}
    if len(kinds) > 1:
        raise BadInput("the runs mix chamber kinds (two MFCs and a chamber controller): fit one rig at a time")
    start = {n: float(getattr(profile.sim, n)) for n in names}
    scale = np.array([max(abs(v), 1e-3) if n != "leak_per_min" else max(abs(v), 0.01) for n, v in start.items()])
    lower = np.array([PARAMETERS[n][0] for n in names]) / scale
    upper = np.array([PARAMETERS[n][1] for n in names]) / scale
    x0 = np.clip(np.array(list(start.values())) / scale, lower, upper)

    def params_of(x: np.ndarray) -> dict[str, float]:
        return {n: float(v) for n, v in zip(names, x * scale)}

    def residuals(x: np.ndarray) -> np.ndarray:
        p = params_of(x)
        return np.concatenate([replay(r, p, profile) - r.rh_near_pct for r in runs])

    start_res = {str(r.path): _rms(replay(r, start, profile) - r.rh_near_pct) for r in runs}
    from scipy.optimize import least_squares  # (0.2 s to import: not for the runs refused on loading)

    sol = least_squares(residuals, x0, bounds=(lower, upper), x_scale=1.0, diff_step=1e-3, xtol=1e-6, ftol=1e-8)
    fitted = params_of(sol.x)
    per_run = {str(r.path): _rms(replay(r, fitted, profile) - r.rh_near_pct) for r in runs}
    return FitResult(fitted, start, per_run, start_res, _rms(sol.fun), int(sol.nfev), kinds.pop(), sol.message)


def write_profile(start_path: str | Path, out_path: str | Path, params: dict[str, float]) -> str:
    """``start_path``'s text with the fitted ``sim.*`` values, written (atomically) to ``out_path``;
    the start profile's comments and layout are kept (its ``name`` gains ``-fitted``)."""
    import yaml

    from castrig.inputs import load_model
    from castrig.rig.profile_edit import set_value
    from castrig.atomic import atomic_write_bytes

    text = Path(start_path).read_text()
    name = yaml.safe_load(text).get("name", "twin")
    text = set_value(text, ("name",), f"{name}-fitted", file=str(start_path))
    for key, value in params.items():
        text = set_value(text, ("sim", key), float(f"{value:.5g}"), file=str(start_path))
    load_model(Profile, Path(out_path), yaml.safe_load(text))
    atomic_write_bytes(Path(out_path), text.encode())
    return text
