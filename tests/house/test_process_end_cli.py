"""How a `castrig` process ends: what Python's exit does first (threads that are not daemons
joined, `atexit` functions run, stdout and stderr flushed), then not its module-by-module
teardown, which cost 0.09-0.14 s of CPU at the end of every command (cli/entry.py ``_end``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT, castrig, with_sitecustomize

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
