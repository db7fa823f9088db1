"""``castrig run`` and ``castrig resume``: files in, a run folder and an exit code out.

Everything a person can get wrong is checked before the run folder exists: the recipe, the
profile, and whether the recipe fits the rig. Then the rig is opened, the run is recorded as it
happens, and every way out — completion, fault, Ctrl-C, SIGTERM — ends in the verified safe state.
"""

from __future__ import annotations

import atexit
import math
import os
import signal
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from rich.markup import escape
from rich.text import Text

import castrig
from castrig.atomic import remove_dead_temporaries
from castrig.errors import BadInput, Busy, CastrigError, RigUnreachable
from castrig.logs import RunLog
from castrig.printable import Console, shown
from castrig.recipe.compat import check_recipe_for_profile, check_setpoints_on_chamber, recipe_notes, resume_setpoint_problems
from castrig.recipe.ctrl_c_holds import CtrlCAtClose, DeferredCtrlC, HeldCtrlC
from castrig.recipe.display import Display, interactive_prompt, say, status_every_s
from castrig.recipe.made_on_resume import settle_made
from castrig.recipe.membranes import ResumePlan, membrane_targets, process_record, step_label, target_summary
from castrig.recipe.membranes import plan_resume as plan_membrane_resume
from castrig.recipe.model import CaptureStep, Recipe, load_recipe_with_text
from castrig.store.paused_at_stop import pause_at_stop, say_unpaused
from castrig.recipe.resume_unopened import earlier_dated_stop, make_safe_and_stop
from castrig.recipe.run_unopened import make_safe_and_refuse
from castrig.recipe.runner import RunAborted, Runner, RunResult
from castrig.redact import is_redacted, redact, redact_urls, restore_redacted
from castrig.rig.build import Rig
from castrig.rig.not_suspended import not_suspended
from castrig.rig.ownership import open_owned_rig
from castrig.rig.profile import Profile, load_profile
from castrig.store import MembraneRecord, RunInfo, RunRecorder, SqliteRunStore, StoreError, data_root as data_root_of, open_store, unwritable, utc_now_iso
from castrig.store.sqlite_connect import is_disk_full, writable_now
from castrig.store.sqlite_store import run_folder_word
from castrig.store.base import grades_of
from castrig.store.commands import STATUS_NAME, control_dir
from castrig.store.lock import LOCK_NAME, claim_run, recorded_on_another_host, release_run
from castrig.store.signals import guarded
from castrig.utc import parse_utc

console = Console(stderr=True)

#: One BLAS thread in a run's process, set before numpy loads (the twin, the camera or the
#: analysis load it later): OpenBLAS starts a worker per core when it loads and they spin
#: waiting for work, taking a core from the control loop (and a fifth of a second of CPU per
#: library: numpy's and scipy's each have one). castrig's numerical work is per image, without
#: large matrix products (analysis/illumination.py keeps them off BLAS for the same reason). A
#: value set by the operator stands.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


#: The run folder of a run that could not make one (a full disk): nothing ran.
NO_RUN_FOLDER = "(no run folder)"

#: How the abort of a run whose terminal closed is recorded (its outcome_reason holds this).
HUNG_UP = "SIGHUP received (the terminal closed)"


def needs_after_abort(outcome: str | None, reason: str | None) -> bool:
    """Whether continuing a run needs ``--after-abort``: it was aborted by someone's decision
    (the operator, SIGTERM, an interlock) — not by a terminal that closed under it, which
    nobody decided and which a plain resume (or a queue's) continues."""
    return outcome == "aborted" and HUNG_UP not in (reason or "")


@dataclass
class StopRequest:
    """A stop (SIGTERM, SIGHUP) asked of whoever drives a run (``castrig run``) or runs one after
    another (``castrig queue``): noted by its own handlers outside a run (:func:`stop_requests`)
    and by the run's handlers during one, so that a stop reaching either -- also one a run only
    notes, as it winds up -- ends the sequence. A stop asked before a run's handlers are in place
    aborts that run at its first control period."""

    reason: str | None = None
    #: The command's exit code once its outcome is recorded, set before :func:`stop_requests`
    #: ends: from then on a SIGTERM, SIGHUP or Ctrl-C cannot change it (:func:`keep_exit_code`).
    exit_code: int | None = None
    #: A Ctrl-C came as the run's rig was closed, its outcome recorded (:func:`_close_rig`):
    #: ``castrig run`` keeps its run's exit code, ``castrig queue`` stops there (interrupted).
    ctrl_c: bool = False
    #: The command ends with its run (``castrig run``, ``castrig resume``; not ``castrig queue``):
    #: Ctrl-C's hold at the rig's close stays until :func:`stop_requests` ends and hands SIGINT
    #: to :func:`keep_exit_code` -- put back between them, a Ctrl-C made a completed run exit 130.
    ends_with_the_run: bool = False
    #: That hold, once the rig is closed (:func:`_close_rig`), for :func:`stop_requests` to end.
    closed_hold: Any = None

    def ask(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason


@contextmanager
def stop_requests(who: str, *, ends_with_the_run: bool = False) -> Iterator[StopRequest]:
    """SIGTERM and SIGHUP to ``who`` (``castrig queue``, or ``castrig run`` itself) outside a run's
    own handlers -- while the rig is being opened, after the run has ended and its handlers are
    gone -- are noted in the :class:`StopRequest` given to ``run_recipe``/``resume_run``: a run
    whose rig was being opened aborts at its first control period, a run that has ended is not
    cut short (a SIGTERM in the last milliseconds killed the process with its outcome written,
    exit 143 instead of 3). Under nohup SIGHUP stays ignored. A caller that set ``exit_code``
    leaves :func:`keep_exit_code`'s handlers in place of these, not the default ones: the
    process is ending, and a SIGTERM as it exits (Python shutting down) killed it with 143.
    ``ends_with_the_run``: see :attr:`StopRequest.ends_with_the_run`."""
    stop = StopRequest(ends_with_the_run=ends_with_the_run)

    def on_signal(signum: int, frame: Any) -> None:
        stop.ask(HUNG_UP if signum == signal.SIGHUP else f"{_heard(signum)} by {who}")

    old_term = signal.signal(signal.SIGTERM, on_signal)
    old_quit = signal.signal(signal.SIGQUIT, on_signal)  # Ctrl-\: as SIGTERM (see _signals)
    old_xcpu = signal.signal(signal.SIGXCPU, on_signal)  # the CPU time's soft limit: as SIGTERM (see _signals)
    ignored = signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    old_hup = signal.SIG_IGN if ignored else signal.signal(signal.SIGHUP, on_signal)
    try:
        yield stop
    finally:
        held, stop.closed_hold = stop.closed_hold, None
        if stop.exit_code is not None:
            keep_exit_code(stop.exit_code)  # one handler replaces the other: never the default (kill) between
            if held is not None:
                held.release()  # (SIGINT is keep_exit_code's now)
        else:
            signal.signal(signal.SIGTERM, old_term)
            signal.signal(signal.SIGQUIT, old_quit)
            signal.signal(signal.SIGXCPU, old_xcpu)
            signal.signal(signal.SIGHUP, old_hup)
            if held is not None:
                held.restore()


def keep_exit_code(code: int) -> None:
    """From now until the process ends, SIGTERM, SIGHUP and Ctrl-C leave its exit code ``code``: its
    outcome is recorded and its rig safe, so a stop asks for nothing left to do. The first is
    said on stderr and the process goes on ending (its last writes, its threads); a second ends
    it at once, still with ``code`` (an end that hangs stays stoppable). From the exit functions
    on they are ignored (:func:`_ignore_late_stops`; SIGKILL still ends it). Under nohup
    SIGHUP stays ignored. ``castrig.cli.main.main`` puts back its caller's handlers when it is
    called in-process (tests), not as the ``castrig`` process."""
    heard: list[int] = []

    def on_late(signum: int, frame: Any) -> None:
        if heard:
            os._exit(code)
        heard.append(signum)
        try:
            os.write(2, f"{signal.Signals(signum).name} after the outcome was recorded: exiting with its code "
                        f"{code}\n".encode())
        except OSError:  # no terminal left (a SIGHUP): nothing to say it on
            pass

    signal.signal(signal.SIGTERM, on_late)
    signal.signal(signal.SIGQUIT, on_late)
    signal.signal(signal.SIGXCPU, on_late)  # (again each CPU second past the soft limit: ends at the second)
    signal.signal(signal.SIGINT, on_late)  # (Ctrl-C: a run that completed exited 130, "interrupted")
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signal.signal(signal.SIGHUP, on_late)
    if not _LATE_STOPS:
        atexit.register(_ignore_late_stops)
    _LATE_STOPS[:] = [on_late]


#: The handler :func:`keep_exit_code` put in, while it is the one to keep to the process's end.
_LATE_STOPS: list[Any] = []


def _ignore_late_stops() -> None:
    """At exit, after the outcome's handlers: SIGTERM and SIGHUP ignored for the rest. Python's
    finalisation puts the default action back for every handler written in Python, and a SIGTERM
    in those last tens of milliseconds (freeing the modules) killed the process: exit -15 with the
    outcome recorded. Only an ignored signal stays as it is through it."""
    for signum in (signal.SIGTERM, signal.SIGQUIT, signal.SIGXCPU, signal.SIGHUP, signal.SIGINT):
        if _LATE_STOPS and signal.getsignal(signum) is _LATE_STOPS[0]:
            signal.signal(signum, signal.SIG_IGN)


def release_exit_code() -> None:
    """The caller's handlers are back (``main`` called in-process): nothing to keep at its exit."""
    _LATE_STOPS.clear()


@contextmanager
def _signals(runner: Runner, stop: StopRequest | None = None, before: HeldCtrlC | None = None,
             closing: CtrlCAtClose | None = None) -> Iterator[None]:
    """Ctrl-C once: pause at the next safe point and ask; twice: abort now. SIGTERM: abort.
    SIGHUP (the terminal closed, an ssh session dropped): abort like SIGTERM — nobody is left
    to answer a pause, and a run meant to outlive its terminal is started under nohup, tmux or a
    service manager. SIGQUIT (Ctrl-\\ at the terminal, the key beside the one that stops a
    pipeline): abort like SIGTERM. Its default action killed the process where it stood, like
    kill -9: wet air left flowing, run.json 'running', no safe state tried. SIGXCPU (the CPU
    time's soft limit, ``ulimit -St``, systemd's LimitCPU=) likewise: abort like SIGTERM, in the
    CPU time left before the hard limit's SIGKILL (the kernel repeats it each CPU second: noted).

    "Twice" means a second Ctrl-C while that pause is pending or asking, not a Ctrl-C after the
    operator resumed: each pause that ended in 'r' starts the count again (the runner's state is
    the count, so it cannot go stale).

    From the moment the rig is being made safe a signal is only noted, never raised into the safe
    state (Ctrl-C or SIGTERM while an unverified safe state is tried again stops the tries); the
    handlers are kept until the outcome is recorded and the run closed, so a repeated SIGTERM
    cannot leave run.json saying 'running'. SIGTERM and SIGHUP are also noted in ``stop`` (the
    :class:`StopRequest` of ``castrig queue``, ``castrig run``), so a stop asked as a run ends
    still stops the queue.

    Ctrl-Z (SIGTSTP) does not suspend a run, nor does a write to the terminal from the background
    (SIGTTOU): a stopped process leaves the rig running uncontrolled.

    ``before``: a Ctrl-C held while the run was being set up (:class:`HeldCtrlC`), taken here as
    the run's first Ctrl-C once these handlers are in. ``closing``: the hold of the rig's close
    after the run (:func:`_close_rig`), which SIGINT is handed to as these handlers end.
    """
    def ended(signum: int) -> bool:
        """The run is ending (its rig being made safe) or has ended: a signal now is noted, never
        raised into the safe state; Ctrl-C or SIGTERM while an unverified safe state is tried
        again stops the tries (a person or the system wants it over)."""
        name = signal.Signals(signum).name
        if runner.status.state not in ("ready", "running", "paused"):
            say(f"[yellow]{name}: the run has ended ({runner.status.state}) and its safe state was tried; "
                "recording its outcome[/]")
            return True
        progress = runner.safe_progress
        if progress is None:
            return False
        if signum == signal.SIGHUP:  # nobody is left at the rig: the tries go on
            say(f"[yellow]{name}: the rig is being made safe; the run ends when that is done[/]")
            return True
        if progress.get("state") == "unsafe_retrying" and signum == signal.SIGINT and runner.stop_safe_tries:
            raise KeyboardInterrupt  # Ctrl-C again: stop the tries now (Runner._keep_trying_safe catches it)
        runner.stop_safe_tries = True  # the tries stop at their next pass, or are not begun
        say(f"[yellow]{name}: the rig is being made safe; an unverified safe state will not be tried again "
            "(Ctrl-C again stops the tries now)[/]")
        return True

    here = [False]  # the pause pending (or held) was asked by a Ctrl-C at this terminal

    def on_int(signum: int, frame: Any) -> None:
        if ended(signum):
            return
        if not runner.pausing:  # (an earlier pause resolved: this Ctrl-C starts anew)
            here[0] = False
        if runner.pausing and here[0]:
            raise KeyboardInterrupt
        if runner.pausing:
            # paused, or pausing, from elsewhere (castrig pause, the web page): this Ctrl-C joins
            # that pause; the next one aborts. One Ctrl-C aborted at once, cut a cast short and
            # recorded "Ctrl-C twice" (an outside tester)
            here[0] = True
            say("[yellow]Ctrl-C: the run is pausing or paused already (asked from elsewhere: resume or abort it "
                "there, castrig resume-paused / castrig abort RUN_DIR); Ctrl-C again aborts now[/]")
            return
        here[0] = True
        where = runner.pause_point()
        # asked before saying so: a second Ctrl-C landing while this prints (the live panel redraws
        # under the message) must find the pause pending and abort, not ask for a pause again
        runner.request_pause()
        say(f"[yellow]Ctrl-C: pausing {escape(where)} (Ctrl-C again aborts now)[/]")

    def on_term(signum: int, frame: Any) -> None:
        heard = HUNG_UP if signum == signal.SIGHUP else _heard(signum)
        if stop is not None:  # the queue hears of it too, whatever the run makes of it
            stop.ask(heard)
        if ended(signum):
            return
        reason = f"{heard}: aborting to the safe state"
        if runner.status.state == "paused":  # asking a person, who may never answer: abort now
            raise RunAborted("aborted", reason)
        runner.request_abort(reason, someone_asked=signum != signal.SIGHUP)

    old_int = signal.signal(signal.SIGINT, guarded(on_int))
    old_term = signal.signal(signal.SIGTERM, guarded(on_term))
    old_quit = signal.signal(signal.SIGQUIT, guarded(on_term))
    old_xcpu = signal.signal(signal.SIGXCPU, guarded(on_term))
    # (started under nohup, SIGHUP is ignored: the operator asked the run to outlive its terminal)
    ignored = signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    old_hup = signal.SIG_IGN if ignored else signal.signal(signal.SIGHUP, guarded(on_term))
    try:
        if before is not None and before.asked:  # read once on_int is in: no Ctrl-C falls between
            here[0] = True
            runner.request_pause()
            say(f"[yellow]Ctrl-C (as the run began): pausing {escape(runner.pause_point())} (Ctrl-C again aborts now)[/]")
        with not_suspended(lambda text: say(f"[yellow]{escape(text)}[/]"),
                           "Ctrl-C pauses it at a safe point, `castrig pause RUN_DIR` from another terminal; a run "
                           "meant to go on without this terminal is started under nohup or tmux"):
            yield
    finally:
        # the hold ends with these handlers: a Ctrl-C as the run winds up is the caller's again
        # (castrig queue stops on it), not noted for a run that has ended -- once the rig is
        # closed: SIGINT goes straight on to the close's hold (``closing``); put back in between,
        # a Ctrl-C raised there, the rig never closed, exit 130 from a run that completed
        after = before.release() if before is not None and before.held else old_int
        if closing is None or not closing.take(restores=after):
            signal.signal(signal.SIGINT, after)
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGQUIT, old_quit)
        signal.signal(signal.SIGXCPU, old_xcpu)
        signal.signal(signal.SIGHUP, old_hup)


def _heard(signum: int) -> str:
    """How a stop is recorded: its name, and for SIGXCPU what sent it (nobody typed a kill)."""
    name = signal.Signals(signum).name + " received"
    return name + " (the CPU time's soft limit, ulimit -t)" if signum == signal.SIGXCPU else name


def _open_rig(profile: Profile, seed: int | None, recipe: Recipe, *, purpose: str) -> Rig:
    """Own every device of ``profile`` (else :class:`Busy`, before a byte is sent), then open them
    (else :class:`RigUnreachable`, with nothing recorded); the camera must answer where ``recipe``
    captures. The rig holds its claim until closed."""
    captures = any(step.type == "capture" for step in recipe.steps)
    return open_owned_rig(profile, seed=seed, purpose=purpose, camera_answers=captures)


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
    stop: StopRequest | None = None,
    local_only: bool = False,
    camera_taken: list[tuple[str, dict[str, Any]]] | None = None,
) -> RunResult:
    """Run ``recipe_path`` on the rig of ``profile_path``. ``stop``: the stop requests of whoever
    runs recipes one after another (``castrig queue``; see :class:`StopRequest`). ``local_only``:
    recorded in the run folder only, whatever ``$CASTRIG_STORE`` says (an exploration's twin
    trials: thousands of simulated runs that are not the fleet's). ``camera_taken``: the frames
    the camera gave the runs before this one (a queue's: ``(illumination, metadata)`` as stored),
    which a replaying camera goes on after (:meth:`~castrig.devices.roles.Camera.resume_after`)."""
    status_every_s()  # $CASTRIG_STATUS_EVERY_MIN refused (exit 2) before anything is read or opened
    recipe, recipe_text = load_recipe_with_text(recipe_path)  # read once: a pipe cannot be read again
    profile = load_profile(profile_path)
    check_recipe_for_profile(recipe, Path(recipe_path), profile, Path(profile_path))
    if not local_only:
        # what `castrig check` notes (a set point beyond where the chamber levels off, inside its
        # band; an evaporate that may start out of band) said to whoever runs it without a check:
        # the run went on with no word of it (an exploration's trials are chosen within reach)
        for note in recipe_notes(recipe, Path(recipe_path), profile, profile_path):
            console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    seed = profile.sim.seed if seed is None else seed
    if seed < 0:
        raise BadInput(f"--seed = {seed}: must be >= 0", field="--seed")
    try:
        rig = _open_rig(profile, seed, recipe, purpose=f"castrig run {recipe_path}")
    except RigUnreachable as exc:  # what answers is made safe all the same (exit 5, no run folder)
        make_safe_and_refuse(profile, Path(profile_path), seed=seed, purpose=f"castrig run {recipe_path}", exc=exc)
    held = HeldCtrlC()  # from here a run folder is made: a Ctrl-C waits for the run's own handlers
    closing = CtrlCAtClose(now=False)  # (in place as the run's handlers end: _signals)
    try:
        check_setpoints_on_chamber(recipe, Path(recipe_path), rig.chamber, Path(profile_path))
        _configure_twin(rig, recipe)
        if camera_taken and rig.camera is not None:
            rig.camera.resume_after(camera_taken)
        started = datetime.now(timezone.utc)  # the wall clock names the folder, also on the twin
        info = RunInfo(
            run_id=f"{started:%Y%m%d-%H%M%S}-{run_folder_word(recipe.name)}",
            recipe_name=recipe.name,
            recipe_path=str(recipe_path),
            profile_name=profile.name,
            profile_path=str(profile_path),
            software_version=castrig.__version__,
            seed=seed if rig.twin is not None else None,
            operator=operator,
            started_utc=utc_now_iso(),
            virtual_time=rig.clock.virtual,
            run_clock_origin_utc=utc_now_iso(rig.clock.epoch()),
            recipe=recipe.model_dump(mode="json"),
            # recorded without passwords (run.json, report, serve, the fleet store's info_json);
            # a resume takes them from the operator's profile again (_profile_for_resume)
            profile=redact_urls(profile.model_dump(mode="json")),
        )
        store = (SqliteRunStore(data_root_of(data_root), synchronous=profile.store_sync) if local_only
                 else open_store(data_root or profile.store, synchronous=profile.store_sync))
        try:
            recorder = store.create_run(info)
        except StoreError as exc:  # a full disk before the run started: nothing moved, nothing kept
            console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            result = RunResult("faulted", str(exc))
            result.run_dir = NO_RUN_FOLDER
            _report(result, quiet)
            return result
        _keep_recipe_text(recipe_text, Path(recorder.run_dir))
        return _drive(recipe, rig, recorder, store, quiet=quiet, stop=stop, ctrl_c_before=held, closing=closing)
    finally:
        held.hand_to(closing)  # (the set-up's hold, if a failure left it in: never Python's handler between)
        _close_rig(rig, stop, closing)


def _close_rig(rig: Rig, stop: StopRequest | None, hold: CtrlCAtClose | None = None) -> None:
    """Close the rig after its run (safe, its outcome recorded by now, or nothing run): a Ctrl-C
    meanwhile is said and noted in ``stop`` (``castrig queue`` stops on it), not raised. It raised
    out of the close: exit 130 "interrupted" from a run that completed (run.json said completed),
    with the pumps' watchdogs and the links left as the close had reached them. Without a ``stop``
    to note it in (an exploration's trials) it is raised once the rig is closed. ``hold``: the
    close's hold, already taking SIGINT since the run's handlers ended (:func:`_signals`)."""
    hold = hold or CtrlCAtClose()
    hold.take()
    try:
        rig.close()
    finally:
        if stop is not None and stop.ends_with_the_run and hold.held:
            stop.closed_hold = hold  # kept until keep_exit_code takes SIGINT over (stop_requests)
        else:
            hold.restore()
    if hold.asked:
        if stop is None:
            raise KeyboardInterrupt
        stop.ctrl_c = True


def _keep_recipe_text(recipe_text: bytes, run_dir: Path) -> None:
    """Keep the recipe as written (comments, key order) -- the bytes the run was validated from,
    not the path read again (a pipe would give nothing) -- as ``RUN/recipe.yaml``, for the report."""
    copy = run_dir / "recipe.yaml"
    if copy.exists():
        return
    try:
        copy.write_bytes(recipe_text)
    except OSError:  # the run goes on; the report rebuilds the recipe from run.json
        pass


def _drive(recipe: Recipe, rig: Rig, recorder: RunRecorder, store: Any, *, quiet: bool, start_step: int = 0,
           t_offset_s: float = 0.0, resume: dict[str, Any] | None = None,
           stop: StopRequest | None = None, ctrl_c_before: HeldCtrlC | None = None,
           closing: CtrlCAtClose | None = None) -> RunResult:
    log = RunLog(recorder.run_dir, console=None if quiet else sys.stderr)
    from castrig.recipe.folder_history import camera_source, continue_after_earlier_runs

    run_dir = Path(recorder.run_dir).resolve()  # (`castrig resume .`: the parent of '.' is '.')
    took = continue_after_earlier_runs(rig.camera, run_dir.parent, run_dir)
    if took is not None:  # (a folder camera, a video file: the images earlier runs of the data root took are theirs)
        key = "folder" if hasattr(rig.camera, "folder") else "source"
        recorder.add_event(t_offset_s, "camera", rig.camera.name, took, {key: camera_source(rig.camera)})
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
    display.follow(runner.remote.snapshot, run_dir=recorder.run_dir)  # folder, label, time left, last warning
    part = {"started_utc": utc_now_iso(), "ended_utc": None, "t0_s": round(t_offset_s, 3), "t1_s": None,
            "host": socket.gethostname(), "pid": os.getpid(), "software_version": castrig.__version__,
            "resumed_at_step": (start_step + 1) if resume else None, "outcome": "running"}
    # the run's handlers stay until its outcome is recorded and the run closed: a second SIGTERM
    # or SIGHUP right after the safe state is noted, not fatal (it used to land on the default
    # handler and kill the process with run.json still saying 'running')
    with _signals(runner, stop, ctrl_c_before, closing):
        asked = stop.reason if stop is not None else None
        if asked:  # a SIGTERM/SIGHUP reached the caller before these handlers were installed
            runner.request_abort(f"{asked}: aborting to the safe state", someone_asked=HUNG_UP not in asked)
        try:
            try:
                recorder.update_info(parts=[*recorder.info.parts, part])
            except (CastrigError, OSError) as exc:  # full before the first step: the rig was not driven
                result = RunResult("faulted", _storage_reason(exc))
                console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
                _record_outcome_if_possible(recorder, result)
                return _finish(result, recorder, log, quiet)
            with display:
                result = runner.run(start_step, **(resume or {}))
            moved = runner.folder_moved_to()
            if moved is not None:  # its outcome where it went: it ended "outcome not recorded", read as crashed
                recorder.moved_to(moved)
            result.targets = membrane_targets(recipe)
            if result.outcome != "completed":
                _lose_unfinished(recipe, recorder, runner, result)
            if result.outcome == "faulted" and result.reason and is_disk_full_text(result.reason) \
                    and not result.reason.startswith("disk full"):
                result.reason = "disk full: " + result.reason.replace("StoreError: disk full: ", "")
            lost = [mb for mb in result.membranes if mb.get("status") == "lost"]
            if lost and result.outcome == "completed" and not result.reason:  # say what was lost, and why
                result.reason = "; ".join(f"membrane {mb['membrane_id']} lost: {mb['lost_reason']}" for mb in lost)
            try:
                part.update(ended_utc=utc_now_iso(), t1_s=round(runner.t(), 3), outcome=result.outcome)
                # ended_utc: the wall clock when the whole run (every part) ended
                recorder.update_info(ended_utc=part["ended_utc"], outcome=result.outcome, outcome_reason=result.reason,
                                     parts=[*recorder.info.parts[:-1], part])
                store.index_run(recorder, grades_of(recorder))
            except (CastrigError, OSError) as exc:  # a full disk: the rig is safe, say so, no traceback
                console.print(f"[bold red]error:[/] cannot record the outcome in {escape(str(recorder.run_dir))}: {escape(str(exc))}", highlight=False)
                if result.outcome == "completed":
                    result.outcome, result.reason = "faulted", f"outcome not recorded: {_storage_reason(exc)}"
                _record_outcome_if_possible(recorder, result)
        finally:
            _close_quietly(log, recorder)
        return _finish(result, recorder, log, quiet)


def _lose_unfinished(recipe: Recipe, recorder: RunRecorder, runner: Runner, result: RunResult) -> None:
    """A run that ended (aborted, faulted, interrupted) with a membrane whose film was cast (or
    whose support was pre-wetted) and whose evaporation had not ended under control: that film
    dried without RH control. Recorded ``lost`` now, as a resume after a crash records it, with its
    partial process record and its remaining steps journaled ``skipped`` -- so every view of the
    ended run says lost, and a later resume neither loses it again nor makes it: the run goes on
    with the next membrane, on a fresh support position."""
    try:
        journal = recorder.journal()
        # control ended with the last RH record (the safe state records no samples)
        last_t = max([0.0] + [t for t, _, _ in recorder.samples("rh_near_pct")[-5:]] + [j.t_s for j in journal[-5:]])
        in_step = [e for e in journal if e.state == "started"]
        # how long the step had run when the run ended: the run clock now (the stop is just behind
        # it), not the last RH record, which lags it by up to a sample period (0 s early in a step)
        plan = plan_resume(recipe, journal, elapsed_s=max(0.0, runner.t() - in_step[-1].t_s) if in_step else None,
                           stopped=f"the run ended {result.outcome}")
        # a membrane recorded made (or judged) evaporated under control, whatever the journal says
        # (its evaporate step's 'done' may be what a full disk kept from being written)
        ended = {mb.membrane_id for mb in recorder.membranes() if mb.status in ("made", "judged", "lost")}
        plan.lost[:] = [x for x in plan.lost if x.plan.membrane_id(recorder.info.run_id) not in ended]
        if not plan.lost:
            return
        _record_lost(recorder, plan, recorder.info, runner.t(), simulated=runner.rig.twin is not None, recipe=recipe,
                     up_to_t_s=last_t, pump_counts=_pump_counts(runner.rig))
        result.membranes = [mb.to_dict() for mb in recorder.membranes()]
    except Exception as exc:  # noqa: BLE001 - a full disk, an unreadable record: the outcome is still recorded next
        console.print(f"[bold red]error:[/] cannot record the lost membrane(s) in {escape(str(recorder.run_dir))}: "
                      f"{escape(type(exc).__name__ + ': ' + str(exc))}", highlight=False)


def _finish(result: RunResult, recorder: RunRecorder, log: RunLog, quiet: bool) -> RunResult:
    _close_quietly(log, recorder)
    result.run_dir = str(recorder.run_dir)
    _report(result, quiet)
    return result


def _close_quietly(log: RunLog, recorder: RunRecorder) -> None:
    """Close the log and the record; a full disk here must not hide the safe-state summary."""
    log.close()
    try:
        recorder.close()
    except (CastrigError, OSError) as exc:
        console.print(f"[bold red]error:[/] closing {escape(str(recorder.run_dir))}: {escape(str(exc))}", highlight=False)


def is_disk_full_text(reason: str) -> bool:
    return any(w in reason for w in ("disk full", "database or disk is full", "No space left", "File too large"))


def _storage_reason(exc: BaseException) -> str:
    return f"disk full: {exc}" if is_disk_full(exc) and not str(exc).startswith("disk full") else str(exc)


def _record_outcome_if_possible(recorder: RunRecorder, result: RunResult) -> None:
    """Write only the outcome to run.json (a small file: it may still fit where records did not)."""
    try:
        recorder.update_info(ended_utc=utc_now_iso(), outcome=result.outcome, outcome_reason=result.reason)
    except (CastrigError, OSError) as exc:
        console.print(f"[bold red]error:[/] run.json still says running: {escape(str(exc))}", highlight=False)


def _report(result: RunResult, quiet: bool) -> None:
    # soft_wrap: each line whole, however narrow the console (80 columns under a pipe or a
    # file): scripts grep the final lines
    # (markup off: the run folder, the reason and the membrane line carry the recipe's and the
    # devices' words, shown as written -- a recipe named '[link=…]' made a link in the terminal)
    out = Console(soft_wrap=True, markup=False)
    colour = "green" if result.outcome == "completed" else "red"
    out.print(Text.assemble((result.outcome, colour), shown(f": {result.run_dir}" + (f" — {result.reason}" if result.reason else ""))),
              highlight=False)
    # -q keeps a completed run's verified safe state to the log; an ending that was not a completion,
    # or a safe state not verified, is said whatever -q says (an aborted night under cron said nothing of it)
    if result.safe is not None and (not quiet or result.outcome != "completed" or not result.safe.safe):
        out.print(result.safe.summary(), highlight=False)
    line, ok = target_summary(result.membranes, result.targets or _target_grade(result))
    if line:  # the final line: what was made, and whether it met the recipe's target grade
        colour = "green" if ok or (ok is None and result.outcome == "completed") else "yellow"
        out.print(line, style=colour, highlight=False)
    elif result.verdict is not None:
        met = result.verdict.get("grades_met", [])
        out.print(f"grades met: {', '.join(met) if met else 'none'}", highlight=False)


def _target_grade(result: RunResult) -> str | None:
    for mb in result.membranes:
        if mb.get("target_grade"):
            return str(mb["target_grade"])
    return (result.verdict or {}).get("target_grade")


# -- resume ------------------------------------------------------------------------------------
def plan_resume(recipe: Recipe, journal: list[Any], **kw: Any) -> ResumePlan:
    """Where a resume goes on and which membranes it records lost (:mod:`castrig.recipe.membranes`).

    A crash ruins at most the membrane that was forming: it is recorded ``lost`` and the run goes
    on with the next step that is not one of its own (a ruined film is never "continued").
    """
    return plan_membrane_resume(recipe, journal, **kw)


def _last_writes(run_dir: Path) -> dict[str, float]:
    """When the crashed part's files were last written (epoch seconds, by name): ``run.sqlite``
    (through its WAL) takes samples, events and journal, ``log.jsonl`` the events; a long
    evaporation writes samples only. Read before the resume opens the store or writes a byte, or
    it would date the stop by itself (:func:`_stopped_at`)."""
    out = {}
    for name in ("run.sqlite", "run.sqlite-wal", "log.jsonl"):
        try:
            out[name] = (run_dir / name).stat().st_mtime
        except OSError:
            pass
    return out


def _stopped_at(writes: dict[str, float], info: RunInfo, last_t: float) -> float | None:
    """When the crashed part stopped, epoch seconds (None: unknown).

    With its WAL still there, the newest of its files' writes (:func:`_last_writes`). Opened read
    and write after the crash (the sqlite3 shell, pandas: how DESIGN §5 says labs read a run), a
    database folds its WAL in and deletes it, and ``run.sqlite`` is then dated by that reader: a
    resume said "resumed 10 s later" of a film that had stood 47 s without RH control. Without
    its WAL the stop is read from the records: on the wall clock the last record's run time on its
    part's clock (``started_utc`` + (t − ``t0_s``); whole seconds), not before the log's last
    write; on the twin's virtual clock the log's last write (a step's records follow its events
    within seconds of wall time there). Never after ``run.sqlite``'s own time."""
    if "run.sqlite-wal" in writes or not writes:
        return max(writes.values()) if writes else None
    parts = info.parts or []
    part = parts[-1] if parts and parts[-1].get("outcome") == "running" else None
    bounds = [writes["log.jsonl"]] if "log.jsonl" in writes else []
    started = parse_utc(part.get("started_utc")) if part is not None else None
    if not info.virtual_time and started is not None and isinstance(part.get("t0_s"), (int, float)):
        bounds.append(started.timestamp() + (last_t - float(part["t0_s"])))
    if not bounds:
        return writes.get("run.sqlite")
    return min(max(bounds), writes.get("run.sqlite", math.inf))


def resume_run(run_dir: Path, *, quiet: bool = False, after_abort: bool = False, take_over: bool = False,
               stop: StopRequest | None = None, camera_taken: list[tuple[str, dict[str, Any]]] | None = None) -> RunResult:
    """Continue ``run_dir``, owning it first: a second resume (or the live run itself) makes this
    one refuse with :class:`Busy` before it touches a device or writes a record.

    A run that was aborted (by the operator, a signal or an interlock) is continued only with
    ``after_abort``: an abort is a decision (a leak, a wrong support), and resuming one started
    the rig again — conditioning, pre-wet, the remaining casts — and rewrote it 'completed'.

    A run that run.json says is running on another host is refused (:class:`Busy`) unless
    ``take_over``: that host's lock may not show here over a shared folder, and two hosts would
    drive one run. A take-over is recorded in the run's events."""
    run_dir = Path(run_dir)
    status_every_s()  # $CASTRIG_STATUS_EVERY_MIN refused (exit 2) before the folder is claimed
    started_ns = time.time_ns()  # commands in the control channel older than this were for the crashed part
    from castrig.store import runjson

    if not runjson.present(run_dir):
        from castrig.store.folders import refuse_never_started

        refuse_never_started(run_dir)  # killed before it wrote run.json: never started, the prune removes it
        raise BadInput(f"{run_dir}: not a run folder (needs run.json and run.sqlite)", file=str(run_dir))
    why = unwritable(run_dir)  # a resume records in the folder: refused before the rig is touched
    if why is None:
        try:
            claim_run(run_dir, purpose=f"castrig resume {run_dir}")
        except OSError as exc:  # its lock file cannot be made after all: nothing touched yet
            why = exc.strerror or str(exc)
    if why is not None:
        raise BadInput(f"{run_dir}: cannot write in this run folder ({why}); a resume records in it "
                       "(allowed: a run folder this user can write in)", file=str(run_dir), field="RUN_DIR")
    try:
        # run.json's temporary a kill -9 left mid-write (nobody holds it: the folder is ours now)
        remove_dead_temporaries(run_dir, "run.json")
        other = recorded_on_another_host(run_dir)  # read once the folder is ours: no resume here races it
        if other is not None and not take_over:
            host, pid = other
            raise Busy(f"{run_dir}: run.json says this run is running on {host}{f' (pid {pid})' if pid else ''}, not "
                       f"on this computer ({socket.gethostname()}); its lock may not show here over a shared folder, "
                       f"so that process may still drive the run. Resume it on {host}; or, if you know its process "
                       f"is gone ({host} stopped or the process was killed): castrig resume --take-over {run_dir} "
                       "(recorded in the run's events)", holder={"host": host, "pid": pid})
        return _resume_owned(run_dir, quiet=quiet, after_abort=after_abort, started_ns=started_ns, stop=stop,
                             took_over=other, camera_taken=camera_taken)
    finally:
        release_run(run_dir)


def _refuse_recipe_now_refused(run_dir: Path, exc: Exception, recipe: Any) -> None:
    """BadInput saying why the run's recipe is refused now, in our words, if that is what ``exc`` is
    (a run started before ``check`` refused its recipe: an analyse without a capture of its own
    membrane faults at that step on every resume — refused before the rig is touched instead)."""
    from pydantic import ValidationError

    from castrig.inputs import format_validation_error

    if not isinstance(exc, ValidationError) or exc.title != Recipe.__name__:
        return
    path = run_dir / "run.json"
    why = format_validation_error(path, Recipe, exc, recipe).replace(f"{path}: ", f"{path}: recipe.", 1)
    raise BadInput(f"{why}\n{run_dir}: cannot be resumed: this castrig refuses its recipe (resuming would stop at "
                   f"that step again); what the run made is recorded (castrig report {run_dir}); make the rest in a "
                   f"new run of the corrected recipe (castrig check RECIPE first)", file=str(path), field="recipe") from None


def _views_taken_once(run_dir: Path, recorded: dict[str, Any], recipe: Recipe) -> str | None:
    """What a resume says of the recorded recipe's captures that named a view twice (an earlier
    castrig took them; this one takes each view once: see CaptureStep), else None."""
    said = []
    for i, (raw, step) in enumerate(zip(recorded.get("steps") or [], recipe.steps)):
        views = raw.get("views") if isinstance(raw, dict) else None
        if isinstance(step, CaptureStep) and isinstance(views, list) and len(views) != len(step.views):
            said.append(f"steps[{i}].views = {views}: taken as {step.views}")
    if not said:
        return None
    return (f"{run_dir / 'run.json'}: recipe.{'; '.join(said)} -- each view once (the run was started by an earlier "
            "castrig, which took a view given twice; its second image would have faulted the capture)")


def _resume_owned(run_dir: Path, *, quiet: bool, after_abort: bool = False, started_ns: int | None = None,
                  stop: StopRequest | None = None, took_over: tuple[str, int | None] | None = None,
                  camera_taken: list[tuple[str, dict[str, Any]]] | None = None) -> RunResult:
    writes = _last_writes(run_dir)  # before anything of ours writes to the folder
    store = open_store(run_dir.parent)
    recorder = store.open_run(run_dir)
    info = recorder.info
    sync = (info.profile or {}).get("store_sync", "FULL")
    fleet_url, fleet_warning = _fleet_store_for_resume(info, store, run_dir)
    recorded_store = (info.extra or {}).get("fleet_store")  # before this resume records its own
    if sync != "FULL" or fleet_url:
        recorder.close()
        from castrig.store.postgres_store import open_configured_store

        store = open_configured_store(run_dir.parent, url=fleet_url, synchronous=sync)
        recorder = store.open_run(run_dir)
    if fleet_warning:
        console.print(f"[bold yellow]warning:[/] {escape(fleet_warning)}", highlight=False, soft_wrap=True)
    if info.outcome == "completed":
        recorder.close()
        raise BadInput(f"{run_dir}: run already completed (outcome completed); nothing to resume", file=str(run_dir))
    decided = _decided_end(recorder)
    outcome, reason = decided or (info.outcome, info.outcome_reason)
    # an abort decided (its run_end event) whose process died making the rig safe, before run.json
    # said so: the rig may be as the run left it (wet air on). Refused outright, the resume sent
    # nothing and `castrig abort` found nothing running: only --after-abort reached the rig, and it
    # went on with the recipe. This resume makes the rig safe, records the end, and stops there
    finish_only = decided is not None and info.outcome == "running" and needs_after_abort(outcome, reason) \
        and not after_abort
    if needs_after_abort(outcome, reason) and not after_abort and not finish_only:
        recorder.close()
        raise BadInput(f"{run_dir}: run was aborted ({reason or 'no reason recorded'}); resuming starts the "
                       "rig again (conditioning, pre-wet, the remaining casts): add --after-abort if that is meant",
                       file=str(run_dir), field="--after-abort")
    try:
        recipe = Recipe.model_validate(info.recipe, context={"recorded": True})  # as castrig took it then
        profile = Profile.model_validate(_profile_for_resume(info, run_dir))
    except BadInput:
        recorder.close()
        raise
    except Exception as exc:  # pydantic error: the run.json was edited or comes from elsewhere
        recorder.close()
        _refuse_recipe_now_refused(run_dir, exc, info.recipe)
        raise BadInput(f"{run_dir}/run.json: recipe or profile no longer valid: {exc}", file=str(run_dir / "run.json")) from None
    taken_once = _views_taken_once(run_dir, info.recipe, recipe)
    if taken_once:
        console.print(f"[bold yellow]warning:[/] {escape(taken_once)}", highlight=False, soft_wrap=True)
    try:  # the records the resume is planned from, read before a device is touched: a damaged
        # run.sqlite is refused here (exit 2, nothing sent), not after the rig was opened
        journal = recorder.journal()
        last_sample = recorder.last_sample_t_s()  # (one max in SQLite, not every sample of the night read back)
        last_t = max([0.0, last_sample or 0.0] + [e.t_s for e in recorder.events()[-50:]] + [j.t_s for j in journal[-5:]]
                     + _membrane_times(recorder) + [im.t_s for im in recorder.images()[-50:]])
        setpoints = recorder.events("setpoint")
        writable_now(run_dir)  # a reader holding a closed run's records: Busy (exit 4), nothing sent
    except StoreError as exc:
        recorder.close()
        if not is_disk_full(exc):
            raise
        raise BadInput(f"{run_dir}: cannot write in this run folder ({exc}); a resume records in it: nothing was sent "
                       "to the rig (allowed: a run folder on a disk with room: free space first)", file=str(run_dir)) from None
    except BaseException:
        recorder.close()
        raise
    ctrl_c = DeferredCtrlC()  # from here to the run's own handlers: the rig is made safe first
    try:
        rig = _open_rig(profile, info.seed, recipe, purpose=f"castrig resume {run_dir}")
    except RigUnreachable as exc:  # what answers is made safe all the same, and recorded (exit 5)
        try:
            stopped = earlier_dated_stop(recorder, _stopped_at(writes, info, last_t))
            make_safe_and_stop(run_dir, recorder, profile, seed=info.seed, last_t=last_t, stopped=stopped,
                               profile_path=info.profile_path, exc=exc, hold=ctrl_c)
        finally:
            ctrl_c.restore()
            recorder.close()
    except BaseException:
        ctrl_c.restore()
        recorder.close()
        raise
    closing = CtrlCAtClose(now=False)  # (in place as the run's handlers end: _signals)
    report = None
    driving = False
    try:
        from castrig.control.safety import make_rig_safe

        # the rig as the crash left it is made safe before the resume writes a byte: a full disk
        # refused the first write (run.json's owner) and the resume ended in a traceback, the rig
        # opened and never made safe
        report = make_rig_safe(rig)
        if not finish_only:
            _refuse_setpoints_out_of_reach(run_dir, recorder, recipe, journal, last_t, profile, rig, report)
        # the dead process's last status (written once a wall second: on the twin, often from its
        # first step) was read as this resume's once its part began, until it published its own
        # ('step 1/26 start dry, left 0:20:00' of a run resumed at step 6): dropped, readers take
        # the journal's. Not before the refusals (exit 2: "nothing was recorded", the folder as it
        # was); until here readers do not read it (live.resume_claim)
        (control_dir(run_dir) / STATUS_NAME).unlink(missing_ok=True)
        recorder.update_info(pid=os.getpid(), host=socket.gethostname(), lock=LOCK_NAME)
        if hasattr(store, "fleet_record") and (info.extra or {}).get("fleet_store") != store.fleet_record():
            recorder.update_info(extra={**(info.extra or {}), "fleet_store": store.fleet_record()})
        _configure_twin(rig, recipe)
        t_offset = last_t + profile.control.control_period_s
        stopped = earlier_dated_stop(recorder, _stopped_at(writes, info, last_t))
        _close_crashed_part(recorder, last_t, stopped)
        if took_over is not None:
            host, pid = took_over
            recorder.add_event(t_offset, "take_over", "operator",
                               f"--take-over: run taken over from {host}{f' (pid {pid})' if pid else ''}, where run.json "
                               f"said it was running, by {socket.gethostname()} (pid {os.getpid()}): the operator "
                               "said that process is gone",
                               {"from_host": host, "from_pid": pid, "by_host": socket.gethostname(), "by_pid": os.getpid()})
        if fleet_warning:
            configured = getattr(store, "url", None)
            recorder.add_event(t_offset, "fleet_store", "store", fleet_warning,
                               {"fleet_store": recorded_store,
                                "configured": redact(configured) if configured else None})
        if taken_once:
            recorder.add_event(t_offset, "recipe", "operator", taken_once)
        recorder.add_event(t_offset, "safe_state", "control", "resume: " + report.summary(), report.to_dict())
        ctrl_c.stop_here(f"{report.summary()}; the resume stopped there (castrig resume {run_dir} goes on)")
        # a membrane made as the run stopped: its record and its step's end agree before the plan
        journal = settle_made(recorder, recipe, journal, t_offset)
        if finish_only:
            return _finish_decided_end(recorder, store, recipe, journal, info, rig, report, outcome, reason, last_t,
                                       t_offset, quiet)
        _discard_stale_commands(run_dir, recorder, t_offset, time.time_ns() if started_ns is None else started_ns)
        previous = info.outcome
        gap = _gap(last_t, stopped)
        in_step = [e for e in journal if e.state == "started"]
        step_elapsed = (last_t - in_step[-1].t_s) if in_step else None
        plan = plan_resume(recipe, journal, elapsed_s=step_elapsed, gap=gap["words"])
        first = plan.first
        _record_lost(recorder, plan, info, t_offset, simulated=rig.twin is not None, recipe=recipe, up_to_t_s=last_t,
                     pump_counts=_pump_counts(rig) if plan.lost else None)
        _restore_twin(rig, journal, lost_from=min((lm.plan.first_step for lm in plan.lost), default=None))
        _restore_camera(rig, recorder, camera_taken or [])
        recorder.update_info(outcome="running", outcome_reason=None)
        where = step_label(first, recipe.steps[first], len(recipe.steps)) if first < len(recipe.steps) else "the end"
        note = f"resumed after '{previous}' at {where} (t = {t_offset:.1f} s; {gap['words']})"
        if plan.lost:
            note += "; lost: " + ", ".join(lm.plan.membrane_id(info.run_id) for lm in plan.lost)
        pause = pause_at_stop(recorder.events())
        if pause is not None:  # its operator's pause ended with the process: said, never silently
            unpaused = say_unpaused(recorder, t_offset, pause)
            note += f"; it had been {pause.state()}, it goes on now"
            console.print(f"[yellow]note:[/] {escape(unpaused)}", highlight=False, soft_wrap=True)
        started = [e for e in journal if e.step_index == first and e.state == "started"]
        elapsed = (last_t - started[-1].t_s) if started else 0.0
        resume = {"resume_note": note, "resume_elapsed_s": max(0.0, elapsed),
                  "resume_setpoint": setpoints[-1].data if setpoints else None,
                  "resume_gap": {k: v for k, v in gap.items() if k != "words"}, "skip": plan.skip}
        ctrl_c.stop_here(f"{report.summary()}; the resume stopped there (castrig resume {run_dir} goes on)")
        ctrl_c.restore()  # (the run's own handlers from here: Ctrl-C pauses)
        driving = True
        result = _drive(recipe, rig, recorder, store, quiet=quiet, start_step=first, t_offset_s=t_offset, resume=resume,
                        stop=stop, closing=closing)
        if fleet_warning:  # said again where it is seen: the live display has scrolled the first one away
            console.print(f"[bold yellow]warning:[/] {escape(fleet_warning)}", highlight=False, soft_wrap=True)
        return result
    except KeyboardInterrupt:
        recorder.close()
        raise
    except (CastrigError, OSError) as exc:
        if driving or report is None or not is_disk_full(exc):  # (the run's own faults are its to record)
            raise
        _resume_not_recorded(run_dir, recorder, report, exc, quiet)
    finally:
        ctrl_c.hand_to(closing)  # (the make-safe's hold, if it is still in: never Python's handler between)
        _close_rig(rig, stop, closing)


def _refuse_setpoints_out_of_reach(run_dir: Path, recorder: RunRecorder, recipe: Recipe, journal: list[Any],
                                   last_t: float, profile: Profile, rig: Rig, report: Any) -> None:
    """Refuse the resume (:class:`BadInput`, exit 2) where a step it has left asks an RH set point
    the rig cannot give, as ``castrig run`` refuses at its start: beyond what the recorded profile's
    chamber reaches (a run recorded before check held it to that) or the range the chamber's
    controller reports now (a Watlow reconfigured or replaced since). The resume ran the steps before
    it and faulted there (``ModbusRangeError ... outside 0-80 %RH``, a condition timed out after
    1800 s). Asked once the rig is made safe (``report``), before the resume writes a byte: the
    folder stays as the crash left it (its writes date the stop for a later resume), resumable."""
    in_step = [e for e in journal if e.state == "started"]
    plan = plan_resume(recipe, journal, elapsed_s=(last_t - in_step[-1].t_s) if in_step else None)
    left = [i for i in range(plan.first, len(recipe.steps)) if i not in plan.skip]
    recorded = recorder.info.profile_path
    problems = resume_setpoint_problems(
        recipe, left, profile, f"{run_dir}/run.json: profile" + (f" (recorded from {recorded})" if recorded else ""),
        rig.chamber, label=f"{run_dir}/run.json: recipe")
    if not problems:
        # what check notes of the steps left, said as `castrig run` says it at its start: a resume
        # went on with no word of a set point the chamber sits short of, or an evaporate that may
        # start out of its band
        for note in recipe_notes(recipe, f"{run_dir}/run.json: recipe", profile, recorded or "the recorded profile", left):
            console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
        return
    recorder.close()
    raise BadInput("\n".join(problems) + f"\n{run_dir}: not resumed ({report.summary()}); nothing was recorded: "
                   f"resume it once the rig reaches these set points (castrig resume {run_dir}), or make the rest in "
                   "a new run of a recipe within them (castrig check RECIPE first)",
                   file=str(run_dir / "run.json"), field="recipe")


class ResumeNotRecorded(CastrigError):
    """A resume that made the rig safe and then could not record (a full disk): it went no further,
    said so with the safe state (exit 3). The run did not end: it stays resumable once there is
    room (``castrig queue`` keeps its item running, as for a rig not reachable)."""


def _resume_not_recorded(run_dir: Path, recorder: RunRecorder, report: Any, exc: BaseException, quiet: bool) -> None:
    """Say why the resume went no further, with the safe state; raise :class:`ResumeNotRecorded`.
    The folder keeps what it held (its outcome as the crash left it)."""
    try:
        recorder.close()
    except (CastrigError, OSError):
        pass
    reason = f"{_storage_reason(exc)}; the resume went no further (free space, then castrig resume {run_dir} again)"
    console.print(f"[bold red]error:[/] cannot record in {escape(str(run_dir))}: {escape(reason)}", highlight=False)
    result = RunResult("faulted", reason)
    result.safe = report
    result.run_dir = str(run_dir)
    _report(result, quiet)
    raise ResumeNotRecorded(reason) from None


def _finish_decided_end(recorder: RunRecorder, store: Any, recipe: Recipe, journal: list[Any], info: RunInfo, rig: Any,
                        report: Any, outcome: str, reason: str | None, last_t: float, t_offset: float,
                        quiet: bool) -> RunResult:
    """The end a run decided (an abort) and could not finish: its process died making the rig
    safe. With the rig made safe by this resume (``report``), what that ending would have
    recorded: the membrane it left unfinished lost, run.json's outcome. The run goes no further:
    ``castrig resume --after-abort`` continues it, as after any abort."""
    in_step = [e for e in journal if e.state == "started"]
    plan = plan_resume(recipe, journal, elapsed_s=(last_t - in_step[-1].t_s) if in_step else None,
                       stopped=f"the run ended {outcome}")
    _record_lost(recorder, plan, info, t_offset, simulated=rig.twin is not None, recipe=recipe, up_to_t_s=last_t,
                 pump_counts=_pump_counts(rig) if plan.lost else None)
    recorder.add_event(t_offset, "run_end", "runner", f"{outcome}: {reason} (recorded by castrig resume: the process "
                       "died making the rig safe)", {"outcome": outcome, "reason": reason, "finished_by_resume": True})
    recorder.update_info(ended_utc=utc_now_iso(), outcome=outcome, outcome_reason=reason)
    store.index_run(recorder, grades_of(recorder))
    result = RunResult(outcome, reason, asked=True)
    result.safe = report
    result.membranes = [mb.to_dict() for mb in recorder.membranes()]
    result.targets = membrane_targets(recipe)
    result.run_dir = str(recorder.run_dir)
    recorder.close()
    say(f"[yellow]{escape(str(result.run_dir))}: the run was {outcome} ({escape(reason or 'no reason recorded')}) and its "
        "process died making the rig safe: the rig was made safe now and the run recorded "
        f"{outcome}; `castrig resume --after-abort {escape(str(result.run_dir))}` continues it[/]")
    _report(result, quiet)
    return result


def _decided_end(recorder: RunRecorder) -> tuple[str, str | None] | None:
    """(outcome, reason) of an end the run's last part decided (its ``run_end`` event, written
    before the rig is made safe) where run.json does not say it: the process died making the rig
    safe after an accepted abort; None where no such decision is on record."""
    for e in reversed(recorder.events()):
        if e.kind == "resume":
            return None  # (an end before the last resume was taken into account by it)
        if e.kind == "run_end":
            data = e.data or {}
            return str(data.get("outcome")), data.get("reason") or e.message.partition(": ")[2] or None
    return None


def _fleet_store_for_resume(info: RunInfo, store: Any, run_dir: Path) -> tuple[str | None, str | None]:
    """(the fleet store URL to resume with, what to warn of) for a run whose run.json says it
    pushes to a fleet store (:func:`~castrig.store.postgres_store.recorded_fleet_store`).

    Resumed without one, its later part stays in the folder and the fleet keeps the crashed
    part's records only: the operator's profile's ``store:`` is taken where it is that URL (with
    its password); else the resume goes on recording in the folder and says so, with the sync
    that brings the rest into the fleet. A different fleet store configured here is named too."""
    from castrig.store.postgres_store import DEFAULT_SCHEMA, is_postgres_url, recorded_fleet_store

    recorded = recorded_fleet_store(info)
    if recorded is None:
        return None, None
    url, schema = recorded["url"], recorded["schema"]
    configured = getattr(store, "url", None)
    if configured:
        if (redact(configured), getattr(store, "schema", None)) == (url, schema):
            return None, None
        return None, (f"{run_dir}: run.json says this run pushes its records to the fleet store {url} (schema "
                      f"{schema}); this resume pushes them to {redact(configured)} (schema "
                      f"{getattr(store, 'schema', '?')}, CASTRIG_STORE) instead")
    try:
        mine = load_profile(Path(info.profile_path)).store if info.profile_path else None
    except (CastrigError, OSError, ValueError):
        mine = None
    if (isinstance(mine, str) and is_postgres_url(mine) and redact(mine) == url
            and os.environ.get("CASTRIG_STORE_SCHEMA", DEFAULT_SCHEMA) == schema):
        return mine, None
    return None, (f"{run_dir}: this run pushes its records to the fleet store {url} (schema {recorded['schema']}), "
                  f"but none is configured here (CASTRIG_STORE is not set): this resume records in the run folder "
                  f"only, and the fleet keeps what it had when the run stopped. Set CASTRIG_STORE to resume into it, "
                  f"or afterwards: CASTRIG_STORE=postgresql://… castrig store sync {run_dir}")


def _profile_for_resume(info: RunInfo, run_dir: Path) -> dict[str, Any]:
    """The profile a resume drives the rig with: the one run.json recorded, its passwords (which
    run.json does not keep: :func:`castrig.redact.redact_urls`) taken from the operator's profile
    file again, where that file still names the same URLs. The store is not among them: a resume
    opens the store of the run folder's data root and ``$CASTRIG_STORE``, or the fleet store
    run.json names where the profile file still gives it (:func:`_fleet_store_for_resume`).
    :class:`BadInput` if a device needs a password the profile file no longer gives."""
    recorded = info.profile or {}
    if not is_redacted(recorded):
        return recorded
    current: dict[str, Any] = {}
    if info.profile_path:
        try:
            current = load_profile(Path(info.profile_path)).model_dump(mode="json")
        except (CastrigError, OSError, ValueError):  # gone or changed: only what it still matches is taken
            current = {}
    profile = restore_redacted(recorded, current)
    missing = [k for k, v in profile.items() if k != "store" and is_redacted(v)]
    if missing:
        raise BadInput(f"{run_dir}: the profile's {', '.join(missing)} hold a password, which run.json does not keep, and "
                       f"the profile {info.profile_path or '(no path recorded)'} no longer gives it for the same URL",
                       file=str(info.profile_path or run_dir / "run.json"))
    return profile


def _discard_stale_commands(run_dir: Path, recorder: RunRecorder, t_s: float, started_ns: int) -> None:
    """A pause or abort sent to the runner before it died (hung, then killed -9; the sender was
    told "did not answer") is still pending in the control channel: answered refused and noted as
    an event, never applied to the resumed run, which the operator started on purpose."""
    from castrig.store.commands import Command, CommandInbox

    def record(cmd: Command) -> None:  # (before its answer is published)
        recorder.add_event(t_s, "command", cmd.by, f"{cmd.action or 'unreadable command'} requested by {cmd.by} at "
                           f"{cmd.requested_utc or '?'}, before this resume started: discarded, not applied",
                           {"command": cmd.action, "by": cmd.by, "id": cmd.id, "requested_utc": cmd.requested_utc,
                            "discarded": "sent before the resume"})

    try:
        CommandInbox(run_dir).discard_before(started_ns, t_s, record)
    except OSError:  # a read-only channel: the runner runs without one (RemoteControl)
        return


def _membrane_times(recorder: RunRecorder) -> list[float]:
    """The run-clock times membrane records hold: a membrane recorded made at the end of its
    evaporation (``t_end_s``), killed before its step's end was journaled, is the crashed part's
    last record, up to a sample period after its last sample on the twin (5 s): the resume went on
    from before it, journaled the evaporation's end 2.1 s before the membrane was made and ran the
    next steps earlier still."""
    return [t for mb in recorder.membranes() for t in (mb.t_start_s, mb.t_end_s) if t is not None]


def _close_crashed_part(recorder: RunRecorder, last_t: float, stopped: float | None) -> None:
    """The part a crash ended still says ``running`` in run.json: close it as ``crashed`` at its
    last record (run clock ``t1_s``, wall clock ``ended_utc`` — unknown without one)."""
    parts = list(recorder.info.parts)
    if not parts or parts[-1].get("outcome") != "running":
        return
    parts[-1] = {**parts[-1], "outcome": "crashed", "t1_s": round(last_t, 3),
                 "ended_utc": utc_now_iso(stopped) if stopped is not None else None}
    recorder.update_info(parts=parts)


def _gap(last_t: float, stopped: float | None) -> dict[str, Any]:
    """The crash → resume gap on the wall clock (the run clock has none: it goes on from the last
    record); ``stopped``: when the crashed part wrote its last record (:func:`_stopped_wall`)."""
    now = datetime.now(timezone.utc).timestamp()
    out: dict[str, Any] = {"gap_at_t_s": round(last_t, 3), "stopped_utc": None, "resumed_utc": utc_now_iso(now), "gap_s": None}
    if stopped is not None and stopped <= now:
        out.update(stopped_utc=utc_now_iso(stopped), gap_s=round(now - stopped, 1))
        out["words"] = f"stopped at {out['stopped_utc']}, resumed {_duration(now - stopped)} later"
    else:
        out["words"] = "the time it stood still is unknown"
    return out


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _pump_counts(rig: Rig) -> dict[str, float]:
    """What each pump says it infused since its counter was last cleared (role -> mL), read once
    the rig is safe; the pumps that do not answer are left out. A dispense cut short went on after
    the last sample of it until the pump was stopped (its watchdog, when its process was
    SIGSTOPped or killed): its record said at least 0.036 mL of about 0.085."""
    out = {}
    for role, pump in rig.pumps().items():
        try:
            out[role] = pump.dispensed().infused_ml
        except Exception:  # noqa: BLE001 - a pump that cannot be read: its samples say what is known
            pass
    return out


def _record_lost(recorder: RunRecorder, plan: ResumePlan, info: RunInfo, t_s: float, *, simulated: bool,
                 recipe: Recipe, up_to_t_s: float, pump_counts: dict[str, float] | None = None) -> None:
    """Membranes a crash (or the end of a run) ruined: ``lost`` with the reason, keeping their
    process record up to their last record at or before ``up_to_t_s`` (what was dispensed, the RH
    they saw: partial; a dispense cut short at least what ``pump_counts`` says, :func:`_pump_counts`);
    their remaining steps journaled ``skipped``."""
    known = {mb.membrane_id: mb for mb in recorder.membranes()}
    journal = recorder.journal()
    done_or_skipped = {e.step_index for e in journal if e.state in ("done", "skipped")}
    targets = membrane_targets(recipe)
    for lost in plan.lost:
        mid = lost.plan.membrane_id(info.run_id)
        mb = known.get(mid) or MembraneRecord(mid, lost.plan.k, lost.plan.cast_step, support_position=lost.plan.k,
                                              simulated=simulated)
        if mb.t_start_s is None:  # lost before its cast (a pre-wetted support): from its pre-wet
            starts = [e.t_s for e in journal if e.step_index == lost.plan.first_step and e.state == "started"]
            mb.t_start_s = starts[-1] if starts else None
        try:
            mb.process = process_record(recorder, recipe, lost.plan, mb.t_start_s, up_to_t_s, lost=lost.reason,
                                        pump_counts=pump_counts)
        except Exception as exc:  # noqa: BLE001 - a record it cannot rebuild must not stop recording the loss
            mb.process = {**(mb.process or {}), "partial": {"up_to_t_s": None, "why": f"lost: {lost.reason}",
                                                            "error": f"process record not rebuilt: {exc}"}}
        mb.status, mb.lost_reason, mb.t_end_s = "lost", lost.reason, t_s
        # the grade it was cast for: lost, it still counts against it (membranes.csv, the fleet
        # store and the lots said nothing of it: target_grade empty, as for a membrane aimed at none)
        mb.target_grade = mb.target_grade or targets.get(lost.plan.k)
        recorder.save_membrane(mb)
        for j in lost.plan.steps:
            if j not in done_or_skipped:
                recorder.add_journal(t_s, j, "skipped", {"membrane_id": mid, "reason": "membrane lost"})
        recorder.add_event(t_s, "membrane_lost", "runner", f"membrane {mid} lost: {lost.reason}",
                           {"membrane_id": mid, "reason": lost.reason, "step": lost.stopped_step})


def _restore_camera(rig: Rig, recorder: Any, earlier: list[tuple[str, dict[str, Any]]]) -> None:
    """The camera goes on after the frames the run recorded before it stopped (and ``earlier``:
    those of a queue's runs before it): a folder's replay started over in the resumed process, and
    the next membrane was judged on m1's images."""
    if rig.camera is not None:
        rig.camera.resume_after([*earlier, *((im.illumination, im.metadata) for im in recorder.images())])


def _restore_twin(rig: Rig, journal: list[Any], lost_from: int | None = None) -> None:
    """On the twin, the membrane made before the crash still exists: put it back (formed, or cast
    and drying still, as the last step to end left it), and the camera on the field it would have
    imaged next. A membrane lost (its steps from ``lost_from`` on) is not put back: its film,
    cast and drying as its cast ended, would have taken the next membrane's cast onto it."""
    if rig.twin is None:
        return
    for entry in journal:
        snap = entry.data.get("twin") if entry.state == "done" else None
        if snap:
            rig.twin.restore(snap, film=lost_from is None or entry.step_index < lost_from)
