"""Shared pytest settings and helpers: the only conftest, so tests may import its helpers by name.

Hardware tests are opt-in: ``pytest --device PORT`` (never faked).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

# The castrig processes the tests start (about a thousand) keep castrig's compiled bytecode in
# src/castrig/__pycache__ (ignored by git) as any Python would: an environment that sets
# PYTHONDONTWRITEBYTECODE made each of them compile the package again, 0.1-0.3 s of CPU apiece.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
# One BLAS thread in the test processes too, as the castrig command sets for itself (cli/entry.py):
# four workers on two cores, each with an OpenBLAS pool per core, only spun against each other.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# The castrig processes the tests start get SIGHUP's default action, as from a terminal: a suite
# started under nohup passed its ignored SIGHUP on to them, castrig kept it ignored (as it should
# under nohup, recipe/session.py), and the tests of a closed terminal failed (4 of them).
signal.signal(signal.SIGHUP, signal.SIG_DFL)

# Hypothesis keeps its example database out of the work tree: a temporary folder per session, made
# by the first process (the xdist controller) and shared with its workers through the environment
# they inherit. One folder for all, because Hypothesis also caches there the constants it harvests
# from every local module's source at collection: with a folder per worker, each of the 8 parsed
# all ~160 modules again (~1.3 s of CPU apiece, the larger part of a worker's collection).
if "CASTRIG_TEST_HYPOTHESIS_HOME" in os.environ:
    set_hypothesis_home_dir(os.environ["CASTRIG_TEST_HYPOTHESIS_HOME"])
else:
    _HYPOTHESIS_HOME = tempfile.TemporaryDirectory(prefix="castrig-hypothesis-")  # removed when this process ends
    os.environ["CASTRIG_TEST_HYPOTHESIS_HOME"] = _HYPOTHESIS_HOME.name
    set_hypothesis_home_dir(_HYPOTHESIS_HOME.name)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", action="store", default=None, metavar="PORT",
                     help="run hardware tests against the device on PORT (a serial port or pyserial URL)")
    parser.addoption("--device-model", action="store", default=None, choices=("ne1000", "alicat", "hmt330"),
                     help="which device is on --device PORT")
    parser.addoption("--device-baud", action="store", type=int, default=None, help="its baud rate (default: the model's)")
    parser.addoption("--device-address", action="store", type=int, default=None,
                     help="its address on a multi-drop line (NE-1000 0-99), if it has one")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """Four workers per core (``-n auto`` in pyproject; three until 2026-12-07, when the suite's
    2437 tests took 467 s on CI's 2 cores with six workers while using ~825 s of CPU: ~120
    core-seconds idle, workers waiting on the wall clock). Much of the suite's time is spent
    waiting on castrig subprocesses and the wall clock, which more workers fill (on CI's 2-core
    machine: 398 s with 2 workers, 347 s with 3 at stop 36; 456-471 s with 3 and 426 s with 4 on
    the stop-38 suite, 1873 tests; 496 s with 4 and 424 s with 6 on 2026-12-06, 2288 tests, 800
    and 763 s of CPU: with 4 the cores stood idle ~100 s while workers waited on the wall clock).
    One worker only against real hardware: a device on --device PORT has one owner, and two
    workers would open its port at once."""
    if config.getoption("--device"):
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 4 * cores


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and config.getoption("numprocesses", None):  # xdist's controller
        _rewrite_test_modules_once(config)
        config.stash[_COMPILING] = _compile_the_lip_fit_once()


_COMPILING = pytest.StashKey["subprocess.Popen[bytes] | None"]()


@pytest.hookimpl(optionalhook=True)  # (xdist's hook: absent under -p no:xdist)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """The first test is handed out once the compile started at :func:`pytest_configure` is done:
    the workers collect (~7 s of CPU apiece) beside it rather than after it. Run before them, a
    clean clone's compile held CI's 2 cores to one for its ~16 s of CPU."""
    compiling = node.config.stash.get(_COMPILING, None)
    if compiling is not None:
        try:
            compiling.wait(timeout=600)
        except subprocess.TimeoutExpired:
            compiling.kill()
        node.config.stash[_COMPILING] = None


def _compile_the_lip_fit_once() -> "subprocess.Popen[bytes] | None":
    """The SEM path's compiled loops (numba: the lip fit, castrig.analysis._lipfit, the pores'
    pixels, _porepix, their sums per bin and cover, _poresums, and the view's levels,
    _levels) compiled into their cache once, by xdist's controller before the workers
    start, where a cache is missing or older than its source (a clean clone: CI): else every
    worker and castrig process whose first SEM analysis came before any had written the cache
    compiled them again (~6-9 s of CPU each); once cached, a process loads them in ~0.3 s.
    Started here, waited for before the first test (:func:`pytest_xdist_node_collection_finished`)."""
    import glob

    here = Path(__file__).resolve().parents[1] / "src" / "castrig" / "analysis"
    stale = []
    for module, first in (("_lipfit", "fit_lips"), ("_porepix", "least_codes"), ("_poresums", "bin_sums"),
                          ("_levels", "block_counts")):
        src = here / f"{module}.py"
        index = glob.glob(str(here / "__pycache__" / f"{module}.{first}-*.nbi"))
        if src.exists() and not (index and max(os.path.getmtime(f) for f in index) >= src.stat().st_mtime):
            stale.append(module)
    if not stale:
        return None
    code = "; ".join(f"from castrig.analysis.{m} import compile_now as c{i}; c{i}()" for i, m in enumerate(stale))
    try:  # (best effort: a worker compiles what is still missing, as it would without this)
        return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None


def _rewrite_test_modules_once(config: pytest.Config, root: Path = Path(__file__).parent) -> None:
    """Each test module under ``root`` as pytest's assertion rewriting compiles it, written to its ``__pycache__``
    once, by xdist's controller before the workers start (pytest's own functions, as its import
    hook calls them; skipped if this pytest has them no more). On a clean clone (CI) the eight
    workers all collected the suite at once, each finding no rewritten module yet: ~220 modules
    rewritten up to eight times over, 28 s more CPU than a collection that found them (58 s, not
    30 s, on this 2-core machine); the rewrite once costs ~6 s, then each worker reads them."""
    from fnmatch import fnmatch

    try:
        from _pytest.assertion.rewrite import PYC_TAIL, _read_pyc, _rewrite_test, _write_pyc, assertstate_key, get_cache_dir

        state = config.stash[assertstate_key]
    except (ImportError, KeyError):
        return
    patterns = config.getini("python_files")
    for fn in sorted(root.rglob("*.py")):
        if not any(fnmatch(fn.name, pat) for pat in patterns):
            continue
        try:
            pyc = get_cache_dir(fn) / (fn.name[:-3] + PYC_TAIL)
            if _read_pyc(fn, pyc) is None:
                try:
                    source_hash, co = _rewrite_test(fn, config)
                except SyntaxError:  # the worker's import says it, as before
                    continue
                pyc.parent.mkdir(exist_ok=True)
                _write_pyc(state, co, source_hash, pyc)
        except (TypeError, AttributeError, ValueError, OSError):
            return  # pytest's internals changed, or __pycache__ cannot be written: the workers rewrite as before


def campaign(params: list[Any], ci: set[int]) -> list[Any]:
    """A campaign's parameters (variants of one case, each a castrig process of ~1 s CPU): those
    at the indices ``ci`` run in every suite, the others are marked ``slow`` (``-m slow`` runs
    them). The suite is CPU-bound on CI's 2 cores, most of it castrig's own start-up in each
    subprocess, so a campaign's every variant is not bought at every push."""
    out = []
    for i, p in enumerate(params):
        if i in ci:
            out.append(p)
        else:
            values = p if isinstance(p, tuple) else (p,)
            out.append(pytest.param(*values, marks=pytest.mark.slow))
    return out


# Each test file's wall time in a full run of the suite (s, measured under the suite's own load by
# ``python benchmarks/suite_cpu.py --durations tests/durations.tsv``): the order the workers take
# the files in. A file not listed (new since) counts as the mean of the listed ones.
DURATIONS = Path(__file__).with_name("durations.tsv")


def _longest_files_first(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The suite's files in order of their recorded wall time, longest first, each kept whole.

    The workers take one file at a time (``--dist loadfile --no-loadscope-reorder`` in
    pyproject), so a file's module fixtures are set up once and the files run longest first: the
    greedy order that leaves no long file to start last. In collection order the run ended on one
    or two workers for its last ~25 s (CI's 2 cores half idle) while the longest file, started
    last, finished."""
    if not hasattr(config, "workerinput") or not DURATIONS.exists():
        return  # one process (-n0) runs them all anyway; the order only matters between workers
    seconds: dict[str, float] = {}
    for line in DURATIONS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            value, path = line.split("\t", 1)
            seconds[path] = float(value)
    default = sum(seconds.values()) / len(seconds) if seconds else 0.0
    order = {item.nodeid.split("::", 1)[0]: None for item in items}  # files, in collection order
    rank = {path: i for i, path in enumerate(sorted(order, key=lambda f: -seconds.get(f, default)))}
    items.sort(key=lambda item: rank[item.nodeid.split("::", 1)[0]])  # stable: a file's own order kept


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _longest_files_first(config, items)
    if config.getoption("--device"):
        return
    skip = pytest.mark.skip(reason="hardware test: give --device PORT to run it")
    for item in items:
        if "device" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def lock_folder_of_its_own(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's device locks in a folder of its own (``$CASTRIG_LOCK_DIR``, for this process and
    every castrig it starts): in the machine's one folder a pty number another test's live run still
    held (its line closed, the number given again to this test's pty) refused this test's run as
    busy. A test of the machine's own folder (ownership.lock_dir's choice, its modes) deletes the
    variable (``monkeypatch.delenv``)."""
    folder = tmp_path_factory.mktemp("locks")
    monkeypatch.setenv("CASTRIG_LOCK_DIR", str(folder))
    return folder


@pytest.fixture
def device_port(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--device")


@pytest.fixture
def device_model(request: pytest.FixtureRequest) -> str | None:
    return request.config.getoption("--device-model")


@pytest.fixture
def device_address(request: pytest.FixtureRequest) -> int | None:
    return request.config.getoption("--device-address")


@pytest.fixture
def device_baud(request: pytest.FixtureRequest) -> int | None:
    return request.config.getoption("--device-baud")


class TerminalRun:
    """A ``castrig`` command run as a person at a terminal runs it, on a pseudo-terminal.

    The terminal is the process's stdin, stdout, stderr *and* its controlling terminal, so
    :meth:`ctrl_c` types a real Ctrl-C (the line discipline turns it into SIGINT) and what the
    process draws (the Rich live display, prompts, echoed keys) is captured in :attr:`output`.
    A reader thread drains the terminal so the process never blocks on a full buffer. Every wait
    is bounded; :meth:`close` kills the process if it is still running.
    """

    def __init__(self, args: list[str], *, cwd: Path, rows: int = 40, cols: int = 120, argv: list[str] | None = None):
        """``argv``: another program than ``castrig ARGS`` (an interactive shell, for job control)."""
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        drop = ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "CASTRIG_STORE")
        env = {k: v for k, v in os.environ.items() if k not in drop}
        env.update(PYTHONUNBUFFERED="1", TERM="xterm-256color")
        self.proc = subprocess.Popen(
            argv or [sys.executable, "-m", "castrig", *args], cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True, preexec_fn=_take_controlling_terminal, close_fds=True,
        )
        os.close(slave)
        self._master = master
        self._closed = False  # the reader saw the terminal close (the process and its children ended)
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: the process and all its children closed the terminal
                chunk = b""
            with self._cond:
                if not chunk:
                    self._closed = True
                    self._cond.notify_all()
                    return
                self._buf += chunk
                self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return self._buf.decode(errors="replace")

    def expect(self, text: str, *, after: int = 0, timeout_s: float = 15.0) -> int:
        """Wait until ``text`` appears in the output at or after index ``after``; return where it ends."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                out = self._buf.decode(errors="replace")
                i = out.find(text, after)
                if i >= 0:
                    return i + len(text)
                left = deadline - time.monotonic()
                if left <= 0 or (self._closed and self.proc.poll() is not None):
                    raise AssertionError(f"{text!r} not seen in the terminal within {timeout_s} s; "
                                         f"exit code {self.proc.poll()}; last output:\n{out[-3000:]}")
                self._cond.wait(min(left, 0.2))

    def send(self, keys: str) -> None:
        os.write(self._master, keys.encode())

    def ctrl_c(self) -> None:
        self.send("\x03")

    def hang_up(self) -> None:
        """Close the terminal, as a closed window or a dropped ssh session does: the kernel sends
        SIGHUP to the process and its writes to the terminal fail (EIO). (/dev/null takes the
        master's descriptor in one step, so no other file can reuse the number under the reader.)"""
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            os.dup2(null, self._master)
        finally:
            os.close(null)

    def wait(self, timeout_s: float = 30.0) -> int:
        """The process's exit code, once it has ended and the reader has taken all it wrote (up to
        the terminal's close: the last lines, "safe state verified", can still be on their way to
        the reader thread when the process is reaped; a test read :attr:`output` without them)."""
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.close()
            raise AssertionError(f"still running after {timeout_s} s; last output:\n{self.output[-3000:]}") from None
        deadline = time.monotonic() + 5.0
        with self._cond:
            while not self._closed and time.monotonic() < deadline:
                self._cond.wait(0.1)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        try:
            os.close(self._master)
        except OSError:
            pass


def _take_controlling_terminal() -> None:  # in the child, after setsid(): stdin becomes the controlling tty
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@pytest.fixture
def terminal_run() -> Iterator[Callable[..., TerminalRun]]:
    """``terminal_run(args, cwd=...)`` starts ``castrig ARGS`` on a pseudo-terminal; cleaned up after the test."""
    started: list[TerminalRun] = []

    def start(args: list[str], *, cwd: Path, **kw: Any) -> TerminalRun:
        run = TerminalRun(args, cwd=cwd, **kw)
        started.append(run)
        return run

    yield start
    for run in started:
        run.close()


# -- from the outside in: the real CLI in subprocesses ------------------------------------------
ROOT = Path(__file__).resolve().parents[1]


def recipe_variant(source: Path, folder: Path, *changes: tuple[str, str]) -> Path:
    """``source`` (a shipped or test recipe) with each ``(old, new)`` text replaced, written as
    ``folder/<its name>`` (the same name, so the same run name and live title): for tests that
    need its steps, not its length (a shorter hold, fewer fields or views, cheaper on the twin).
    A change that finds nothing to replace fails the test, rather than running the original."""
    text = source.read_text()
    for old, new in changes:
        assert old in text, (str(source), old)
        text = text.replace(old, new)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / source.name
    assert path != source, "a variant is written elsewhere"
    path.write_text(text)
    return path


def castrig_env(**extra: str) -> dict[str, str]:
    """The environment a user's shell gives ``castrig``: no fleet store, unbuffered output."""
    env = {k: v for k, v in os.environ.items() if k != "CASTRIG_STORE"}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def one_cast_recipe(name: str, cast_ml: float, rate_ml_min: float) -> str:
    """A claim-1 recipe of one pre-wet (0.1 mL at 1 mL/min) and one cast: a recipe's text for
    tests of the pump limits a check or a run holds it to."""
    return (f"name: {name}\ngrade: claim1\nsupport_pore_um: 5\nsteps:\n  - {{type: prewet, volume_ml: 0.1, rate_ml_min: 1.0}}\n"
            f"  - {{type: cast, volume_ml: {cast_ml:g}, rate_ml_min: {rate_ml_min:g}}}\n")


def castrig(*args: str, cwd: Path = ROOT, timeout_s: float = 120, address_space: int | None = None,
            open_files: int | None = None, file_size: int | None = None, cpu_time: tuple[int, int] | None = None,
            pass_fds: tuple[int, ...] = (), **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``castrig ARGS`` to the end (bounded) and return its exit code and output;
    ``address_space``: bytes it may map at most (``ulimit -v``: little free memory, as the
    command measures it); ``open_files``: descriptors it may hold at once (``ulimit -n``);
    ``file_size``: bytes a file it writes may grow to (``ulimit -f``, systemd's LimitFSIZE: a write
    beyond fails with EFBIG, as one on a full disk fails with ENOSPC; Python ignores SIGXFSZ);
    ``cpu_time``: (soft, hard) seconds of CPU it may take (``ulimit -St``/``-Ht``, systemd's LimitCPU=:
    SIGXCPU at the soft limit, again each CPU second after, SIGKILL at the hard one);
    ``pass_fds``: descriptors it inherits (``/dev/fd/N``, as the shell's ``<(cat file)`` gives one).
    The result's ``cpu_s`` is the CPU time the process took (user + system): bound that, not the
    wall time, which on CI's two shared cores measures the neighbours as much as castrig."""
    import resource

    def limit() -> None:
        import resource

        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
        if file_size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
        if cpu_time is not None:
            resource.setrlimit(resource.RLIMIT_CPU, cpu_time)

    limited = address_space is not None or open_files is not None or file_size is not None or cpu_time is not None
    if not limited and not pass_fds:
        done = _preloaded_castrig(args, cwd, castrig_env(**env), timeout_s)
        if done is not None:
            return done
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "castrig", *args], cwd=cwd, env=castrig_env(**env), capture_output=True,
                          text=True, timeout=timeout_s, stdin=subprocess.DEVNULL,
                          preexec_fn=limit if limited else None, pass_fds=pass_fds)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    done.cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)  # type: ignore[attr-defined]
    return done


#: environment variables read as an interpreter or a native library starts: a ``castrig()`` that
#: sets one otherwise than the preloaded castrig's runs in a fresh interpreter (tests/castrig_zygote.py)
_STARTUP_VARS = ("PYTHON", "LC_", "LANG", "NUMBA_", "OPENBLAS_", "OMP_", "MKL_")
_zygote: dict[str, Any] = {}


def _zygote_socket() -> str | None:
    """This process's preloaded castrig (tests/castrig_zygote.py), started at its first use; None
    where there is none (CASTRIG_TEST_FRESH=1, or it could not start)."""
    if os.environ.get("CASTRIG_TEST_FRESH") == "1" or _zygote.get("failed"):
        return None
    proc = _zygote.get("proc")
    if proc is not None and proc.poll() is None:
        return _zygote["path"]
    folder = tempfile.mkdtemp(prefix="castrig-zygote-")
    path = os.path.join(folder, "s")
    env = castrig_env()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("castrig_zygote.py")), path], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _zygote["failed"] = True
            return None
        time.sleep(0.02)
    import atexit
    import shutil

    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # (after the kill below: last in, first out)
    atexit.register(proc.kill)
    _zygote.update(proc=proc, path=path, env=env, inherited=_inherited())
    return path


def _inherited() -> tuple[Any, ...]:
    """What a process started from this one inherits besides its environment: limits, umask,
    ignored and blocked signals (a test that sets one for the command it runs gets a fresh one)."""
    import resource

    umask = os.umask(0)
    os.umask(umask)
    limits = tuple(resource.getrlimit(getattr(resource, r)) for r in ("RLIMIT_NOFILE", "RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_CPU",
                                                                      "RLIMIT_NPROC", "RLIMIT_CORE", "RLIMIT_STACK", "RLIMIT_DATA"))
    ignored = tuple(signal.getsignal(sig) is signal.SIG_IGN for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGQUIT,
                                                                       signal.SIGTSTP, signal.SIGTTOU, signal.SIGPIPE, signal.SIGXFSZ))
    return umask, limits, ignored, tuple(sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])))


def _fork_preloaded(args: tuple[str, ...], cwd: Path, env: dict[str, str]) -> tuple[int, socket.socket, int, int] | None:
    """``castrig ARGS`` started as a child of the preloaded castrig (tests/castrig_zygote.py: why
    and when), stdin /dev/null, stdout and stderr pipes: (pid, the socket its end is told on,
    stdout's and stderr's read ends); None where it is to be started fresh."""
    path = _zygote_socket()
    if path is None:
        return None
    started = _zygote["env"]
    if any(env.get(k) != started.get(k) for k in set(env) | set(started) if k.startswith(_STARTUP_VARS)):
        return None
    if _inherited() != _zygote["inherited"]:
        return None
    import array

    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        request = json.dumps({"args": list(args), "cwd": str(cwd), "env": env}).encode() + b"\n"
        sock.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [null, out_w, err_w]))])
        pid = json.loads(_answer(sock))["pid"]
    except (OSError, ValueError, KeyError):
        sock.close()
        for fd in (out_r, err_r):
            os.close(fd)
        return None
    finally:
        for fd in (out_w, err_w, null):
            os.close(fd)
    return pid, sock, out_r, err_r


def _answer(sock: socket.socket) -> bytes:
    """One line from the preloaded castrig (read a byte at a time: nothing of the next is taken)."""
    line = b""
    while not line.endswith(b"\n"):
        got = sock.recv(1)
        if not got:
            raise OSError("the preloaded castrig closed the line")
        line += got
    return line


def _child_end(sock: socket.socket) -> tuple[int, float]:
    """(exit code as Popen gives it, CPU s) of a preloaded castrig's child, once it has ended."""
    end = json.loads(_answer(sock))
    sock.close()
    _zygote["children_cpu_s"] = _zygote.get("children_cpu_s", 0.0) + end["cpu_s"]  # (benchmarks/_suite_cpu_plugin.py counts it)
    return os.waitstatus_to_exitcode(end["status"]), end["cpu_s"]


def _preloaded_castrig(args: tuple[str, ...], cwd: Path, env: dict[str, str], timeout_s: float) -> subprocess.CompletedProcess[str] | None:
    """``castrig ARGS`` run to its end as a child of the preloaded castrig, as :func:`castrig`
    runs it (killed at ``timeout_s``, as subprocess.run kills); None to run it fresh."""
    started = _fork_preloaded(args, cwd, env)
    if started is None:
        return None
    proc = PreloadedProcess([sys.executable, "-m", "castrig", *args], *started)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    done.cpu_s = proc.cpu_s  # type: ignore[attr-defined]
    return done


class PreloadedProcess:
    """What :class:`subprocess.Popen` gives (``pid``, ``stdout``/``stderr`` as text, ``poll``,
    ``wait``, ``send_signal``, ``terminate``, ``kill``, ``communicate``, ``returncode``) for a
    castrig started in the background as a child of the preloaded castrig: its parent is that
    process, which tells its end on ``sock``."""

    def __init__(self, args: list[str], pid: int, sock: socket.socket, out_r: int, err_r: int):
        self.args, self.pid, self._sock = args, pid, sock
        self.stdin = None
        self.stdout = open(out_r, "r")  # (text, universal newlines: as Popen's text=True)
        self.stderr = open(err_r, "r")
        self.returncode: int | None = None
        self.cpu_s: float | None = None  # (its CPU once it has ended, as castrig()'s result gives it)

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._sock], [], [], 0)[0]:
            self.returncode, self.cpu_s = _child_end(self._sock)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not select.select([self._sock], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            self.returncode, self.cpu_s = _child_end(self._sock)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, input: Any = None, timeout: float | None = None) -> tuple[str, str]:
        """Both streams read to their end (each on a thread of its own, through what a test may
        already have read of them), then the end."""
        got: dict[str, str] = {}

        def read(name: str) -> None:
            stream = getattr(self, name)
            got[name] = stream.read() if stream is not None and not stream.closed else ""

        readers = [threading.Thread(target=read, args=(n,), daemon=True) for n in ("stdout", "stderr")]
        for t in readers:
            t.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in readers:
            t.join(None if deadline is None else max(deadline - time.monotonic(), 0.0))
            if t.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        self.wait(None if deadline is None else max(deadline - time.monotonic(), 0.0))
        return got["stdout"], got["stderr"]

    def __enter__(self) -> "PreloadedProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        for s in (self.stdout, self.stderr):
            if s is not None:
                s.close()
        self.wait()


def castrig_in(*args: object, cwd: Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    """:func:`castrig` run in ``cwd`` (``args`` as text: paths too), importing this tree's castrig
    (PYTHONPATH absolute: ``python -m`` in another folder would not find it); ``kw``: :func:`castrig`'s."""
    return castrig(*[str(a) for a in args], cwd=cwd, PYTHONPATH=str(ROOT / "src"), **kw)


def demo_run_info(run_id: str = "20260101-000000-demo", started: str = "2026-01-01T00:00:00Z") -> Any:
    """A :class:`castrig.store.RunInfo` of recipes/demo.yaml on the sim profile, for a store's tests."""
    from castrig.store import RunInfo

    return RunInfo(run_id=run_id, recipe_name="demo", recipe_path="recipes/demo.yaml", profile_name="sim",
                   profile_path="hw_profiles/sim.yaml", software_version="test", seed=1, operator="tester",
                   started_utc=started)


def analysed(*args: str, cwd: Path = ROOT) -> dict[str, Any]:
    """``castrig analyse ARGS --json`` in a subprocess, as a user runs it: its JSON, once it
    ended well (exit 0, no traceback)."""
    done = castrig("analyse", *args, "--json", cwd=cwd)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    return json.loads(done.stdout)


def pore_grid(n: int = 256) -> Any:
    """An ``n`` × ``n`` top view (uint8 array): dark round pores (40, radius under 5 px) 16 px
    apart on a bright film (200): a micrograph the analysis measures in milliseconds."""
    import numpy as np

    y, x = np.mgrid[0:n, 0:n]
    img = np.full((n, n), 200, np.uint8)
    for cy in range(8, n, 16):
        for cx in range(8, n, 16):
            box = (slice(cy - 5, cy + 6), slice(cx - 5, cx + 6))  # (the disc's own box: the same pixels, in 1 % of the time)
            img[box][(y[box] - cy) ** 2 + (x[box] - cx) ** 2 < 25] = 40
    return img


@pytest.fixture(scope="session")
def rendered_membrane(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A folder with one twin membrane's views as ``castrig sim render --n 1 --seed 3`` writes them
    (m000_reflected.tif, m000_transmitted.tif, m000_section.tif: their pixel sizes in their tags);
    rendered once per session (:func:`made_once`), ~2 s of CPU."""
    def make(out: Path) -> None:
        done = castrig("sim", "render", "--out", str(out), "--n", "1", "--seed", "3")
        assert done.returncode == 0, done.stderr

    return made_once(tmp_path_factory, worker_id, "rendered", make)


def made_once(tmp_path_factory: pytest.TempPathFactory, worker_id: str, name: str, make: Callable[[Path], None]) -> Path:
    """A folder ``make(folder)`` fills, made once per pytest session: the first xdist worker to
    ask makes it (under a file lock), each test process gets its own copy (to spoil as it likes)."""
    import fcntl
    import shutil

    mine = tmp_path_factory.mktemp(name) / name
    if worker_id == "master":  # no xdist: nothing to share
        make(mine)
        return mine
    shared = tmp_path_factory.getbasetemp().parent / f"{name}-shared"  # the workers' base folders share a parent
    with open(tmp_path_factory.getbasetemp().parent / f"{name}-shared.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "done").exists():
            shutil.rmtree(shared, ignore_errors=True)
            make(shared / name)
            (shared / "done").touch()
    shutil.copytree(shared / name, mine, symlinks=True)
    return mine


def start_castrig(*args: str, cwd: Path = ROOT, fresh: bool = False, **env: str) -> subprocess.Popen[str]:
    """Start ``castrig ARGS`` in the background (stdout/stderr piped, no terminal): as a child of
    the preloaded castrig where it is the same (:class:`PreloadedProcess`), else, or ``fresh``
    (a test that waits on the process itself: it is then this process's child), a fresh one."""
    started = None if fresh else _fork_preloaded(args, cwd, castrig_env(**env))
    if started is not None:
        return PreloadedProcess([sys.executable, "-m", "castrig", *args], *started)  # type: ignore[return-value]
    return subprocess.Popen([sys.executable, "-m", "castrig", *args], cwd=cwd, env=castrig_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def refused(done: subprocess.CompletedProcess[str], *words: str) -> str:
    """Assert ``castrig`` refused its input as DESIGN §7 says (exit 2, no traceback) in a message
    holding each of ``words`` (line breaks of a wrapped message ignored); that message."""
    said = " ".join(done.stderr.split())
    assert done.returncode == 2, (done.returncode, done.stdout[-500:], said[-3000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    for w in words:
        assert w in said, (w, said)
    return said


def embedded(html: str) -> dict[str, Any]:
    """The data a report or run page carries for its script (``<script id="castrig-data">``)."""
    import re

    m = re.search(r'<script type="application/json" id="castrig-data">(.*?)</script>', html, re.S)
    assert m, "no embedded data"
    return json.loads(m.group(1))


def ne1000_basic(text: str) -> bytes:
    """An NE-1000 frame in basic mode, as the pump's manual prints it: STX, ``text``, ETX."""
    return b"\x02" + text.encode() + b"\x03"


def ne1000_packet(text: str) -> bytes:
    """An NE-1000 safe-mode packet: STX, its length (``text`` + 4), ``text``, CRC-16 (CCITT,
    big-endian), ETX."""
    import binascii

    data = text.encode()
    return bytes([2, len(data) + 4]) + data + binascii.crc_hqx(data, 0).to_bytes(2, "big") + b"\x03"


@pytest.fixture
def clock() -> Any:
    """A virtual clock at 0 s that only the test moves (a device emulator's tests)."""
    from castrig.clock import VirtualClock

    return VirtualClock()


def emulator_ask(reply_s: float) -> Callable[..., bytes]:
    """``ask(emu, clock, data, wait_s=reply_s)``: ``data`` to a device emulator at the virtual
    ``clock``'s now, then the bytes it sent back by ``wait_s`` later; ``reply_s``: the default
    wait, the device's own (an Alicat answers in ms, an HMT330 in a good part of a second)."""
    def ask(emu: Any, clock: Any, data: bytes, wait_s: float = reply_s) -> bytes:
        emu.receive(data, clock.now())
        clock.sleep(wait_s)
        return emu.transmit(clock.now())

    return ask


def process_state(pid: int) -> str:
    """The kernel's one-letter state of process ``pid`` (Linux /proc): ``T`` stopped (SIGSTOP,
    Ctrl-Z), ``t`` stopped by a tracer, ``S`` sleeping, ``R`` running ..."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0]  # (after the name, which may hold ")" and spaces)


def stopped(pid: int) -> bool:
    """Process ``pid`` is stopped (SIGSTOP, Ctrl-Z): its state is ``T``."""
    return process_state(pid) == "T"


def wait_until(predicate: Callable[[], Any], *, timeout_s: float = 30.0, what: str = "condition",
               every_s: float = 0.02) -> Any:
    """Poll ``predicate`` every ``every_s`` until it returns something truthy (bounded); return
    that. (A costly predicate -- an Optuna study loaded again, every process in /proc read -- polled
    every 20 ms spends the test process's CPU, and on CI's two cores the castrig it waits for's.)"""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s} s")
        time.sleep(every_s)


def run_rows(run_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a run's SQLite, read as any reader reads it (read-only, WAL); [] while it is not there."""
    import sqlite3

    db_path = Path(run_dir) / "run.sqlite"
    if not db_path.is_file():
        return []
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return [tuple(r) for r in db.execute(sql)]
    except sqlite3.OperationalError as exc:  # the schema is not written yet; anything else is the query's fault
        if "no such table" in str(exc):
            return []
        raise
    finally:
        db.close()


def run_status(run_dir: Path) -> dict[str, Any]:
    """The run's last published status (``control/status.json``: castrig.store.commands.read_status),
    or ``{}`` before the runner wrote one."""
    from castrig.store.commands import read_status

    return read_status(run_dir) or {}


#: What a process that reads a run folder changes in it (not a record): SQLite's shared-memory WAL
#: index (every reader, `castrig status` too, writes its read marks there).
READERS_WRITE = ("run.sqlite-shm",)


def folder_files(run_dir: Path, *, but: tuple[str, ...] = READERS_WRITE) -> dict[str, tuple[str, int]]:
    """Every file under ``run_dir`` but ``but`` (paths relative to it): ``{path: (sha256, mtime_ns)}``,
    to say a command left a folder as it was (its bytes and the times a later resume dates by)."""
    import hashlib

    return {str(p.relative_to(run_dir)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(Path(run_dir).rglob("*")) if p.is_file() and str(p.relative_to(run_dir)) not in but}


def only_run_dir(data: Path) -> Path | None:
    """The single run folder under ``data`` once it has a run.json (None before)."""
    runs = [p for p in Path(data).glob("*/run.json")] if Path(data).is_dir() else []
    return runs[0].parent if len(runs) == 1 else None


def run_with_twin_field(root: Path, *, field_px: int = 512, reflected: Any = None) -> Any:
    """A run in ``root`` holding one field's reflected, transmitted and section views, the twin's
    render of one structure (seed 4; top views at 0.25 µm, the section at 0.05 µm, ``field_px``
    wide), as its capture step records them; ``reflected`` (an image) replaces the top view.
    Returns the run's recorder (``run_dir``; ``castrig.recipe.analyse.latest_capture`` reads it)."""
    import numpy as np

    from castrig.sim.micrograph import make_structure, render_section, render_surface
    from castrig.store import RunInfo
    from castrig.store.sqlite_store import SqliteRunStore

    top_um, section_um = 0.25, 0.05
    rng = np.random.default_rng(4)
    st = make_structure(rng, mean_diameter_um=5.0, opening_ratio=0.45, thickness_um=3.0, thickness_cv=0.1,
                        field_um=field_px * top_um, section_length_um=field_px * section_um)
    refl, trans = render_surface(st, top_um, rng, bit_depth=8)
    sec = render_section(st, section_um, rng, bit_depth=8)
    rec = SqliteRunStore(root).create_run(RunInfo("t", "t", "-", "sim", "-", "test", 1, "", "now"))
    meta = {"step": 3, "field": 0}
    rec.save_image(1.0, "reflected", refl if reflected is None else reflected, pixel_size_um=top_um,
                   illumination="reflected", metadata=meta)
    rec.save_image(1.0, "transmitted", trans, pixel_size_um=top_um, illumination="transmitted", metadata=meta)
    rec.save_image(1.0, "section", sec, pixel_size_um=section_um, illumination="section", metadata=meta)
    return rec


def run_dir_in_step(data: Path, step_type: str, *, timeout_s: float = 60.0, what: str = "the step under way") -> Path:
    """The single run folder under ``data`` once its live status shows a ``step_type`` step under
    way: where a test pauses, kills or reads a run in that step."""
    return wait_until(lambda: (d := only_run_dir(data)) is not None and run_status(d).get("step_type") == step_type and d,
                      timeout_s=timeout_s, what=what)


@pytest.fixture
def reap() -> Iterator[Callable[[subprocess.Popen[Any]], subprocess.Popen[Any]]]:
    """``reap(proc)`` registers a background process to be continued and killed after the test."""
    procs: list[subprocess.Popen[Any]] = []

    def add(proc: subprocess.Popen[Any]) -> subprocess.Popen[Any]:
        procs.append(proc)
        return proc

    yield add
    for p in procs:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGCONT)  # a stopped child is killed at once only once continued
            except ProcessLookupError:
                pass
            p.kill()
        p.wait(timeout=10)


# -- `castrig sim serve` in a subprocess, shared by the link, device and CLI tests -------------
@dataclass
class SimServe:
    """A running ``castrig sim serve``: its process and the ``{device: address}`` it printed."""

    proc: subprocess.Popen[str]
    addresses: dict[str, str]

    def stall(self) -> None:
        """SIGSTOP the whole simulator: every device goes silent mid-run (a stalled line)."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)


@contextmanager
def sim_serve_process(*args: str, profile: str = "hw_profiles/sim-serial.yaml", ready_s: float = 30.0,
                      **env: str) -> Iterator[SimServe]:
    """Start ``castrig sim serve --profile PROFILE ARGS...`` (``env`` added to its environment) and
    yield it once it printed its addresses (bounded by ``ready_s``); stopped (SIGCONT, SIGINT, then
    kill) on the way out."""
    proc = start_castrig("sim", "serve", "--profile", profile, *args, **env)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], ready_s)
        line = proc.stdout.readline() if ready else ""  # type: ignore[union-attr]
        if not line:
            proc.kill()
            raise AssertionError(f"sim serve printed no addresses within {ready_s} s: {proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        yield SimServe(proc, json.loads(line))
    finally:
        stop_server(proc)


def stop_server(proc: subprocess.Popen[str]) -> None:
    """Stop a background server as Ctrl-C would (continued first if a test stopped it), bounded."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@pytest.fixture
def sim_serve() -> Callable[..., AbstractContextManager[SimServe]]:
    """``with sim_serve("--tcp", "0") as served:`` (any ``sim serve`` arguments; ``profile=``)."""
    return sim_serve_process


def proxied_profile(tmp_path: Path, served: "SimServe", profile: str, role: str, proxy: "Proxy",
                    devices: dict[str, dict[str, Any]] | None = None, **control: Any) -> Path:
    """TMP/rig.yaml: ``profile`` with every link at the address ``sim serve`` serves it on,
    ``role``'s through ``proxy``; ``control``: settings of the profile's ``control`` section (e.g.
    ``control_period_s=0.5``); ``devices``: settings of devices by role (e.g. ``{"caster":
    {"safe_mode_s": 4}}``; a ``link`` given whole, its url then set as above)."""
    import yaml

    data = yaml.safe_load((ROOT / profile).read_text())
    for name, cfg in data["devices"].items():
        cfg.update((devices or {}).get(name, {}))
        if "link" in cfg and name in served.addresses:
            cfg["link"]["url"] = served.addresses[name]
    data["devices"][role]["link"]["url"] = f"socket://127.0.0.1:{proxy.port}"
    data["control"].update(control)
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(data))
    return tmp_path / "rig.yaml"


def run_with_a_proxied_device(tmp_path: Path, served: "SimServe", profile: str, role: str, proxy: "Proxy", recipe: Path,
                              devices: dict[str, dict[str, Any]] | None = None, **control: Any) -> subprocess.CompletedProcess[str]:
    """``castrig run RECIPE --data TMP/runs`` on :func:`proxied_profile`'s rig."""
    rig = proxied_profile(tmp_path, served, profile, role, proxy, devices, **control)
    return castrig("run", str(recipe), "--profile", str(rig), "--data", str(tmp_path / "runs"), "-q")


def run_recipe_through_a_proxy(tmp_path: Path, sim_serve: Callable[..., AbstractContextManager["SimServe"]], role: str,
                               recipe: dict[str, Any], *, profile: str = "hw_profiles/sim-serial.yaml",
                               control: dict[str, Any] | None = None, devices: dict[str, dict[str, Any]] | None = None,
                               **proxy: Any) -> tuple[subprocess.CompletedProcess[str], "Proxy"]:
    """``castrig run`` of ``recipe`` (a dict, written to TMP/recipe.yaml) on the devices ``sim
    serve --tcp 0`` serves from ``profile``, ``role``'s line through a :class:`Proxy` made with
    ``proxy`` (``reply=``, ``cut_on=`` ...): the run's outcome and the proxy (closed).
    ``control``, ``devices``: the profile's settings changed (:func:`run_with_a_proxied_device`)."""
    import yaml
    from urllib.parse import urlsplit

    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    with sim_serve("--tcp", "0", profile=profile) as served:
        address = urlsplit(served.addresses[role])
        line = Proxy((address.hostname, address.port), **proxy)
        try:
            done = run_with_a_proxied_device(tmp_path, served, profile, role, line, tmp_path / "recipe.yaml", devices,
                                             **(control or {}))
        finally:
            line.close()
    return done, line


class LoopbackServer:
    """A TCP server on 127.0.0.1, at a port the system chose, taking connections in a daemon
    thread until :meth:`close` (or the end of a ``with``), which ends that thread and closes
    every socket the server made. Each connection is handed to ``behave(conn)`` in a daemon
    thread of its own (a peer a test plays: it ends when the client leaves or the server
    closes); a subclass may say otherwise in :meth:`handle`.

    Why the close shuts the listener down first: ``close()`` alone does not wake a thread
    blocked in ``accept()`` (Linux), so the port went on listening after the test and took the
    next connection to it, never closed."""

    #: how long :meth:`close` waits for the accepting thread (s)
    CLOSE_WAIT_S = 2.0

    def __init__(self, behave: Callable[[socket.socket], None] | None = None, *, everywhere: bool = False) -> None:
        """``everywhere``: listening on every address of the machine, both families where it can
        (``::`` dual-stack, else 0.0.0.0), as a server bound to 0.0.0.0 is reached at 127.0.1.1, ::1
        and the machine's LAN address too."""
        self.behave = behave
        if not everywhere:
            self.listener = socket.create_server(("127.0.0.1", 0))
        elif socket.has_dualstack_ipv6():
            self.listener = socket.create_server(("", 0), family=socket.AF_INET6, dualstack_ipv6=True)
        else:
            self.listener = socket.create_server(("0.0.0.0", 0))
        self.port: int = self.listener.getsockname()[1]
        self.url = f"socket://127.0.0.1:{self.port}"
        #: set at :meth:`close`: a handler that loops or waits ends on it
        self.stop = threading.Event()
        self.socks: list[socket.socket] = []
        self.lock = threading.Lock()
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:  # the listener was shut down
                return
            self.keep(conn)
            if not self.stop.is_set():
                self.handle(conn)

    def handle(self, conn: socket.socket) -> None:
        """What a connection gets (in the accepting thread: what blocks goes in a thread):
        ``behave(conn)`` in a thread, the connection closed after; without ``behave``, nothing:
        it stays open until :meth:`close`."""
        if self.behave is not None:
            threading.Thread(target=self._serve, args=(self.behave, conn), daemon=True).start()

    @staticmethod
    def _serve(behave: Callable[[socket.socket], None], conn: socket.socket) -> None:
        try:
            with conn:
                behave(conn)
        except OSError:  # the client left, or the server closed
            pass

    def keep(self, *socks: socket.socket) -> None:
        """Close ``socks`` with the server (at :meth:`close_connections` or :meth:`close`)."""
        with self.lock:
            self.socks += socks

    def close_connections(self) -> None:
        """Shut down and close every socket kept so far (shutdown first: it wakes a thread
        blocked in ``recv`` on it and sends the FIN now)."""
        with self.lock:
            socks, self.socks = self.socks, []
        for s in socks:
            _shut(s)

    def close(self) -> None:
        self.stop.set()
        _shut(self.listener)
        self._accepting.join(self.CLOSE_WAIT_S)
        self.close_connections()

    def __enter__(self) -> "LoopbackServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shut(s: socket.socket) -> None:
    """``shutdown`` then ``close``, each whatever the other did (a socket already gone)."""
    for end in (lambda: s.shutdown(socket.SHUT_RDWR), s.close):
        try:
            end()
        except OSError:
            pass


class Proxy(LoopbackServer):
    """A TCP forwarder to ``target`` (a database, a served device) that a test can cut (reset
    every connection, refuse new ones) or make a black hole (:meth:`drop`: connections stay
    open, every byte either way is swallowed — an unplugged serial cable, a frozen serial server
    whose buffers are lost), then :meth:`restore`. ``cut_on``: a byte string whose next sending
    from the client side cuts that connection instead of passing on (``cuts`` times), as a TCP
    serial server that drops the line in the middle of a command. ``reply``: rewrites what the
    server sends back (see :attr:`reply`)."""

    def __init__(self, target: tuple[str, int], *, cut_on: bytes | None = None, cuts: int = 1,
                 reply: Callable[[bytes, bytes], bytes] | None = None):
        self.target = target
        self.cut_on, self.cuts = cut_on, cuts
        #: ``reply(last bytes from the client, bytes from the server)``: what the client gets
        #: instead (a device answering otherwise: a reply sent twice, a register's other value),
        #: or a list of pieces sent 10 ms apart (a float in the list: a pause of that many seconds)
        self.reply = reply
        self.last_request = b""
        #: bytes sent to the server just before the client's next request (another client on a
        #: shared line, a front panel): see :meth:`inject`
        self.injected = b""
        self.up = True
        self.dropping = False
        super().__init__()

    def handle(self, client: socket.socket) -> None:
        if not self.up:
            client.close()
            return
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        self.keep(server)
        for a, b, watch in ((client, server, True), (server, client, False)):
            threading.Thread(target=self._pipe, args=(a, b, watch), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket, watch: bool = False) -> None:
        try:
            while data := a.recv(65536):
                if watch and self.cut_on is not None and self.cut_on in data and self.cuts > 0:
                    self.cuts -= 1
                    break  # the connection is closed, the command never arrives
                if watch:
                    self.last_request = data
                    if self.injected:
                        data, self.injected = self.injected + data, b""
                elif self.reply is not None:
                    data = self.reply(self.last_request, data)
                if isinstance(data, list):  # pieces, 10 ms apart (a reply, then a late one)
                    for k, piece in enumerate(data):
                        if isinstance(piece, float):  # a pause of that many seconds instead
                            time.sleep(piece)
                            continue
                        if k and not isinstance(data[k - 1], float):
                            time.sleep(0.01)
                        if not self.dropping:
                            b.sendall(piece)
                    continue
                if not self.dropping:
                    b.sendall(data)
        except OSError:
            pass
        finally:
            # shutdown first: close() alone neither wakes the other direction's thread, blocked
            # in recv on the same socket, nor sends the FIN until that recv ends (the server side
            # has a 5 s timeout): a served device's line stayed taken ~4 s after its client left,
            # and a test's next client there was turned away meanwhile
            _shut(a)
            _shut(b)

    def cut(self) -> None:
        self.up = False
        self.close_connections()

    def inject(self, data: bytes) -> None:
        """Send ``data`` to the server ahead of the client's next request, as another client on
        the line would (its reply reaches the client unasked)."""
        self.injected = data

    def drop(self) -> None:
        self.dropping = True

    def restore(self) -> None:
        self.up, self.dropping = True, False

    def close(self) -> None:
        self.up = False
        super().close()


def profile_with_addresses(profile: Path, addresses: dict[str, str], out: Path) -> Path:
    """A copy of ``profile`` whose devices' link urls are the ones ``sim serve`` printed (ptys,
    ``socket://`` ports chosen by ``--tcp 0``), written to ``out``."""
    import yaml

    data = yaml.safe_load(Path(profile).read_text())
    for role, cfg in data["devices"].items():
        link = cfg.get("link") if isinstance(cfg, dict) else None
        if link and link.get("kind") == "serial" and role in addresses:
            link["url"] = addresses[role]
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


@pytest.fixture
def castrig_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """:func:`castrig` as a fixture."""
    return castrig


@pytest.fixture
def free_tcp_port() -> int:
    """A loopback TCP port that was free a moment ago (never a fixed one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_tcp_ports(n: int) -> list[socket.socket]:
    """``n`` consecutive loopback TCP ports, bound (not listening) so that nothing else takes
    them until the caller closes each: ``sim serve --tcp BASE`` serves its devices on BASE,
    BASE + 1, ...; a base port merely free a moment ago, with its neighbours never looked at,
    met one in use by another test's connection now and then."""
    for _ in range(100):
        first = socket.socket()
        first.bind(("127.0.0.1", 0))
        socks = [first]
        base = first.getsockname()[1]
        try:
            for k in range(1, n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + k))
            return socks
        except OSError:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free loopback ports")


def castrig_killed_9(*args: str, data: Path, ready: Callable[[Path], Any], timeout_s: float = 60.0,
                     **env: str) -> Path:
    """``castrig ARGS`` killed with SIGKILL (no handler runs) as soon as ``ready(run_dir)`` is
    truthy for the one run folder under ``data`` (polled as any reader reads it); that folder.
    ``env``: more environment for it (``CASTRIG_STORE=…``)."""
    proc = start_castrig(*args, **env)
    try:
        def reached() -> Path | None:
            run_dir = only_run_dir(data)
            if run_dir is not None and ready(run_dir):
                return run_dir
            if proc.poll() is not None:
                raise AssertionError(f"castrig {args[0]} ended (exit {proc.returncode}) before the crash point")
            return None

        run_dir = wait_until(reached, timeout_s=timeout_s, what="the crash point")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        return run_dir
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def run_then_kill_9(recipe: Path, data: Path, ready: Callable[[Path], Any], *, timeout_s: float = 60.0,
                    args: tuple[str, ...] = (), **env: str) -> Path:
    """``castrig run RECIPE --data DATA -q`` killed -9 at ``ready`` (:func:`castrig_killed_9`)."""
    return castrig_killed_9("run", str(recipe), "--data", str(data), "-q", *args, data=data, ready=ready,
                            timeout_s=timeout_s, **env)


# -- `castrig serve` and a wall-clock twin, shared by the operator tests (tests/serve) ------------
@dataclass
class Served:
    """A running ``castrig serve``: its process, the URL and token file it printed, the token."""

    proc: subprocess.Popen[str]
    url: str
    token_file: Path

    @property
    def token(self) -> str:
        return self.token_file.read_text().strip()


@contextmanager
def castrig_serve_process(data: Path, *args: str, ready_s: float = 30.0, env: dict[str, str] | None = None) -> Iterator[Served]:
    """``castrig serve --data DATA --port 0 ARGS...`` (``env``: more environment), once it printed
    ``{"url", "token_file"}``; stopped with SIGINT (then killed) on the way out."""
    proc = start_castrig("serve", "--data", str(data), "--port", "0", *args, **(env or {}))
    try:
        ready, _, _ = select.select([proc.stdout], [], [], ready_s)
        line = proc.stdout.readline() if ready else ""  # type: ignore[union-attr]
        if not line:
            proc.kill()
            raise AssertionError(f"castrig serve printed nothing within {ready_s} s: {proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        info = json.loads(line)
        yield Served(proc, info["url"], Path(info["token_file"]))
    finally:
        stop_server(proc)


def raw_get(url: str, path: str, *, host: str | tuple[str, ...] | None = None,
            token: str | None = None) -> tuple[int, str, dict[str, str]]:
    """``GET path`` from the server at ``url`` over http.client, sending ``host`` as the Host header
    byte for byte (a tuple: one Host line each; None: http.client's own), which requests or httpx
    would normalise; ``(status, body, headers)``, header names lower case."""
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    try:
        conn.putrequest("GET", path, skip_host=host is not None)
        for value in (host,) if isinstance(host, str) else host or ():
            conn.putheader("Host", value)
        if token is not None:
            conn.putheader("Authorization", f"Bearer {token}")
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace"), {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


@pytest.fixture
def castrig_serve() -> Callable[..., AbstractContextManager[Served]]:
    """``with castrig_serve(data) as served:`` (extra ``castrig serve`` arguments after ``data``)."""
    return castrig_serve_process


# One ``castrig serve`` shared by the tests of a module that only read through it (each started its
# own, ~0.6 s of CPU): its stderr read as it grows, so each test still checks that nothing it asked
# left a traceback in the server's log.
class SharedServer:
    """A started ``castrig serve`` (conftest ``Served``) whose log is read as it grows:
    ``mark()`` where it stands now, ``log_since(mark)`` what came after, ``whole_log()`` all of
    it once stopped as Ctrl-C would (the module's end: a traceback written after a test's last
    look still fails there)."""

    def __init__(self, served) -> None:
        self.served, self.url, self.proc, self.token = served, served.url, served.proc, served.token
        self._log = b""
        os.set_blocking(served.proc.stderr.fileno(), False)

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.proc.stderr.fileno(), 65536)
            except BlockingIOError:
                return
            if not chunk:
                return
            self._log += chunk

    def mark(self) -> int:
        self._read()
        return len(self._log)

    def log_since(self, mark: int) -> str:
        """What the server wrote to stderr since ``mark`` (after a moment: uvicorn logs a
        request's traceback after its 500 is sent)."""
        time.sleep(0.3)
        self._read()
        return self._log[mark:].decode(errors="replace")

    def whole_log(self) -> str:
        """Stop it as Ctrl-C would; all it wrote to stderr."""
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=10)
        os.set_blocking(self.proc.stderr.fileno(), True)
        self._read()
        return self._log.decode(errors="replace")


def make_study(folder: Path, name: str = "map-claim1") -> tuple[str, str]:
    """A map study over the 2 × 2 grid in FOLDER/study.journal, every point queued, none run."""
    from castrig.explore.distributed import start_map, storage_url
    from castrig.explore.gridmap import Grid
    from castrig.explore.search import make_settings

    settings = make_settings(grade="claim1", target_d_um=3.0, profile_path=ROOT / "hw_profiles" / "sim.yaml", budget=1)
    url = storage_url(None, folder)
    start_map(url, name, settings, Grid([60.0, 70.0], [5.0, 10.0], [0.2], 2.0, [1]))
    return url, name


@pytest.fixture(scope="session")
def finished_demo_run(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> tuple[Path, str]:
    """``castrig run recipes/demo.yaml --operator ada`` to the end, once per pytest session: the
    first xdist worker to ask runs it (under a file lock), each test process gets its own copy
    of the data root (the serve tests read it: copy the run folder before spoiling it);
    ``(data root, run id)``."""
    def make(data: Path) -> None:
        res = castrig("run", str(ROOT / "recipes" / "demo.yaml"), "--data", str(data), "-q", "--operator", "ada")
        assert res.returncode == 0, res.stderr

    data = made_once(tmp_path_factory, worker_id, "demo-run", make)
    (run_json,) = data.glob("*/run.json")
    return data, run_json.parent.name


def drop_micrographs(run_dir: Path) -> None:
    """Take a run folder's micrographs out (rows and files): for tests of what a report does with
    the rest, since each report loads every micrograph and draws it (the demo run's six: ~0.1 s
    of CPU with the segmentation the run kept, ~1.2 s more for a run that kept none)."""
    import shutil
    import sqlite3

    with sqlite3.connect(run_dir / "run.sqlite") as db:
        db.execute("DELETE FROM images")
    shutil.rmtree(run_dir / "images", ignore_errors=True)
    shutil.rmtree(run_dir / "segmentation", ignore_errors=True)


@pytest.fixture
def wall_sim_profile(tmp_path: Path) -> Path:
    """The default twin profile (hw_profiles/sim.yaml) on the wall clock, sampling every second:
    a live run that moves at the speed an operator watches it."""
    import yaml

    data = yaml.safe_load((ROOT / "hw_profiles" / "sim.yaml").read_text())
    data["clock"] = "wall"
    data["control"]["sample_period_s"] = 1.0
    path = tmp_path / "sim-wall.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# -- headless Chromium (Selenium), for pages people look at ---------------------------------------
def browser() -> Any:
    """Debian's chromium through its chromedriver; skipped with a reason when absent (failed under CI)."""
    import shutil

    exe = os.environ.get("CASTRIG_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("CASTRIG_CHROMEDRIVER") or shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        exe = None
    if not exe or not driver:
        reason = "headless Chromium or its driver not installed (Debian `chromium chromium-driver`: .ci/chromium.sh; pip selenium)"
        if os.environ.get("CI"):
            pytest.fail(reason + " — required under CI")
        pytest.skip(reason)
    opts = webdriver.ChromeOptions()
    opts.binary_location = exe
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
              "--window-size=1300,2400", "--no-first-run", "--force-device-scale-factor=1"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


@pytest.fixture
def chrome() -> Iterator[Any]:
    """A headless Chromium for the test, quit after it."""
    d = browser()
    yield d
    d.quit()


def csp_violations(driver: Any) -> list[str]:
    """The Content-Security-Policy refusals in the browser's console since it was last read
    (reading empties it): what the page tried to load or run that its policy stopped."""
    return [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]


# -- mounts (as root): a read-only folder, a small disk -------------------------------------------
@pytest.fixture
def mounts():
    """``mounts(prefix, *commands)``: a new folder, each command run with the folder as its last
    argument (needs root and mount permission, else skip); unmounted after the test."""
    mounted: list[str] = []

    def mount(prefix: str, *commands: list[str]) -> Path:
        d = tempfile.mkdtemp(prefix=prefix)
        for cmd in commands:
            done = subprocess.run([*cmd, d], capture_output=True, text=True)
            if done.returncode != 0:
                subprocess.run(["umount", d], capture_output=True)
                os.rmdir(d)
                pytest.skip(f"cannot {' '.join(cmd[:3])} ({done.stderr.strip() or 'not root'})")
        mounted.append(d)
        return Path(d)

    yield mount
    for d in mounted:
        subprocess.run(["umount", "-l", d], capture_output=True)
        os.rmdir(d)


@pytest.fixture
def read_only_mount(mounts):
    """``read_only_mount(folder)``: ``folder`` bind-mounted read-only (even root cannot write
    there); skipped when mounting is not permitted."""
    return lambda src: mounts("castrig-ro-", ["mount", "--bind", str(src)], ["mount", "-o", "remount,ro,bind"])


# -- lots: a graded run folder without running (tests/lots) ---------------------------------------
def add_graded_run(root: Path, name: str, metrics: dict[str, Any], outcome: str = "completed") -> str:
    """A run folder as the runner leaves it (results ``metrics`` and their verdict, outcome,
    catalog row) under data root ``root``, without running; its run id (a lot when it met a grade)."""
    from castrig.analysis.verdict import judge
    from castrig.store import RunInfo, open_store

    store = open_store(root)
    rec = store.create_run(RunInfo(run_id=f"20260101-000001-{name}", recipe_name=name, recipe_path="", profile_name="sim",
                                   profile_path="", software_version="t", seed=None, operator="", started_utc="2026-01-01T00:00:01Z"))
    verdict = judge(metrics).to_dict()
    rec.save_result(1.0, "metrics", metrics)
    rec.save_result(1.0, "verdict", verdict)
    rec.update_info(outcome=outcome, ended_utc="2026-01-01T00:10:00Z")
    store.index_run(rec, verdict["grades_met"] if outcome == "completed" else [])
    rec.close()
    return rec.info.run_id


def add_membrane_run(root: Path, run_id: str, metrics: list[dict[str, Any]], *, simulated: bool = False) -> list[str]:
    """A completed run folder ``run_id`` under data root ``root`` as the runner leaves it now: one
    judged membrane ``RUN-mK`` per ``metrics`` (K from 1), a lot where it met a grade; its lot ids."""
    from castrig.analysis.verdict import judge
    from castrig.store import MembraneRecord, RunInfo, open_store

    store = open_store(root)
    rec = store.create_run(RunInfo(run_id=run_id, recipe_name=run_id.rsplit("-", 1)[-1], recipe_path="", profile_name="p",
                                   profile_path="", software_version="t", seed=1 if simulated else None, operator="",
                                   started_utc="2026-01-01T00:00:01Z", virtual_time=simulated))
    lots, grades = [], set()
    for k, m in enumerate(metrics, 1):
        verdict = judge(m)
        mid = f"{run_id}-m{k}"
        rec.save_result(1.0, f"{mid}/metrics", m)
        rec.save_membrane(MembraneRecord(mid, k, k, "judged", support_position=k, simulated=simulated, metrics=m,
                                         verdict=verdict.to_dict(), grades_met=list(verdict.met), target_grade="claim1",
                                         target_met="claim1" in verdict.met, lot_id=mid if verdict.met else None))
        lots += [mid] if verdict.met else []
        grades |= set(verdict.met)
    rec.update_info(outcome="completed", ended_utc="2026-01-01T08:00:00Z")
    store.index_run(rec, sorted(grades))
    rec.close()
    return lots


def run_folder_copies(root: Path, n: int, metrics: list[dict[str, Any]] | None = None) -> list[Path]:
    """``n`` completed run folders under data root ``root`` that no catalog row names yet: one
    :func:`add_membrane_run` (under ``root``.src) copied ``n`` times, each copy its own run id
    (run.json's and the folder's), as a data root restored from a backup holds them. Cheap: a
    copy of three small files per folder."""
    import shutil

    src_root = root.with_name(root.name + ".src")
    add_membrane_run(src_root, "20260101-000001-one", metrics or [membrane_metrics(3.0)])
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        run_id = f"20260102-{k:06d}-copy"
        folder = root / run_id
        shutil.copytree(src_root / "20260101-000001-one", folder, ignore=shutil.ignore_patterns("*.lock", "*-wal", "*-shm"))
        info = json.loads((folder / "run.json").read_text())
        (folder / "run.json").write_text(json.dumps({**info, "run_id": run_id}))
        out.append(folder)
    return out


def linked_run_copies(data: Path, src_run_dir: Path, n: int) -> list[Path]:
    """``n`` run folders ``20261101-NNNNNN-demo`` under ``data``, oldest first, started a second
    apart from 2026-11-01: each its own run.json (``src_run_dir``'s, its run id and start time
    changed), all sharing one copy of its run.sqlite by hard links (read only: copy it into a
    folder before writing there). A thousand runs in a fraction of a second."""
    import shutil

    records = data.with_name(data.name + "-run.sqlite")
    shutil.copy(src_run_dir / "run.sqlite", records)
    info = json.loads((src_run_dir / "run.json").read_text())
    data.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        d = data / f"20261101-{i:06d}-demo"
        d.mkdir()
        os.link(records, d / "run.sqlite")
        started = f"2026-11-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"
        (d / "run.json").write_text(json.dumps({**info, "run_id": d.name, "started_utc": started}))
        out.append(d)
    return out


def catalogue(data: Path, grades: str = "") -> None:
    """A catalog row for every run folder under ``data``, from its run.json, written at once by
    the store's own writer: the catalog the first ``castrig runs`` leaves, without reading each
    folder's database (``grades``: what every row says its run met)."""
    from castrig.store.sqlite_store import SqliteRunStore

    rows = []
    for d in sorted(p for p in data.iterdir() if (p / "run.json").is_file()):
        i = json.loads((d / "run.json").read_text())
        rows.append((i["run_id"], str(d.resolve()), i.get("recipe_name", ""), i.get("profile_name", ""),
                     i.get("operator", ""), i.get("started_utc"), i.get("ended_utc"), i.get("outcome", "running"), grades))
    SqliteRunStore(data)._index_rows(rows)


def crashed_membrane_run(root: Path, run_id: str, recipe_name: str = "night") -> Path:
    """A run folder under data root ``root`` as ``castrig run`` leaves it when killed -9 during
    m2's evaporation: the catalog row written at the start (running, no grades), m1 judged (met
    claims 1-4, a lot), m2 forming, the folder's lock gone with the process; its folder."""
    from castrig.analysis.verdict import judge
    from castrig.store import MembraneRecord, RunInfo, open_store

    rec = open_store(root).create_run(RunInfo(run_id=run_id, recipe_name=recipe_name, recipe_path="", profile_name="p",
                                              profile_path="", software_version="t", seed=None, operator="",
                                              started_utc="2026-01-01T00:00:01Z"))
    m = membrane_metrics(3.0)
    verdict = judge(m)
    rec.save_membrane(MembraneRecord(f"{run_id}-m1", 1, 3, "judged", support_position=1, metrics=m, verdict=verdict.to_dict(),
                                     grades_met=list(verdict.met), target_grade="claim1", target_met=True, lot_id=f"{run_id}-m1"))
    rec.save_membrane(MembraneRecord(f"{run_id}-m2", 2, 8, "forming", support_position=2))
    rec.close()  # the lock goes as with a kill -9; run.json still says running
    return rec.run_dir


def step_running(step: int, after_s: float = 0.0) -> Callable[[Path], bool]:
    """``ready(run_dir)`` for :func:`run_then_kill_9` and ``wait_until``: step ``step`` (0-based)
    has run ``after_s`` of run clock (its start in the journal, a sample that late)."""
    def ready(run_dir: Path) -> bool:
        start = run_rows(run_dir, f"select max(t_s) from journal where step_index={step} and state='started'")
        if not start or start[0][0] is None:
            return False
        last = run_rows(run_dir, "select max(t_s) from samples")[0][0]
        return last is not None and last >= start[0][0] + after_s

    return ready


@contextmanager
def held_running_run(root: Path, name: str = "held") -> Iterator[Path]:
    """A run folder under data root ``root`` that readers see as ``running`` — this process owns
    it, as a runner does — without running anything (no subprocess, no twin): for what a live
    run's readers do (``castrig serve``'s streams). Its folder; released on the way out."""
    from castrig.store import RunInfo, open_store

    rec = open_store(root).create_run(RunInfo(run_id=f"20260101-000001-{name}", recipe_name=name, recipe_path="", profile_name="sim",
                                              profile_path="", software_version="t", seed=None, operator="",
                                              started_utc="2026-01-01T00:00:01Z"))
    try:
        yield rec.run_dir
    finally:
        rec.close()


# -- damaged run folders, as `castrig report` names them (tests/store, tests/serve) ---------------
#: ``{damage: (file in the run folder, spoil(path), what the reason says)}``
RUN_FOLDER_DAMAGES: dict[str, tuple[str, Callable[[Path], Any], str]] = {
    "truncated_json": ("run.json", lambda p: p.write_text(p.read_text()[:50]), "run.json is not valid JSON"),
    "json_list": ("run.json", lambda p: p.write_text("[1, 2]"), "not an object"),
    "empty_sqlite": ("run.sqlite", lambda p: p.write_bytes(b""), "run.sqlite is empty"),
    "garbage_sqlite": ("run.sqlite", lambda p: p.write_bytes(os.urandom(8192)), "run.sqlite"),
    # a named pipe for run.json (whoever may write the data root): `castrig runs`, `status`, the
    # served run list and the queue waited for ever on its open, for a writer that never came
    "json_fifo": ("run.json", lambda p: (p.unlink(), os.mkfifo(p)), "run.json is not a regular file"),
    # a named pipe for the rollback journal SQLite opens beside run.sqlite: every reader (the served
    # runs list, each request taking a server thread for ever; `castrig runs`, `report`) waited on it
    "journal_fifo": ("run.sqlite", lambda p: os.mkfifo(p.with_name("run.sqlite-journal")), "run.sqlite-journal is not a regular file"),
    # a link for the WAL SQLite opens beside run.sqlite (SQLite makes none): a writer's open failed
    # ('unable to open database file'), `castrig store sync` ended in that traceback
    "wal_link": ("run.sqlite", lambda p: p.with_name("run.sqlite-wal").symlink_to("run.json"), "run.sqlite-wal is a symbolic link"),
}


def _set_run_json_field(name: str, value: Any) -> Callable[[Path], None]:
    def spoil(p: Path) -> None:
        data = json.loads(p.read_text())
        data[name] = value
        p.write_text(json.dumps(data))
    return spoil


#: One hand-edited run.json field of the wrong JSON type (audit 3: `started_utc: 12345` in one
#: folder crashed `castrig runs`, `lots` and serve's `/?since=` for the whole data root).
RUN_JSON_FIELD_DAMAGES: dict[str, tuple[str, Callable[[Path], Any], str]] = {
    "started_utc_number": ("run.json", _set_run_json_field("started_utc", 12345), "field started_utc: expected a string"),
    "started_utc_null": ("run.json", _set_run_json_field("started_utc", None), "field started_utc: expected a string"),
    "ended_utc_number": ("run.json", _set_run_json_field("ended_utc", 5), "field ended_utc: expected a string or null"),
    "operator_list": ("run.json", _set_run_json_field("operator", []), "field operator: expected a string"),
    "recipe_string": ("run.json", _set_run_json_field("recipe", "demo"), "field recipe: expected an object"),
    "profile_string": ("run.json", _set_run_json_field("profile", "sim"), "field profile: expected an object"),
}
RUN_FOLDER_DAMAGES.update(RUN_JSON_FIELD_DAMAGES)


#: A reader that keeps a read transaction open on the SQLite database given (``python -c
#: HOLD_OPEN DB``), as a database browser does: it prints the samples it sees, then holds.
HOLD_OPEN = """
import sqlite3, sys, time
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, isolation_level=None)
db.execute("BEGIN")
print(db.execute("select count(*) from samples").fetchone()[0], flush=True)
time.sleep(600)
"""


def hold_rig(reap: Callable[[subprocess.Popen[Any]], subprocess.Popen[Any]], profile: Path) -> subprocess.Popen[str]:
    """A process of its own that owns ``profile``'s devices (castrig's claim_rig, as a run takes
    them, purpose 'castrig run night.yaml') until it is killed (``reap``)."""
    owner = reap(subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from castrig.rig.ownership import claim_rig; "
         "from castrig.rig.profile import load_profile; "
         f"claim_rig(load_profile({str(profile)!r}), purpose='castrig run night.yaml'); "
         "print('owned', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True))
    assert owner.stdout is not None and owner.stdout.readline().strip() == "owned"
    return owner


# -- a sitecustomize hook in the processes a test starts (a kill point, a slow disk) ---------------
def with_sitecustomize(tmp_path: Path, code: str) -> dict[str, str]:
    """The environment (``PYTHONPATH``) under which every Python process a test starts runs
    ``code`` first, as its ``sitecustomize`` (written to a new folder under ``tmp_path``; the
    test's own PYTHONPATH kept after it): ``castrig(..., **with_sitecustomize(tmp_path, HOOK))``."""
    hook = Path(tempfile.mkdtemp(prefix="sitecustomize-", dir=tmp_path))
    (hook / "sitecustomize.py").write_text(code)
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)}


#: A sitecustomize (:func:`with_sitecustomize`) that kills the process with SIGKILL at moment
#: ``$KILL_AT`` of making its run folder (SqliteRunStore.create_run): ``mkdir`` (made, not yet
#: owned: an empty folder), ``lock`` (owned: run.lock alone), ``run_json`` (run.json written to
#: its temporary, not renamed), ``journal`` (the database's first transaction: an empty run.sqlite
#: and its rollback journal), ``wal_header`` (the switch to WAL done: run.sqlite is its header page).
#: (Not a :func:`signal_self`: its ``journal`` moment is a progress handler's, inside SQLite, not a call's.)
KILL_WHILE_MAKING = """
import os, signal, sqlite3
from pathlib import Path
import castrig.store.sqlite_store as s
_at = os.environ["KILL_AT"]
def _die(*_a):
    os.kill(os.getpid(), signal.SIGKILL)
if _at == "mkdir":
    s.claim_run = lambda run_dir, **kw: _die()
elif _at == "lock":
    _claim = s.claim_run
    s.claim_run = lambda run_dir, **kw: (_claim(run_dir, **kw), _die())
elif _at == "run_json":
    _replace = os.replace
    os.replace = lambda src, dst, *a, **kw: _die() if Path(dst).name == "run.json" else _replace(src, dst, *a, **kw)
else:
    _sq_connect, _connect = sqlite3.connect, s.connect
    def _sq(path, *a, **kw):
        conn = _sq_connect(path, *a, **kw)
        journal = Path(str(path) + "-journal")
        if _at == "journal" and Path(str(path)).name == "run.sqlite":
            conn.set_progress_handler(lambda: _die() if journal.exists() else 0, 1)
        return conn
    def _conn(path, *a, **kw):
        conn = _connect(path, *a, **kw)
        if _at == "wal_header" and Path(path).name == "run.sqlite":
            _die()
        return conn
    s.sqlite3.connect, s.connect = _sq, _conn
"""


def signal_self(target: str, sig: str, *, when: str = "True", after: bool = False, once: str | None = None,
                times: str = "1", prelude: str = "", prepare: str = "", then: str = "") -> str:
    """A sitecustomize (:func:`with_sitecustomize`): the process sends itself a signal at a seeded
    moment -- a call of ``target`` (``"module:name"`` or ``"module:Class.method"``) for which
    ``when`` holds, before the call or (``after``) once it has returned; ``"module"`` alone: as
    that module is first imported, before its code runs. The module is patched as it is imported
    (never imported early: the process imports what it would, when it would).

    ``sig``: a signal's name (``"SIGKILL"``), or ``"$VAR"`` for the name in that environment variable.
    ``when``: a Python expression over the call -- ``args``, ``kw``, ``result`` (None before the
    call), ``calls`` (this call's number, from 1), ``state`` (a dict kept from call to call) --
    with ``os``, ``sys``, ``signal``, ``time``, ``Path`` and what ``prelude`` (code run first) defines.
    ``once``: an environment variable's name, set at the first signal: no other moment signals
    (hooks joined into one sitecustomize share a moment if they share it). ``times``: how many
    signals (an expression). ``prepare``: a statement run as the moment comes, before the signal
    (a kill leaves what it made); ``then``: one run after the signal (for a signal the process survives)."""
    import zlib

    k = zlib.crc32(repr((target, sig, when, after, once, times, prelude, prepare, then)).encode())  # (names of its own: hooks are joined)
    module, _, attr = target.partition(":")
    owner, _, name = attr.rpartition(".")
    signame = f'os.environ["{sig[1:]}"]' if sig.startswith("$") else repr(sig)
    fire = (f"if ({when}){f' and not os.environ.get({once!r})' if once else ''}:\n"
            + (f"    os.environ[{once!r}] = '1'\n" if once else "")
            + (f"    {prepare}\n" if prepare else "")
            + f"    for _ in range({times}):\n"
            f"        os.kill(os.getpid(), getattr(signal, {signame}))\n"
            + (f"    {then}\n" if then else ""))

    def indented(code: str, n: int) -> str:
        return "".join(" " * n + line + "\n" for line in code.splitlines())

    if attr:  # a call: the function replaced once its module has run
        patch = (f"def _before_{k}(module):\n    pass\n"
                 f"def _after_{k}(module):\n"
                 f"    owner = module{''.join(f'.{p}' for p in owner.split('.') if p)}\n"
                 f"    original, counted, state = owner.{name}, [0], {{}}\n"
                 f"    def _hooked(*args, **kw):\n"
                 f"        counted[0] += 1\n"
                 f"        calls, result = counted[0], None\n"
                 + ("" if after else indented(fire, 8))
                 + "        result = original(*args, **kw)\n"
                 + (indented(fire, 8) if after else "")
                 + "        return result\n"
                 f"    setattr(owner, {name!r}, _hooked)\n")
    else:  # the module's import: before its code runs
        patch = (f"def _before_{k}(module, args=(), kw={{}}, result=None, calls=1, state={{}}):\n{indented(fire, 4)}"
                 f"def _after_{k}(module):\n    pass\n")
    return f"""
import os, signal, sys, time
from pathlib import Path
{prelude}
{patch}
class _Finder_{k}:
    done = False
    def find_spec(self, name, path=None, target=None):
        if name != {module!r} or self.done:
            return None
        self.done = True  # (the other finders, hooks of the same module among them, find it)
        spec = next(filter(None, (f.find_spec(name, path, target) for f in sys.meta_path
                                  if f is not self and hasattr(f, "find_spec"))), None)
        if spec is not None and spec.loader is not None:
            run = spec.loader.exec_module
            def exec_module(module):
                _before_{k}(module)
                run(module)
                _after_{k}(module)
            spec.loader.exec_module = exec_module
        return spec
if {module!r} in sys.modules:  # (already imported: os, builtins)
    _after_{k}(sys.modules[{module!r}])
else:
    sys.meta_path.insert(0, _Finder_{k}())
"""


def signal_hook(target: str, env: str, once: str = "_SIGNALLED") -> str:
    """:func:`signal_self`: the signal named in ``$env`` (e.g. ``SIGTERM``), ``$SIGNAL_TIMES`` times
    (default 1), the first time ``target`` is called (before the call runs). Hooks joined into one
    sitecustomize each fire once if each has its own ``once``; with the same, only the first moment
    reached signals."""
    return signal_self(target, f"${env}", once=once, times='int(os.environ.get("SIGNAL_TIMES", "1"))')


#: Code for :func:`signal_self`'s ``prelude``: ``_at(name, dir_fd)``, the path of a name given
#: relative to a folder held open (the control channel moves names inside folders it holds open).
DIR_FD_PATH = """
def _at(name, fd):
    return Path(os.readlink(f"/proc/self/fd/{fd}")) / name if fd is not None else Path(name)
"""


#: A sitecustomize (:func:`with_sitecustomize`): the process stops itself (SIGSTOP, as a loaded
#: machine preempts it) the moment the answer to the command file named ``$STOP_AT_ANSWER``
#: appears in control/done/ (the ``os.replace`` that publishes it), so that a reader looks at the
#: channel, and the run's records, in exactly that state.
STOP_AT_ANSWER = signal_self("os:replace", "SIGSTOP", after=True, once="_STOPPED", prelude=DIR_FD_PATH,
                             when='_at(args[1], kw.get("dst_dir_fd")).name == os.environ["STOP_AT_ANSWER"] '
                                  'and _at(args[1], kw.get("dst_dir_fd")).parent.name == "done"')


#: A sitecustomize (:func:`with_sitecustomize`): the process stops itself (SIGSTOP) as it closes
#: its rig (``Rig.close``), its run's outcome recorded and its run folder still held: what readers
#: say of a run whose process is closing (seconds on hardware).
STOP_AT_CLOSE = signal_self("castrig.rig.build:Rig.close", "SIGSTOP")


#: A sitecustomize (:func:`with_sitecustomize`) that sends the process ``$SIGNAL_AT_OUTCOME``
#: (a signal name, e.g. ``SIGTERM``) ``$SIGNAL_TIMES`` times at a seeded moment: the run has ended,
#: its rig made safe, and run.json's outcome is about to be written (the first ``update_info``
#: with an outcome other than ``running``) -- a person pressing stop again as the run winds up.
SIGNAL_AT_OUTCOME = signal_self("castrig.store.sqlite_store:SqliteRunRecorder.update_info", "$SIGNAL_AT_OUTCOME",
                                when='kw.get("outcome") not in (None, "running")', once="_SIGNALLED",
                                times='int(os.environ.get("SIGNAL_TIMES", "2"))')


#: A sitecustomize (:func:`with_sitecustomize`) that kills the process with SIGKILL — a power cut —
#: as it makes the ``$KILL_AT_RUN``-th run's database (1: the first): run.json there, nothing
#: recorded, run.sqlite left ``$KILL_LEAVES`` (``empty``: 0 bytes; else not there). What
#: readers call a folder that "never started".
KILL_AT_CREATION = signal_self(
    "castrig.store.sqlite_store:connect", "SIGKILL",
    when='Path(args[0]).name == "run.sqlite" and not Path(args[0]).exists() '
         'and state.setdefault("made", []).append(args[0]) is None and len(state["made"]) == int(os.environ["KILL_AT_RUN"])',
    prepare='Path(args[0]).touch() if os.environ["KILL_LEAVES"] == "empty" else None')


#: ``$SIGNAL_AT_SAFE_STATE`` as the runner starts making the rig safe (its first ``make_safe``):
#: an operator pressing Ctrl-C again and again while the run winds up.
SIGNAL_AT_SAFE_STATE = signal_hook("castrig.recipe.runner:make_safe", "SIGNAL_AT_SAFE_STATE")

#: ``$SIGNAL_AT_RIG_CLOSE`` as the rig is closed after its run (``Rig.close``): the run has ended,
#: its outcome is written and its own signal handlers are gone -- a stop landing in the last moments.
SIGNAL_AT_RIG_CLOSE = signal_hook("castrig.rig.build:Rig.close", "SIGNAL_AT_RIG_CLOSE")

#: ``$SIGNAL_AT_RIG_OPEN`` as a run's rig starts being opened (``open_owned_rig``, the first time) --
#: before the run's own signal handlers are installed: ``systemctl stop`` of a queue between runs.
SIGNAL_AT_RIG_OPEN = signal_hook("castrig.rig.ownership:open_owned_rig", "SIGNAL_AT_RIG_OPEN")

#: ``$SIGNAL_AT_CLOSE_RIG`` as the rig's close is called (``session._close_rig``): the run's own
#: handlers just gone, the rig not yet closed; and ``$SIGNAL_AT_KEEP_CODE`` as ``castrig run`` or
#: ``resume`` starts keeping its exit code (``session.keep_exit_code``): the rig closed, the close's
#: Ctrl-C handler done with. The two moments a run's signal handlers are handed on.
SIGNAL_AT_HANDOVERS = (signal_hook("castrig.recipe.session:_close_rig", "SIGNAL_AT_CLOSE_RIG", once="_SIGNALLED_CLOSE")
                       + signal_hook("castrig.recipe.session:keep_exit_code", "SIGNAL_AT_KEEP_CODE", once="_SIGNALLED_KEEP"))

# -- a damaged Optuna study journal (tests/explore, tests/serve) ----------------------------------------
def spoil_journal_line(journal: Path, line: int) -> bytes:
    """NUL bytes over line ``line`` (1-based) of a study journal, its newline kept -- what a power
    cut leaves of a write the disk had not flushed, with the entries after it appended later; the
    journal's bytes as spoilt."""
    lines = Path(journal).read_bytes().splitlines(keepends=True)
    lines[line - 1] = b"\0" * (len(lines[line - 1]) - 1) + b"\n"
    Path(journal).write_bytes(b"".join(lines))
    return Path(journal).read_bytes()


# -- a membrane's metrics, as the analysis reports them (explore and lots tests) --------------------
def membrane_metrics(d: float, *, through: float = 0.9, opening: float = 0.6) -> dict[str, Any]:
    """Metrics of a membrane with mean pore diameter ``d`` µm that meets claim 1 to 4 at the
    defaults (D <= 20 for claims 3 and 4); ``through`` (through-pore fraction) and ``opening``
    (opening ratio) move it across their bounds. Claim 1's penetration and communication are
    the section's (issue 16)."""
    return {"opening_ratio": opening, "mean_pore_diameter_um": d, "pore_diameter_std_um": 0.1 * d, "through_pore_fraction": through,
            "mean_thickness_um": 0.5 * d, "thickness_std_um": 0.05 * d, "support_pore_diameter_um": 2 * d, "pore_count": 100,
            "penetration_depth_um": 1.0, "penetration_fraction": 0.2, "pore_communication": 0.5, "support_continuity": 0.6}


# -- the CLI in this process, for what is refused before anything runs ------------------------------
def castrig_main(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """``castrig ARGS`` through the CLI's own entry point in this process (its exit code and
    output, as :func:`castrig` returns them): for refusals checked before anything runs, and for
    what only reads a run folder or leaves it a command file (runs, status, lots, export, report,
    abort), where a subprocess's start-up (0.2-0.6 s of CPU) is most of the cost. What runs the
    rig, or needs a process of its own (signals, a lock the test holds, an environment read at
    start-up, a pipe or a bound on its CPU or memory), goes through :func:`castrig`."""
    from castrig.cli.main import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return subprocess.CompletedProcess(["castrig", *args], code, out.out, out.err)


# -- a secret that must never be written or printed (tests/cli/test_store_password_cli.py, explore) --
#: A password with an '@' in it too: the whole password must go, not the part before it.
STORE_PASSWORD = "Pw-7f3a9c@x"


def profile_with_store(tmp_path: Path, url: str = f"postgresql://castrig:{STORE_PASSWORD}@127.0.0.1:1/castrig_test") -> Path:
    """The default twin profile with ``store: url`` (a fleet store URL carrying a password)."""
    import yaml

    data = yaml.safe_load((ROOT / "hw_profiles" / "sim.yaml").read_text())
    data["store"] = url
    path = tmp_path / "with-store.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def files_holding(folder: Path, secret: str) -> list[str]:
    """The files under ``folder`` (relative paths) whose bytes hold ``secret``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes())


def pg_password_or_skip() -> tuple[str, str]:
    """(``CASTRIG_TEST_PG``, its password); the test is skipped without a PostgreSQL URL holding one."""
    url = os.environ.get("CASTRIG_TEST_PG", "")
    if not url:
        pytest.skip("no PostgreSQL for the tests: set CASTRIG_TEST_PG=postgresql://… (`.ci/postgres.sh` prints one)")
    userinfo = url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[0]
    if ":" not in userinfo:
        pytest.skip("CASTRIG_TEST_PG has no password to leak")
    return url, userinfo.split(":", 1)[1]


# -- PostgreSQL, the fleet store (tests/store, tests/cli) --------------------------------------------
PG_URL = os.environ.get("CASTRIG_TEST_PG", "")
NO_PG = "no PostgreSQL for the tests: set CASTRIG_TEST_PG=postgresql://… (`.ci/postgres.sh` prints one)"


def _require_pg() -> str:
    if not PG_URL:
        if os.environ.get("CI"):
            pytest.fail(NO_PG + " — required under CI")
        pytest.skip(NO_PG)
    pytest.importorskip("psycopg", reason="psycopg not installed: pip install 'castrig[postgres]'")
    return PG_URL


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """(``CASTRIG_TEST_PG``, a new PostgreSQL schema for this test, dropped afterwards); skipped
    without a server (failed under ``CI=true``)."""
    url = _require_pg()
    import uuid

    import psycopg

    schema = "t_" + uuid.uuid4().hex[:12]
    yield url, schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")  # type: ignore[arg-type]


def pg_count(url: str, schema: str, table: str, where: str = "") -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {schema}.{table} {where}").fetchone()[0])  # type: ignore[arg-type,index]


#: A sitecustomize (:func:`with_sitecustomize`): when the process has opened a run folder for the
#: ``$PAUSE_AT_OPEN``-th time (``SqliteRunStore.open_run`` returned: run.json read), it creates
#: ``$PAUSE_DIR/reached`` and waits (at most 20 s) for ``$PAUSE_DIR/go`` -- what it read goes stale
#: meanwhile (a `castrig resume` ending in that moment).
PAUSE_AFTER_OPEN_RUN = """
import os, time
from pathlib import Path
import castrig.store.sqlite_store as s
_open, _calls = s.SqliteRunStore.open_run, []
def _open_then_pause(*a, **kw):
    got = _open(*a, **kw)
    _calls.append(1)
    if len(_calls) == int(os.environ.get("PAUSE_AT_OPEN", "1")):
        d = Path(os.environ["PAUSE_DIR"])
        (d / "reached").touch()
        deadline = time.monotonic() + 20
        while not (d / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    return got
s.SqliteRunStore.open_run = _open_then_pause
"""


#: A sitecustomize (:func:`with_sitecustomize`): the process sends itself ``$SIGNAL_AT_END``
#: (e.g. ``SIGTERM``) ``$SIGNAL_TIMES`` times (default 1) after its command's outcome is recorded,
#: at the moment ``$END_MOMENT`` names: ``exit`` as the command raises its exit code (its run's
#: handlers gone), ``shutdown`` while Python shuts down (the first ``atexit`` function to run),
#: ``teardown`` as the modules are freed (after Python has put every handler written in Python
#: back to the default action).
SIGNAL_AT_END = """
import atexit, os, signal
import typer
def _signal():
    for _ in range(int(os.environ.get("SIGNAL_TIMES", "1"))):
        os.kill(os.getpid(), getattr(signal, os.environ["SIGNAL_AT_END"]))
class _AtTeardown:
    def __del__(self, _kill=os.kill, _pid=os.getpid(), _times=int(os.environ.get("SIGNAL_TIMES", "1")),
                _sig=getattr(signal, os.environ["SIGNAL_AT_END"])):
        for _ in range(_times):  # (the module's globals may be gone by now)
            _kill(_pid, _sig)
if os.environ["END_MOMENT"] == "shutdown":
    atexit.register(_signal)  # registered first: runs last, after every atexit of castrig's
elif os.environ["END_MOMENT"] == "teardown":
    _probe = _AtTeardown()  # freed with this module's globals, after Python has put the signals back
else:
    _init = typer.Exit.__init__
    def _init_then_signal(self, *a, **kw):
        _init(self, *a, **kw)
        if not os.environ.get("_SIGNALLED"):
            os.environ["_SIGNALLED"] = "1"
            _signal()
    typer.Exit.__init__ = _init_then_signal
"""


@pytest.fixture(scope="session")
def foreign_sem() -> Any:
    """benchmarks/foreign_sem.py: SEM-like top views from a generator of our own that is not the
    twin's (``sem_rims_over_flat_cores(seed, size, d_px=…) -> (8-bit image, truth)``)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import foreign_sem as module

    return module


@pytest.fixture(scope="session")
def foreign_section() -> Any:
    """benchmarks/foreign_section.py: section views from a generator of our own that is not the
    twin's (``draw_section(seed, **VIEWS[j]) -> (8-bit image, truth in px)``; the pixel size is
    ``2 / t_px`` µm)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import foreign_section as module

    return module


@pytest.fixture
def accuracy_case() -> Callable[[str, int, int], tuple[dict, dict, dict]]:
    """``accuracy_case(family, i, seed)``: case ``i`` of benchmarks/analysis_accuracy.py in
    ``family`` on ``seed`` as the benchmark measures it, ``(truth, ours, plain)`` — a miss the
    benchmark found, reproduced where it was found."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import analysis_accuracy as acc

    return lambda family, i, seed: acc.run_case(i, acc.CASES[i], 1024, seed, family)


def tiff_of_millions_of_strips(path: Path) -> None:
    """A TIFF declaring 1 × 20 000 000 px in one-row strips (20 M offsets and byte counts, a sparse
    file of 160 MB): a file another writer, or an attacker, could hand castrig."""
    import struct

    n, ntags = 20_000_000, 10
    offsets_at = 8 + 2 + 12 * ntags + 4
    counts_at = offsets_at + 4 * n
    entries = [(256, 4, 1, 1), (257, 4, 1, n), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1), (273, 4, n, offsets_at),
               (277, 3, 1, 1), (278, 4, 1, 1), (279, 4, n, counts_at), (284, 3, 1, 1)]
    ifd = struct.pack("<H", ntags) + b"".join(
        struct.pack("<HHIHH", tag, typ, count, value, 0) if typ == 3 else struct.pack("<HHII", tag, typ, count, value)
        for tag, typ, count, value in entries) + struct.pack("<I", 0)
    with open(path, "wb") as f:
        f.write(b"II*\x00" + struct.pack("<I", 8) + ifd)
        f.truncate(counts_at + 4 * n)


def numpy_calls(fn: Callable[[], Any], *names: str) -> tuple[Any, dict[str, int]]:
    """``fn()`` and how many times it called each of numpy's functions ``names`` (``bincount``,
    ...; wrapped on the numpy module for the call, so every ``np.name(...)`` counts, on any
    thread): a count of numpy passes that a loaded machine does not change, where a CPU-time
    bound would be within its noise."""
    import numpy as np

    seen = dict.fromkeys(names, 0)
    orig = {name: getattr(np, name) for name in names}

    def counting(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            seen[name] += 1
            return orig[name](*args, **kwargs)
        return call

    try:
        for name in names:
            setattr(np, name, counting(name))
        out = fn()
    finally:
        for name, f in orig.items():
            setattr(np, name, f)
    return out, seen


# --- suite diet A: a killed castrig made once, each test given a copy as if made where it is ----------
def made_once_movable(tmp_path_factory: pytest.TempPathFactory, worker_id: str, name: str, make: Callable[[Path], None]) -> Path:
    """:func:`made_once`, noting the folder ``make`` filled (``.made-at``): for a folder whose
    files name it by absolute path (a queue killed -9: its state file, its catalogue), to be
    copied by :func:`copy_as_if_made_in`. Call it from a session-scoped fixture."""
    def make_noting_where(folder: Path) -> None:
        make(folder)
        (folder / ".made-at").write_text(str(folder))

    return made_once(tmp_path_factory, worker_id, name, make_noting_where)


def copy_as_if_made_in(made: Path, dest: Path) -> Path:
    """A copy of ``made`` (:func:`made_once_movable`'s folder) in ``dest``, as if ``make`` had
    filled ``dest``: every path of the folder it was made in, in its JSON files (a queue's state,
    run.json) and in a ``catalog.sqlite``'s runs, rewritten to ``dest``. (A copy of a data root
    alone, ``mv runs``, is a moved root, which castrig reads; a queue state names its run folders
    where they were made.) For tests that each resume the same killed night their own way: one
    kill per session, not one per test (~1 s of CPU each)."""
    import shutil
    import sqlite3

    made_at = (made / ".made-at").read_text()
    shutil.copytree(made, dest, symlinks=True, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".made-at"))
    for path in dest.rglob("*.json"):
        text = path.read_text()
        if made_at in text:
            path.write_text(text.replace(made_at, str(dest)))
    for catalog in dest.rglob("catalog.sqlite"):
        db = sqlite3.connect(catalog)
        try:
            with db:
                db.execute("UPDATE runs SET run_dir = replace(run_dir, ?, ?)", (made_at, str(dest)))
        finally:
            db.close()
    return dest


# --- suite diet B ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def _module_browser() -> Iterator[Any]:
    """One headless Chromium for a module's browser tests (:func:`module_chrome`), quit after them."""
    d = browser()
    yield d
    d.quit()


@pytest.fixture
def module_chrome(_module_browser: Any) -> Any:
    """:func:`chrome` shared by a module's tests: its start and end are ~1 s of Chromium's and
    chromedriver's CPU each time. Each test gets it on a blank page, without cookies, at the
    default window size, its console read empty (what :func:`csp_violations` reads starts there)."""
    d = _module_browser
    d.get("about:blank")
    d.delete_all_cookies()
    d.set_window_size(1300, 2400)
    d.get_log("browser")
    return d
