"""Ctrl-C or SIGTERM while ``castrig run``/``resume`` is still starting (Python importing the CLI,
~0.3 s) ends it as DESIGN §7 says: 130 or 3, one line, no traceback, nothing opened.

Before: a raw KeyboardInterrupt traceback (exit 1, or -2), or killed by SIGTERM (-15): the
handlers came with the run, after the imports. Now the entry point (cli/entry.py) installs its
own first.

The moment is seeded, not timed: a sitecustomize hook sends the signal as the process imports
``typer`` (the CLI's first heavy import) -- a sleep before the signal lands in a different phase
on every machine. The real ``castrig`` in a subprocess.
"""

from __future__ import annotations

import pytest

from conftest import ROOT, castrig, with_sitecustomize

#: The process sends itself ``$SIGNAL_AT_IMPORT`` the first time ``$IMPORTING`` is imported.
SIGNAL_AT_IMPORT = """
import os, signal, sys
class _SignalOnImport:
    sent = False
    def find_spec(self, name, path=None, target=None):
        if name == os.environ["IMPORTING"] and not self.sent:
            _SignalOnImport.sent = True
            os.kill(os.getpid(), getattr(signal, os.environ["SIGNAL_AT_IMPORT"]))
        return None
sys.meta_path.insert(0, _SignalOnImport())
"""


@pytest.mark.parametrize("command", ["run", "resume"])
@pytest.mark.parametrize("sig, code, said", [("SIGINT", 130, "interrupted"), ("SIGTERM", 3, "terminated")])
def test_a_signal_while_the_cli_is_imported(tmp_path, command, sig, code, said):
    args = ["run", str(ROOT / "recipes" / "overnight.yaml"), "--data", str(tmp_path / "runs")] if command == "run" \
        else ["resume", str(tmp_path / "no-such-run")]
    done = castrig(*args, SIGNAL_AT_IMPORT=sig, IMPORTING="typer", **with_sitecustomize(tmp_path, SIGNAL_AT_IMPORT))
    assert done.returncode == code, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stderr.strip() == said, done.stderr
    assert not (tmp_path / "runs").exists()  # nothing opened, no data root made


@pytest.mark.parametrize("importing", ["email.message", "castrig.recipe.session"])
def test_ctrl_c_while_the_command_starts_says_interrupted(tmp_path, importing):
    """Ctrl-C once the command is built (its arguments being parsed, the run's modules being
    imported): typer (0.29) turns a KeyboardInterrupt it meets into a silent exit 130, so the
    CLI's "interrupted" was never said — a bare 130 and an empty terminal."""
    args = ["run", str(ROOT / "recipes" / "overnight.yaml"), "--data", str(tmp_path / "runs")]
    done = castrig(*args, SIGNAL_AT_IMPORT="SIGINT", IMPORTING=importing, **with_sitecustomize(tmp_path, SIGNAL_AT_IMPORT))
    assert done.returncode == 130, (done.returncode, done.stderr[-3000:])
    assert done.stderr.strip() == "interrupted", done.stderr
