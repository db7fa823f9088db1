"""Folders whose names are not UTF-8 (named in Latin-1 on an old file server or NAS share, which a
UTF-8 system shows with undecodable bytes), and names an ASCII console cannot show: castrig runs
there as anywhere, and says so."""

from __future__ import annotations

import json
import os
import sqlite3

from conftest import ROOT, castrig_in, castrig_main


def test_a_run_in_a_folder_named_in_latin_1_on_an_ascii_console_is_recorded_and_said(tmp_path):
    """`castrig run purge.yaml --data "runs ±"` in the working folder "lab-µ" named in Latin-1, its
    output to an ASCII stream (PYTHONIOENCODING=ascii): the run folder was made, then indexing it
    in the catalog raised UnicodeEncodeError (its absolute path holds the byte 0xB5, which SQLite's
    UTF-8 text cannot) -- a traceback, exit 1, the rig never driven, the folder left 'crashed'. And
    with that mended, the run said nothing on stdout: its "completed: runs ±/..." line could not be
    encoded and the console's writer dropped it. Now it runs, the catalog's row shows the odd byte
    as U+FFFD (listings find the folder under its root), and the line is written, ± escaped."""
    lab = tmp_path / os.fsdecode(b"lab-\xb5")
    lab.mkdir()
    (lab / "purge.yaml").write_text("name: purge\nsteps:\n  - {type: purge, duration_s: 1}\n")
    done = castrig_in("run", "purge.yaml", "--data", "runs ±", "-q", cwd=lab, PYTHONIOENCODING="ascii")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    (run_json,) = (lab / "runs ±").glob("*/run.json")
    assert f"completed: runs \\xb1/{run_json.parent.name}" in done.stdout, done.stdout
    assert json.loads(run_json.read_text())["outcome"] == "completed"
    with sqlite3.connect(lab / "runs ±" / "catalog.sqlite") as db:
        (row,) = db.execute("SELECT run_dir, outcome FROM runs").fetchall()
    assert row == (f"{tmp_path}/lab-\ufffd/runs ±/{run_json.parent.name}", "completed")


def test_an_operator_name_not_in_utf_8_is_said_so(tmp_path, capsys):
    """`--operator Jürgen` typed in a Latin-1 terminal (argv holds the byte 0xFC; Python gives it as
    U+DCFC), or as UTF-8 under LC_ALL=C with PYTHONUTF8=0: refused as "control character U+DCFC",
    which it is not. Now the byte and the encoding are named, and what to do (exit 2, as before)."""
    data = tmp_path / "runs"
    done = castrig_main(capsys, "run", str(ROOT / "tests" / "data" / "short.yaml"), "--operator", os.fsdecode(b"J\xfcrgen"),
                        "--data", str(data), "-q")
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and "control character" not in said, said
    assert "--operator = " in said and "byte 0xFC at position 1 is not UTF-8 text" in said and "LANG=C.UTF-8" in said, said
    assert not data.exists()
