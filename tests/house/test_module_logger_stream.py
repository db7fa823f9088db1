"""A module's warning (the fleet store's: castrig.logs.module_logger) goes to stderr as it is when
it is written. structlog's configuration is global and was bound to the stderr of the first
message: the CLI called in-process (conftest ``castrig_main``, capsys capturing) wrote a later
command's warning to an earlier one's captured stream, closed since -- "ValueError: I/O operation
on closed file" from `store sync` against a refusing database."""

from __future__ import annotations

import contextlib
import io


def test_a_module_warning_is_written_to_stderr_as_it_is_now_not_as_it_was_at_the_first(capsys):
    from castrig.logs import module_logger

    first = io.StringIO()
    with contextlib.redirect_stderr(first):
        module_logger("castrig.test.first").warning("the first message")
    first.close()  # (a captured stream, gone with its test)
    module_logger("castrig.test.second").warning("a later message")
    assert "a later message" in capsys.readouterr().err


def test_with_no_stderr_at_all_a_module_warning_goes_to_stdout_and_never_raises(capsys, monkeypatch):
    """castrig imported where fd 2 was closed (Python's ``sys.stderr`` None; the CLI itself gives
    a closed fd /dev/null): the warning raised AttributeError into its caller (a review finding);
    structlog had written it to stdout. Now it goes to stdout, and a closed stream drops it."""
    import sys

    from castrig.logs import module_logger

    monkeypatch.setattr(sys, "stderr", None)
    module_logger("castrig.test.third").warning("with no stderr")
    assert "with no stderr" in capsys.readouterr().out
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stderr", closed)
    module_logger("castrig.test.fourth").warning("to a closed stream")  # (dropped, not raised)
