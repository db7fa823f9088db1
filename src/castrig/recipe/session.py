"""``castrig run`` and ``castrig resume``: files in, a run folder and an exit code out.

Everything a person can get wrong is checked before the run folder exists: the recipe, the
profile, and whether the recipe fits the rig. Then the rig is opened, the run is recorded as it
happens, and every way out — completion, fault, Ctrl-C, SIGTERM — ends in the verified safe state.
"""

from __future__ import annotations

import signal
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from rich.console import Console

import castrig
from castrig.errors import BadInput, CastrigError
from castrig.logs import RunLog
from castrig.recipe.compat import check_recipe_for_profile
from castrig.recipe.display import Display, interactive_prompt
from castrig.recipe.model import CastStep, EvaporateStep, PrewetStep, Recipe, load_recipe
from castrig.recipe.runner import Runner, RunResult
from castrig.rig.build import Rig, build_rig, make_clock
from castrig.rig.profile import Profile, load_profile
from castrig.store import RunInfo, RunRecorder, open_store, utc_now_iso
from castrig.store.signals import guarded

console = Console(stderr=True)


@contextmanager
def _signals(runner: Runner) -> Iterator[None]:
    """Ctrl-C once: pause at the next safe point and ask; twice: abort now. SIGTERM: abort."""
    presses = {"n": 0}

    def on_int(signum: int, frame: Any) -> None:
        presses["n"] += 1
        if presses["n"] == 1:
            console.print("\n[yellow]Ctrl-C: pausing at the next safe point (Ctrl-C again aborts now)[/]")
            runner.request_pause()
        else:
            raise KeyboardInterrupt

    def on_term(signum: int, frame: Any) -> None:
        runner.request_abort("SIGTERM received: aborting to the safe state")

    old_int = signal.signal(signal.SIGINT, guarded(on_int))
    old_term = signal.signal(signal.SIGTERM, guarded(on_term))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


def _open_rig(profile: Profile, seed: int | None) -> Rig:
    try:
        return build_rig(profile, clock=make_clock(profile), seed=seed)
    except CastrigError as exc:
        raise RigUnavailable(f"cannot open the rig of profile {profile.name!r}: {exc}") from exc


class RigUnavailable(CastrigError):
    """The rig could not be opened (nothing was run, nothing was recorded)."""


def _configure_twin(rig: Rig, recipe: Recipe) -> None:
    if rig.twin is not None:
        rig.twin.set_process(
            concentration_mg_ml=recipe.concentration_mg_ml, solvent=recipe.solvent, support_pore_um=recipe.support_pore_um
        )


def run_recipe(
    recipe_path: Path,
    profile_path: Path,
    *,
    data_root: Path | None = None,
    seed: int | None = None,
    operator: str = "",
    quiet: bool = False,
) -> RunResult:
    recipe = load_recipe(recipe_path)
    profile = load_profile(profile_path)
    check_recipe_for_profile(recipe, Path(recipe_path), profile, Path(profile_path))
    seed = profile.sim.seed if seed is None else seed
    if seed < 0:
        raise BadInput(f"--seed = {seed}: must be >= 0", field="--seed")
    try:
        rig = _open_rig(profile, seed)
    except RigUnavailable as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return RunResult("faulted", str(exc))
    try:
        _configure_twin(rig, recipe)
        started = datetime.fromtimestamp(rig.clock.epoch(), timezone.utc)
        info = RunInfo(
            run_id=f"{started:%Y%m%d-%H%M%S}-{recipe.name}",
            recipe_name=recipe.name,
            recipe_path=str(recipe_path),
            profile_name=profile.name,
            profile_path=str(profile_path),
            software_version=castrig.__version__,
            seed=seed if rig.twin is not None else None,
            operator=operator,
            started_utc=utc_now_iso(rig.clock.epoch()),
            virtual_time=rig.clock.virtual,
            recipe=recipe.model_dump(mode="json"),
            profile=profile.model_dump(mode="json"),
        )
        store = open_store(data_root or profile.store, synchronous=profile.store_sync)
        recorder = store.create_run(info)
        return _drive(recipe, rig, recorder, store, quiet=quiet)
    finally:
        rig.close()


def _drive(recipe: Recipe, rig: Rig, recorder: RunRecorder, store: Any, *, quiet: bool, start_step: int = 0,
           t_offset_s: float = 0.0, resume: dict[str, Any] | None = None) -> RunResult:
    log = RunLog(recorder.run_dir, console=None if quiet else sys.stderr)
    display = Display(recipe.name, len(recipe.steps), virtual=rig.clock.virtual, quiet=quiet)
    runner = Runner(
        recipe,
        rig,
        recorder,
        t_offset_s=t_offset_s,
        on_status=display.update,
        prompt=lambda keep_alive: interactive_prompt(keep_alive, virtual=rig.clock.virtual),
        log=log.logger.bind(run=recorder.info.run_id),
    )
    try:
        with display, _signals(runner):
            result = runner.run(start_step, **(resume or {}))
        try:
            recorder.update_info(ended_utc=utc_now_iso(rig.clock.epoch()), outcome=result.outcome, outcome_reason=result.reason)
            grades = (result.verdict or {}).get("grades_met", [])
            store.index_run(recorder, grades)
        except (CastrigError, OSError) as exc:  # a full disk: the rig is safe, say so, no traceback
            console.print(f"[bold red]error:[/] cannot record the outcome in {recorder.run_dir}: {exc}", highlight=False)
            if result.outcome == "completed":
                result.outcome, result.reason = "faulted", f"outcome not recorded: {exc}"
    finally:
        log.close()
        recorder.close()
    result.run_dir = str(recorder.run_dir)
    _report(result, quiet)
    return result


def _report(result: RunResult, quiet: bool) -> None:
    out = Console()
    colour = "green" if result.outcome == "completed" else "red"
    out.print(f"[{colour}]{result.outcome}[/]: {result.run_dir}" + (f" — {result.reason}" if result.reason else ""), highlight=False)
    if result.safe is not None and not quiet:
        out.print(result.safe.summary(), highlight=False)
    if result.verdict is not None:
        met = result.verdict.get("grades_met", [])
        out.print(f"grades met: {', '.join(met) if met else 'none'}", highlight=False)


# -- resume ------------------------------------------------------------------------------------
def plan_resume(recipe: Recipe, journal: list[Any]) -> tuple[int, str | None]:
    """(first step to run, or -1; why it cannot go on, or None) from the journal.

    A step that finished is never repeated. A started, unfinished step is repeated when that is
    harmless (purge, condition, wait, capture, analyse). Once a cast has started, the film is
    evaporating: if its evaporation step did not finish under control, the membrane cannot be
    made good by continuing, and the run is marked as such.
    """
    done = {e.step_index for e in journal if e.state == "done"}
    started = {e.step_index for e in journal if e.state == "started"}
    first = next((i for i in range(len(recipe.steps)) if i not in done), len(recipe.steps))
    cast_started = [i for i in started if isinstance(recipe.steps[i], CastStep)]
    for c in cast_started:
        evap = next((j for j in range(c + 1, len(recipe.steps)) if isinstance(recipe.steps[j], EvaporateStep)), None)
        if c not in done or (evap is not None and evap not in done):
            return -1, (
                f"the run stopped between the cast (step {c}) and the end of its evaporation: the film dried "
                "without RH control, so continuing cannot make a good membrane"
            )
    if first < len(recipe.steps) and first in started and isinstance(recipe.steps[first], PrewetStep):
        return -1, f"the pre-wet (step {first}) was interrupted: the support's water content is unknown"
    return first, None


def resume_run(run_dir: Path, *, quiet: bool = False) -> RunResult:
    run_dir = Path(run_dir)
    store = open_store(run_dir.parent)
    recorder = store.open_run(run_dir)
    info = recorder.info
    sync = (info.profile or {}).get("store_sync", "FULL")
    if sync != "FULL":
        recorder.close()
        store = open_store(run_dir.parent, synchronous=sync)
        recorder = store.open_run(run_dir)
    if info.outcome == "completed":
        recorder.close()
        raise BadInput(f"{run_dir}: run already completed (outcome completed); nothing to resume", file=str(run_dir))
    try:
        recipe = Recipe.model_validate(info.recipe)
        profile = Profile.model_validate(info.profile)
    except Exception as exc:  # pydantic error: the run.json was edited or comes from elsewhere
        recorder.close()
        raise BadInput(f"{run_dir}/run.json: recipe or profile no longer valid: {exc}", file=str(run_dir / "run.json")) from None
    try:
        rig = _open_rig(profile, info.seed)
    except RigUnavailable as exc:
        recorder.close()
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return RunResult("faulted", str(exc))
    try:
        _configure_twin(rig, recipe)
        journal = recorder.journal()
        last_t = max([0.0] + [s[0] for s in recorder.samples()[-50:]] + [e.t_s for e in recorder.events()[-50:]] + [j.t_s for j in journal[-5:]])
        t_offset = last_t + profile.control.control_period_s
        from castrig.control.safety import make_safe

        report = make_safe(pumps=rig.pumps(), dry_mfc=rig.dry_mfc, wet_mfc=rig.wet_mfc, chamber=rig.chamber,
                           purge_flow_slpm=profile.control.purge_flow_slpm)
        recorder.add_event(t_offset, "safe_state", "control", "resume: " + report.summary(), report.to_dict())
        first, why = plan_resume(recipe, journal)
        previous = info.outcome
        if why is not None:
            recorder.add_event(t_offset, "run_end", "runner", f"not resumable: {why}", {"outcome": "not_resumable"})
            recorder.update_info(outcome="not_resumable", outcome_reason=why, ended_utc=utc_now_iso(rig.clock.epoch()))
            store.index_run(recorder)
            recorder.close()
            result = RunResult("not_resumable", why, safe=report, run_dir=str(run_dir))
            _report(result, quiet)
            return result
        _restore_twin(rig, journal)
        recorder.update_info(outcome="running", outcome_reason=None)
        note = f"resumed after '{previous}' at step {first} (t = {t_offset:.1f} s)"
        started = [e for e in journal if e.step_index == first and e.state == "started"]
        elapsed = (last_t - started[-1].t_s) if started else 0.0
        setpoints = recorder.events("setpoint")
        resume = {"resume_note": note, "resume_elapsed_s": max(0.0, elapsed),
                  "resume_setpoint": setpoints[-1].data if setpoints else None}
        return _drive(recipe, rig, recorder, store, quiet=quiet, start_step=first, t_offset_s=t_offset, resume=resume)
    finally:
        rig.close()


def _restore_twin(rig: Rig, journal: list[Any]) -> None:
    """On the twin, the membrane made before the crash still exists: put it back."""
    if rig.twin is None:
        return
    for entry in journal:
        snap = entry.data.get("twin") if entry.state == "done" else None
        if snap and snap.get("film"):
            rig.twin.restore_film(snap["film"])
