"""The run's control channel: operators act on a run from outside, with no network.

A run folder holds ``control/``. Anyone allowed to act on the run (the user who owns the run
folder — the OS file permissions decide —, or ``castrig serve`` for a caller with the token)
drops one JSON file per command into it; the runner reads the folder every control period and
answers each command in ``control/done/``. Files survive the death of the web server or of the
CLI that wrote them, need no network and no database lock, and are readable with ``cat``.

Layout::

    RUN/control/
      <stamp>-<id>.json        a pending command: {"id", "action", "by", "requested_utc"}
      taken/<stamp>-<id>.json  a command the runner has taken out of the channel and is applying
      done/<stamp>-<id>.json   the same command, answered: + {"accepted", "message", "t_s", "handled_utc"}
      status.json              the runner's last status (rewritten atomically about once a second)

A command is in one of these places at any moment, and moves on by a rename (atomic): the runner
renames it into ``taken/`` before it reads or applies it, writes its answer over it there, and
renames the answer into ``done/``. Whoever reads an answer finds the command gone from
``control/`` (its name free for the next command), and a command is applied once: one that
cannot be taken stays pending, unapplied; an answer that cannot be written (a full disk) is
written again at the next control period, never the command applied again.

Actions: ``pause`` (pause at the next safe point and wait for ``resume``), ``resume`` (end a
pause asked through the channel), ``abort`` (end the run like SIGTERM: safe state verified and
recorded, outcome ``aborted``). ``by`` names who asked: ``cli:<user>`` or ``token:<name>``.

A command file is written to a hidden temporary name and renamed into place, so the runner never
reads half a command. A resume discards (answers refused, records as an event) the commands
still pending from before it started, and those the crashed part took but did not answer: they
were meant for the part of the run that crashed. The store knows no device: this module only moves these files.
"""

from __future__ import annotations

import errno
import heapq
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from castrig.errors import BadInput
from castrig.regular import FileTooBig, NotRegularFile, read_regular

ACTIONS = ("pause", "resume", "abort")
CONTROL_DIR = "control"
TAKEN_DIR = "taken"
STATUS_NAME = "status.json"

#: The most of a control file read: a command or a status is a few hundred bytes; a larger file
#: dropped into control/ (by mistake or not) is refused unread rather than filling the runner's memory.
MAX_CONTROL_FILE_BYTES = 64 * 1024


class _NoCommand(ValueError):
    """A control file that is no command, in words of our own (its answer says them as they are)."""


def _read_json(path: Path) -> Any:
    """``json.loads`` of a control file, bounded: :class:`_NoCommand` for one over
    MAX_CONTROL_FILE_BYTES or nested too deep for the parser (its RecursionError faulted a running
    run: 60 KB of ``[``) or that is no regular file (:meth:`CommandInbox._names` passes regular
    files only, but a named pipe renamed over one as the runner took it stopped the runner on its
    open, waiting for a writer: no more ticks, the RH loop's last flows held); ValueError for one
    that is no JSON."""
    try:
        raw = read_regular(path, max_bytes=MAX_CONTROL_FILE_BYTES)
    except FileTooBig:
        raise _NoCommand(f"larger than {MAX_CONTROL_FILE_BYTES // 1024} KiB") from None
    except NotRegularFile:
        raise _NoCommand("not a regular file (a named pipe, a device or a folder?)") from None
    try:
        return json.loads(raw.decode("utf-8", "replace"))
    except RecursionError:
        raise _NoCommand("nested too deep") from None


def control_dir(run_dir: Path) -> Path:
    return Path(run_dir) / CONTROL_DIR


class ChannelRefused(BadInput):
    """A run's control folder that is no real folder of its own (a symbolic link, a file): a
    ``RUN/control`` linked to another run's channel (whoever may write the data root can make one)
    sent an abort for RUN to the other run, which took and applied it."""

    def __init__(self, path: Path, why: str):
        self.path = Path(path)
        self.why = why
        super().__init__(f"{path} {why}: castrig sends and takes commands only in a real folder of the run's own; "
                         "remove it (a new one is made at the next command); nothing was sent", file=str(path))


def _why_not_a_folder(path: Path) -> str:
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"cannot be opened ({exc.strerror or exc})"
    if stat.S_ISLNK(st.st_mode):
        try:
            return f"is a symbolic link (to {os.readlink(path)})"
        except OSError:
            return "is a symbolic link"
    return "is not a folder"


def open_folder(path: Path, *, make: bool = False, dir_fd: int | None = None) -> int:
    """A descriptor of the folder ``path`` itself, never through a symbolic link (``make``: made
    if missing); :class:`ChannelRefused` if it is a link or no folder. Files are then moved and
    written relative to it, so a link put in its place after this look leads nowhere."""
    name = path if dir_fd is None else path.name
    if make:
        try:
            os.mkdir(name, dir_fd=dir_fd)
        except FileExistsError:
            pass
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
            raise ChannelRefused(path, _why_not_a_folder(path)) from None
        raise


def _utc(ts: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if ts is None else ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _write_atomic(path: Path, data: dict[str, Any], dir_fd: int | None = None) -> None:
    """Write ``path`` whole or not at all (``dir_fd``: ``path.name`` in that folder)."""
    if dir_fd is None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, path)
        return
    tmp_name = f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666, dir_fd=dir_fd)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(data, sort_keys=True))
    os.replace(tmp_name, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


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
    fd = open_folder(d, make=True)  # ChannelRefused: a link to another run's channel sent it there
    try:
        cmd = Command(secrets.token_hex(6), action, str(by)[:200], _utc())
        cmd.name = f"{time.time_ns():020d}-{cmd.id}.json"
        _write_atomic(d / cmd.name, {"id": cmd.id, "action": action, "by": cmd.by, "requested_utc": cmd.requested_utc},
                      dir_fd=fd)
    finally:
        os.close(fd)
    return cmd


def withdraw_command(run_dir: Path, cmd: Command) -> bool:
    """Take back ``cmd`` if the runner has not taken it (its file still in control/): True then,
    and it is never applied. False once the runner has it (renamed into taken/: it is applied
    and answered), or if the file cannot be removed. The runner's take and this removal are
    each one operation on the same name: exactly one of them finds the file."""
    try:
        fd = open_folder(control_dir(run_dir))
    except (OSError, ChannelRefused):
        return False
    try:
        os.unlink(cmd.name, dir_fd=fd)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


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
    """The runner's side: pending commands in arrival order, each taken, applied and answered once.

    Every look at control/ (and its taken/, done/) is through a descriptor of the run's own folder,
    opened without following a link: a ``RUN/control`` replaced by a link to another run's channel
    is refused (:attr:`refused` says why; no command taken, no status written) rather than taking
    that run's commands — an abort meant for it aborted this run — and writing this run's status
    over its."""

    def __init__(self, run_dir: Path):
        self.dir = control_dir(run_dir)
        self.done = self.dir / "done"
        self.taken = self.dir / TAKEN_DIR
        self.refused: str | None = None  # why the channel is refused now, or None
        try:  # made here: a folder that cannot be made raises OSError (the run goes on without a channel)
            fd = open_folder(self.dir, make=True)
            try:
                for sub in (self.taken, self.done):
                    os.close(open_folder(sub, make=True, dir_fd=fd))
            finally:
                os.close(fd)
        except ChannelRefused as exc:  # said by the runner at its first poll
            self.refused = str(exc.path) + " " + exc.why
        self._held: dict[str, Command] = {}  # taken, not yet answered (or its answer not yet written)

    @contextmanager
    def _folders(self) -> Iterator[tuple[int, int, int] | None]:
        """Descriptors of control/, taken/ and done/ (made if missing), or None when the channel is
        refused (:class:`ChannelRefused`: :attr:`refused` says why)."""
        fds: list[int] = []
        try:
            try:
                fds.append(open_folder(self.dir, make=True))
                fds.append(open_folder(self.taken, make=True, dir_fd=fds[0]))
                fds.append(open_folder(self.done, make=True, dir_fd=fds[0]))
            except ChannelRefused as exc:
                self.refused = str(exc.path) + " " + exc.why
                yield None
                return
            except OSError:  # (a full disk, no descriptor left: the run goes on; the next period tries again)
                yield None
                return
            self.refused = None
            yield fds[0], fds[1], fds[2]
        finally:
            for fd in fds:
                os.close(fd)

    def _names(self, fd: int, limit: int | None = None) -> list[str]:
        """The names of the command files in control/ (``fd``), oldest first (see :meth:`pending`)."""
        try:
            with os.scandir(fd) as entries:
                names = [e.name for e in entries if e.is_file() and e.name.endswith(".json")
                         and not e.name.startswith(".") and e.name != STATUS_NAME]
        except OSError:
            return []
        if limit is None:
            return sorted(names)
        return heapq.nsmallest(limit, names, key=lambda n: (_SENT_NAME.fullmatch(n) is None, n))

    def pending(self, limit: int | None = None) -> list[Command]:
        """The commands to apply, oldest first, each taken out of control/ (into ``taken/``) as it
        is returned: the ones taken before and not yet answered, then new ones; ``limit``: at most
        that many new ones, ``castrig``'s own (``send_command``'s names) before files of other names
        (the runner reads them at every control period: 30 000 junk files there stalled it 4 s,
        past a pump's watchdog at ~75 000). None new while the channel is refused."""
        for cmd in [c for c in self._held.values() if c.answer]:  # answers a full disk kept back
            self._publish(cmd)
        out = [c for c in self._held.values() if not c.answer]
        with self._folders() as fds:
            if fds is None:
                return out
            for name in self._names(fds[0], limit):
                if name not in self._held:  # (the same name sent again: taken once the first is answered)
                    cmd = self._take(name, fds)
                    if cmd is not None:
                        out.append(cmd)
        return out

    def _take(self, name: str, fds: tuple[int, int, int]) -> Command | None:
        """Rename control/NAME into taken/ and read it there; None if it is gone or cannot be moved
        (it stays pending, unapplied, for the next control period)."""
        try:
            os.rename(name, name, src_dir_fd=fds[0], dst_dir_fd=fds[1])
        except OSError:
            return None
        path = Path(f"/proc/self/fd/{fds[1]}") / name if os.path.isdir("/proc/self/fd") else self.taken / name
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
        self._held[name] = cmd
        return cmd

    def discard_before(self, wall_ns: int, t_s: float, record: Callable[[Command], None] = lambda cmd: None) -> list[Command]:
        """Answer refused, without applying them, the pending commands written before ``wall_ns``
        (``time.time_ns()``): on resume, those were sent to the part that crashed — a pause or
        abort nobody would still mean hours later —, and the commands that part took and did not
        answer. ``record(cmd)`` (the run's event) is called before each answer is published: a
        reader who sees the answer finds the event, and a crash between the two loses no event
        (the answer was published first, its event written after). The discarded commands."""
        with self._folders() as fds:
            if fds is None:  # a link to another run's channel: its commands are not this run's to discard
                return []
            return self._discard_before(fds, wall_ns, t_s, record)

    def _discard_before(self, fds: tuple[int, int, int], wall_ns: int, t_s: float,
                        record: Callable[[Command], None]) -> list[Command]:
        stale = self._left_taken(t_s, record)
        for name in self._names(fds[0]):
            try:  # the file's age on this machine's file system, not only the sender's clock
                # in its name: a sender whose clock ran ahead wrote a name "after" the resume
                # started, and its abort, sent to the crashed part, aborted the resumed run
                written = (self.dir / name).stat().st_mtime_ns
            except OSError:
                continue
            try:
                written = min(written, int(name.split("-", 1)[0]))
            except ValueError:  # not a name send_command makes: its file's age decides
                pass
            if written < wall_ns and name not in self._held and (cmd := self._take(name, fds)) is not None:
                record(cmd)
                self.answer(cmd, False, "sent before this resume started (to the part of the run that crashed): "
                                        "discarded, not applied", t_s)
                stale.append(cmd)
        return stale

    def _left_taken(self, t_s: float, record: Callable[[Command], None]) -> list[Command]:
        """What a crashed runner left in taken/: an answer written there is moved on into done/;
        a command it took and never answered is answered refused (the crashed part may have
        begun it, as its events say; this part does not apply it)."""
        stale = []
        try:
            names = sorted(e.name for e in os.scandir(self.taken) if e.is_file() and not e.name.startswith("."))
        except OSError:
            return []
        for name in names:
            try:
                data = _read_json(self.taken / name)
            except (OSError, ValueError):
                data = None
            if isinstance(data, dict) and "accepted" in data and "handled_utc" in data:  # answered, not yet moved
                try:
                    os.replace(self.taken / name, self.done / name)
                except OSError:
                    pass
                continue
            cmd = Command(str(data.get("id", name)), str(data.get("action", "")), str(data.get("by", "unknown"))[:200],
                          str(data.get("requested_utc", "")), name=name) if isinstance(data, dict) \
                else Command(name, "", "unknown", "", name=name)
            self._held[name] = cmd
            record(cmd)
            self.answer(cmd, False, "taken by the part of the run that crashed, which ended before answering it: "
                                    "not applied by this resume", t_s)
            stale.append(cmd)
        return stale

    def answer(self, cmd: Command, accepted: bool, message: str, t_s: float) -> None:
        """Answer a command :meth:`pending` returned: the answer is written over the command in
        taken/, then renamed into done/ (if a full disk keeps it back, :meth:`pending` tries again)."""
        cmd.answer = {"accepted": accepted, "message": message, "t_s": t_s, "handled_utc": _utc()}
        self._held[cmd.name] = cmd
        self._publish(cmd)

    def _publish(self, cmd: Command) -> None:
        try:
            with self._folders() as fds:
                if fds is None:  # kept until the channel is the run's own again
                    return
                _write_atomic(self.taken / cmd.name, cmd.to_dict(), dir_fd=fds[1])
                os.replace(cmd.name, cmd.name, src_dir_fd=fds[1], dst_dir_fd=fds[2])
        except OSError:
            return  # a full disk must not stop the run; the answer is written at the next poll
        del self._held[cmd.name]

    def write_status(self, status: dict[str, Any]) -> None:
        try:
            with self._folders() as fds:
                if fds is not None:  # (never over another run's status, through a link)
                    _write_atomic(self.dir / STATUS_NAME, {**status, "written_utc": _utc()}, dir_fd=fds[0])
        except OSError:
            pass


def read_status(run_dir: Path) -> dict[str, Any] | None:
    """The runner's last published status (see :class:`CommandInbox`), or None (also through a
    ``control`` that is a link: another run's status said as this one's)."""
    try:
        if control_dir(run_dir).is_symlink():
            return None
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
