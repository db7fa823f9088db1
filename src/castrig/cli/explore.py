"""``castrig explore``, ``castrig lots``, ``castrig filter check``, ``castrig coculture check``.

Mounted by :func:`mount` (``castrig.cli.main``). Bad input — a file, a flag, a lot that does not
exist, a build outside the claims — is a :class:`BadInput`: exit 2 with the file, the field and
the allowed range, no traceback.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from castrig.analysis.spec import GRADE_NAMES
from castrig.errors import BadInput
from castrig.printable import Console, shown
from castrig.redact import redact_url, restore_redacted

_GRADES = ", ".join(repr(g) for g in GRADE_NAMES)  # (in messages: 'claim1', 'claim2', ...)

EXIT_NOT_FOUND = 1  # the search used its budget without a confirmed recipe

#: Optuna keeps a study's name in a column of at most 512 characters: longer was a traceback
STUDY_NAME_MAX = 200
#: The optimiser seeds numpy with it modulo 2**32; it names the search folder and the study
SEED_MAX = 2**32 - 1
#: ``explore worker --max-trials``: a worker's trials in one go (0 or less did nothing, exit 0)
MAX_TRIALS_MAX = 1_000_000


def _study(name: Optional[str]) -> Optional[str]:
    """``--study``: 1 to 200 printable characters (checked before anything is opened)."""
    if name is not None and not (0 < len(name) <= STUDY_NAME_MAX and name.isprintable()):
        raise typer.BadParameter(f"{name[:40]!r}{'…' if len(name) > 40 else ''}: allowed: 1 to {STUDY_NAME_MAX} printable characters",
                                 param_hint="--study")
    return name


def _folder_name(study: str) -> str:
    """A study's name as one folder name (see :func:`castrig.explore.distributed.folder_name`)."""
    from castrig.explore.distributed import folder_name

    return folder_name(study)


# ':b:' in a message (START:B:STEP, a path) stays text; markup off: study names, paths, trial
# parameters and a worker's last words are shown as written, never read as Rich markup
out = Console(width=200, emoji=False, markup=False)


def _styled(head: str, style: str, rest: str) -> Text:
    """``head`` in ``style``, then ``rest`` as written (the console reads no markup)."""
    return Text.assemble((shown(head), style), shown(rest))


def _profile(profile: Optional[Path]) -> Path:
    from castrig.cli.main import default_profile

    return profile or default_profile()


def _check_out(out_recipe: Optional[Path]) -> Optional[Path]:
    """``--out``, checked before the search spends its budget: unchecked, a missing folder or a
    folder at the path was a FileNotFoundError traceback once a recipe was found (minutes or
    hours of trials later), and a named pipe hung the finished search waiting for a reader.
    A symlink is followed (the file it names is written, as the shell's ``>`` would)."""
    import errno
    import os

    from castrig.cli.main import writable_file

    if out_recipe is None:
        return None
    where = dict(file=str(out_recipe), field="--out")
    try:
        target = out_recipe.resolve()
        st = os.stat(target) if os.path.lexists(target) else None
    except OSError as exc:  # a name too long, a loop of links
        why = "a name too long" if exc.errno == errno.ENAMETOOLONG else (exc.strerror or str(exc))
        raise BadInput(f"--out {out_recipe}: cannot be written ({why}; allowed: a YAML file name in an existing folder)",
                       **where) from None
    if st is not None and not os.path.isfile(target):
        kind = "a folder" if os.path.isdir(target) else "not a regular file (a device, a pipe or a socket)"
        raise BadInput(f"--out {out_recipe}: is {kind} (allowed: a YAML file name in an existing folder, "
                       f"e.g. {out_recipe / 'found.yaml' if os.path.isdir(target) else 'found.yaml'})", **where)
    writable_file(target, "--out", "allowed: a YAML file name in an existing folder this user can write in")
    return target


def _write_out(out_recipe: Path, text: str, kept: Path) -> None:
    """The found recipe at ``--out`` (checked by :func:`_check_out`), whole or not at all; a
    failure now (a full disk) names the copy kept in the search folder."""
    from castrig.atomic import atomic_write_bytes

    try:
        atomic_write_bytes(out_recipe, text.encode())
    except OSError as exc:
        raise BadInput(f"--out {out_recipe}: cannot write it ({exc.strerror or exc}); the recipe found is in {kept}",
                       file=str(out_recipe), field="--out") from None


# -- explore -----------------------------------------------------------------------------------
explore_app = typer.Typer(invoke_without_command=True)  # its help is the callback's docstring (with the examples)


@explore_app.callback()
def explore(
    ctx: typer.Context,
    target_grade: Optional[str] = typer.Option(None, "--target-grade", metavar="G", help="Grade to meet: claim1, claim2, claim3 or claim4."),
    target_d_um: float = typer.Option(3.0, "--target-d-um", metavar="UM", help="Target mean pore diameter D, µm."),
    budget: int = typer.Option(40, "--budget", metavar="N", help="Most search trials (runs) to spend; a resume may raise it."),
    folder: Optional[Path] = typer.Option(None, "--folder", metavar="DIR",
                                          help="Search folder (state, trials, map); default DATA/explore/GRADE-dDum-sSEED. Run again to resume."),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Seed of the search (proposals and twin seeds derive from it)."),
    tolerance: float = typer.Option(0.10, "--tolerance", metavar="FRACTION", help="Allowed relative error of D (0.10 = ±10 %)."),
    profile: Optional[Path] = typer.Option(None, "--profile", metavar="PROFILE", help="Hardware profile (default hw_profiles/sim.yaml)."),
    space: Optional[Path] = typer.Option(None, "--space", metavar="FILE", help="Search space YAML: per parameter {low, high, log} or a fixed number."),
    fix: list[str] = typer.Option([], "--fix", metavar="NAME=VALUE", help="Hold a parameter, e.g. --fix total_flow_slpm=2 (repeatable)."),
    template: Optional[Path] = typer.Option(None, "--template", metavar="RECIPE", help="Recipe to vary (default: the demo's cycle)."),
    support_pore_um: Optional[float] = typer.Option(None, "--support-pore-um", metavar="UM", help="Support pore size, µm (default max(5, 2·D))."),
    map_grid: int = typer.Option(0, "--map-grid", metavar="N", help="Twin only: also map RH × concentration on an N×N grid."),
    out_recipe: Optional[Path] = typer.Option(None, "--out", metavar="FILE", help="Also write the found recipe here."),
    data: Optional[Path] = typer.Option(None, "--data", metavar="DIR",
                                        help="Data root (default $CASTRIG_DATA or ./runs): holds the search folder; on a real rig its runs are the history."),
    workers: int = typer.Option(1, "--workers", metavar="N", help="Run trials in N processes on this machine (Optuna journal storage in the folder)."),
    storage: Optional[str] = typer.Option(None, "--storage", metavar="URL",
                                          help="Put the study in shared storage (postgresql://..., any SQLAlchemy URL, or journal:FILE) so "
                                               "workers on other machines can join: castrig explore worker --storage URL --study NAME."),
    study: Optional[str] = typer.Option(None, "--study", metavar="NAME", callback=_study, help="Study name in the storage (default GRADE-dDum-sSEED)."),
) -> None:
    """Search recipe parameters for a membrane meeting a grade at a target pore diameter.

    On the twin (a virtual-clock profile) it runs the trials itself; on a real rig it proposes the
    next recipe from the stored runs and runs it only when you confirm. Exit 0 found, 1 budget
    spent without a recipe, 2 bad input. Interrupted or not, run the same command again to resume.

    \b
    Examples:
      castrig explore --target-grade claim1 --target-d-um 3 --budget 40
      castrig explore --target-grade claim4 --target-d-um 3.3 --fix total_flow_slpm=2 --map-grid 8
      castrig explore --target-grade claim1 --target-d-um 8 --profile docs/examples/wall-clock-rig.yaml
      castrig explore --target-grade claim1 --target-d-um 3 --budget 200 --workers 2
      castrig explore --target-grade claim1 --budget 400 --storage postgresql://rigs@db/castrig --study c1-3um
      castrig explore worker --storage postgresql://rigs@db/castrig --study c1-3um     # on another machine
      castrig explore map --rh 50:95:2.5 --concentration 1:20:1 --workers 2
    """
    from castrig.explore.search import Search, describe_trial, make_settings
    from castrig.explore.space import SearchSpace, load_space, parse_fixes

    if ctx.invoked_subcommand is not None:
        return
    if target_grade is None:
        raise BadInput(f"--target-grade is needed (allowed: one of {_GRADES})", field="--target-grade")
    if not 1 <= workers <= 64:
        raise BadInput(f"--workers = {workers}: out of range (allowed: 1 to 64)", field="--workers")
    if target_grade not in GRADE_NAMES:
        raise BadInput(f"--target-grade = {target_grade!r}: unknown grade (allowed: one of {_GRADES})",
                       field="--target-grade")
    if not 1 <= budget <= 10_000:
        raise BadInput(f"--budget = {budget}: out of range (allowed: 1 to 10000)", field="--budget")
    if not 0 <= seed <= SEED_MAX:  # (a 300-digit seed: a folder name too long, a traceback; a study name the workers refused)
        digits = str(seed)
        raise BadInput(f"--seed = {digits if len(digits) <= 24 else f'{digits[:12]}… ({len(digits)} digits)'}: out of range "
                       f"(allowed: 0 to {SEED_MAX})", field="--seed")
    if not 0 < tolerance <= 1:
        raise BadInput(f"--tolerance = {tolerance:g}: out of range (allowed: > 0 to 1)", field="--tolerance")
    if not 0 <= map_grid <= 20:
        raise BadInput(f"--map-grid = {map_grid}: out of range (allowed: 0 to 20)", field="--map-grid")
    out_recipe = _check_out(out_recipe)
    sp = load_space(space) if space is not None else SearchSpace()
    fixes = parse_fixes(fix)
    sp = sp.with_fixed(fixes) if fix else sp
    prof = _profile(profile)
    settings = make_settings(grade=target_grade, target_d_um=target_d_um, profile_path=prof, budget=budget, seed=seed,
                             tolerance=tolerance, space=sp, template_path=template, support_pore_um=support_pore_um,
                             space_file=space, space_given={k: f"--fix {k}" for k in fixes})
    folder = _search_folder(folder, data, f"{target_grade}-d{target_d_um:g}um-s{seed}")
    if not settings.twin:
        raise typer.Exit(_explore_rig(settings, folder, data, out_recipe))
    if workers > 1 or storage is not None:
        if map_grid:
            raise BadInput("--map-grid with --workers/--storage: use castrig explore map (a grid on many workers)", field="--map-grid")
        raise typer.Exit(_explore_distributed(settings, folder, storage, study, workers, out_recipe))
    from castrig.explore.one_study import check_one_process_folder

    check_one_process_folder(folder)
    t0 = time.monotonic()
    with Search(folder, settings, on_trial=lambda t: out.print(describe_trial(t, settings.tolerance), highlight=False)) as search:
        done_before = sum(1 for t in search.trials if t.done)
        if done_before:
            out.print(f"resuming {folder}: {done_before} runs done", highlight=False)
        res = search.run(map_grid=map_grid)
    wall = time.monotonic() - t0
    out.print(f"map: {res.map_path}", highlight=False)
    if res.found is None:
        best = res.best()
        out.print(_styled("not found", "red", f" in {res.search_trials} search trials ({wall:.1f} s); best: "
                  + (describe_trial(best, settings.tolerance) if best else "none") + " — raise --budget to go on"), highlight=False)
        raise typer.Exit(EXIT_NOT_FOUND)
    o = res.found.outcome
    assert o is not None and res.recipe_path is not None
    if out_recipe is not None:
        _write_out(out_recipe, res.recipe_path.read_text(), res.recipe_path)
    out.print(_styled("found", "green", f" {target_grade} at D {o.d_um:.2f} µm (target {target_d_um:g}) after {res.search_trials} search trials, "
              f"{res.runs} runs, {wall:.1f} s: {out_recipe or res.recipe_path}"
              + (f" with {res.profile_path}" if res.profile_path else "")), highlight=False, soft_wrap=True)


def _term_as_interrupt() -> None:
    """SIGTERM ends like Ctrl-C: the trial in progress is queued again, worker processes are stopped.

    SIGINT acts even when this process was started in the background by a script (which starts
    it with SIGINT ignored): ``kill -INT`` of a map went unheard while its workers ran on."""
    import signal

    def handler(signum, frame):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _watch(study, procs, on_trial) -> None:  # type: ignore[no-untyped-def]
    """Print finished trials as the workers tell them, until every worker has exited.

    Ctrl-C and SIGTERM are acted on between two looks at the study, never inside one
    (:func:`~castrig.explore.distributed._raise_held`): lost there, taken for a storage that does
    not answer, the map went on until its workers had run every point (past the test's 60 s
    under load)."""
    from castrig.explore.distributed import _raise_held, _signals_held, counted

    seen: set[int] = set()
    silent_since: float | None = None
    with _signals_held(again_acts=True) as taken:  # (recorded here; raised below, at a point of our own)
        while not taken:
            alive = [p for p in procs if p.poll() is None]
            try:
                trials = study.get_trials(deepcopy=False)
                silent_since = None
            except storage_errors() as exc:  # a database restarting: the workers ride it out, so does this
                trials = []
                if silent_since is None:
                    silent_since = time.monotonic()
                    out.print(f"the study's storage does not answer ({type(exc).__name__}); the workers go on", style="yellow",
                              highlight=False, soft_wrap=True)
            for t in counted(trials):
                if t.number not in seen:
                    seen.add(t.number)
                    on_trial(t)
            if not alive:
                break
            until = time.monotonic() + 0.5
            while not taken and time.monotonic() < until:
                time.sleep(0.05)
    _raise_held(taken)  # KeyboardInterrupt from here: the workers are stopped
    bad = [p for p in procs if p.returncode not in (0, None)]
    for p in bad:
        err = (p.stderr.read() if p.stderr else "").strip().splitlines()
        out.print(_styled(f"worker exited {p.returncode}", "red", f": {err[-1] if err else ''}"), highlight=False, soft_wrap=True)


def storage_errors() -> tuple[type[BaseException], ...]:
    """What reading a study raises while its database is away (a restart, a network cut)."""
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import SQLAlchemyError

    return (StorageInternalError, SQLAlchemyError, OSError)


def _explore_distributed(settings, folder: Path, storage: Optional[str], study_name: Optional[str], workers: int,  # type: ignore[no-untyped-def]
                         out_recipe: Optional[Path] = None) -> int:
    """The search in Optuna storage, its trials run by ``workers`` worker processes."""
    from castrig.explore.distributed import (as_trials, open_storage, search_study_name, start_search, storage_url, trial_record,
                                             worker_processes)
    from castrig.explore.objective import rank_key
    from castrig.explore.plots import write_map
    from castrig.explore.search import describe_trial

    from castrig.explore.journal import SearchFolder

    from castrig.explore.one_study import check_study_folder, note_study

    sf = SearchFolder(folder)
    sf.claim("castrig explore --workers")  # the coordinator owns the folder; its workers do not lock it
    url = storage_url(storage, folder)
    name = study_name or search_study_name(settings)
    check_study_folder(folder, name, "search", url)
    storage = open_storage(url)  # (one that cannot be used refused before search.json is written)
    note_study(folder, name, url)  # (another study here, or this one in another storage, is refused from now on)
    sf.open(settings)  # (search.json: another search here is refused, as a search in one process refuses it)
    study = start_search(url, name, settings, storage)
    t0 = time.monotonic()
    out.print(f"study {name} in {redact_url(url)}; {workers} workers (others may join: castrig explore worker --storage {redact_url(url)} "
              f"--study {name})",
              highlight=False, soft_wrap=True)

    def show(t) -> None:  # type: ignore[no-untyped-def]
        out.print(describe_trial(trial_record(t), settings.tolerance), highlight=False, soft_wrap=True)

    _term_as_interrupt()
    with worker_processes(url, name, folder, workers) as procs:
        _watch(study, procs, show)
    trials = as_trials(study)
    map_path = write_map(folder / "map.html", settings, trials)
    wall = time.monotonic() - t0
    out.print(f"map: {map_path}", highlight=False, soft_wrap=True)
    hits = [t for t in trials if t.kind == "confirm" and t.outcome is not None and t.outcome.hit(settings.tolerance)]
    if not hits:
        done = [t for t in trials if t.outcome is not None]
        best = min(done, key=lambda t: rank_key(t.outcome)) if done else None
        out.print(_styled("not found", "red", f" in {sum(t.kind == 'search' for t in trials)} search trials ({wall:.1f} s); best: "
                  + (describe_trial(best, settings.tolerance) if best else "none") + " — raise --budget to go on"), highlight=False, soft_wrap=True)
        return EXIT_NOT_FOUND
    found = hits[0]
    recipe_path, profile_path = _write_found_point(settings, folder, found)
    if out_recipe is not None:
        _write_out(out_recipe, recipe_path.read_text(), recipe_path)
    o = found.outcome
    out.print(_styled("found", "green", f" {settings.grade} at D {o.d_um:.2f} µm (target {settings.target_d_um:g}) after "
              f"{sum(t.kind == 'search' for t in trials)} search trials, {len(trials)} runs, {wall:.1f} s: {out_recipe or recipe_path}"
              + (f" with {profile_path}" if profile_path else "")), highlight=False, soft_wrap=True)
    return 0


def _write_found_point(settings, folder: Path, t) -> tuple[Path, Optional[Path]]:  # type: ignore[no-untyped-def]
    """``FOLDER/found.yaml`` and, when its flow is not the profile's, ``found-profile.yaml`` (the
    recipe's description says to run it with that profile, as the one-process search's does)."""
    import yaml

    from castrig.explore.space import apply_point, point_label, profile_for
    from castrig.rig.profile import Profile

    o = t.outcome
    profile = Profile.model_validate(settings.profile)
    flow = t.params["total_flow_slpm"]
    same_flow = abs(flow - profile.control.total_flow_slpm) <= 1e-9
    recipe = apply_point(settings.template, t.params, name=f"grade-{settings.grade}-d{settings.target_d_um:g}um", grade=settings.grade,
                         description=f"Found by castrig explore on several workers ({settings.grade} at D {settings.target_d_um:g} µm, "
                                     f"trial {t.extra.get('of')}; confirmed with twin seed {t.seed}: D {o.d_um:.2f} µm). "
                                     f"{point_label(t.params)}"
                                     + ("" if same_flow else f" — run with found-profile.yaml (control.total_flow_slpm = {flow:.4g})"))
    out_path = folder / "found.yaml"
    out_path.write_text(yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True))
    if same_flow:
        return out_path, None
    prof = folder / "found-profile.yaml"
    prof.write_text(yaml.safe_dump(profile_for(profile, flow), sort_keys=False))
    return out_path, prof


def _search_folder(folder: Optional[Path], data: Optional[Path], name: str, *, flag: str = "--folder") -> Path:
    """The search folder: ``folder`` (named by ``flag``), else ``DATA/explore/NAME`` under the data
    root (``data``: --data) -- beside the runs, not wherever the user stands -- checked before
    anything is written: a folder there that cannot be made or written in is exit 2 naming it."""
    from castrig.cli.main import usable_data_root, usable_folder

    holds = "the search folder holds its state, trials and runs"
    if folder is not None:
        return usable_folder(folder, flag, holds=holds, writes=True)
    root = usable_data_root(data, writes=True)
    return usable_folder(root / "explore" / name, "search folder", holds=holds, writes=True)


@explore_app.command("worker")
def explore_worker(
    storage: str = typer.Option(..., "--storage", metavar="URL", envvar="CASTRIG_EXPLORE_STORAGE", show_envvar=True,
                                help="The study's storage (postgresql://..., SQLAlchemy URL, journal:FILE); a password is better given in the environment than on the command line."),
    study: str = typer.Option(..., "--study", metavar="NAME", callback=_study, help="Study name."),
    data: Optional[Path] = typer.Option(None, "--data", metavar="DIR", help="Where this worker keeps its trial recipes and runs "
                                                                            "(default DATA/explore/worker-STUDY)."),
    max_trials: Optional[int] = typer.Option(None, "--max-trials", metavar="N", help="Stop after N trials (default: until the study is done)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing per trial."),
) -> None:
    """Join a study: take its trials (queued, retried, or new proposals) until it is done.

    A worker killed mid-trial loses nothing: its trial is failed (OS lock on the journal file's
    machine; Optuna's heartbeat on a database) and run again by another worker.
    """
    from castrig.explore.distributed import Worker

    if max_trials is not None and not 1 <= max_trials <= MAX_TRIALS_MAX:
        raise BadInput(f"--max-trials = {max_trials}: out of range (allowed: 1 to {MAX_TRIALS_MAX}, or none: until the study is done)",
                       field="--max-trials")
    _term_as_interrupt()  # (a run in progress handles SIGTERM itself: it aborts, and the trial is queued again)
    data = _search_folder(data, None, f"worker-{_folder_name(study)}", flag="--data")
    w = Worker(storage, study, data, on_trial=None if quiet else
               (lambda t: out.print(f"#{t.number} {t.user_attrs.get('kind')}: score {t.value:.3f}", highlight=False, soft_wrap=True)))
    n = w.run(max_trials)
    if not quiet:
        out.print(f"worker done: {n} trials", highlight=False, soft_wrap=True)


@explore_app.command("map")
def explore_map(
    rh: str = typer.Option(..., "--rh", metavar="START:STOP:STEP", help="RH setpoints, %RH (START to STOP by STEP, or one number)."),
    concentration: str = typer.Option(..., "--concentration", metavar="START:STOP:STEP", help="Concentrations, mg/mL."),
    volume: Optional[str] = typer.Option(None, "--volume", metavar="START:STOP:STEP", help="Cast volumes, mL (default: the template's)."),
    flow: Optional[float] = typer.Option(None, "--flow", metavar="SLPM", help="Total flow (default: the profile's)."),
    seeds: int = typer.Option(1, "--seeds", metavar="K", help="Twin seeds per point (the profile's seed, +1, ...)."),
    grade: str = typer.Option("claim1", "--grade", metavar="G", help="Grade the recipes are judged for (every grade is mapped)."),
    workers: int = typer.Option(1, "--workers", metavar="N", help="Worker processes on this machine."),
    folder: Optional[Path] = typer.Option(None, "--folder", metavar="DIR", help="Map folder (journal, runs, map.html); default DATA/explore/map-GRADE."),
    storage: Optional[str] = typer.Option(None, "--storage", metavar="URL", help="Shared storage (workers elsewhere: castrig explore worker)."),
    study: Optional[str] = typer.Option(None, "--study", metavar="NAME", callback=_study, help="Study name (default map-GRADE)."),
    profile: Optional[Path] = typer.Option(None, "--profile", metavar="PROFILE", help="Hardware profile (default hw_profiles/sim.yaml)."),
    template: Optional[Path] = typer.Option(None, "--template", metavar="RECIPE", help="Recipe to vary (default: the demo's cycle)."),
    support_pore_um: Optional[float] = typer.Option(None, "--support-pore-um", metavar="UM", help="Support pore size, µm (default 5)."),
    data: Optional[Path] = typer.Option(None, "--data", metavar="DIR", help="Data root (default $CASTRIG_DATA or ./runs)."),
) -> None:
    """The process window on a grid, drawn as heat maps of D and σd/D and each grade's pass region.

    Resumable and incremental: run it again (after Ctrl-C, or with more points or seeds) and only
    the points the map lacks are run; the map file is redrawn from every point done.
    """
    from castrig.explore.distributed import map_results, open_storage, start_map, storage_url, worker_processes, Worker
    from castrig.explore.gridmap import Grid, check_map_size, parse_range, write_map
    from castrig.explore.search import make_settings, template_point
    from castrig.rig.profile import Profile

    if grade not in GRADE_NAMES:
        raise BadInput(f"--grade = {grade!r}: unknown grade (allowed: one of {_GRADES})", field="--grade")
    if not 1 <= workers <= 64:
        raise BadInput(f"--workers = {workers}: out of range (allowed: 1 to 64)", field="--workers")
    if not 1 <= seeds <= 20:
        raise BadInput(f"--seeds = {seeds}: out of range (allowed: 1 to 20)", field="--seeds")
    rhs, cs = parse_range(rh, "--rh"), parse_range(concentration, "--concentration")
    vols = parse_range(volume, "--volume") if volume else None
    prof = _profile(profile)
    settings = make_settings(grade=grade, target_d_um=3.0, profile_path=prof, budget=1, template_path=template,
                             support_pore_um=5.0 if support_pore_um is None else support_pore_um)
    rig_profile = Profile.model_validate(settings.profile)
    base = template_point(settings.template, rig_profile)
    vols = vols or [base["cast_volume_ml"]]
    grid = Grid(rhs, cs, vols, flow if flow is not None else base["total_flow_slpm"],
                [settings.profile_seed + k for k in range(seeds)])
    _check_map_limits(grid, rig_profile, prof)
    check_map_size(grid)  # every option checked: only now is anything written
    folder = _search_folder(folder, data, f"map-{grade}")
    from castrig.explore.journal import SearchFolder

    # one coordinator per map folder (two both ran workers and redrew the map); workers that
    # join through --storage from elsewhere take no folder lock
    SearchFolder(folder).claim("castrig explore map")
    url = storage_url(storage, folder)
    name = study or f"map-{grade}"
    from castrig.explore.one_study import check_study_folder, note_study

    check_study_folder(folder, name, "map", url)
    opened = open_storage(url)  # (one that cannot be used refused before study.json is written)
    # noted before the study is made in its storage: a map killed (-9) between the two left a study
    # queued elsewhere and no note here, and another map in this folder, in another storage, was let
    note_study(folder, name, url)  # (another study here, or this one in another storage, is refused from now on)
    st, queued = start_map(url, name, settings, grid, opened)
    asked, done = grid.asked_and_done(map_results(st))
    out.print(f"map {name} in {redact_url(url)}: {asked} points asked: {done} done before, {asked - done - queued} queued or running "
              f"from before, {queued} added; {workers} workers", highlight=False, soft_wrap=True)
    t0 = time.monotonic()

    def redraw() -> Path:
        from castrig.explore.gridmap import real_membranes
        from castrig.store import data_root
        return write_map(folder, grid, map_results(st), title=f"Process window on the twin ({grade} recipes judged for every grade)",
                         note=f"study {name} in {redact_url(url)}", real=real_membranes(data_root(data)))

    _term_as_interrupt()
    try:
        if workers == 1:
            Worker(url, name, folder).run()
        else:
            with worker_processes(url, name, folder, workers) as procs:
                _watch(st, procs, lambda t: None)
    finally:
        try:
            path = redraw()
            n = len(map_results(st))
        except storage_errors() as exc:  # (the storage away at the end: the map is drawn by the next call)
            out.print(f"map not redrawn: the study's storage does not answer ({type(exc).__name__}); "
                      "run the same command again to draw it", style="yellow", highlight=False, soft_wrap=True)
        else:
            out.print(f"map: {path} ({n} points done, {time.monotonic() - t0:.1f} s)", highlight=False, soft_wrap=True)


def _check_map_limits(grid, profile, profile_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Every grid value must make a recipe this profile can run: the recipe's limits (RH 20-100 %,
    concentration and volume above 0), the flow within the mass-flow controllers' full scale, RH
    within what the twin's chamber levels off at with the map's flow (its reach depends on it: a
    map at 96 %RH and 0.8 slpm passed with the reach at the profile's 2.0 slpm, and run refused
    every trial, ``allowed: 3.1 to 95.4``, until the map ended with 0 points done)."""
    from castrig.explore.space import (RECIPE_LIMITS, UNITS, SearchSpace, check_space_for_profile, point_limits, rh_reach_at,
                                       within)

    def check(flag: str, vals: list[float], name: str, limits: dict[str, tuple[float, float]], why: str = "") -> None:
        lo, hi = limits[name]
        if not all(within(name, v, limits) for v in vals):
            low = f"above {lo:g}" if lo == 0 else f"{lo:g}"
            given = f"= {vals[0]:g}" if len(vals) == 1 else f"{min(vals):g} to {max(vals):g}"
            raise BadInput(f"{flag} {given}: outside what a trial recipe can take "
                           f"(allowed: {low} to {hi:g} {UNITS[name]}{why})", field=flag)

    check("--flow", [grid.flow_slpm], "total_flow_slpm", RECIPE_LIMITS)  # first: the reach is asked at it
    check_space_for_profile(SearchSpace(total_flow_slpm=grid.flow_slpm), profile, profile_path, given={"total_flow_slpm": "--flow"})
    limits = point_limits(profile, grid.flow_slpm)
    reach = rh_reach_at(profile, grid.flow_slpm)
    why = ("" if reach is None else
           f" at --flow {grid.flow_slpm:g} slpm; a recipe takes {RECIPE_LIMITS['rh_pct'][0]:g} to {RECIPE_LIMITS['rh_pct'][1]:g}, "
           f"and the twin's chamber levels off at {reach[0]:g} to {reach[1]:g} %RH at that total flow (the loop's driest to wettest "
           f"air, with the leak to the room) with {profile_path}")
    check("--rh", grid.rh, "rh_pct", limits, why)
    check("--concentration", grid.concentration, "concentration_mg_ml", limits)
    check("--volume", grid.volume, "cast_volume_ml", limits)


def _explore_rig(settings, folder: Path, data: Optional[Path], out_recipe: Optional[Path] = None) -> int:  # type: ignore[no-untyped-def]
    """Real rig: propose from the store, run only what the operator confirms."""
    from castrig.explore.rig import propose_next, store_history
    from castrig.explore.space import point_label
    from castrig.cli.streams import console_is_not_the_record
    from castrig.recipe.session import run_recipe, stop_requests

    # settings.profile holds no passwords (redact_urls); the rig is driven with the operator's own
    # profile again, its passwords taken from the profile file as a resume does
    rig_profile = _operator_profile(settings)
    root = data or rig_profile.get("store")
    interactive = sys.stdin.isatty()
    while True:
        history = store_history(root, grade=settings.grade, target_d_um=settings.target_d_um)
        hits = [h for h in history if h.outcome.hit(settings.tolerance)]
        if hits:
            h = hits[-1]
            recipe_path = _write_met_point(settings, folder, h, out_recipe)
            out.print(_styled("met", "green", f": {h.name} made {settings.grade} at D {h.outcome.d_um:.2f} µm ({point_label(h.params)}); "
                              f"one cast at its settings: {recipe_path} — run it to confirm"), highlight=False, soft_wrap=True)
            return 0
        if len(history) >= settings.budget:
            out.print(_styled("not found", "red", f": {len(history)} stored runs reach the budget {settings.budget}"), highlight=False)
            return EXIT_NOT_FOUND
        params, recipe_path, profile_path = propose_next(settings, history, folder, profile=rig_profile)
        out.print(f"proposal from {len(history)} stored runs: {point_label(params)}\n  recipe: {recipe_path}\n  profile: {profile_path}",
                  highlight=False)
        if not interactive or not typer.confirm("Run it on the rig now?", default=False):
            out.print("not run; run it later with: castrig run " + f"{recipe_path} --profile {profile_path}", highlight=False)
            return 0
        console_is_not_the_record()  # (as castrig run: the run folder keeps the record)
        # a SIGTERM or SIGHUP while the rig opens, or as the run ends, is the run's as in castrig
        # run and queue (stop_requests): it killed this process where it stood, exit 143, unsaid
        with stop_requests("castrig explore") as stop:
            result = run_recipe(recipe_path, profile_path, data_root=root, operator="explore", stop=stop)
            if result.outcome != "completed" or stop.reason or stop.ctrl_c:
                stop.exit_code = result.exit_code  # recorded: a stop from here to the process's end keeps it
        if stop.exit_code is not None:
            return stop.exit_code


def _write_met_point(settings, folder: Path, h, out_recipe: Optional[Path]) -> Path:  # type: ignore[no-untyped-def]
    """The recipe of one cast at a stored membrane's settings (``FOLDER/found.yaml``, and
    ``--out``): a run's own recipe may cast several membranes, only one of which met."""
    import yaml

    from castrig.explore.space import apply_point, point_label

    recipe = apply_point(settings.template, h.params, name=f"grade-{settings.grade}-d{settings.target_d_um:g}um",
                         grade=settings.grade, description=f"Met by {h.name} ({settings.grade} at D {h.outcome.d_um:.2f} µm, "
                                                           f"target {settings.target_d_um:g} µm). {point_label(h.params)}")
    text = yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "found.yaml"
    path.write_text(text)
    if out_recipe is not None:
        _write_out(out_recipe, text, path)
    return path


def _operator_profile(settings) -> dict:  # type: ignore[no-untyped-def]
    """``settings.profile`` with the passwords :func:`castrig.redact.redact_urls` took out filled
    back from the operator's profile file (``settings.profile_path``) where it names the same URLs."""
    from castrig.rig.profile import load_profile

    try:
        current = load_profile(Path(settings.profile_path)).model_dump(mode="json")
    except Exception:  # noqa: BLE001 - gone or changed since: only what still matches is taken
        current = {}
    return restore_redacted(settings.profile, current)


# -- lots --------------------------------------------------------------------------------------
lots_app = typer.Typer(help="Membrane lots: judged membranes that met a grade, their metrics and intended use.",
                       invoke_without_command=True)


#: Lots ``castrig lots`` shows a person at a terminal without --all or --last (as ``castrig runs``
#: shows its newest 50 runs): a year of nightly queues is thousands of lots, and laying them all out
#: in one table took ~6 s of CPU for 6 000 before a line was shown. A script (stdout not a
#: terminal, or --json) gets every lot unless it asks for --last.
NEWEST_LOTS = 50


@lots_app.callback()
def lots(
    ctx: typer.Context,
    data: Optional[Path] = typer.Option(None, "--data", help="Data root."),
    last: Optional[int] = typer.Option(None, "--last", metavar="N", min=1, max=100_000,
                                       help=f"The newest N lots, and the newest N membranes that are not lots (default "
                                            f"at a terminal {NEWEST_LOTS}; piped or --json: all); older ones are said to be left out."),
    every_lot: bool = typer.Option(False, "--all", help="Every lot, however many (overrides --last)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per lot, one per line, oldest first (no table); "
                                                      "the membranes that are not lots on stderr."),
) -> None:
    """List the membrane lots under the data root, oldest first: at a terminal the newest 50
    (--last N, --all); piped or with --json every one (--last N to limit)."""
    ctx.obj = {"data": data}  # `castrig lots --data ROOT assign ...`: the subcommands act on ROOT
    if ctx.invoked_subcommand is not None:
        return
    from castrig.cli.main import newest_shown, read_data_root
    from castrig.lots import scan_lots
    from castrig.store import open_store

    # a --data that is no folder is refused as `castrig runs` refuses it (it listed "no lots")
    read_data_root(data)
    rows, others = scan_lots(data)  # (one read of every run folder for both lists)
    newest = newest_shown(every_lot, last, as_json, NEWEST_LOTS)
    shown, shown_others = (rows, others) if newest is None else (rows[-newest:], others[-newest:])
    said = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)  # (stdout stays what a script reads)
    if as_json:
        for lot in shown:
            typer.echo(json.dumps(_lot_line(lot), default=str))
        for membrane_id, why in shown_others:
            said.print(f"not a lot: {membrane_id} — {why}")
    else:
        _print_lots_table(open_store(data).root, shown)
        if not rows:
            typer.echo("no lots yet (a lot is a judged membrane that met a grade)")
        for membrane_id, why in shown_others:
            out.print(f"not a lot: {membrane_id} — {why}", highlight=False, soft_wrap=True)
    if len(shown) < len(rows):
        said.print(f"the newest {newest} lots are shown ({len(rows)} in all); --last N or --all for older ones")
    if len(shown_others) < len(others):
        said.print(f"the newest {newest} membranes that are not lots are shown ({len(others)} in all); "
                   "--last N or --all for older ones")


def _lot_line(lot) -> dict:  # type: ignore[no-untyped-def]
    """What ``castrig lots`` says of one lot (its table row; one JSON line with --json)."""
    from castrig.lots.registry import OPEN_RUN_OUTCOMES

    m = lot.metrics
    d, s = m.get("mean_pore_diameter_um"), m.get("pore_diameter_std_um")
    if lot.run_outcome == "completed":
        ended = None
    elif lot.run_outcome in OPEN_RUN_OUTCOMES:
        ended = f"run {lot.run_outcome}: no build takes it until it has ended"
    else:
        ended = f"run ended {lot.run_outcome} after it was judged"
    return {"lot": lot.lot_id, "run_id": lot.run_id, "membrane_id": lot.membrane_id, "recipe": lot.recipe_name,
            "made_utc": lot.made_utc or lot.started_utc, "simulated": lot.simulated, "grades": list(lot.grades_met),
            "mean_pore_diameter_um": d, "pore_diameter_cv": s / d if d and s is not None else None,
            "opening_ratio": m.get("opening_ratio"), "through_pore_fraction": m.get("through_pore_fraction"),
            "mean_thickness_um": m.get("mean_thickness_um"), "intended_use": lot.intended_use,
            "allow_simulated": bool(lot.assignment.get("allow_simulated")), "suits": list(lot.uses),
            "run_outcome": lot.run_outcome, "run_note": ended}


def _print_lots_table(root: Path, lots) -> None:  # type: ignore[no-untyped-def]
    table = Table(title=f"membrane lots in {root}")
    for col in ("lot", "recipe", "made (UTC)", "made on", "grades", "D µm", "σd/D", "opening", "through", "T µm", "intended use"):
        table.add_column(col)

    def f(v: object, fmt: str) -> str:
        return "" if v is None else format(v, fmt)

    for lot in lots:
        line = _lot_line(lot)
        use = line["intended_use"] and (line["intended_use"] + (" (simulated, allowed)" if line["allow_simulated"] else ""))
        table.add_row(line["lot"], line["recipe"], line["made_utc"], "twin (simulated)" if line["simulated"] else "rig",
                      ",".join(line["grades"]), f(line["mean_pore_diameter_um"], ".2f"), f(line["pore_diameter_cv"], ".3f"),
                      f(line["opening_ratio"], ".2f"), f(line["through_pore_fraction"], ".2f"),
                      f(line["mean_thickness_um"], ".2f"),
                      (use or ("suits: " + ", ".join(line["suits"]))) + (f" ({line['run_note']})" if line["run_note"] else ""))
    out.print(table)


def _lots_data(ctx: typer.Context, data: Optional[Path]) -> Optional[Path]:
    """The data root of ``castrig lots [--data A] assign|unassign ... [--data B]``: the group's
    ``--data`` or the subcommand's (either one); both given and naming different folders is a
    BadInput naming both -- an intended use is never written to a root the operator did not mean."""
    group = (ctx.parent.obj or {}).get("data") if ctx.parent is not None and isinstance(ctx.parent.obj, dict) else None
    if group is None or data is None:
        return data if data is not None else group
    if group.resolve() != data.resolve():
        raise BadInput(f"castrig lots --data {group} ... {ctx.info_name} --data {data}: two different data roots; "
                       "give --data once (before or after the subcommand)", field="--data")
    return data


@lots_app.command("assign")
def lots_assign(
    ctx: typer.Context,
    lot: str = typer.Argument(..., help="Lot id (the membrane id, RUN-mK)."),
    use: str = typer.Option(..., "--use", help="blood_filter or coculture."),
    data: Optional[Path] = typer.Option(None, "--data", help="Data root."),
    allow_simulated: bool = typer.Option(False, "--allow-simulated", help="Accept a membrane made on the digital twin (recorded as such)."),
) -> None:
    """Record a lot's intended use (checked against its grades; one use per lot; twin lots refused unless allowed)."""
    from castrig.lots import assign_use

    data = _lots_data(ctx, data)
    got = assign_use(lot, use, data, allow_simulated=allow_simulated)
    ended = "" if got.run_outcome == "completed" else f" (made by run {got.run_id}, which ended {got.run_outcome} after it was judged)"
    typer.echo(f"lot {got.lot_id}: intended use {got.intended_use}" + (" (SIMULATED membrane, allowed)" if got.simulated else "") + ended)


@lots_app.command("unassign")
def lots_unassign(
    ctx: typer.Context,
    lot: str = typer.Argument(..., help="Lot id."),
    data: Optional[Path] = typer.Option(None, "--data", help="Data root."),
) -> None:
    """Remove a lot's intended use (before deliberately giving it another)."""
    from castrig.lots import unassign_use

    data = _lots_data(ctx, data)
    got = unassign_use(lot, data)
    typer.echo(f"lot {got.lot_id}: no intended use")


# -- filter / coculture checks -----------------------------------------------------------------
def _lookup(data: Optional[Path]):  # type: ignore[no-untyped-def]
    from castrig.lots import get_lot

    return lambda lot_id, where: get_lot(lot_id, data, field_name=where)


def _print_report(report, title: str) -> None:  # type: ignore[no-untyped-def]
    if report.bounds:
        table = Table(title=title)
        for col in ("field", "bound", "value", "allowed", "margin", "status"):
            table.add_column(col)
        for b in report.bounds:
            table.add_row(b.field, b.label, f"{b.value:.4g}", b.allowed(), f"{b.margin:+.4g}", "pass" if b.ok else "FAIL")
        out.print(table)
    for note in report.notes:
        out.print(note, highlight=False)


filter_app = typer.Typer(help="Blood filtration (claims 5, 9-13): second-stage leukocyte filter builds.", no_args_is_help=True)


@filter_app.command("check")
def filter_check(
    file: Path = typer.Argument(..., help="Filter build YAML."),
    data: Optional[Path] = typer.Option(None, "--data", help="Data root holding the lots."),
    allow_simulated: bool = typer.Option(False, "--allow-simulated", help="Accept lots made on the digital twin (the record says so)."),
) -> None:
    """Check a filter build: area, element volume, removal capabilities, and its lots."""
    from castrig.lots import check_filter, load_filter

    build = load_filter(file)
    report = check_filter(build, _lookup(data), file=str(file), allow_simulated=allow_simulated)
    _print_report(report, f"filter build {build.name}")
    report.raise_if_failed()
    typer.echo(f"{file}: filter build {build.name} meets the blood-filtration claims")


coculture_app = typer.Typer(help="Cell co-culture diaphragm (claims 6, 14): co-culture set-ups.", no_args_is_help=True)


@coculture_app.command("check")
def coculture_check(
    file: Path = typer.Argument(..., help="Co-culture set-up YAML."),
    data: Optional[Path] = typer.Option(None, "--data", help="Data root holding the lots."),
    allow_simulated: bool = typer.Option(False, "--allow-simulated", help="Accept a lot made on the digital twin (the record says so)."),
) -> None:
    """Check a co-culture set-up: its lot's grade suits a diaphragm, two regions, different cells."""
    from castrig.lots import check_coculture, load_coculture

    setup = load_coculture(file)
    report = check_coculture(setup, _lookup(data), file=str(file), allow_simulated=allow_simulated)
    _print_report(report, f"co-culture {setup.name}")
    report.raise_if_failed()
    typer.echo(f"{file}: co-culture {setup.name} suits lot {setup.lot}")


def mount(app: typer.Typer) -> None:
    """Add these commands to the ``castrig`` app (called once by ``castrig.cli.main``)."""
    app.add_typer(explore_app, name="explore")
    app.add_typer(lots_app, name="lots")
    app.add_typer(filter_app, name="filter")
    app.add_typer(coculture_app, name="coculture")
