"""How a `castrig` process ends: what Python's exit does first (threads that are not daemons
joined, `atexit` functions run, stdout and stderr flushed), then not its module-by-module
teardown, which cost 0.09-0.14 s of CPU at the end of every command (cli/entry.py ``_end``)."""

from __future__ import annotations

import pstats
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, castrig, castrig_env, with_sitecustomize

#: A sitecustomize for the castrig process: an exit function and a late thread that is not a
#: daemon each leave a file in ``$END_DIR``; an object that only the modules' teardown frees
#: leaves one from its ``__del__``.
HOOK = '''
import atexit, builtins, os, threading, time
from pathlib import Path

_end_dir = Path(os.environ["END_DIR"])
atexit.register(lambda: (_end_dir / "atexit").write_text("ran"))

def _late():
    time.sleep(0.5)
    (_end_dir / "thread").write_text("finished")

threading.Thread(target=_late).start()

class _FreedAtTeardown:
    def __del__(self):
        (_end_dir / "teardown").write_text("the modules were taken down")

builtins._castrig_test_freed_at_teardown = _FreedAtTeardown()
'''


@pytest.mark.parametrize("args, code, says", [
    (("check", str(ROOT / "tests" / "data" / "short.yaml")), 0, "short"),
    (("check", "no-such-recipe.yaml"), 2, "no such file"),
], ids=["ok", "bad-input"])
def test_a_command_ends_after_its_threads_and_exit_functions_without_the_modules_teardown(tmp_path: Path, args, code, says):
    done = castrig(*args, END_DIR=str(tmp_path), **with_sitecustomize(tmp_path, HOOK))
    assert done.returncode == code, done.stderr
    assert says in done.stdout + done.stderr
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "finished"  # waited for, as Python's exit does
    assert not (tmp_path / "teardown").exists()


def test_castrig_under_cprofile_writes_its_profile(tmp_path: Path):
    """``python -m cProfile -o F -m castrig ...`` (how issue 19 asks the twin to be profiled):
    cProfile writes F once ``main`` returns, so a process under a profiler ends the ordinary way.
    The quick end skipped it: no F, and nothing said."""
    out = tmp_path / "check.prof"
    done = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), "-m", "castrig", "check",
                           str(ROOT / "tests" / "data" / "short.yaml")], cwd=ROOT, env=castrig_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert any("castrig" in filename for filename, *_ in pstats.Stats(str(out)).stats), "no castrig call profiled"
