"""`castrig lots`, `castrig filter check`, `castrig coculture check`: exit codes and messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from castrig.cli.main import main

from conftest import add_graded_run, add_membrane_run
from conftest import membrane_metrics as _metrics

ROOT = Path(__file__).resolve().parents[2]


def _store(tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / "data"
    return root, add_graded_run(root, "good", _metrics(3.0))


def test_lots_lists_lots_and_assigns_uses(tmp_path, capsys):
    root, lot = _store(tmp_path)
    assert main(["lots", "--data", str(root)]) == 0
    out = capsys.readouterr().out
    assert lot in out and "claim1,claim2,claim3,claim4" in out and "3.00" in out and "suits: blood_filter, coculture" in out
    assert main(["lots", "assign", lot, "--use", "blood_filter", "--data", str(root)]) == 0
    assert main(["lots", "--data", str(root)]) == 0
    assert "blood_filter" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()  # an empty data root lists no lots (one that is not there is refused)
    assert main(["lots", "--data", str(tmp_path / "empty")]) == 0
    assert "no lots yet" in capsys.readouterr().out


def test_filter_check_passes_and_fails_with_file_field_and_range(tmp_path, capsys):
    root, lot = _store(tmp_path)
    data = yaml.safe_load((ROOT / "examples" / "filter-build.yaml").read_text())
    f = tmp_path / "filter.yaml"
    f.write_text(yaml.safe_dump({**data, "lots": [lot]}))
    assert main(["filter", "check", str(f), "--data", str(root)]) == 0
    out = capsys.readouterr().out
    assert "meets the blood-filtration claims" in out and "4.2" in out  # log10(2.4e9/1.5e5) = 4.20
    f.write_text(yaml.safe_dump({**data, "lots": [lot], "effective_area_cm2": 301, "element_volume_cm3": 1.9}))
    assert main(["filter", "check", str(f), "--data", str(root)]) == 2
    err = capsys.readouterr().err
    assert f"{f}: effective_area_cm2 = 301: outside the claimed effective filtration area (allowed: 4 to 300 cm²)" in err
    assert "element_volume_cm3 = 1.9" in err and "allowed: 2 to 18 cm³" in err and "Traceback" not in err
    f.write_text(yaml.safe_dump({**data, "lots": ["no-such-lot"]}))
    assert main(["filter", "check", str(f), "--data", str(root)]) == 2
    assert "lots[0] = 'no-such-lot': no such lot" in capsys.readouterr().err
    assert main(["filter", "check", str(tmp_path / "missing.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_coculture_check(tmp_path, capsys):
    root, lot = _store(tmp_path)
    data = yaml.safe_load((ROOT / "examples" / "coculture.yaml").read_text())
    f = tmp_path / "cc.yaml"
    f.write_text(yaml.safe_dump({**data, "lot": lot}))
    assert main(["coculture", "check", str(f), "--data", str(root)]) == 0
    assert "suits lot" in capsys.readouterr().out
    f.write_text(yaml.safe_dump({**data, "lot": lot, "regions": data["regions"][:1]}))
    assert main(["coculture", "check", str(f), "--data", str(root)]) == 2
    err = capsys.readouterr().err
    assert "cc.yaml: regions" in err and "at least 2" in err and "Traceback" not in err
    # the same cells on both sides, written apart by case and a space: it said "suits lot"
    same = [{"name": "upper", "cell_groups": ["Astrocytes"]}, {"name": "lower", "cell_groups": ["astrocytes "]}]
    f.write_text(yaml.safe_dump({**data, "lot": lot, "regions": same}))
    assert main(["coculture", "check", str(f), "--data", str(root)]) == 2
    assert "both regions hold the same cell groups" in " ".join(capsys.readouterr().err.split())


def test_checks_refuse_a_lot_assigned_to_the_other_use(tmp_path, capsys):
    """A lot assigned to co-culture is not a blood filter's, and the other way round (they exclude each other)."""
    root = tmp_path / "data"
    lot_cc, lot_bf, lot_free = (add_graded_run(root, name, _metrics(3.0)) for name in ("cc", "bf", "free"))
    assert main(["lots", "assign", lot_cc, "--use", "coculture", "--data", str(root)]) == 0
    assert main(["lots", "assign", lot_bf, "--use", "blood_filter", "--data", str(root)]) == 0
    capsys.readouterr()
    build = yaml.safe_load((ROOT / "examples" / "filter-build.yaml").read_text())
    setup = yaml.safe_load((ROOT / "examples" / "coculture.yaml").read_text())
    f, cc = tmp_path / "filter.yaml", tmp_path / "cc.yaml"

    f.write_text(yaml.safe_dump({**build, "lots": [lot_bf, lot_cc], "layers": max(2, build["layers"])}))
    assert main(["filter", "check", str(f), "--data", str(root)]) == 2
    res = capsys.readouterr()
    assert "meets the blood-filtration claims" not in res.out
    assert f"{f}: lots[1] = '{lot_cc}': this lot is assigned to coculture, not blood_filter" in res.err
    assert f"castrig lots unassign {lot_cc}" in res.err and lot_bf not in res.err and "Traceback" not in res.err

    cc.write_text(yaml.safe_dump({**setup, "lot": lot_bf}))
    assert main(["coculture", "check", str(cc), "--data", str(root)]) == 2
    res = capsys.readouterr()
    assert "suits lot" not in res.out
    assert f"{cc}: lot = '{lot_bf}': this lot is assigned to blood_filter, not coculture" in res.err

    # a lot assigned to this use, or to none, checks as before
    f.write_text(yaml.safe_dump({**build, "lots": [lot_bf, lot_free], "layers": max(2, build["layers"])}))
    assert main(["filter", "check", str(f), "--data", str(root)]) == 0
    assert "meets the blood-filtration claims" in capsys.readouterr().out
    for lot in (lot_cc, lot_free):
        cc.write_text(yaml.safe_dump({**setup, "lot": lot}))
        assert main(["coculture", "check", str(cc), "--data", str(root)]) == 0
        assert "suits lot" in capsys.readouterr().out


def test_assign_and_unassign_on_a_read_only_data_root(tmp_path, read_only_mount, capsys):
    """`lots assign/unassign` took DATA/lots.lock (creating it) before checking anything: on a
    read-only data root an unknown lot, the same use again or unassigning a lot with no use (no
    write needed) died with an OSError traceback (exit 1). The lot is checked first, the lock
    taken only to write, and a lock that cannot be taken is refused (exit 2) naming it and why.
    (Each through the CLI's entry point in this process, conftest ``castrig_main``, but the last,
    the refused lock, a castrig process of its own as a user meets it.)"""
    from conftest import castrig, castrig_main

    root, lot = _store(tmp_path)
    other = add_graded_run(root, "other", _metrics(3.0))
    assert main(["lots", "assign", lot, "--use", "blood_filter", "--data", str(root)]) == 0
    ro = read_only_mount(root)
    before = sorted(p.name for p in ro.iterdir())
    for argv, rc, said in ((["unassign", "no-such-lot"], 2, "LOT = 'no-such-lot': no such lot"),
                           (["assign", "no-such-lot", "--use", "coculture"], 2, "LOT = 'no-such-lot': no such lot"),
                           (["assign", lot, "--use", "coculture"], 2, f"lot {lot}: already assigned to blood_filter"),
                           (["assign", lot, "--use", "blood_filter"], 0, f"lot {lot}: intended use blood_filter"),
                           (["unassign", other], 0, ""),
                           (["assign", other, "--use", "coculture"], 2, f"{ro / 'lots.lock'}: cannot take the lock"),
                           (["unassign", lot], 2, f"{ro / 'lots.lock'}: cannot take the lock")):
        last = argv == ["unassign", lot]
        res = castrig("lots", *argv, "--data", str(ro)) if last else castrig_main(capsys, "lots", *argv, "--data", str(ro))
        assert res.returncode == rc and said in res.stdout + res.stderr, (argv, res.returncode, res.stdout, res.stderr)
        assert "Traceback" not in res.stderr, (argv, res.stderr)
        if rc == 2 and "lots.lock" in said:
            assert "Read-only file system" in res.stderr, res.stderr
    assert sorted(p.name for p in ro.iterdir()) == before
    assert json.loads((ro / "lots.json").read_text())[lot]["intended_use"] == "blood_filter"


def test_the_examples_work_as_written(tmp_path, capsys):
    """examples/filter-build.yaml and coculture.yaml named their lot by a run id ("lot ids = run
    ids"), but a lot is a membrane (RUN-m1): run as written against a data root holding the run
    they name, both said "no such lot" (exit 2). Now they name the membrane and pass, unmodified."""
    root = tmp_path / "data"
    assert add_membrane_run(root, "20260101-000001-demo", [_metrics(3.0)]) == ["20260101-000001-demo-m1"]
    assert main(["filter", "check", str(ROOT / "examples" / "filter-build.yaml"), "--data", str(root)]) == 0, capsys.readouterr().err
    assert "meets the blood-filtration claims" in capsys.readouterr().out
    assert main(["coculture", "check", str(ROOT / "examples" / "coculture.yaml"), "--data", str(root)]) == 0, capsys.readouterr().err
    assert "suits lot 20260101-000001-demo-m1" in capsys.readouterr().out


def test_a_run_folder_copied_inside_the_data_root_is_no_second_run_or_lot(finished_demo_run, tmp_path: Path, capsys):
    """An operator backs a run up where it lies (``cp -a RUN RUN.bak``, audit 3): the copy's run.json
    names the same run, so `castrig runs` listed the run twice and `castrig lots` the same membrane
    as two lots (and the copy took the run's catalog row). The copy is now listed as what it is,
    and the run and its lot once."""
    import shutil

    from conftest import castrig_main

    data, uid = finished_demo_run
    root = tmp_path / "data"
    shutil.copytree(data / uid, root / uid)
    shutil.copytree(data / uid, root / f"{uid}.bak")
    from castrig.store import SqliteRunStore

    for _ in range(2):  # the second listing reads the catalog the first one wrote
        rows = SqliteRunStore(root).list_runs()
        assert [(r.run_id, r.outcome) for r in rows if r.outcome != "damaged"] == [(uid, "completed")], rows
        (copy,) = [r for r in rows if r.outcome == "damaged"]
        assert copy.run_id == f"{uid}.bak" and f"a copy of run {uid}" in copy.reason, copy
        done = castrig_main(capsys, "runs", "--data", str(root))
        assert done.returncode == 0 and "a copy of run" in " ".join(done.stdout.split()), done.stdout + done.stderr
        done = castrig_main(capsys, "lots", "--data", str(root))
        assert done.returncode == 0 and done.stdout.count(f"{uid}-m1") == 1, done.stdout + done.stderr


def test_a_catalog_row_a_copy_took_goes_back_to_the_run_and_a_clash_is_no_copy(finished_demo_run, tmp_path: Path):
    """A data root where an older build let a copy take the run's catalog row: the run is listed
    from its own folder again (its lots with it). And a different run that only shares the id (two
    rigs, the same recipe in the same second, one folder renamed) is not taken for a copy."""
    import shutil

    from castrig.store import SqliteRunStore

    data, uid = finished_demo_run
    root = tmp_path / "data"
    shutil.copytree(data / uid, root / uid)
    shutil.copytree(data / uid, root / f"{uid}.bak")
    store = SqliteRunStore(root)
    with store.open_run(root / f"{uid}.bak") as rec:  # what an older castrig runs did
        store.index_run(rec, ())
    rows = store.list_runs()
    assert [(r.run_id, Path(r.run_dir).name) for r in rows if r.outcome != "damaged"] == [(uid, uid)], rows
    # the same run id, another run (another process started it)
    other = root / f"{uid}-rig2"
    shutil.move(str(root / f"{uid}.bak"), other)
    info = json.loads((other / "run.json").read_text())
    info["parts"][0]["pid"] = info["parts"][0]["pid"] + 1
    (other / "run.json").write_text(json.dumps(info))
    assert not any("a copy of run" in (r.reason or "") for r in store.list_runs())


def test_a_run_folder_lots_cannot_read_is_said_not_passed_over(tmp_path, capsys):
    """A run folder damaged after its lot was made (a truncated run.json, a database of garbage):
    `castrig lots` said "no lots yet" as if nothing had been made, and `lots assign` of its lot
    "no such lot". Now both say that folder cannot be read (from the CLI, each damage: the list
    through the CLI's entry point in this process, conftest ``castrig_main``; the assign, a castrig
    process)."""
    from conftest import RUN_FOLDER_DAMAGES, castrig, castrig_main

    root = tmp_path / "data"
    damaged = {}
    for name, (file, spoil, _why) in RUN_FOLDER_DAMAGES.items():  # one run per damage, under one root
        lot = add_graded_run(root, name.replace("_", "-"), _metrics(3.0))
        spoil(root / lot / file)
        damaged[name] = lot

    listed = castrig_main(capsys, "lots", "--data", str(root))
    out = " ".join(listed.stdout.split())
    assert listed.returncode == 0, listed.stdout + listed.stderr
    for name, lot in damaged.items():
        assert f"its run folder {root / lot} cannot be read" in out, (name, out)
    assert "castrig runs" in out and "no lots yet" in out
    assigned = castrig("lots", "assign", damaged["garbage_sqlite"], "--use", "blood_filter", "--data", str(root))
    said = " ".join(assigned.stderr.split())
    assert assigned.returncode == 2 and "cannot be read" in said and "Traceback" not in said, said


HAND_EDITED_ASSIGNMENTS = [  # (lots.json entry of the lot, what the message names)
    ("blood_filter", "the assignment is a JSON str, not an object"),
    ({"intended_use": 5}, "intended_use = 5 (allowed: one of blood_filter, coculture)"),
    ({"intended_use": '=HYPERLINK("http://evil.example","ok")'}, "intended_use = \"=HYPERLINK("),
    ({"intended_use": "coculture", "allow_simulated": "no"}, 'allow_simulated = "no" (allowed: true or false)'),
]


@pytest.mark.parametrize("entry, says", HAND_EDITED_ASSIGNMENTS)
def test_a_hand_edited_lots_json_is_named_and_unassign_repairs_it(tmp_path, capsys, entry, says):
    """``DATA/lots.json`` edited by hand: `lots`, `lots assign` and `unassign` ended in a
    traceback (a text or a number where castrig writes an object and a use), a formula as the
    intended use was listed and exported into membranes.csv, and "allow_simulated": "no" read as
    yes. Now every reader names the file, the lot and the field (exit 2), the export says the
    column is left empty, and `lots unassign LOT` removes the damaged entry."""
    from conftest import castrig_main

    root, lot = _store(tmp_path)
    (root / "lots.json").write_text(json.dumps({lot: entry}))
    for argv in (["lots"], ["lots", "assign", lot, "--use", "coculture"]):
        done = castrig_main(capsys, *argv, "--data", str(root))
        said = " ".join(done.stderr.split())
        assert done.returncode == 2 and f"{root / 'lots.json'}: lot '{lot}': {says}" in said, (argv, said)
        assert f"`castrig lots unassign {lot}` removes the entry" in said, said
    run_dir = next(p for p in root.iterdir() if (p / "run.json").is_file())
    done = castrig_main(capsys, "export", str(run_dir), "--to", str(tmp_path / "x"))
    assert done.returncode == 0 and "HYPERLINK" not in (tmp_path / "x" / "membranes.csv").read_text(), done.stderr
    assert "lots.json" in done.stderr, done.stderr
    done = castrig_main(capsys, "lots", "unassign", lot, "--data", str(root))
    assert done.returncode == 0 and json.loads((root / "lots.json").read_text()) == {}, done.stdout + done.stderr
    assert castrig_main(capsys, "lots", "--data", str(root)).returncode == 0


def test_a_lots_json_that_is_no_object_is_named(tmp_path, capsys):
    from conftest import castrig_main

    root, _ = _store(tmp_path)
    (root / "lots.json").write_text("[1]")
    done = castrig_main(capsys, "lots", "--data", str(root))  # was: read as no assignments at all
    assert done.returncode == 2 and "lots.json: holds a JSON list, not an object" in " ".join(done.stderr.split()), done.stderr


def test_a_run_folder_renamed_inside_the_data_root_is_one_run_and_one_lot(finished_demo_run, tmp_path: Path, capsys):
    """``mv RUN renamed`` after the run was listed: its catalog row named the old folder, the scan
    found the new one, and `castrig runs` listed the run twice, `lots` its lot twice (and
    `runs --grade claim1` counted it twice) — on every listing after, too, the row now naming the
    new folder and the scan matching folders by run id."""
    import shutil

    from conftest import castrig_main

    data, uid = finished_demo_run
    root = tmp_path / "data"
    shutil.copytree(data / uid, root / uid)
    assert castrig_main(capsys, "runs", "--data", str(root)).returncode == 0  # indexed under its own name
    (root / uid).rename(root / "renamed")
    for _ in range(2):  # the second listing reads the catalog row the first one moved
        runs = castrig_main(capsys, "runs", "--data", str(root), "--grade", "claim1")
        assert runs.returncode == 0 and runs.stdout.count(uid) == 1, runs.stdout
        lots = castrig_main(capsys, "lots", "--data", str(root))
        assert lots.returncode == 0 and lots.stdout.count(f"{uid}-m1") == 1, lots.stdout


@pytest.mark.parametrize("made", ["named pipe", "folder"])
def test_a_lots_json_that_is_no_file_is_named_not_read_as_no_assignments(tmp_path, made):
    """``DATA/lots.json`` a named pipe or a folder (whoever may write the data root): `castrig
    lots` listed every lot unassigned, as if nothing had been assigned, and an export wrote no
    intended use. Refused, exit 2, naming the file."""
    import os

    from conftest import castrig

    root, _ = _store(tmp_path)
    (os.mkfifo if made == "named pipe" else os.mkdir)(root / "lots.json")
    done = castrig("lots", "--data", str(root), timeout_s=30)
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and f"{root / 'lots.json'}: cannot be read" in said and "Traceback" not in said, said


def test_coculture_check_of_a_file_of_thousands_of_regions_is_refused_at_once(tmp_path, capsys):
    """A co-culture file just under the 1 MB input limit holding 20 000 regions (two allowed)
    took 4.5-11.6 s to be refused: PyYAML parsed every region, and only then did the model count
    them. Now the count is refused as the file is read, at the third region: the file, the field,
    the limit, its line, within a fraction of a second of CPU; a region of 40 000 cell groups
    likewise (at most MAX_CELL_GROUPS)."""
    import time

    from castrig.inputs import MAX_YAML_BYTES
    from castrig.lots.checks import MAX_CELL_GROUPS
    from conftest import castrig_main, refused

    many = tmp_path / "many-regions.yaml"
    many.write_text("name: big\nlot: L1\nregions:\n" + "".join(f"  - {{name: r{k}, cell_groups: [c{k}]}}\n" for k in range(20_000)))
    groups = tmp_path / "many-groups.yaml"
    groups.write_text("name: big\nlot: L1\nregions:\n  - {name: upper, cell_groups: [astrocytes]}\n"
                      "  - name: lower\n    cell_groups: [" + ", ".join(f"cell-group-{k:06d}" for k in range(40_000)) + "]\n")
    for f, field, limit, line in ((many, "regions", 2, 6), (groups, "regions[1].cell_groups", MAX_CELL_GROUPS, 6)):
        assert 0.5 * MAX_YAML_BYTES < f.stat().st_size <= MAX_YAML_BYTES, f.stat().st_size
        t0 = time.process_time()
        done = castrig_main(capsys, "coculture", "check", str(f))
        cpu_s = time.process_time() - t0
        refused(done, f"{f} (line {line}, column", f"{field}: more than {limit} entries (allowed: at most {limit})")
        assert cpu_s < 0.5, f"{cpu_s:.2f} s of CPU to refuse {f.name}"  # (was 4.5-11.6 s on the wall, ~2.5 s CPU here)
