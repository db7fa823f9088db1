"""The run's control channel: operators act on a run from outside, with no network.

A run folder holds ``control/``. Anyone allowed to act on the run (the user who owns the run
folder — the OS file permissions decide —, or ``castrig serve`` for a caller with the token)
drops one JSON file per command into it; the runner reads the folder every control period and
answers each command in ``control/done/``. Files survive the death of the web server or of the
CLI that wrote them, need no network and no database lock, and are readable with ``cat``.

Layout::

    RUN/control/
      <stamp>-<id>.json        a pending command: {"id", "action", "by", "requested_utc"}
      done/<stamp>-<id>.json   the same command, answered: + {"accepted", "message", "t_s", "handled_utc"}
      status.json              the runner's last status (rewritten atomically about once a second)

Actions: ``pause`` (pause at the next safe point and wait for ``resume``), ``resume`` (end a
pause asked through the channel), ``abort`` (end the run like SIGTERM: safe state verified and
recorded, outcome ``aborted``). ``by`` names who asked: ``cli:<user>`` or ``token:<name>``.

A command file is written to a hidden temporary name and renamed into place, so the runner never
reads half a command. A resume discards (answers refused, records as an event) the commands
still pending from before it started: they were meant for the part of the run that crashed. The store knows no device: this module only moves these files.
"""

from __future__ import annotations

import heapq
import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ACTIONS = ("pause", "resume", "abort")
CONTROL_DIR = "control"
STATUS_NAME = "status.json"

#: The most of a control file read: a command or a status is a few hundred bytes; a larger file
#: dropped into control/ (by mistake or not) is refused unread rather than filling the runner's memory.
MAX_CONTROL_FILE_BYTES = 64 * 1024


class _NoCommand(ValueError):
    """A control file that is no command, in words of our own (its answer says them as they are)."""


def _read_json(path: Path) -> Any:
    """``json.loads`` of a control file, bounded: :class:`_NoCommand` for one over
    MAX_CONTROL_FILE_BYTES or nested too deep for the parser (its RecursionError faulted a running
    run: 60 KB of ``[``); ValueError for one that is no JSON."""
    with open(path, "rb") as f:
        raw = f.read(MAX_CONTROL_FILE_BYTES + 1)
    if len(raw) > MAX_CONTROL_FILE_BYTES:
        raise _NoCommand(f"larger than {MAX_CONTROL_FILE_BYTES // 1024} KiB")
    try:
        return json.loads(raw.decode("utf-8", "replace"))
    except RecursionError:
        raise _NoCommand("nested too deep") from None


def control_dir(run_dir: Path) -> Path:
    return Path(run_dir) / CONTROL_DIR


def _utc(ts: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if ts is None else ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)


@dataclass
class Command:
    id: str
    action: str
    by: str
    requested_utc: str
    name: str = ""
    answer: dict[str, Any] = field(default_factory=dict)
    problem: str = ""  # why the file is no command (not JSON, not an object): said in its answer

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "action": self.action, "by": self.by, "requested_utc": self.requested_utc, **self.answer}


#: The name :func:`send_command` gives a command file.
_SENT_NAME = re.compile(r"\d{20}-[0-9a-f]{12}\.json")
#: Commands the runner reads at one control period at most.
PER_POLL = 32


def send_command(run_dir: Path, action: str, by: str) -> Command:
    """Drop ``action`` into the run's channel; returns the command (its ``name`` locates the answer)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
    d = control_dir(run_dir)
    d.mkdir(exist_ok=True)
    cmd = Command(secrets.token_hex(6), action, str(by)[:200], _utc())
    cmd.name = f"{time.time_ns():020d}-{cmd.id}.json"
    _write_atomic(d / cmd.name, {"id": cmd.id, "action": action, "by": cmd.by, "requested_utc": cmd.requested_utc})
    return cmd


def answer_of(run_dir: Path, cmd: Command) -> dict[str, Any] | None:
    """The runner's answer to ``cmd`` (``accepted``, ``message``, ``t_s``), or None while pending."""
    try:
        return _read_json(control_dir(run_dir) / "done" / cmd.name)
    except (OSError, ValueError):
        return None


def wait_answer(run_dir: Path, cmd: Command, timeout_s: float, alive: Any = None) -> dict[str, Any] | None:
    """Wait (bounded) for the runner to answer ``cmd``; ``alive()`` False stops waiting early."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = answer_of(run_dir, cmd)
        if got is not None:
            return got
        if alive is not None and not alive():
            return answer_of(run_dir, cmd)
        time.sleep(0.05)
    return None


class CommandInbox:
    """The runner's side: pending commands in arrival order, each answered exactly once."""

    def __init__(self, run_dir: Path):
        self.dir = control_dir(run_dir)
        self.done = self.dir / "done"
        self.done.mkdir(parents=True, exist_ok=True)

    def pending(self, limit: int | None = None) -> list[Command]:
        """The commands waiting, oldest first; ``limit``: at most that many, ``castrig``'s own
        (``send_command``'s names) before files of other names (the runner reads them at every
        control period: 30 000 junk files there stalled it 4 s, past a pump's watchdog at ~75 000)."""
        try:
            names = [e.name for e in os.scandir(self.dir) if e.is_file() and e.name.endswith(".json")
                     and not e.name.startswith(".") and e.name != STATUS_NAME]
        except OSError:
            return []
        if limit is None:
            names.sort()
        else:
            names = heapq.nsmallest(limit, names, key=lambda n: (_SENT_NAME.fullmatch(n) is None, n))
        out = []
        for name in names:
            path = self.dir / name
            try:
                data = _read_json(path)
                if not isinstance(data, dict):
                    raise _NoCommand("not an object")
                cmd = Command(str(data.get("id", name)), str(data.get("action", "")), str(data.get("by", "unknown"))[:200],
                              str(data.get("requested_utc", "")), name=name)
                if not data.get("action"):
                    cmd.problem = f'{CONTROL_DIR}/{name} names no action: a command is a JSON object {{"action": one of {", ".join(ACTIONS)}}}'
            except (OSError, ValueError) as exc:  # unreadable: answered refused, never retried
                why = str(exc) if isinstance(exc, _NoCommand) else f"not valid JSON ({exc})" if isinstance(exc, ValueError) \
                    else f"cannot be read ({exc.strerror or exc})"
                cmd = Command(name, "", "unknown", "", name=name,
                              problem=f"{CONTROL_DIR}/{name} is {why}: a command is a JSON object "
                                      f'{{"action": one of {", ".join(ACTIONS)}}}')
            out.append(cmd)
        return out

    def discard_before(self, wall_ns: int, t_s: float) -> list[Command]:
        """Answer refused, without applying them, the pending commands written before ``wall_ns``
        (``time.time_ns()``): on resume, those were sent to the part that crashed — a pause or
        abort nobody would still mean hours later. The discarded commands, for the run's events."""
        stale = []
        for cmd in self.pending():
            try:  # the file's age on this machine's file system, not only the sender's clock
                # in its name: a sender whose clock ran ahead wrote a name "after" the resume
                # started, and its abort, sent to the crashed part, aborted the resumed run
                written = (self.dir / cmd.name).stat().st_mtime_ns
            except OSError:
                continue
            try:
                written = min(written, int(cmd.name.split("-", 1)[0]))
            except ValueError:  # not a name send_command makes: its file's age decides
                pass
            if written < wall_ns:
                self.answer(cmd, False, "sent before this resume started (to the part of the run that crashed): "
                                        "discarded, not applied", t_s)
                stale.append(cmd)
        return stale

    def answer(self, cmd: Command, accepted: bool, message: str, t_s: float) -> None:
        cmd.answer = {"accepted": accepted, "message": message, "t_s": t_s, "handled_utc": _utc()}
        try:
            _write_atomic(self.done / cmd.name, cmd.to_dict())
            (self.dir / cmd.name).unlink(missing_ok=True)
        except OSError:
            pass  # a full disk must not stop the run; the command stays and is answered again

    def write_status(self, status: dict[str, Any]) -> None:
        try:
            _write_atomic(self.dir / STATUS_NAME, {**status, "written_utc": _utc()})
        except OSError:
            pass


def read_status(run_dir: Path) -> dict[str, Any] | None:
    """The runner's last published status (see :class:`CommandInbox`), or None."""
    try:
        data = _read_json(control_dir(run_dir) / STATUS_NAME)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def history(run_dir: Path) -> list[dict[str, Any]]:
    """Every answered command of the run, oldest first."""
    done = control_dir(run_dir) / "done"
    out = []
    for p in sorted(done.glob("*.json")) if done.is_dir() else []:
        try:
            out.append(_read_json(p))
        except (OSError, ValueError):
            continue
    return out
