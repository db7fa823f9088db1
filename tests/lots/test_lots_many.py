"""A lab that runs castrig nightly for a year has thousands of lots. ``castrig lots`` read every
run folder twice (once for the lots, once for the membranes that are not lots) and laid every lot
out in one table: 3 000 runs of two membranes took 10.8 s before a line was shown, most of it the
table's 6 000 rows. Now it reads each folder once; at a terminal it shows the newest 50 lots and
the newest 50 membranes that are not lots, and says on stderr how many were left out (``--last
N``, ``--all``), as ``castrig runs`` does; a script gets every lot unless it asks for --last, and
``--json`` gives one object per lot."""

from __future__ import annotations

import json

from conftest import add_membrane_run, castrig_main, catalogue, linked_run_copies, membrane_metrics


def _runs(tmp_path, n: int):
    """``n`` runs, each with a lot (m1) and a membrane that met no grade (m2: through-pores 10 %)."""
    add_membrane_run(tmp_path / "src", "20260101-000001-one", [membrane_metrics(3.0), membrane_metrics(3.0, through=0.1)])
    data = tmp_path / "data"
    folders = linked_run_copies(data, tmp_path / "src" / "20260101-000001-one", n)
    catalogue(data, grades="claim1")
    return data, folders


def test_at_a_terminal_castrig_lots_shows_the_newest_50_and_says_what_it_left_out(tmp_path, terminal_run, capsys):
    data, folders = _runs(tmp_path, 60)
    term = terminal_run(["lots", "--data", str(data)], cwd=tmp_path, cols=250)
    term.expect("the newest 50 membranes that are not lots are shown (60 in all); --last N or --all", timeout_s=60)
    assert term.proc.wait(timeout=30) == 0
    said = term.output
    assert "the newest 50 lots are shown (60 in all); --last N or --all for older ones" in said, said[-600:]
    assert said.count("20260101-000001-one-m1 ") == 50, said[-600:]  # (the lot's row: its id, padded)
    assert said.count("not a lot: 20260101-000001-one-m2 — met no grade") == 50, said[-600:]

    # a script gets every lot (piped: the table whole), or the newest N it asks for, as JSON lines
    piped = castrig_main(capsys, "lots", "--data", str(data))
    assert piped.returncode == 0 and piped.stdout.count("20260101-000001-one-m1 ") == 60, piped.stdout[-600:]
    assert "left out" not in piped.stderr and "are shown" not in piped.stderr, piped.stderr
    got = castrig_main(capsys, "lots", "--data", str(data), "--json", "--last", "3")
    lines = [json.loads(line) for line in got.stdout.splitlines()]
    assert [x["run_id"] for x in lines] == [f.name for f in folders[-3:]], lines  # the newest, oldest first
    assert lines[0]["grades"] == ["claim1", "claim2", "claim3", "claim4"] and lines[0]["mean_pore_diameter_um"] == 3.0
    assert lines[0]["suits"] == ["blood_filter", "coculture"] and lines[0]["intended_use"] is None, lines[0]
    # the membranes that are not lots go to stderr with --json: stdout stays one lot a line
    assert got.stderr.count("not a lot: 20260101-000001-one-m2") == 3, got.stderr
    assert "the newest 3 lots are shown (60 in all)" in " ".join(got.stderr.split()), got.stderr
    every = castrig_main(capsys, "lots", "--data", str(data), "--json", "--all", "--last", "3")
    assert len(every.stdout.splitlines()) == 60 and "are shown" not in every.stderr, every.stderr
