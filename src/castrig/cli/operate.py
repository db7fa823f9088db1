"""Operators acting on a run from outside: ``castrig serve|status|watch|pause|resume-paused|abort``.

Everything here reads the run folder (``run.json``, the run's SQLite read-only, the runner's
``control/status.json``) and writes commands into the run's control channel
(:mod:`castrig.store.commands`), which the runner reads every control period. Nothing here
talks to a device. Acting needs the right to write into the run folder: the user who owns it
(the OS decides), or the web API with the operator token.

``resume-paused`` ends a pause asked through the channel; ``castrig resume`` is for crashed runs.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from castrig.errors import BadInput
from castrig.printable import Console, shown

#: castrig.store.live.LIVE_STATES (not imported here: the CLI starts without the store's imports)
LIVE = ("running", "paused", "pausing", "making_safe", "unsafe_retrying")
EXIT_OF = {"completed": 0, "aborted": 3, "faulted": 3, "not_resumable": 3, "crashed": 3, "interrupted": 130}



def _echo(text: str, err: bool = False) -> None:
    """typer.echo of a line that carries a run's text (event messages, reasons): escapes shown."""
    typer.echo(shown(text), err=err)

def _dur(s: Any) -> str:
    if s is None:
        return "—"
    s = max(0, int(float(s)))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _num(x: Any, digits: int = 1) -> str:
    return "—" if x is None else f"{float(x):.{digits}f}"


def _run_dir(path: Path) -> Path:
    from castrig.store import runjson

    p = Path(path)
    if not runjson.present(p):
        from castrig.store.folders import refuse_never_started

        refuse_never_started(p)  # a folder whose making was cut short says so, as resume and export do
        raise BadInput(f"{p}: not a run folder (needs run.json)", file=str(p))
    return p


def stopped_owner(d: dict[str, Any]) -> str:
    """What to say of a run whose process is stopped (it holds the run, and nothing is controlled)."""
    pid = (d.get("owner") or {}).get("pid", "?")
    return (f"its process {pid} is STOPPED (SIGSTOP or Ctrl-Z): nothing is being controlled and commands wait; "
            f"`kill -CONT {pid}` (or `fg` in its terminal) lets it go on")


def status_line(d: dict[str, Any]) -> str:
    """One line an operator reads: step, time left, RH vs setpoint, last warning."""
    step = d.get("step") or {}
    where = "—" if step.get("step_index", -1) < 0 else f"step {step['step_index'] + 1}/{step.get('n_steps', '?')} {step.get('step_label') or ''}"
    lv = d.get("last_values") or {}
    rh = (lv.get("rh_near_pct") or {}).get("value")
    band = f" ± {d['band_rh_pct']:g}" if d.get("band_rh_pct") else ""
    est = "≥ " if d.get("run_left_is_estimate") and d.get("run_left_s") else ""
    # no time left to speak of (live.detail gives None for both while the run makes the rig safe),
    # nor in a run that no longer runs (a crashed one said "left: step 0:00:00, run 0:00:00")
    ending = (d.get("step_left_s") is None and d.get("run_left_s") is None) or d.get("status") not in LIVE
    parts = [f"{d['uid']}: {d['status']}" + (f" by {d['paused_by']}" if d.get("paused_by") else ""), where,
             *([] if ending else [f"left: step {_dur(d.get('step_left_s'))}, run {est}{_dur(d.get('run_left_s'))}"]),
             f"RH {_num(rh)} %RH (setpoint {_num(d.get('setpoint_rh_pct'))}{band})"]
    if d.get("membrane_records"):  # how its membranes stand, as `castrig runs` counts them
        from castrig.store.membrane_rows import membrane_counts

        parts.append(f"membranes {membrane_counts(d['membrane_records'])}")
    w = d.get("last_warning")
    parts.append(f"last warning: [{_dur(w['t_s'])}] {w['kind']}: {w['message']}" if w else "no warning")
    if d.get("detail"):  # pausing after the cast, the safe state being tried again, ...
        parts.insert(1, str(d["detail"]))
    from castrig.store.live import SILENT_S

    age = d.get("status_age_s")
    # (only where the runner ticks: paused at a prompt or making the rig safe, it may rightly be quiet)
    if d.get("running_on_host"):  # run.json names another host: its lock may not show here
        parts.insert(1, f"recorded running on {d['running_on_host']}? (cannot tell from here: its lock may not show "
                        f"on this computer; resume it there, or `castrig resume --take-over` once its process is gone)")
    elif d.get("owner_stopped"):
        parts.insert(1, stopped_owner(d))
    elif d["status"] in ("running", "pausing") and age is not None and age > SILENT_S:
        pid = (d.get("owner") or {}).get("pid", "?")
        parts.insert(1, f"no word from the runner for {_dur(age)} (stopped, hung or busy; its process {pid} still holds the run)")
    # (not when it is the last warning's own text: a lost membrane's reason was said twice)
    if d["status"] not in LIVE and d.get("outcome_reason") and not (w and str(d["outcome_reason"]) == w.get("message")):
        parts.append(str(d["outcome_reason"]))
    return " · ".join(parts)


def status(
    run_dir: Optional[Path] = typer.Argument(None, help="A run folder; without it, every running run under the data root."),
    data: Optional[Path] = typer.Option(None, "--data", help="Data root (default $CASTRIG_DATA or ./runs)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per run, one per line."),
) -> None:
    """Where a run is: step, time left, RH vs setpoint, last warning (read from its folder)."""
    from castrig.store import live as R

    if run_dir is not None:
        details = [R.detail(_run_dir(run_dir), image_sizes=as_json)]  # (the console line shows no image)
    else:
        from castrig.cli.main import read_data_root

        # a data root named on purpose must be there, as for `castrig runs` (a typo read "no run is running")
        root = read_data_root(data)
        # (a folder that cannot hold a live run is passed over unread: its lock free, run.json not running)
        details = [R.detail(d, image_sizes=as_json) for d in R.run_dirs(root, only=R.may_be_live)
                   if R.summary(d)["status"] in LIVE]
        if not details and not as_json:
            _echo(f"no run is running under {root}")
    for d in details:
        _echo(json.dumps(d) if as_json else status_line(d))


def watch(
    run_dir: Path = typer.Argument(..., help="The run folder to follow."),
    every: float = typer.Option(2.0, "--every", min=0.2, max=3600, help="Seconds between updates."),
) -> None:
    """Follow a run from another terminal until it ends (live panel on a terminal, lines elsewhere).

    Exit code: the run's (0 completed, 3 aborted/faulted/crashed, 130 interrupted).
    """
    from rich.live import Live
    from rich.table import Table
    from rich.text import Text

    from castrig.store import live as R
    from castrig.store.folders import refuse_never_started

    run_dir = _run_dir(run_dir)
    refuse_never_started(run_dir)  # nothing to follow (it printed a "damaged" line of it)
    out = Console()

    def table(d: dict[str, Any]) -> Table:
        t = Table(title=Text(shown(f"castrig watch · {run_dir}")), show_header=False)
        t.add_column(style="bold")
        t.add_column()
        # every cell as plain text: a `[/x]` in a name (paused_by, a message) was read as Rich markup
        # and `castrig watch` ended in a MarkupError traceback
        row = lambda k, v: t.add_row(k, Text(shown(v)))  # noqa: E731
        step = d.get("step") or {}
        lv = d.get("last_values") or {}
        v = lambda ch, n=1: _num((lv.get(ch) or {}).get("value"), n)  # noqa: E731
        row("status", d["status"] + (f" by {d['paused_by']}" if d.get("paused_by") else ""))
        if d.get("detail"):
            row("", str(d["detail"]))
        if d.get("owner_stopped"):
            row("", stopped_owner(d))
        row("step", "—" if step.get("step_index", -1) < 0 else f"{step['step_index'] + 1}/{step.get('n_steps')} "
                  f"{step.get('step_type', '')} · {step.get('step_label', '')}")
        row("time left", f"step {_dur(d.get('step_left_s'))} · run {_dur(d.get('run_left_s'))}")
        band = f" ± {d['band_rh_pct']:g}" if d.get("band_rh_pct") else ""
        row("RH near membrane", f"{v('rh_near_pct')} %RH (setpoint {_num(d.get('setpoint_rh_pct'))}{band})")
        row("room", f"{v('t_room_c')} °C, {v('rh_room_pct')} %RH")
        row("flows", f"dry {v('dry_flow_slpm', 3)} · wet {v('wet_flow_slpm', 3)} slpm")
        row("pumps", f"caster {v('caster_infused_ml', 3)} · water {v('water_pump_infused_ml', 3)} mL")
        if d.get("membrane_records"):
            from castrig.store.membrane_rows import membrane_counts

            row("membranes", membrane_counts(d["membrane_records"]))
        w = d.get("last_warning")
        row("last warning", f"[{_dur(w['t_s'])}] {w['kind']}: {w['message']}" if w else "none")
        return t

    d = R.detail(run_dir, image_sizes=False)
    if out.is_terminal:
        with Live(table(d), console=out, refresh_per_second=4, transient=False) as live:
            while d["status"] in LIVE:
                time.sleep(every)
                d = R.detail(run_dir, image_sizes=False)
                live.update(table(d))
    else:
        last = None
        while True:
            line = status_line(d)
            if line != last:
                _echo(line)
                sys.stdout.flush()
                last = line
            if d["status"] not in LIVE:
                break
            time.sleep(every)
            d = R.detail(run_dir, image_sizes=False)
    _echo(f"{d['status']}: {run_dir}" + (f" — {d['outcome_reason']}" if d.get("outcome_reason") else ""))
    raise typer.Exit(EXIT_OF.get(d["status"], 3))


def _crashed_hint(run_dir: Path) -> str:
    from castrig.store.live import crashed_hint

    return crashed_hint(run_dir)


def _act(run_dir: Path, action: str, *, wait_end_s: float = 0.0) -> None:
    from castrig.store import live as R
    from castrig.store.commands import send_command, wait_answer, withdraw_command
    from castrig.oslock import process_stopped
    from castrig.sigint_hold import SigintHold
    from castrig.store.lock import run_holder

    run_dir = _run_dir(run_dir)
    st = os.stat(run_dir)
    if os.getuid() not in (0, st.st_uid):
        raise BadInput(f"{run_dir}: only the user who owns the run folder (uid {st.st_uid}) may {action} it from the "
                       "command line; others use the web API with the operator token", file=str(run_dir))
    summary = R.summary(run_dir)
    if summary["status"] not in LIVE:
        raise BadInput(f"{run_dir}: the run is not running (status {summary['status']}); nothing sent"
                       + (_crashed_hint(run_dir) if summary["status"] == "crashed" else ""), file=str(run_dir))
    by = f"cli:{getpass.getuser()}"
    since_event = _last_event_id(run_dir)  # the safe state that counts is one recorded after this command
    # Ctrl-C from the command's sending to the wait for its answer: held, then taken as one during
    # the wait (the command taken back). It raised in between: exit 130 "interrupted", the command
    # left in the channel for the runner to apply (a CI run met it: a pause given up, not withdrawn)
    hold = SigintHold()
    try:
        try:
            cmd = send_command(run_dir, action, by)
        except OSError as exc:
            raise BadInput(f"{run_dir}: cannot write to its control channel: {exc}", file=str(run_dir)) from None
        holder = run_holder(run_dir) or {}
    except BaseException:
        hold.restore()
        raise
    pid = holder.get("pid")
    told: list[bool] = []

    def stopped() -> bool:  # (SIGSTOP, Ctrl-Z, a debugger: it reads nothing until continued)
        return process_stopped(pid, holder.get("host"))

    def alive() -> bool:
        if not told and stopped():  # said at once, not only after the wait
            told.append(True)
            _echo(f"{action}: its process {pid} is STOPPED (SIGSTOP or Ctrl-Z: nothing is being controlled); the "
                  f"{action} is applied the moment it goes on (`kill -CONT {pid}`, or `fg` in its terminal); waiting "
                  "30 s (Ctrl-C takes the command back)", err=True)
        return run_holder(run_dir) is not None

    try:
        hold.restore()
        if hold.asked:
            raise KeyboardInterrupt
        answer = wait_answer(run_dir, cmd, 30.0, alive=alive)
    except KeyboardInterrupt:
        # Ctrl-C while the runner had not answered (stopped, or busy): the command stayed in the
        # channel unsaid, and the runner applied it later -- a pause the operator had given up on
        # paused the run. Taken back if the runner has not taken it; else said to be under way.
        if withdraw_command(run_dir, cmd):
            _echo(f"{action} withdrawn: the runner had not taken it; nothing was done", err=True)
        else:
            _echo(f"{action}: the runner has taken it already and applies it (`castrig status {run_dir}`)", err=True)
        raise
    if answer is None and run_holder(run_dir) is None:  # it ended on its own while the command was on its way
        ended = R.summary(run_dir)["status"]
        raise BadInput(f"{run_dir}: the run ended ({ended}) before it read the {action}; nothing to {action}",
                       file=str(run_dir))
    if answer is None and stopped():
        # it said "is it stopped?" and that a later resume discards the command -- yet the runner
        # applies it the moment the process is continued (an abort given up on then aborts)
        _echo(f"{action} sent to {run_dir}, but the runner did not answer: its process {pid} is STOPPED; the command "
              f"stays in its control channel and is applied the moment the process goes on (`kill -CONT {pid}`); "
              "if it is killed instead, a later `castrig resume` discards it", err=True)
        raise typer.Exit(5)
    if answer is None:
        _echo(f"{action} sent to {run_dir}, but the runner did not answer (is it stopped?); the command stays "
                   "in its control channel (a later `castrig resume` discards it)", err=True)
        raise typer.Exit(5)
    if not answer.get("accepted"):  # a refusal is said where every other one is: on stderr
        _echo(f"{action}: refused — {answer.get('message')}", err=True)
        raise typer.Exit(2)
    _echo(f"{action}: accepted — {answer.get('message')}")
    if wait_end_s > 0:
        deadline = time.monotonic() + wait_end_s
        while run_holder(run_dir) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        if run_holder(run_dir) is not None:
            # still ending (its safe state being made or tried again): exit 0 here let
            # `castrig abort RUN && power-off` cut the power on a rig not yet known safe
            status = R.summary(run_dir)["status"]
            _echo(f"{run_dir}: the run has not ended within {wait_end_s:g} s (status {status}): its rig is not "
                  f"known safe yet; `castrig watch {run_dir}` follows it to its end", err=True)
            raise typer.Exit(5)
        d = R.detail(run_dir, image_sizes=False)
        _echo(f"{d['status']}: {run_dir}" + (f" — {d['outcome_reason']}" if d.get("outcome_reason") else ""))
        safe, verified = _safe_state_line(run_dir, after_id=since_event)
        if safe:
            _echo(safe)
        if verified is not True:
            # the abort was taken, the rig is not known safe (not verified, or the process died
            # before it said: a kill -9 while it made the rig safe): a script must not read 0
            why = "is NOT verified" if verified is False else f"was not recorded after the {action} (the run {d['status']})"
            _echo(f"the rig's safe state {why}: see to it at the rig", err=True)
            raise typer.Exit(5)


def _last_event_id(run_dir: Path) -> int:
    from castrig.store import live as R

    with R.open_ro(run_dir) as db:
        rows = R._rows(db, "SELECT max(id) FROM events")
    return int(rows[0][0] or 0) if rows else 0


def _safe_state_line(run_dir: Path, *, after_id: int = 0) -> tuple[str | None, bool | None]:
    """The run's last safe-state event (recorded after event ``after_id``): its message, and
    whether it verified the rig safe."""
    from castrig.store import live as R

    with R.open_ro(run_dir) as db:
        rows = R._rows(db, "SELECT message, data_json FROM events WHERE kind = 'safe_state' AND id > ? ORDER BY id DESC LIMIT 1",
                       (after_id,))
    if not rows:
        return None, None
    try:
        safe = json.loads(rows[0][1] or "{}").get("safe")
    except ValueError:
        safe = None
    return rows[0][0], None if safe is None else bool(safe)


def pause(run_dir: Path = typer.Argument(..., help="A running run's folder.")) -> None:
    """Pause a run at its next safe point (the rig stays under control); `castrig resume-paused` goes on.

    Never mid-dispense: during a pre-wet or a cast the pause is taken once the pump step has ended
    (status: pausing). Timed steps keep counting while paused (the chamber stays under control:
    the film keeps drying); `castrig abort` is never delayed."""
    _act(run_dir, "pause")


def resume_paused(run_dir: Path = typer.Argument(..., help="A run paused with `castrig pause` or from the web page.")) -> None:
    """Go on with a run paused through `castrig pause` or the web page."""
    _act(run_dir, "resume")


def abort(
    run_dir: Path = typer.Argument(..., help="A running run's folder."),
    wait: float = typer.Option(120.0, "--wait", min=0, help="Seconds to wait for the run to end (0: do not wait)."),
) -> None:
    """Abort a run like SIGTERM: the rig goes to the verified safe state, outcome `aborted`.

    Exit 0 once the run has ended with its rig verified safe; 5 when the safe state it reached
    is NOT verified (a device did not answer: see to it at the rig), or the run has not ended
    within --wait. With --wait 0, exit 0 says only that the run accepted the abort."""
    _act(run_dir, "abort", wait_end_s=wait)


def serve(
    data: Optional[Path] = typer.Option(None, "--data", help="Data root (default $CASTRIG_DATA or ./runs)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="TCP port (0: any free port)."),
    max_connections: Optional[int] = typer.Option(None, "--max-connections", min=2, max=100_000, metavar="N",
                                                  help="Connections held at most (default: 256, fewer under a low open-file limit); "
                                                       "beyond it the oldest idle one is closed, else 503. More than the open-file limit "
                                                       "can hold is refused."),
    request_timeout_s: Optional[float] = typer.Option(None, "--request-timeout-s", metavar="SECONDS", min=1, max=3600,
                                                      help="Seconds a client has to send a whole request (from connecting, or "
                                                           "from its first byte after an answer) before it is closed, so "
                                                           "half-sent requests (slowloris) are not held: 1 to 3600, default 10."),
    explore_cache_mib: Optional[int] = typer.Option(None, "--explore-cache-mib", metavar="MIB", min=0, max=65536,
                                                    help="MiB of explore study journals kept read in memory, all together "
                                                         "(the least recently shown are read again when asked): 0 to 65536, "
                                                         "default 256; 0 reads a journal afresh on every page."),
) -> None:
    """Serve every run under the data root in a browser, with a JSON API (prints {"url", "token_file"})."""
    from castrig.cli.main import read_data_root
    from castrig.serve.app import serve as run_server
    from castrig.serve.guard import limits, request_timeout

    limits(max_connections)  # the options first, as before: refused before anything is made
    request_timeout(request_timeout_s)
    # a data root named on purpose must be there, as for `castrig runs` (a typo was created, given
    # a token and served empty); ./runs may not be yet on a new rig PC, and is made
    root = read_data_root(data)
    run_server(root, host=host, port=port, max_connections=max_connections, request_timeout_s=request_timeout_s,
               explore_cache_mib=explore_cache_mib)


def mount(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(status)
    app.command()(watch)
    app.command()(pause)
    app.command(name="resume-paused")(resume_paused)
    app.command()(abort)
