"""`castrig … --help` helps (issue 20): no `<bool>` after flags, a help line for every option and
argument of every command, examples in the help of run, queue, explore and analyse."""

from __future__ import annotations

import contextlib
import io

import pytest
import typer

from castrig.cli.main import app, main


def _commands():
    out = []

    def walk(cmd, path):
        out.append((path, cmd))
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            walk(sub, path + [name])

    walk(typer.main.get_command(app), [])
    return out


COMMANDS = _commands()


def _help(path: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main([*path, "--help"])
    assert code == 0
    return out.getvalue()


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) or "castrig" for p, _ in COMMANDS])
def test_every_option_has_a_help_line_and_flags_no_type(path, cmd):
    missing = [p.name for p in cmd.params if p.name != "help" and not (getattr(p, "help", None) or "").strip()]
    assert not missing, f"castrig {' '.join(path)}: options without help=: {missing}"
    text = _help(path)
    assert "<bool>" not in text and "╭" not in text, text


@pytest.mark.parametrize("path", [["run"], ["queue"], ["explore"], ["analyse"], ["analyse", "surface"],
                                  ["analyse", "section"], ["analyse", "membrane"], ["schema"]])
def test_examples_in_the_help(path):
    text = _help(path)
    assert "Examples:" in text and f"castrig {' '.join(path)}" in text, text


def test_queue_help_explains_every_option():
    text = _help(["queue"])
    for opt in ("--repeat N", "--resume QUEUE_FILE", "--profile PROFILE", "--data DIR", "--seed N", "--operator NAME"):
        assert opt in text


def test_explore_folder_goes_under_the_data_root(tmp_path, monkeypatch):
    """Without --folder, the search folder is DATA/explore/…, not ./explore wherever one stands."""
    seen = {}

    class Stop(Exception):
        pass

    def fake_search(folder, settings, on_trial=None):
        seen["folder"] = folder
        raise Stop

    monkeypatch.setattr("castrig.explore.search.Search", fake_search)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Stop):
        main(["explore", "--target-grade", "claim1", "--target-d-um", "3", "--data", str(tmp_path / "data")])
    assert seen["folder"] == tmp_path / "data" / "explore" / "claim1-d3um-s0"
    monkeypatch.setenv("CASTRIG_DATA", str(tmp_path / "env"))
    with pytest.raises(Stop):
        main(["explore", "--target-grade", "claim1", "--target-d-um", "3"])
    assert seen["folder"] == tmp_path / "env" / "explore" / "claim1-d3um-s0"
    assert not (tmp_path / "explore").exists()
