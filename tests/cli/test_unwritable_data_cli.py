"""A data root (or run folder) that exists but cannot be written is bad input: exit 2, one line
naming ``--data`` (or RUN_DIR) and the folder, no traceback, nothing left behind -- as a data root
that cannot be made already was (test_bad_paths_cli.py).

Before: ``castrig run recipes/demo-short.yaml --data DIR`` with DIR on a read-only file system
(or, for a user who is not root, a chmod 555 DIR) ended in exit 1 and a traceback from
``store.create_run`` -> ``run_dir.mkdir()`` (OSError EROFS/EACCES); ``queue``, ``explore`` and
``explore map`` the same from their own first write, ``resume`` from making its lock file.

How the tests make an unwritable folder, honestly: a read-only tmpfs mounted for the castrig
process alone, in a new user and mount namespace (``unshare -rm``: no privileges needed, and as
root no different) -- skipped where the kernel or the container forbids user namespaces. The
chmod 555 test says the same for a user who is not root; root writes in a chmod 555 folder, so
it is skipped as root.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT, castrig, castrig_env, only_run_dir, refused, run_rows, start_castrig, wait_until, with_sitecustomize

SHORT = str(ROOT / "recipes" / "demo-short.yaml")


def _namespaces_work() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o ro none /mnt"], capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_namespaces = pytest.mark.skipif(not _namespaces_work(),
                                      reason="no unprivileged user+mount namespaces here (unshare -rm) to mount a read-only file system")


def castrig_in_namespace(setup: str, *args: str, after: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """``castrig ARGS`` (the real CLI, as :func:`conftest.castrig` runs it) in a new user and mount
    namespace after the shell commands ``setup`` (mounts seen by that process alone); ``after``:
    shell commands run once it ended, their output on stdout after a line ``--after--``."""
    cmd = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "castrig", *args))
    script = f"set -e; {setup}; set +e; {cmd}; rc=$?; echo --after--; {after or 'true'}; exit $rc"
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=ROOT, env=castrig_env(**env), capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def _refused(done: subprocess.CompletedProcess[str], *words: str) -> str:
    """:func:`conftest.refused`, in one message (wrapped at most), not a dump."""
    assert len(done.stderr.strip().splitlines()) <= 3, done.stderr
    return refused(done, *words)


@needs_namespaces
@pytest.mark.parametrize("command", [
    ["run", SHORT, "-q"],
    ["queue", SHORT],
    ["explore", "--target-grade", "claim1", "--budget", "2"],
    ["explore", "map", "--rh", "50:95:20", "--concentration", "1:20:10"],
], ids=["run", "queue", "explore", "explore-map"])
def test_data_root_on_a_read_only_file_system(tmp_path, command):
    data = tmp_path / "data"
    data.mkdir()
    done = castrig_in_namespace(f"mount -t tmpfs -o ro none {shlex.quote(str(data))}", *command, "--data", str(data))
    _refused(done, f"--data {data}", "read-only file system")


@needs_namespaces
def test_data_root_made_read_only_after_the_check(tmp_path):
    """The data root goes read-only between the up-front check and the run folder being made (a
    remount): the mkdir's EROFS is the same exit 2 naming --data, and nothing is left in the root."""
    data = tmp_path / "data"
    data.mkdir()
    hook = with_sitecustomize(tmp_path, f"""
import subprocess
import castrig.store.sqlite_store as s
_create = s.SqliteRunStore.create_run
def _remount_then_create(self, info):
    subprocess.run(["mount", "-o", "remount,ro", {str(data)!r}], check=True)
    return _create(self, info)
s.SqliteRunStore.create_run = _remount_then_create
""")
    done = castrig_in_namespace(f"mount -t tmpfs none {shlex.quote(str(data))}", "run", SHORT, "--data", str(data), "-q",
                                after=f"ls -A {shlex.quote(str(data))}", **hook)
    _refused(done, f"--data {data}", "cannot make a run folder", "Read-only file system", "nothing was recorded")
    assert done.stdout.split("--after--", 1)[1].split() == [], done.stdout  # no run folder, no catalog


@needs_namespaces
def test_resume_of_a_run_folder_on_a_read_only_file_system(tmp_path, reap):
    data = tmp_path / "data"
    proc = reap(start_castrig("run", str(ROOT / "recipes" / "overnight.yaml"), "--data", str(data), "-q"))
    run_dir = wait_until(lambda: only_run_dir(data), what="the run folder")
    wait_until(lambda: run_rows(run_dir, "SELECT count(*) FROM samples")[:1] not in ([], [(0,)]), what="samples recorded")
    proc.kill()  # a crash: the run is left to resume
    proc.wait(timeout=10)
    d = shlex.quote(str(run_dir))
    done = castrig_in_namespace(f"mount --bind {d} {d}; mount -o remount,bind,ro {d}", "resume", str(run_dir), "-q")
    _refused(done, str(run_dir), "cannot write in this run folder", "read-only file system")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in a chmod 555 folder: the read-only mount tests stand for it")
def test_data_root_without_write_permission(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o555)
    try:
        done = castrig("run", SHORT, "--data", str(data), "-q")
        _refused(done, f"--data {data}", "permission denied")
        assert list(data.iterdir()) == []
    finally:
        data.chmod(0o755)
