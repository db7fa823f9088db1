"""The process-window search on the twin: propose, run, score, journal — until a recipe is found.

A trial writes its recipe (and, for its total flow, a profile copy) into the search folder and
runs it with :func:`castrig.recipe.session.run_recipe` in virtual time, with the data root inside
the search folder. A trial that meets the grade with D within the tolerance is run once more with
the profile's own seed — what ``castrig run FOUND.yaml`` does — and only if that confirmation
also meets it is the recipe "found" (so the found recipe, run again, meets it).
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from castrig.analysis.spec import load_spec
from castrig.errors import BadInput
from castrig.explore.journal import SearchFolder, SearchSettings, Trial
from castrig.explore.objective import OBJECTIVE, rank_key, rescored, score_run
from castrig.explore.optimiser import propose
from castrig.explore.space import (
    SearchSpace,
    apply_point,
    check_space_for_profile,
    check_space_rh_reach,
    check_template,
    default_template,
    field_range,
    point_label,
    profile_for,
    tidy_recipe,
)
from castrig.recipe.model import Recipe, load_recipe
from castrig.redact import redact_urls
from castrig.rig.profile import Profile, load_profile

#: Pores narrower than this many camera pixels are not measured accurately (segmentation and
#: equivalent-circle diameters need the pore to span several pixels).
MIN_PORE_PX = 9.0
#: A field narrower than this many pore diameters gives too few whole pores for the statistics.
MIN_PORES_ACROSS_FIELD = 8.0
#: The largest support pore a recipe takes (``Recipe.support_pore_um``), µm.
SUPPORT_PORE_MAX_UM = field_range(Recipe, "support_pore_um")[1]


@dataclass
class RunOutput:
    """What running one recipe gave back (the pieces the search scores)."""

    outcome: str
    run_dir: str | None
    metrics: dict[str, Any] | None
    verdict: dict[str, Any] | None


TrialRunner = Callable[[Path, Path, Path, int], RunOutput]


def twin_runner(recipe_path: Path, profile_path: Path, data_root: Path, seed: int) -> RunOutput:
    """Run one recipe quietly (the journal and the map tell the story, not per-run output)."""
    from castrig.recipe.session import run_recipe
    from castrig.store.base import latest_results
    from castrig.store.sqlite_store import open_run_folder

    with contextlib.redirect_stdout(io.StringIO()):
        res = run_recipe(recipe_path, profile_path, data_root=data_root, seed=seed, quiet=True, local_only=True)
    metrics = None
    if res.run_dir:
        rec = open_run_folder(Path(res.run_dir))
        try:
            metrics = latest_results(rec).get("metrics")  # one cast per explored recipe: its membrane
        finally:
            rec.close()
    return RunOutput(res.outcome, res.run_dir, metrics, res.verdict)


# -- settings, checked before anything runs ---------------------------------------------------
def grade_d_range_um(grade: str) -> tuple[float, float]:
    """The grade's allowed mean pore diameter (its own and its included grades' bounds)."""
    lo, hi = 0.0, math.inf
    for b in load_spec().grades[grade].bounds:
        if b.quantity == "mean_pore_diameter_um":
            lo, hi = (max(lo, b.limit), hi) if b.kind == "min" else (lo, min(hi, b.limit))
    return lo, hi


def check_target(target_d_um: float, grade: str, profile: Profile, profile_path: Path) -> None:
    """Say clearly when a target cannot be reached or cannot be measured with this rig."""
    lo, hi = grade_d_range_um(grade)
    if not lo <= target_d_um <= hi:
        raise BadInput(f"--target-d-um = {target_d_um:g}: {grade} allows a mean pore diameter of {lo:g} to {hi:g} µm "
                       f"(allowed: {lo:g} to {hi:g})", field="--target-d-um")
    cam = profile.devices.camera
    px = getattr(cam, "pixel_size_um", None)
    if px is None:
        return
    where = f"devices.camera.pixel_size_um = {px:g} µm in {profile_path}"
    if target_d_um / px < MIN_PORE_PX:
        raise BadInput(
            f"--target-d-um = {target_d_um:g}: pores of {target_d_um:g} µm are only {target_d_um / px:.1f} px across with "
            f"{where}; the analysis needs at least {MIN_PORE_PX:g} px across to measure D (allowed with this profile: "
            f">= {MIN_PORE_PX * px:g} µm; for smaller pores use a camera or magnification with a finer pixel)",
            file=str(profile_path), field="--target-d-um")
    width_px = getattr(cam, "width_px", None)
    if width_px is not None and target_d_um > width_px * px / MIN_PORES_ACROSS_FIELD:
        top = width_px * px / MIN_PORES_ACROSS_FIELD
        raise BadInput(
            f"--target-d-um = {target_d_um:g}: a {width_px} px field at {px:g} µm/px ({width_px * px:g} µm) holds fewer than "
            f"{MIN_PORES_ACROSS_FIELD:g} pores of {target_d_um:g} µm across, too few to measure them (allowed with this "
            f"profile: <= {top:g} µm; use a coarser pixel or a wider field)", file=str(profile_path), field="--target-d-um")


def template_point(template: dict[str, Any], profile: Profile) -> dict[str, float]:
    """The template's own process parameters: the search's first trial (a known recipe)."""
    steps = template["steps"]
    evap = next(s for s in steps if s["type"] == "evaporate")
    cast = next(s for s in steps if s["type"] == "cast")
    return {"rh_pct": float(evap["setpoint_rh_pct"]), "concentration_mg_ml": float(template.get("concentration_mg_ml", 5.0)),
            "cast_volume_ml": float(cast["volume_ml"]), "total_flow_slpm": float(profile.control.total_flow_slpm)}


def make_settings(*, grade: str, target_d_um: float, profile_path: Path, budget: int = 40, seed: int = 0,
                  tolerance: float = 0.10, space: SearchSpace | None = None, template_path: Path | None = None,
                  support_pore_um: float | None = None, space_file: Path | None = None,
                  space_given: dict[str, str] | None = None) -> SearchSettings:
    """Validate every input of a search; a BadInput names what is wrong before anything runs."""
    if support_pore_um is not None and not (math.isfinite(support_pore_um) and 0 < support_pore_um <= SUPPORT_PORE_MAX_UM):
        raise BadInput(f"--support-pore-um = {support_pore_um:g}: out of range (allowed: > 0 to {SUPPORT_PORE_MAX_UM:g} µm)",
                       field="--support-pore-um")
    profile = load_profile(profile_path)
    space = space or SearchSpace()
    check_target(target_d_um, grade, profile, profile_path)
    check_space_for_profile(space, profile, profile_path, space_file=space_file, given=space_given)
    check_space_rh_reach(space, profile, profile_path, space_file=space_file, given=space_given)
    if template_path is not None:
        recipe = load_recipe(template_path)
        check_template(recipe, template_path)
        template = recipe.model_dump(mode="json", exclude_none=True)
    else:
        template = default_template(support_pore_um or float(max(5.0, round(2.0 * target_d_um))))
    if support_pore_um is not None:
        template["support_pore_um"] = support_pore_um
    _check_makes_recipes(template, profile, grade, template_path)
    support = template.get("support_pore_um")
    if support is not None and support < 0.5 * target_d_um * (1 + tolerance):
        raise BadInput(
            f"support_pore_um = {support:g}: claim 1 needs support pores at least half the membrane's pores "
            f"(allowed: >= {0.5 * target_d_um * (1 + tolerance):.3g} µm for D = {target_d_um:g} µm ± {tolerance:.0%})",
            file=str(template_path) if template_path else None, field="support_pore_um")
    try:  # the profile without passwords: it goes to search.json, each trial's profile.yaml, the study's attrs
        return SearchSettings(grade=grade, target_d_um=target_d_um, tolerance=tolerance, seed=seed, budget=budget, space=space,
                              template=template, profile=redact_urls(profile.model_dump(mode="json")), profile_path=str(profile_path),
                              profile_seed=profile.sim.seed, twin=profile.clock == "virtual")
    except Exception as exc:  # noqa: BLE001 - pydantic: one line per field
        raise BadInput(f"explore settings: {exc}") from None


def _check_makes_recipes(template: dict[str, Any], profile: Profile, grade: str, template_path: Path | None) -> None:
    """The template, at its own point, must make a valid recipe — else no trial could run; said
    before the search folder is written (a pydantic traceback after it would leave the folder
    holding settings no run can use)."""
    from pydantic import ValidationError

    try:
        apply_point(template, template_point(template, profile), name="explore-check", grade=grade)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        option = "--support-pore-um" if where == "support_pore_um" and template_path is None else where
        raise BadInput(f"{template_path or 'the default template'}: {where}: {first['msg']} (input {first.get('input')!r})",
                       file=str(template_path) if template_path else None, field=option) from None


# -- the loop ----------------------------------------------------------------------------------
@dataclass
class SearchResult:
    settings: SearchSettings
    trials: list[Trial]
    found: Trial | None  # the confirmation trial that met the target
    found_of: Trial | None  # the search trial it confirmed
    recipe_path: Path | None
    profile_path: Path | None
    map_path: Path | None

    @property
    def search_trials(self) -> int:
        return sum(1 for t in self.trials if t.kind == "search")

    @property
    def runs(self) -> int:
        return sum(1 for t in self.trials if t.done)

    def best(self) -> Trial | None:
        done = [t for t in self.trials if t.done and t.kind != "grid"]
        return min(done, key=lambda t: rank_key(t.outcome)) if done else None  # type: ignore[arg-type]


def _stored_verdict(run_dir: str | None) -> dict[str, Any] | None:
    """The verdict a finished trial's run stored, or None (no folder, unreadable, not judged)."""
    if not run_dir or not Path(run_dir).is_dir():
        return None
    from castrig.store.base import latest_results
    from castrig.store.sqlite_store import open_run_folder

    try:
        rec = open_run_folder(Path(run_dir))
    except Exception:  # noqa: BLE001 - damaged or foreign: scored from what the journal kept
        return None
    try:
        verdict = latest_results(rec).get("verdict")
    except Exception:  # noqa: BLE001
        verdict = None
    finally:
        rec.close()
    return verdict if isinstance(verdict, dict) else None


class Search:
    """One search folder being worked on."""

    def __init__(self, folder: Path, settings: SearchSettings, *, runner: TrialRunner = twin_runner,
                 on_trial: Callable[[Trial], None] | None = None, write_map: bool = True):
        self.sf = SearchFolder(folder)
        self.sf.claim()  # before a byte is written: a second search on this folder is busy (exit 4)
        try:
            self.settings = self.sf.open(settings)
        except BaseException:
            self.sf.release()
            raise
        self.runner = runner
        self.on_trial = on_trial or (lambda t: None)
        self.write_map = write_map
        self.profile = Profile.model_validate(self.settings.profile)
        self.trials = self.sf.trials()
        for t in self.trials:  # outcomes scored by an older objective: scored again (not fed to TPE as they were)
            if t.outcome is not None and t.outcome.objective != OBJECTIVE:
                t.outcome = rescored(t.outcome, grade=self.settings.grade, target_d_um=self.settings.target_d_um,
                                     verdict=_stored_verdict(t.run_dir))

    def close(self) -> None:
        """Give the folder back (the OS does it anyway when the process ends)."""
        self.sf.release()

    def __enter__(self) -> "Search":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running one trial --
    def _new_trial(self, kind: str, params: dict[str, float], seed: int, extra: dict[str, Any] | None = None) -> Trial:
        n = len(self.trials)
        d = self.sf.trials_dir / f"t{n:04d}"
        d.mkdir(parents=True, exist_ok=True)
        s = self.settings
        recipe = apply_point(s.template, params, name=f"explore-{s.grade}-t{n:04d}", grade=s.grade,
                             description=f"castrig explore trial {n} ({kind}): {s.grade} at D {s.target_d_um:g} µm, "
                                         f"seed {s.seed}; total flow {params['total_flow_slpm']:.4g} slpm (profile.yaml)")
        (d / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
        (d / "profile.yaml").write_text(yaml.safe_dump(profile_for(self.profile, params["total_flow_slpm"]), sort_keys=False))
        t = Trial(n, kind, dict(params), seed, str(d / "recipe.yaml"), str(d / "profile.yaml"), extra=extra or {})
        self.sf.started(t)
        self.trials.append(t)
        return t

    def _execute(self, t: Trial) -> None:
        out = self.runner(Path(t.recipe_path), Path(t.profile_path), self.sf.runs_dir, t.seed)
        if out.outcome == "interrupted":
            raise KeyboardInterrupt  # journal says "started": the trial is run again on resume
        t.outcome = score_run(out.outcome, out.metrics, out.verdict, grade=self.settings.grade,
                              target_d_um=self.settings.target_d_um)
        t.run_dir = out.run_dir
        self.sf.finished(t)
        self.on_trial(t)
        if self.write_map:
            self.render_map()

    def render_map(self) -> Path:
        from castrig.explore.plots import write_map

        return write_map(self.sf.root / "map.html", self.settings, self.trials)

    # -- state --
    def _hit(self, t: Trial) -> bool:
        return t.done and t.outcome.hit(self.settings.tolerance)  # type: ignore[union-attr]

    def _confirmation_of(self, n: int) -> Trial | None:
        return next((t for t in self.trials if t.kind == "confirm" and t.extra.get("of") == n), None)

    def found(self) -> tuple[Trial | None, Trial | None]:
        for t in self.trials:
            if t.kind == "search" and self._hit(t):
                c = self._confirmation_of(t.number)
                if c is not None and self._hit(c):
                    return c, t
        return None, None

    def history(self) -> list[tuple[dict[str, float], float]]:
        return [(t.params, t.outcome.score) for t in self.trials if t.done]  # type: ignore[union-attr]

    def trial_seed(self, n: int) -> int:
        """Search trials each get their own twin seed, so a hit is not one lucky noise draw."""
        return self.settings.seed * 10_000 + 101 + n

    # -- the whole search --
    def run(self, map_grid: int = 0) -> SearchResult:
        for t in list(self.trials):
            if not t.done:
                self._execute(t)
        s = self.settings
        while True:
            found, _ = self.found()
            if found is not None:
                break
            unconfirmed = next((t for t in self.trials if t.kind == "search" and self._hit(t)
                                and self._confirmation_of(t.number) is None), None)
            if unconfirmed is not None:
                self._execute(self._new_trial("confirm", unconfirmed.params, s.profile_seed, {"of": unconfirmed.number}))
                continue
            if sum(1 for t in self.trials if t.kind == "search") >= s.budget:
                break
            n = len(self.trials)
            first = template_point(s.template, self.profile)
            params = propose(s.space, self.history(), seed=s.seed, number=n, first=first)
            self._execute(self._new_trial("search", params, self.trial_seed(n)))
        if map_grid > 0:
            self.run_grid(map_grid)
        return self.result()

    def run_grid(self, n: int) -> None:
        """Map RH × concentration on an n × n grid at the best trial's volume and flow (twin only)."""
        if not self.settings.twin:
            raise BadInput("--map-grid runs a grid of recipes: only on the twin (a profile with clock: virtual)", field="--map-grid")
        best = self.result().best()
        base = best.params if best is not None else template_point(self.settings.template, self.profile)
        space = self.settings.space
        rh_lo, rh_hi = space.bounds("rh_pct")
        c_lo, c_hi = space.bounds("concentration_mg_ml")
        rhs = np.linspace(rh_lo, rh_hi, n) if rh_hi > rh_lo else np.array([rh_lo])
        cs = np.geomspace(c_lo, c_hi, n) if c_hi > c_lo else np.array([c_lo])
        done = {tuple(t.extra.get("grid", ())) for t in self.trials if t.kind == "grid" and t.done}
        for t in list(self.trials):
            if t.kind == "grid" and not t.done:
                self._execute(t)
                done.add(tuple(t.extra["grid"]))
        for i, rh in enumerate(rhs):
            for j, c in enumerate(cs):
                if (i, j) in done:
                    continue
                params = {**base, "rh_pct": float(rh), "concentration_mg_ml": float(c)}
                self._execute(self._new_trial("grid", params, self.settings.profile_seed, {"grid": [i, j], "size": n}))

    def result(self) -> SearchResult:
        found, of = self.found()
        recipe_path = profile_path = None
        if found is not None:
            recipe_path, profile_path = self._write_found(found)
        map_path = self.render_map() if self.write_map else None
        return SearchResult(self.settings, list(self.trials), found, of, recipe_path, profile_path, map_path)

    def _write_found(self, t: Trial) -> tuple[Path, Path | None]:
        """``FOLDER/found.yaml`` (and ``found-profile.yaml`` when its flow is not the profile's)."""
        s = self.settings
        o = t.outcome
        assert o is not None and o.d_um is not None
        recipe = yaml.safe_load(Path(t.recipe_path).read_text())
        recipe["name"] = f"grade-{s.grade}-d{s.target_d_um:g}um"
        flow = t.params["total_flow_slpm"]
        same_flow = abs(flow - self.profile.control.total_flow_slpm) < 1e-9
        recipe["description"] = (f"Found by castrig explore ({s.grade} at D {s.target_d_um:g} µm ± {s.tolerance:.0%}, seed {s.seed}, "
                                 f"trial {t.extra.get('of')}; confirmed with twin seed {t.seed}: D {o.d_um:.2f} µm, grades met "
                                 f"{', '.join(o.grades_met)}). {point_label(t.params)}"
                                 + ("" if same_flow else f" — run with found-profile.yaml (control.total_flow_slpm = {flow:.4g})"))
        Recipe.model_validate(recipe)
        recipe = tidy_recipe(recipe)
        out = self.sf.root / "found.yaml"
        out.write_text(yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True))
        prof = None
        if not same_flow:
            prof = self.sf.root / "found-profile.yaml"
            prof.write_text(Path(t.profile_path).read_text())
        return out, prof


def describe_trial(t: Trial, tolerance: float) -> str:
    o = t.outcome
    if o is None:
        return f"#{t.number:<3d} {t.kind:<7s} {point_label(t.params)}: not finished"
    d = f"D {o.d_um:6.2f} µm" if o.d_um else "D    n/a"
    mark = "HIT " if o.hit(tolerance) else ("met " if o.grade_met else "fail")
    why = "" if o.grade_met else f"  ({'; '.join(o.failed_bounds[:3])})"
    return f"#{t.number:<3d} {t.kind:<7s} {point_label(t.params)} → {d}  {mark} score {o.score:.3f}{why}"
