"""Names a user writes are shown as written, never read as Rich markup.

Tried from the outside: a recipe named ``ok [conceal]HIDDEN[/conceal] [link=https://evil.example]click[/link]``
and ``--operator '[conceal]x[/]'`` passed the input checks (no control characters), and then
`castrig runs` and the live panel of `castrig run` drew a hidden text and a clickable link to an
address of the recipe writer's choosing in the operator's terminal; `castrig lots` ate the
brackets. A file name shown by `castrig analyse` went the same way.

And raw escape sequences, which no markup check sees: a file name, a hand-edited run.json or an
event message holding ``ESC ] 8`` (a link) or ``ESC [ 8 m`` (hidden text) reached the terminal
from `castrig analyse`, `runs`, `lots`, `status` and `watch`. They are shown escaped (``\x1b``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, TerminalRun, castrig_main

NAME = "ok [conceal]HIDDEN[/conceal] [link=https://evil.example]click[/link]"
OPERATOR = "[conceal]x[/]"
# what a terminal receives for those: SGR 8 (conceal) and an OSC 8 hyperlink
HIDDEN, LINK = "\x1b[8m", "\x1b]8;"


def _recipe(tmp_path):
    recipe = yaml.safe_load((ROOT / "recipes" / "demo.yaml").read_text())
    recipe["name"] = NAME
    (capture,) = [step for step in recipe["steps"] if step["type"] == "capture"]
    capture["fields"] = 1  # one field is enough for a membrane that makes a lot
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True))
    return path


@pytest.fixture(scope="module")
def markup_run(tmp_path_factory) -> tuple[int, str, Path]:
    """``castrig run`` of a recipe named NAME by OPERATOR on a terminal (its live panel up), once
    for this module: its exit code, what the terminal received and its data root. The demo with
    one field (a membrane that meets claim 1: a lot for ``castrig lots``); before, each of the
    two tests below ran the whole two-field demo for itself."""
    tmp = tmp_path_factory.mktemp("markup")
    run = TerminalRun(["run", str(_recipe(tmp)), "--data", str(tmp / "runs"), "--operator", OPERATOR], cwd=ROOT, cols=200)
    try:
        code = run.wait(timeout_s=120)
        return code, run.output, tmp / "runs"
    finally:
        run.close()


def test_runs_and_lots_list_a_recipe_and_operator_named_in_markup_as_written(markup_run, capsys):
    code, output, data = markup_run
    assert code == 0, output[-3000:]
    listed = castrig_main(capsys, "runs", "--data", str(data))
    assert listed.returncode == 0, listed.stderr
    # (the table may wrap a long cell over lines, between its words)
    assert all(word in listed.stdout for word in NAME.split()) and OPERATOR in listed.stdout, listed.stdout
    lots = castrig_main(capsys, "lots", "--data", str(data))
    assert lots.returncode == 0, lots.stderr
    assert "[conceal]HIDDEN[/conceal]" in lots.stdout, lots.stdout  # (its narrower column cuts the link short)


def test_the_live_panel_on_a_terminal_draws_no_hidden_text_or_link_from_a_recipe_name(markup_run):
    code, shown, _ = markup_run
    assert code == 0, shown
    assert "click[/link]" in shown and "HIDDEN[/conceal]" in shown, shown[-3000:]
    assert HIDDEN not in shown and LINK not in shown, shown[-3000:]


def test_analyse_shows_a_file_named_in_markup_as_written(tmp_path, rendered_membrane, capsys):
    image = tmp_path / "[conceal]m.tif"  # (a tag left open hides the rest)
    shutil.copy(rendered_membrane / "m000_reflected.tif", image)
    done = castrig_main(capsys, "analyse", "surface", str(image))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "surface: [conceal]m.tif" in done.stdout, done.stdout


#: ESC ] 8 (a link to an address of the writer's choosing) and ESC [ 8 m (what follows hidden)
ESCAPES = "\x1b]8;;https:evil.example\x1b\\CLICK\x1b]8;;\x1b\\\x1b[8mHIDDEN"


def test_analyse_shows_a_file_name_with_escape_sequences_escaped(tmp_path, rendered_membrane, capsys):
    image = tmp_path / f"m{ESCAPES}.tif"
    shutil.copy(rendered_membrane / "m000_reflected.tif", image)
    done = castrig_main(capsys, "analyse", "surface", str(image))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "\x1b" not in done.stdout and "\\x1b]8;;https:evil.example" in "".join(done.stdout.split()), done.stdout


def test_runs_lots_status_and_watch_show_escape_sequences_in_a_runs_records_escaped(finished_demo_run, tmp_path, capsys):
    import json
    import sqlite3
    from contextlib import closing

    data, run_id = finished_demo_run
    run_dir = Path(shutil.copytree(data / run_id, tmp_path / "runs" / run_id))
    info = json.loads((run_dir / "run.json").read_text())
    info["recipe_name"], info["operator"] = f"demo{ESCAPES}", f"ann{ESCAPES}"
    (run_dir / "run.json").write_text(json.dumps(info))
    with closing(sqlite3.connect(run_dir / "run.sqlite")) as db:
        db.execute("INSERT INTO events(t_s, kind, source, message, data_json) VALUES(9999, 'warning', 'x', ?, '{}')",
                   (f"look {ESCAPES}",))
        db.commit()
    for argv in (["runs", "--data", str(tmp_path / "runs")], ["lots", "--data", str(tmp_path / "runs")],
                 ["status", str(run_dir)], ["watch", str(run_dir), "--every", "0.2"]):
        done = castrig_main(capsys, *argv)
        assert "\x1b" not in done.stdout + done.stderr, (argv, done.stdout, done.stderr)
        assert "\\x1b" in done.stdout, (argv, done.stdout)  # shown, escaped
