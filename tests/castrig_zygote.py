"""The test suite's preloaded ``castrig``: one process per pytest worker that has imported what
castrig's commands import, and forks a child for each ``castrig ARGS`` a test runs (to its end,
tests/conftest.py ``castrig()``, or in the background, ``start_castrig()``).

Why: the suite starts ~850 castrig processes, and on CI's two cores most of each one's CPU was
its start-up (~0.4-0.6 s of imports: numpy, pydantic and the models, typer, rich, structlog,
scipy) -- the larger part of the suite's 8-minute budget. A forked child is a process of its
own (its pid, its signals, its exit status, kill -9 kills it alone) that runs
``python -m castrig ARGS`` from the point where its imports are done: the same ``__main__``,
the same ``castrig.cli.entry.main``, in the test's folder, with the test's environment and
stdin/stdout/stderr. It is used only where that is the same as a fresh interpreter:
tests/conftest.py falls back to a real ``python -m castrig`` when a test limits
the process (ulimit, or limits, umask or ignored signals of its own process for the command to
inherit), passes it descriptors, or sets an environment variable that Python or a
native library reads as it starts (``PYTHON*``, locale, BLAS/numba settings) -- the start-up
tests (tests/house/test_startup_imports.py) set ``PYTHONPROFILEIMPORTTIME`` and so get a fresh
interpreter -- or asks for one (``start_castrig(..., fresh=True)``: a process the test waits on
itself). ``CASTRIG_TEST_FRESH=1`` turns it off for the whole suite.

Protocol (a Unix socket): a request is one JSON line (argv, cwd, env) with the child's stdin,
stdout and stderr passed as descriptors (SCM_RIGHTS); the answer is ``{"pid": P}`` at the fork and
``{"status": S, "cpu_s": C}`` once the child is reaped (its wait status and its CPU, as
``resource.getrusage(RUSAGE_CHILDREN)`` gives a parent).

    python tests/castrig_zygote.py SOCKET_PATH
"""

from __future__ import annotations

import array
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import threading
import time

#: what the commands import on their way (loading them here is what a child is spared)
PRELOAD = (
    "castrig.cli.entry", "castrig.cli.main", "castrig.recipe.session", "castrig.recipe.runner", "castrig.rig.build",
    "castrig.sim.twin", "castrig.sim.film_images", "castrig.recipe.analyse", "castrig.analysis.surface",
    "castrig.analysis.section", "castrig.logs", "structlog", "castrig.store.sqlite_store", "castrig.cli.analyse",
    "tifffile", "skimage.filters",
)


def _recv(conn: socket.socket) -> tuple[dict, list[int]]:
    fds = array.array("i")
    data = b""
    while not data.endswith(b"\n"):
        msg, anc, _flags, _addr = conn.recvmsg(1 << 20, socket.CMSG_LEN(3 * fds.itemsize))
        if not msg:
            raise EOFError
        data += msg
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    return json.loads(data), list(fds)


def _send(conn: socket.socket, obj: dict) -> None:
    try:
        conn.sendall(json.dumps(obj).encode() + b"\n")
    except OSError:
        pass


def serve(path: str) -> dict:
    """Serve until this process's parent (the pytest worker) is gone; returns only in a child,
    with its request."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    parent = os.getppid()
    waiting: dict[int, socket.socket] = {}
    gc.freeze()  # (the preloaded objects out of the collector's reach: a child's collections touch none of their pages)
    while True:
        if os.getppid() != parent:
            os._exit(0)
        ready, _, _ = select.select([srv, wake_r], [], [], 1.0)
        if wake_r in ready:
            os.read(wake_r, 4096)
        while waiting:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = waiting.pop(pid, None)
            if conn is not None:
                _send(conn, {"status": status, "cpu_s": usage.ru_utime + usage.ru_stime})
                conn.close()
        if srv not in ready:
            continue
        conn, _ = srv.accept()
        try:
            req, fds = _recv(conn)
        except (OSError, EOFError, ValueError):
            conn.close()
            continue
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for s in (srv, conn, *waiting.values()):
                s.close()
            os.close(wake_r)
            os.close(wake_w)
            for target, fd in zip((0, 1, 2), fds):
                os.dup2(fd, target)
            for fd in fds:
                if fd > 2:
                    os.close(fd)
            return req
        for fd in fds:
            os.close(fd)
        _send(conn, {"pid": pid})
        waiting[pid] = conn


def become(req: dict) -> None:
    """This child as ``python -m castrig ARGS`` started in the request's folder and environment."""
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    time.tzset()
    sys.argv = ["castrig", *req["args"]]
    sys.path[0] = os.getcwd()  # (``python -m`` puts its folder first, where this script put tests/)


if __name__ == "__main__":
    for name in PRELOAD:
        importlib.import_module(name)
    if threading.active_count() != 1:  # (a fork copies only the forking thread: no zygote then)
        sys.exit(3)
    request = serve(sys.argv[1])
    become(request)
    import runpy

    runpy.run_module("castrig", run_name="__main__", alter_sys=True)
