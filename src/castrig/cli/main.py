"""The ``castrig`` command (DESIGN §7: scripts rely on these names, options and exit codes).

Exit codes: 0 done, 2 bad input (file, field and allowed range in the message, no traceback),
3 aborted or faulted (rig left safe), 4 busy (the run folder or a device is owned by another
live process; nothing was sent, nothing written), 5 rig not reachable (a device could not be
opened; no run folder), 130 interrupted.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

import castrig
from castrig.errors import BadInput, Busy, RigUnreachable
from castrig.cli.streams import ConsoleWriteError, console_is_not_the_record, keep_going_without_readers, settle_consoles
from castrig.printable import Console

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_ABORTED = 3
EXIT_BUSY = 4
EXIT_UNREACHABLE = 5
EXIT_INTERRUPTED = 130

DEFAULT_PROFILE = Path("hw_profiles/sim.yaml")

app = typer.Typer(
    name="castrig",
    help="Control and data acquisition for the breath-figure membrane casting rig.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, emoji=False)  # a user's ":b:" stays text


class Terminated(BaseException):
    """SIGTERM to ``castrig run``/``resume``/``queue`` before the run's own handlers are in place
    (cli/entry.py): exit 3, one line, the stack unwound (a folder being probed removed again)."""


def raise_terminated(signum: int, frame: Any) -> None:
    """SIGTERM, SIGQUIT, SIGXCPU or SIGHUP as :class:`Terminated`; a SIGHUP's says the terminal closed."""
    from castrig.cli.entry import HUNG_UP_LINE

    raise Terminated(HUNG_UP_LINE) if signum == signal.SIGHUP else Terminated


_CTRL_C: list[int] = []


def ctrl_c(signum: int, frame: Any) -> None:
    """SIGINT as Python's own handler answers it (KeyboardInterrupt), remembered: typer turns a
    KeyboardInterrupt it meets into a silent exit 130 (the arguments being parsed, a command's
    modules imported), and the CLI says "interrupted" from this."""
    _CTRL_C.append(signum)
    raise KeyboardInterrupt


def _version(value: bool) -> None:
    if value:
        typer.echo(f"castrig {castrig.__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """castrig: run recipes on the rig or its digital twin, keep every record, judge the membrane."""


def default_profile() -> Path:
    """``hw_profiles/sim.yaml`` from the working directory, else from the checkout castrig was
    installed from (editable installs), so the default works from any folder."""
    if DEFAULT_PROFILE.is_file():
        return DEFAULT_PROFILE
    checkout = Path(__file__).resolve().parents[3] / DEFAULT_PROFILE
    return checkout if checkout.is_file() else DEFAULT_PROFILE


def writable_file(path: Path, option: str, hint: str = "") -> None:
    """Exit 2 naming ``option`` (and ``hint``: what to do instead) unless ``path`` can be written
    (its folder exists and is writable)."""
    import os
    import tempfile

    folder = path.parent if str(path.parent) else Path(".")
    why = None
    try:  # (is_dir() raised on a name too long: a traceback)
        os.lstat(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        why = f"cannot be written here ({exc.strerror or exc})"
    if why is not None:
        pass
    elif path.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        why = "is a folder" if path.is_dir() else "its folder does not exist" if not folder.is_dir() else "cannot be written here"
    else:
        try:  # the permission bits are not the file system's word (/proc, a read-only mount, root)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            why = f"cannot be written here ({exc.strerror or exc})"
    if why is not None:
        raise BadInput(f"{option} {path}: {why}" + (f" ({hint})" if hint else ""), file=str(path), field=option.split()[0])


def usable_folder(path: Path, flag: str, *, must_exist: bool = False, holds: str = "", writes: bool = False) -> Path:
    """``path`` if it is (or can become) a folder, else :class:`BadInput` naming ``flag``: a regular
    file there or above it, a parent that cannot hold folders (``/proc/x``), no such folder when
    ``must_exist``, an existing folder this process cannot write in when the command ``writes``
    there (a read-only file system, no permission). A folder that is not there yet is tried by
    making it (and its missing parents) and removing them again: nothing is left behind by a
    command refused later."""
    allowed = (f" ({holds}; allowed: an existing folder" + (" this user can write in" if writes else "")
               + ("" if must_exist else " or a path where one can be made") + ")")
    from castrig.cli.path_options import name_too_long

    if name_too_long(path):  # ($CASTRIG_DATA, a default folder named from a value: is_dir() raised on it)
        from castrig.tiffio import NAME_TOO_LONG

        raise BadInput(f"{flag} {path}: {NAME_TOO_LONG}", file=str(path), field=flag)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            at = "" if p == path else f" ({p} is a file)"
            raise BadInput(f"{flag} {path}: not a folder{at}{allowed}", file=str(path), field=flag)
        if p.is_dir():
            break
    if path.is_dir():
        from castrig.store import unwritable

        why = unwritable(path) if writes else None
        if why is not None:
            raise BadInput(f"{flag} {path}: cannot write in this folder ({why}){allowed}", file=str(path), field=flag)
        return path
    if must_exist:
        raise BadInput(f"{flag} {path}: no such folder{allowed}", file=str(path), field=flag)
    made: list[Path] = []
    try:
        for p in reversed((path, *path.parents)):
            if not p.is_dir():
                p.mkdir()
                made.append(p)
    except OSError as exc:
        raise BadInput(f"{flag} {path}: cannot make this folder: {exc.strerror or exc}{allowed}", file=str(path), field=flag) from None
    finally:
        for p in reversed(made):
            try:
                p.rmdir()
            except OSError:
                pass
    return path


def data_root_named(data: Optional[Path], profile: Optional[Path] = None) -> tuple[Path, str]:
    """The data root (``--data``, else a ``profile``'s ``store:`` folder, else ``$CASTRIG_DATA``,
    else ``./runs``: where the runs go) and the words naming where it came from (``--data``...)."""
    import os

    from castrig.store import data_root

    if data is None and profile is not None:
        from castrig.rig.profile import load_profile

        store = load_profile(profile).store
        if store and "://" not in store:
            return Path(store), f"store (in {profile})"
    where = "--data" if data is not None else "$CASTRIG_DATA" if os.environ.get("CASTRIG_DATA") else "data root"
    return data_root(data), where


def read_data_root(data: Optional[Path]) -> Path:
    """The data root a reading command lists (runs, status, lots, serve): one named on purpose
    (--data, $CASTRIG_DATA) must be there -- a typo read "nothing here" -- while ./runs, the
    default, may not be there yet."""
    import os

    return usable_data_root(data, must_exist=data is not None or bool(os.environ.get("CASTRIG_DATA")))


def usable_data_root(data: Optional[Path], *, must_exist: bool = False, profile: Optional[Path] = None,
                     writes: bool = False) -> Path:
    """The data root (:func:`data_root_named`) checked by :func:`usable_folder`, the message naming
    where it came from; ``writes``: the command makes folders in it (a run, a queue, a search)."""
    root, where = data_root_named(data, profile)
    if writes:
        for folder in (Path(root).absolute(), *Path(root).absolute().parents):
            if (folder / "run.json").is_file() and (folder / "run.sqlite").is_file():
                # (a run folder's control channel, its images: runs made there were listed by no
                # `castrig runs` of the outer data root, and wrote into another run's folder)
                how = "is the run folder" if folder == Path(root).absolute() else "lies inside the run folder"
                raise BadInput(f"{where} {root}: {how} {folder}; a data root holds run folders, it is never one's "
                               "part (allowed: a folder outside every run folder)", file=str(root), field=where)
    return usable_folder(root, where, must_exist=must_exist, holds="the data root holds one folder per run", writes=writes)


@contextmanager
def data_root_said(data: Optional[Path], profile: Optional[Path] = None) -> Iterator[None]:
    """A data root that refused the run folder after all (made read-only since it was checked;
    a file system whose permissions :func:`usable_folder` could not foresee) said as that check
    says it: exit 2 naming ``--data`` (or where the root came from) and the folder."""
    from castrig.store import CannotMakeRunFolder

    try:
        yield
    except CannotMakeRunFolder as exc:
        _, where = data_root_named(data, profile)
        raise BadInput(f"{where} {exc.root}: cannot make a run folder in it ({exc.detail}); nothing was recorded "
                       "(the data root holds one folder per run; allowed: an existing folder this user can write in "
                       "or a path where one can be made)", file=str(exc.root), field=where) from None


@app.command()
def run(
    recipe: Path = typer.Argument(..., metavar="RECIPE", help="Recipe YAML file (see docs/recipes.md)."),
    profile: Optional[Path] = typer.Option(None, "--profile", metavar="PROFILE", help="Hardware profile (default hw_profiles/sim.yaml)."),
    data: Optional[Path] = typer.Option(None, "--data", metavar="DIR", help="Data root (default $CASTRIG_DATA or ./runs)."),
    seed: Optional[int] = typer.Option(None, "--seed", metavar="N", help="Seed of the digital twin (sim profiles)."),
    operator: str = typer.Option("", "--operator", metavar="NAME", help="Who runs it (recorded in run.json)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live display."),
) -> None:
    """Run RECIPE on the rig described by the profile; leaves a run folder under the data root.

    Exit codes: 0 done, 2 bad input, 3 aborted or faulted, 4 busy, 5 rig not reachable,
    130 interrupted. Ctrl-C once pauses at the next safe point and asks; twice aborts.

    \b
    Examples:
      castrig run recipes/demo.yaml                       # on the twin, in virtual time
      castrig run recipes/overnight.yaml --profile docs/examples/wall-clock-rig.yaml --operator ana
      castrig run recipes/demo.yaml --seed 7 --data /srv/castrig/runs -q
    """
    from castrig.recipe.session import run_recipe, stop_requests

    console_is_not_the_record()  # the run folder keeps the record: a console that fails is dropped

    from castrig.inputs import check_text

    check_text(operator, "--operator", max_length=200)
    usable_data_root(data, profile=profile or default_profile(), writes=True)
    # (the run's own handlers act while it runs)
    with data_root_said(data, profile or default_profile()), stop_requests("castrig run", ends_with_the_run=True) as stop:
        outcome = run_recipe(recipe, profile or default_profile(), data_root=data, seed=seed, operator=operator, quiet=quiet,
                             stop=stop)
        stop.exit_code = outcome.exit_code  # recorded: a SIGTERM from here to the process's end keeps it
    raise typer.Exit(outcome.exit_code)


@app.command()
def resume(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="The run folder of an interrupted or crashed run."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live display."),
    after_abort: bool = typer.Option(False, "--after-abort",
                                     help="Also continue a run that was aborted by a decision (castrig abort, Ctrl-C then a, SIGTERM, "
                                          "an interlock). A run aborted because its terminal closed (SIGHUP) is "
                                          "continued without it: nobody decided that abort."),
    take_over: bool = typer.Option(False, "--take-over",
                                   help="Continue a run that run.json says is running on another host, whose process "
                                        "you know is gone (recorded in the run's events)."),
) -> None:
    """Bring the rig to the safe state and continue a run from its journal.

    A run that run.json says is running on another host (a run folder on a shared disk) is refused
    (exit 4, naming the host): that host's lock may not show here. Resume it there, or add
    --take-over once you know its process is gone.

    Commands (pause, abort) sent to the crashed part and never read by it are discarded: answered
    refused and noted in the run's events, not applied; a command sent after the resume started is.

    A run that stopped paused, or pausing (a pause asked, `castrig pause` during a dispense, not
    yet taken), goes on not paused: its pause ended with the process that held it. The resume
    says so on the console and in an 'unpaused' event; `castrig pause` pauses it again.

    A rig that cannot be opened whole (a device's port dead, a pump that fails as it opens): the
    devices that answer are made safe all the same (as `castrig safe` does), what was and was not
    made safe is said and recorded in the run's events, and the exit is 5: the run is not
    resumed and stays resumable once every device answers.

    run.json keeps no passwords: a device URL recorded with its password as *** (a camera's
    rtsp://user:***@host) is filled from the profile file the run was started with, which must
    still give it for the same URL — else the resume refuses (exit 2, naming the field).
    """
    from castrig.recipe.session import ResumeNotRecorded, resume_run, stop_requests

    console_is_not_the_record()  # the run folder keeps the record: a console that fails is dropped

    with stop_requests("castrig resume", ends_with_the_run=True) as stop:
        try:
            outcome = resume_run(run_dir, quiet=quiet, after_abort=after_abort, take_over=take_over, stop=stop)
        except ResumeNotRecorded:  # (said, with the safe state)
            stop.exit_code = EXIT_ABORTED
            raise typer.Exit(EXIT_ABORTED) from None
        stop.exit_code = outcome.exit_code  # recorded: a SIGTERM from here to the process's end keeps it
    raise typer.Exit(outcome.exit_code)


@app.command()
def queue(
    recipes: Optional[list[Path]] = typer.Argument(None, metavar="RECIPE", help="Recipe files, run in order."),
    repeat: int = typer.Option(1, "--repeat", min=1, max=1000, metavar="N", help="Run the whole list this many times."),
    resume_state: Optional[Path] = typer.Option(None, "--resume", metavar="QUEUE_FILE",
                                                help="Go on with a stopped or crashed queue: its DATA/queue-*.json, with the profile, data root, "
                                                "operator and seeds it holds (another --profile, --data, --operator, --seed or --repeat: exit 2)."),
    profile: Optional[Path] = typer.Option(None, "--profile", metavar="PROFILE",
                                           help="Hardware profile for every run (default hw_profiles/sim.yaml)."),
    data: Optional[Path] = typer.Option(None, "--data", metavar="DIR", help="Data root (default $CASTRIG_DATA or ./runs)."),
    seed: Optional[int] = typer.Option(None, "--seed", metavar="N", help="Seed of the digital twin (sim profiles)."),
    operator: str = typer.Option("", "--operator", metavar="NAME", help="Who runs the queue (recorded in every run.json)."),
) -> None:
    """Run recipes unattended; a failed run is recorded, the rig made safe, and the queue goes on.

    The rig is the queue's for the whole night; its state is kept in DATA/queue-STAMP.json.
    Nothing refills a syringe between runs: what all the runs dispense together (recipes x
    --repeat) must fit in each pump's syringe_volume_ml, else the queue is refused before it
    starts (exit 2); --resume counts the runs left, against a syringe refilled before it.

    An abort on purpose stops the queue once the rig is safe (exit 3): SIGTERM or SIGHUP to the
    queue, `castrig abort` of its run, the web page's abort. The recipes not started are listed
    `not run`; `castrig queue --resume` runs them later.

    \b
    Examples:
      castrig queue recipes/grade-claim1.yaml recipes/grade-claim3.yaml
      castrig queue recipes/demo.yaml --repeat 3 --operator night-shift   # 0.6 mL of the twin's 1 mL caster syringe
      castrig queue --resume runs/queue-20260101-220000.json   # after Ctrl-C or a crash
    """
    from castrig.recipe.queue import read_state_text, resume_queue, run_queue

    console_is_not_the_record()  # the run folder keeps the record: a console that fails is dropped
    from castrig.rig.ownership import claim_rig
    from castrig.rig.profile import load_profile

    if resume_state is not None:
        if recipes:
            raise BadInput("castrig queue --resume QUEUE_FILE takes no recipes (they are in the file)", field="--resume")
        from castrig.jsontext import loads

        what = f"--resume {resume_state}: not a queue state file (DATA/queue-*.json)"
        try:
            state = loads(read_state_text(resume_state))
        except (OSError, ValueError) as exc:
            raise BadInput(f"{what}: {getattr(exc, 'strerror', None) or exc}", file=str(resume_state)) from None
        # (a JSON file of another kind: its missing key or wrong type named, not Python's KeyError text)
        if not isinstance(state, dict) or not isinstance(state.get("profile"), str) or not isinstance(state.get("items"), list):
            raise BadInput(f"{what}: it needs an object with 'profile' (a path) and 'items' (a list)", file=str(resume_state))
        from castrig.recipe.queue_resume_options import refuse_queue_changes_on_resume

        refuse_queue_changes_on_resume(state, resume_state, repeat=repeat, profile=profile, data=data, seed=seed,
                                       operator=operator)
        profile = Path(state["profile"])
        try:
            rig = load_profile(profile)
        except BadInput as exc:  # (said as its own file only: "error: .: not a regular file" for "profile": "")
            raise BadInput(f"--resume {resume_state}: profile = {json.dumps(state['profile'])[:200]}, the queue's profile: {exc}",
                           file=str(resume_state), field="profile") from None
        with claim_rig(rig, purpose=f"castrig queue --resume {resume_state}"):
            code = resume_queue(resume_state)
        raise typer.Exit(code)
    if not recipes:
        raise BadInput("castrig queue: give recipe files, or --resume QUEUE_FILE", field="RECIPES")
    from castrig.inputs import check_text

    check_text(operator, "--operator", max_length=200)
    profile = profile or default_profile()
    usable_data_root(data, profile=profile, writes=True)
    # the rig is the queue's for the whole night, not only during each run: no other process
    # slips in between two runs
    with data_root_said(data, profile), claim_rig(load_profile(profile), purpose=f"castrig queue ({len(recipes)} recipes)"):
        code = run_queue(recipes, repeat=repeat, profile=profile, data_root=data, seed=seed, operator=operator)
    raise typer.Exit(code)


@app.command()
def check(
    file: Path = typer.Argument(..., metavar="FILE", help="A recipe or a hardware profile (YAML)."),
    profile: Optional[Path] = typer.Option(None, "--profile", metavar="PROFILE",
                                           help="Check the recipe against this profile's limits (default: the profile "
                                                "`run` uses, hw_profiles/sim.yaml)."),
) -> None:
    """Validate a recipe or a profile: exit 0 if valid, 2 (with the reason) if not.

    A file with a `devices:` mapping is a profile, anything else a recipe. The reason names the
    file, the line, the field and what is allowed; see docs/recipes.md and docs/profiles.md.
    A profile is also checked against its own devices (flows within the mass-flow controllers'
    full scale). A recipe is checked against every limit of the rig `run` would use — --profile,
    else the default profile, hw_profiles/sim.yaml — (devices present, pump rates and syringe
    volumes, flows, the chamber's RH range): what `run` checks before the folder exists. The
    answer names the profile it was checked against.

    \b
    Examples:
      castrig check recipes/demo.yaml
      castrig check recipes/demo.yaml --profile hw_profiles/sim-watlow-f4.yaml
      castrig check hw_profiles/sim.yaml
    """
    from castrig.inputs import load_model, read_yaml
    from castrig.recipe.compat import check_profile_limits, check_recipe_for_profile, recipe_notes
    from castrig.recipe.model import Recipe
    from castrig.rig.profile import Profile, load_profile

    data = read_yaml(file)
    model = Profile if isinstance(data, dict) and "devices" in data else Recipe
    loaded = load_model(model, file, data)
    if model is Profile:
        if profile is not None:
            raise BadInput(f"--profile {profile}: {file} is itself a profile (--profile goes with a recipe)", field="--profile")
        check_profile_limits(loaded, file)
        typer.echo(f"{file}: valid profile")
        return
    said = ""
    if profile is None:
        # the profile `run` would use, so that check and run agree: a cast at 50 mL/min was
        # "valid recipe" here (the recipe alone), then refused by run (the caster's top rate)
        profile = default_profile()
        said = " (the default profile, which castrig run uses; --profile PROFILE for another rig)"
        if not profile.is_file():  # run could not start here either: said, not taken for a fit
            typer.echo(f"{file}: valid recipe (not checked against a rig: no default profile {profile} here; "
                       "give --profile PROFILE, as castrig run needs one too)")
            return
    rig = load_profile(profile)
    check_recipe_for_profile(loaded, file, rig, profile)
    for note in recipe_notes(loaded, file, rig, profile):
        typer.echo(f"note: {note}")
    typer.echo(f"{file}: valid recipe, fits {profile}{said}")


#: Runs ``castrig runs`` shows a person at a terminal without --all or --last: the newest, what a
#: person looks for first. A script (stdout not a terminal, or --json) gets every run that matches
#: unless it asks for --last: DESIGN §7's ``castrig runs`` is one that scripts rely on.
NEWEST_RUNS = 50


@app.command()
def runs(
    data: Optional[Path] = typer.Option(None, "--data", metavar="DIR", help="Data root (default $CASTRIG_DATA or ./runs)."),
    since: Optional[str] = typer.Option(None, "--since", metavar="DATE", help="Runs started on or after DATE (YYYY-MM-DD or ISO time, UTC)."),
    grade: Optional[str] = typer.Option(None, "--grade", metavar="G", help="Runs that met grade G (e.g. claim1)."),
    outcome: Optional[str] = typer.Option(None, "--outcome", metavar="OUTCOME", help="completed | aborted | faulted | interrupted | not_resumable | running | crashed"),
    last: Optional[int] = typer.Option(None, "--last", metavar="N", min=1, max=100_000,
                                       help=f"The newest N runs that match (default at a terminal {NEWEST_RUNS}; piped or "
                                            "--json: all); older ones are said to be left out."),
    every_run: bool = typer.Option(False, "--all", help="Every run that matches, however many (overrides --last)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per run, one per line, oldest first (no table)."),
    prune_never_started: bool = typer.Option(
        False, "--prune-never-started",
        help="First remove the run folders a `castrig run` killed while making them left behind (listed 'never "
             "started': nothing recorded in them); a folder being made right now is kept."),
) -> None:
    """List the runs under the data root, oldest first: at a terminal the newest 50 that match
    (--last N, --all); piped or with --json every one that matches (--last N to limit)."""
    from castrig.report.filters import run_filter
    from castrig.store import open_store

    keep = run_filter(since, grade, outcome)  # the filters checked first: exit 2 naming the one that is wrong
    # a data root named on purpose must be there; ./runs may not be yet ("no runs yet")
    read_data_root(data)
    store = open_store(data)
    if prune_never_started:
        _prune_never_started(store.root)
    newest = newest_shown(every_run, last, as_json, NEWEST_RUNS)
    # one more than shown, to tell whether older runs that match were left out (not only older runs)
    rows, total = _listed_runs(store, lambda r: keep(r.started_utc, r.grades, r.outcome),
                               None if newest is None else newest + 1)
    left_out = newest is not None and len(rows) > newest
    if left_out:
        rows = rows[1:]  # (oldest first: the one past the newest N)
    lines = (_run_line(r) for r in rows)
    if as_json:
        for line in lines:
            typer.echo(json.dumps(line, default=str))
    else:
        _print_runs_table(store.root, lines)
    if not rows:
        if as_json:
            return
        typer.echo(f"no runs match ({total} run{'s' if total != 1 else ''} in all)" if total else "no runs yet")
    elif left_out:
        # (on stderr: the table or the JSON lines stay what a script reads)
        Console(stderr=True, highlight=False, markup=False, soft_wrap=True).print(
            f"the newest {newest} runs that match are shown ({total} runs in all); --last N or --all for older ones")


def newest_shown(every: bool, last: int | None, as_json: bool, at_a_terminal: int) -> int | None:
    """How many of the newest rows a listing shows (None: all): ``--all``; else ``--last N``; else
    ``at_a_terminal`` for a person at a terminal, every row for a script (piped, or ``--json``)."""
    if every:
        return None
    if last is not None:
        return last
    return None if as_json or not sys.stdout.isatty() else at_a_terminal


def _listed_runs(store: Any, keep: Any, newest: int | None) -> tuple[list[Any], int]:
    """The newest ``newest`` runs ``keep`` keeps (all: None), oldest first, and how many runs there
    are. A store that cannot tell its newest rows cheaply (the fleet's) lists them all first."""
    pick = getattr(store, "newest_runs", None)
    if pick is not None:
        return pick(keep, newest)
    every = store.list_runs()
    rows = [r for r in every if keep(r)]
    return (rows if newest is None else rows[max(0, len(rows) - newest):]), len(every)


def _run_line(r: Any) -> dict[str, Any]:
    """What ``castrig runs`` says of one run (its table row; one JSON line with --json). Checked
    only for the runs shown: the status a reader shows, and its membranes read from its folder."""
    from castrig.store.live import shown_status
    from castrig.store.lock import elsewhere_words, recorded_elsewhere
    from castrig.store.membrane_rows import membrane_counts

    host = recorded_elsewhere(Path(r.run_dir)) if r.outcome == "running" else None
    # making_safe, paused…: as castrig status and serve say it; a run on another host is not judged here
    shown = elsewhere_words(host) if host else shown_status(Path(r.run_dir), r.outcome)
    return {"run": r.run_id, "recipe": r.recipe_name, "profile": r.profile_name, "operator": r.operator,
            "started_utc": r.started_utc, "ended_utc": r.ended_utc, "outcome": shown,
            "reason": getattr(r, "reason", "") or _outcome_reason(Path(r.run_dir)), "membranes": membrane_counts(_membranes_of(r)),
            "grades": list(r.grades), "run_dir": r.run_dir}


def _outcome_reason(run_dir: Path) -> str:
    """Why the run ended as it did, from its run.json (``outcome_reason``): the catalog keeps the
    outcome alone, and a faulted run was listed ``"reason": ""`` though its run.json said why
    ("disk full: cannot write the run record"). Empty when run.json cannot be read."""
    from castrig.errors import CastrigError
    from castrig.store.folders import read_run_info

    try:
        return str(read_run_info(run_dir).outcome_reason or "")
    except (CastrigError, OSError, ValueError):
        return ""


def _print_runs_table(root: Path, lines: Iterator[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title=f"runs in {root}")
    for col in ("run", "recipe", "profile", "operator", "started (UTC)", "outcome", "membranes", "grades"):
        table.add_column(col)
    for d in lines:
        outcome_text = f"{d['outcome']}: {d['reason']}" if d["reason"] else d["outcome"]
        table.add_row(d["run"], d["recipe"], d["profile"], d["operator"], d["started_utc"], outcome_text,
                      d["membranes"], ",".join(d["grades"]))
    # (markup off: a recipe, profile or operator name is shown as written, never read as Rich
    # markup -- '[link=…]' made a clickable link in the terminal, '[conceal]' hid text)
    Console(width=200, markup=False).print(table)


def _membranes_of(r: Any) -> list[dict[str, Any]]:
    """A listed run's membranes as its row counts them (status, target, grades met), read only, as
    ``castrig serve``'s runs list reads them: no metrics or verdict decoded (the whole records took
    0.9 ms a run, 2.7 s of a --all listing of 3 000 runs). [] for a folder this machine cannot
    read (a damaged one, another rig's: the outcome column says what is known)."""
    from castrig.store.live import membrane_states, open_ro

    if r.outcome in ("damaged", "moved") or not (Path(r.run_dir) / "run.sqlite").is_file():
        return []
    try:
        with open_ro(Path(r.run_dir)) as db:
            return membrane_states(db)
    except (OSError, sqlite3.Error):
        return []


def _prune_never_started(root: Path) -> None:
    """Remove every run folder under ``root`` that never started (each owned first, checked again,
    then removed; one whose maker still runs is kept), saying which on stderr; BadInput naming
    those that could not be removed (a read-only data root)."""
    from castrig.store.folders import never_started, remove_never_started

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    failed = []
    try:  # every folder: one killed before it wrote run.json is empty or holds only the lock
        folders = sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        folders = []
    for run_dir in folders:
        if never_started(run_dir) is None:  # holds a record, or is not a folder castrig made
            continue
        try:
            why = remove_never_started(run_dir, purpose="castrig runs --prune-never-started")
        except Busy as exc:
            err.print(f"kept {escape(str(run_dir))}: it is being made now ({escape(str(exc))})")
            continue
        except OSError as exc:
            failed.append(f"{run_dir} ({exc.strerror or exc})")
            continue
        if why is not None:
            err.print(f"removed {escape(str(run_dir))}: never started ({escape(why)}; nothing recorded)")
    if failed:
        raise BadInput(f"--prune-never-started: cannot remove {'; '.join(failed)}", field="--prune-never-started")


#: The commands the other cli modules mount (castrig's first word → its module). A ``castrig``
#: process builds only the module of the command it was started with (cli/entry.py: COMMAND);
#: any other word, ``--help`` or none builds them all, as an import of this module does. All
#: eight modules and their ~70 commands built by typer cost every process ~0.04 s of CPU.
SUBCOMMANDS: dict[str, tuple[str, ...]] = {
    "sim": ("sim",), "report": ("report", "export", "store"), "explore": ("explore", "lots", "filter", "coculture"),
    "commission": ("tune", "calibrate"), "safe": ("safe",),
    "operate": ("serve", "status", "watch", "pause", "resume-paused", "abort"), "schema": ("schema",), "analyse": ("analyse",),
}
#: The commands of this module: with them, no other module is built
OWN_COMMANDS = ("run", "resume", "queue", "check", "runs")


def _mount_subcommands(word: str | None = None) -> None:
    """Mount the other modules' commands: those of the module whose command is ``word``, or all."""
    known = word in OWN_COMMANDS or any(word in words for words in SUBCOMMANDS.values())

    def wanted(module: str) -> bool:
        return not known or word in SUBCOMMANDS[module]

    if wanted("sim"):
        from castrig.cli.sim import app as sim_app

        app.add_typer(sim_app, name="sim", help="The digital twin: serve emulators, render micrographs.")
    if wanted("report"):
        from castrig.cli.report import export, report, store_app

        app.command()(report)
        app.command()(export)
        app.add_typer(store_app, name="store", help="The fleet store (PostgreSQL): sync run folders into it.")
    if wanted("explore"):
        from castrig.cli.explore import mount as mount_explore

        mount_explore(app)
    if wanted("commission"):
        from castrig.cli.commission import mount as mount_commission

        mount_commission(app)  # tune rh, calibrate camera
    if wanted("safe"):
        from castrig.cli.safe import mount as mount_safe

        mount_safe(app)  # safe: the rig to its verified safe state, nothing else
    if wanted("operate"):
        from castrig.cli.operate import mount as mount_operate

        mount_operate(app)  # serve, status, watch, pause, resume-paused, abort
    if wanted("schema"):
        from castrig.cli.schema import mount as mount_schema

        mount_schema(app)  # schema recipe|profile
    if not wanted("analyse"):
        return
    try:
        from castrig.cli.analyse import app as analyse_app
    except ImportError:  # pragma: no cover - the analysis extra is part of the base install
        return
    app.add_typer(analyse_app, name="analyse")  # its help (with examples) is analyse_app's own


_mount_subcommands(getattr(sys.modules.get("castrig.cli.entry"), "COMMAND", None))


def _plain_help(command: object) -> None:
    """Plain ``--help`` (click's layout): no ``<bool>`` after flags, no boxes; lines as written."""
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None  # type: ignore[attr-defined]
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


def main(argv: list[str] | None = None, *, ready: Any = None) -> int:
    """Entry point: maps errors to the documented exit codes, never a traceback for bad input.
    ``ready()``: called once the command is built, just before it runs (cli/entry.py puts the
    process's own signal handlers back there)."""
    keep_going_without_readers()  # a closed terminal or pipe must not end a run (cli/streams.py)
    command = typer.main.get_command(app)
    _plain_help(command)
    if ready is not None:
        ready()
    # called in-process with arguments (tests): the caller's handlers come back at the end; as the
    # castrig process, a run's late SIGTERM handlers stay until it exits (session.keep_exit_code)
    callers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGQUIT, signal.SIGXCPU, signal.SIGHUP, signal.SIGINT)} if argv is not None else {}
    try:
        return _main(command, argv)
    finally:
        settle_consoles()  # a run's console queued: written before the command returns
        if callers:
            from castrig.recipe.session import release_exit_code

            release_exit_code()
        for signum, handler in callers.items():
            if handler is not None:
                signal.signal(signum, handler)


def _main(command: Any, argv: list[str] | None) -> int:
    try:
        code = _command(command, argv)
        sys.stdout.flush()
        return code
    except ConsoleWriteError as exc:  # also while an error above was being said
        return _unwritable(exc)


def _ranged_float_options(command: Any) -> dict[str, Any]:
    """Option string → option, for the options of ``command`` that take a number with a fraction
    within a range (min, max) typer checks (cli/number_options.py checks every number option)."""
    from castrig.cli.number_options import number_options, ranged

    return {opt: p for opt, (p, kind) in number_options(command).items() if kind is float and ranged(p)}


def _command(command: Any, argv: list[str] | None) -> int:
    interrupted = False
    try:
        from castrig.cli.number_options import refuse_bad_numbers

        # (a number option's bad value in our words, naming its range: typer said "Input should be ...")
        refuse_bad_numbers(command, list(sys.argv[1:] if argv is None else argv))
        from castrig.envvars import check_environment

        check_environment()  # CASTRIG_ANALYSIS_THREADS=abc fell back to 2 silently; a heartbeat of abc was a traceback
        from castrig.cli.path_options import guard_path_params

        guard_path_params(command)  # (a path's name too long: an OSError traceback from the first look at it)
        rv = command.main(args=argv, prog_name="castrig", standalone_mode=False)
        code = rv if isinstance(rv, int) else EXIT_OK
    except BadInput as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        code = EXIT_BAD_INPUT
    except Busy as exc:
        err.print(f"[bold red]busy:[/] {escape(str(exc))}; refused before anything was sent or written", highlight=False, soft_wrap=True)
        code = EXIT_BUSY
    except RigUnreachable as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        code = EXIT_UNREACHABLE
    except typer.Exit as exc:
        code = exc.exit_code
    except MemoryError:  # what the analyse commands' estimate did not foresee: said, not a traceback
        err.print("[bold red]error:[/] out of memory (an image too large for the memory free here? crop or bin it)",
                  highlight=False, soft_wrap=True)
        code = EXIT_BAD_INPUT
    except (typer.Abort, KeyboardInterrupt) as exc:
        cut = _cut_pyc(exc)
        if cut is not None:
            err.print(f"[bold red]error:[/] {escape(cut)}: castrig's compiled module is cut short (written on a full disk or "
                      "under a file-size limit?); delete it, and Python compiles it again", highlight=False, soft_wrap=True)
            code = EXIT_BAD_INPUT
        else:
            interrupted, code = True, EXIT_INTERRUPTED
    except Terminated as exc:
        err.print(escape(str(exc) or "terminated"), highlight=False, soft_wrap=True)
        code = EXIT_ABORTED
    except typer.TyperException as exc:  # usage errors: unknown option, bad value, missing argument
        exc.show()  # type: ignore[attr-defined]
        code = EXIT_BAD_INPUT
    if code == EXIT_INTERRUPTED and (interrupted or _CTRL_C):  # (typer's silent 130 after a Ctrl-C too)
        err.print("interrupted")
    return code


def _cut_pyc(exc: BaseException) -> str | None:
    """The .pyc file whose import raised the EOFError behind ``exc`` ('marshal data too short'):
    click takes any EOFError for Ctrl-D and aborts, and the CLI said "interrupted" (exit 130) of a
    module cut short by a full disk. None: an EOFError of no import, or none."""
    eof = exc.__cause__ or exc.__context__ if not isinstance(exc, EOFError) else exc
    if not isinstance(eof, EOFError):
        return None
    tb = eof.__traceback__
    while tb is not None:
        path = tb.tb_frame.f_locals.get("bytecode_path")  # (importlib's SourceLoader.get_code)
        if isinstance(path, str) and path.endswith(".pyc"):
            return path
        tb = tb.tb_next
    return None


def _unwritable(exc: ConsoleWriteError) -> int:
    """The command's output could not be written (``> file`` on a full disk): said, exit 2, as
    for an ``--out`` that cannot be written; never a traceback."""
    try:
        err.print(f"[bold red]error:[/] {escape(str(exc))} (a full disk? the output is incomplete)", highlight=False,
                  soft_wrap=True)
    except ConsoleWriteError:
        pass  # stderr is the one that fails: the exit code says it
    return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
