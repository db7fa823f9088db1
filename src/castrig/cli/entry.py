"""The ``castrig`` process's entry point (``[project.scripts]`` and ``python -m castrig``).

Python takes ~0.3 s to import the CLI and build its commands. A Ctrl-C or SIGTERM in that time, before anything is
opened, ends the process as DESIGN §7 says -- 130 or 3, one line -- not with a KeyboardInterrupt
traceback or killed by the signal (-2, -15). Then Ctrl-C is KeyboardInterrupt again (the CLI says
"interrupted", 130) and, for the commands that own the rig, SIGTERM is :class:`Terminated` (3)
until the run's own handlers take over; other commands get the default SIGTERM back. Nothing
heavy is imported here.

A command that owns the rig is not suspended by Ctrl-Z (SIGTSTP) at any moment of its life, as a
run is not during its steps (rig/not_suspended.py): it says so and goes on. Outside the run's own
handlers -- the rig being opened, the run folder made, a resume making a crashed run's rig safe,
the rig closed, ``tune rh`` making the rig safe after its step test -- the shell said "Stopped":
the devices stayed owned, a resume's rig in the state a crash left it, until someone typed `fg`.
"""

import os
import signal
import sys

RUNS_THE_RIG = ("run", "resume", "queue")
#: The commands that own the rig: not suspended by Ctrl-Z from their first moment to their last.
OWNS_THE_RIG = (*RUNS_THE_RIG, "tune", "safe")


#: What a command that owns the rig says of a SIGHUP outside a run's own handlers (the terminal
#: closed, an ssh session dropped), as ``castrig run`` records it (recipe/session.py: HUNG_UP).
HUNG_UP_LINE = "terminated: SIGHUP received (the terminal closed)"

#: The command this process was started for (``castrig WORD ...``), set by :func:`main`: the CLI
#: builds only the commands of WORD's module then (castrig.cli.main: SUBCOMMANDS)
COMMAND: str | None = None


def _early(signum: int, frame: object) -> None:
    line = "interrupted" if signum == signal.SIGINT else HUNG_UP_LINE if signum == signal.SIGHUP else "terminated"
    try:
        os.write(2, (line + "\n").encode())
    except OSError:  # no terminal left to say it on (a SIGHUP): the exit code says it
        pass
    os._exit(130 if signum == signal.SIGINT else 3)


def _not_suspended(signum: int, frame: object) -> None:
    """Ctrl-Z outside the handlers of a run (or of a step test), which say more."""
    try:
        os.write(2, f"Ctrl-Z: castrig {sys.argv[1]} is not suspended (it owns the rig: stopped, it would leave the wet air "
                    "and the pumps with nobody controlling them); Ctrl-C stops it\n".encode())
    except OSError:  # no terminal left to say it on
        pass


def _standard_fds() -> None:
    """Give a closed stdin, stdout or stderr (``castrig run R >&-``, a cron line or service started
    with them closed) /dev/null, as a daemon does. Python leaves ``sys.stdout`` None then: every
    command ended in a traceback, exit 1 -- ``castrig run`` after it had made its run folder and
    opened the rig (the run left 'crashed') -- and the next file opened would have taken the fd."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:  # the lowest free fd; 0-2 are filled in order, so only when a lower one is open
            os.dup2(null, fd)
            os.close(null)
        if getattr(sys, name) is None:
            stream = open(fd, mode, encoding="utf-8", errors="backslashreplace", closefd=False)
            setattr(sys, name, stream)
            setattr(sys, f"__{name}__", stream)


def _escape(exc: UnicodeError) -> tuple[bytes, int]:
    """An encoding error handler: a byte a file name could not be decoded from (surrogateescape's
    U+DC80..U+DCFF) goes out as that byte again, any other character as its escape (``\\xb5``)."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    out = bytearray()
    for ch in exc.object[exc.start:exc.end]:
        code = ord(ch)
        out += bytes([code - 0xDC00]) if 0xDC80 <= code <= 0xDCFF else ch.encode("ascii", "backslashreplace")
    return bytes(out), exc.end


def _legible_streams() -> None:
    """Characters stdout or stderr cannot encode are written escaped (``\\xb5m``), never raised:
    under an ASCII locale (``LC_ALL=C`` with ``PYTHONUTF8=0``, ``PYTHONIOENCODING=ascii``, a cron
    or service environment) a table holding µm or ± ended ``castrig analyse`` and ``castrig lots``
    in a UnicodeEncodeError traceback (exit 1), and a run's last lines naming a folder with a
    non-ASCII character were dropped, its outcome never said. Python escapes its own stderr so."""
    import codecs

    codecs.register_error("castrig.escape", _escape)
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if getattr(stream, "errors", None) in ("strict", "surrogateescape") and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="castrig.escape")
            except (OSError, ValueError):  # (a stream already written and unflushable: left as it is)
                pass


def main() -> int:
    _standard_fds()
    _legible_streams()
    owns_the_rig = bool(sys.argv[1:2]) and sys.argv[1] in OWNS_THE_RIG
    # (under nohup SIGHUP stays ignored: the command was meant to outlive its terminal)
    hup = owns_the_rig and signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN
    for signum in (signal.SIGINT, signal.SIGTERM, *((signal.SIGHUP,) if hup else ())):
        signal.signal(signum, _early)
    if owns_the_rig:
        signal.signal(signal.SIGTSTP, _not_suspended)
    # One BLAS thread, before numpy is imported: the analysis overlaps its own stages on its own
    # threads (analysis/workers.py), and OpenBLAS's pool (a thread per core, spinning after each
    # call on the small matrices castrig solves) only took CPU from them -- `castrig analyse
    # surface` on a twin micrograph used 1.14 s of CPU with it, 0.88 s without, no slower on the
    # wall clock. A user's own setting is kept.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    global COMMAND
    COMMAND = sys.argv[1] if len(sys.argv) > 1 else None
    from castrig.cli.main import Terminated, ctrl_c, main as cli_main, raise_terminated

    # (structlog is configured by the modules that log, castrig.logs.module_logger: a command
    # that logs nothing -- check, runs, status, lots, export -- does not load it, 0.06 s of CPU)

    def ready() -> None:  # the command is built (typer's introspection, ~0.05 s more): it answers from here
        signal.signal(signal.SIGINT, ctrl_c)
        # (tune rh too: a SIGTERM as it opened or closed the rig killed it, exit 143, nothing said)
        signal.signal(signal.SIGTERM, raise_terminated if sys.argv[1:2] and sys.argv[1] in OWNS_THE_RIG else signal.SIG_DFL)
        if owns_the_rig:  # Ctrl-\ as SIGTERM (recipe/session.py: _signals), the CPU limit's SIGXCPU too
            signal.signal(signal.SIGQUIT, raise_terminated)
            signal.signal(signal.SIGXCPU, raise_terminated)
            # a closed terminal as SIGTERM too, as a run's own handlers take it: `castrig tune rh`
            # opening the rig was killed by it (exit -1, nothing said); a run, resume or queue
            # notes it from its stop_requests on (recipe/session.py)
            if hup:
                signal.signal(signal.SIGHUP, raise_terminated)
            # started in the background under `stty tostop`, a line written outside a run's own
            # handlers (rig/not_suspended.py) -- a run's last lines, a queue's between two runs --
            # stopped the process ("Stopped (tty output)"): the queue's next recipes never ran, a
            # run's devices stayed owned. Ignored for the whole command, such a write just goes out
            signal.signal(signal.SIGTTOU, signal.SIG_IGN)

    try:
        code = cli_main(ready=ready)
    except Terminated as exc:  # while an error was being said, after the run's handlers were put back
        try:
            os.write(2, f"{str(exc) or 'terminated'}\n".encode())
        except OSError:  # no terminal left (a SIGHUP)
            pass
        code = 3
    return _end(code)


def _end(code: int) -> int:
    """End the process with ``code`` once it has done what Python's exit does first -- join the
    threads that are not daemons (and their exit hooks: a thread pool's), run the ``atexit``
    functions (logging's flush, temporary folders removed, weakref finalizers), flush stdout and
    stderr -- without what it does after: take down every module and collect their objects one by
    one, 0.09-0.14 s of CPU in a ``castrig`` that ran a recipe (~600 modules: numpy, pydantic,
    structlog, typer), spent at every command's end (about a thousand of them in the test suite).
    Nothing is written by those teardowns: files are closed by the code that writes them (the log is
    line-buffered), records committed. If stdout or stderr cannot be flushed, Python's own exit
    is left to say so, as before; and so is a process under a profiler or tracer (``python -m
    cProfile -o F -m castrig run ...`` writes F after ``main`` returns: it was never written)."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return code
    import atexit
    import threading

    threading._shutdown()  # type: ignore[attr-defined]  # noqa: SLF001 - the first step of Python's exit
    atexit._run_exitfuncs()  # noqa: SLF001 - its second
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return code
    os._exit(code if isinstance(code, int) else 0)
