"""A data root, output folder or storage URL that cannot be used is bad input: exit 2, one line
naming the option and the path, no traceback — the way ``castrig runs`` already treated
$CASTRIG_DATA pointing at a file.

Before: ``run --data FILE`` (FileExistsError), ``run --data /proc/x`` (FileNotFoundError),
``serve --data FILE``, ``sim render --out FILE`` and ``explore --storage`` with an unopenable
SQLAlchemy URL all ended in a Python traceback with exit 1.

All refused before anything runs: through the CLI's entry point in the test's process
(conftest ``castrig_main``), not a subprocess each.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT, castrig_main, make_study, refused

DEMO = str(ROOT / "recipes" / "demo.yaml")

@pytest.fixture
def afile(tmp_path):
    f = tmp_path / "afile"
    f.write_text("")
    return f


def test_run_with_a_file_as_data_root(afile, capsys):
    refused(castrig_main(capsys, "run", DEMO, "--data", str(afile), "-q"), f"--data {afile}: not a folder", "allowed:")
    refused(castrig_main(capsys, "run", DEMO, "--data", str(afile / "sub"), "-q"), f"--data {afile / 'sub'}: not a folder", f"{afile} is a file")
    assert afile.is_file() and afile.read_text() == ""


def test_run_with_a_data_root_that_cannot_be_made(capsys):
    refused(castrig_main(capsys, "run", DEMO, "--data", "/proc/x", "-q"), "--data /proc/x: cannot make this folder")


def test_run_with_castrig_data_a_file(afile, capsys, monkeypatch):
    monkeypatch.setenv("CASTRIG_DATA", str(afile))
    refused(castrig_main(capsys, "run", DEMO, "-q"), f"$CASTRIG_DATA {afile}: not a folder")
    refused(castrig_main(capsys, "runs"), f"$CASTRIG_DATA {afile}: not a folder")  # as before, in the same words


def test_queue_with_a_file_as_data_root(afile, capsys):
    refused(castrig_main(capsys, "queue", DEMO, "--data", str(afile)), f"--data {afile}: not a folder")


def test_a_refused_run_leaves_no_data_root_behind(tmp_path, capsys):
    """The data root is tried by making it and removing it again: a recipe refused afterwards
    leaves nothing (no empty folders) behind."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsteps: []\n")
    data = tmp_path / "new" / "deeper"
    refused(castrig_main(capsys, "run", str(bad), "--data", str(data), "-q"), "steps")
    assert not (tmp_path / "new").exists()


def test_serve_with_a_file_as_data_root(afile, capsys):
    refused(castrig_main(capsys, "serve", "--data", str(afile), "--port", "0"), f"--data {afile}: not a folder")


@pytest.mark.parametrize("how", ["--data", "$CASTRIG_DATA"])
def test_serve_with_a_missing_data_root_is_refused_not_made(tmp_path, capsys, monkeypatch, how):
    """Audit 3: `castrig serve --data <typo>` made the folder and an operator token in it and
    served an empty root, where `castrig runs --data <typo>` refuses it; now serve refuses too
    (./runs, the default, is still made on a new rig PC)."""
    import castrig.serve.app

    served = []
    monkeypatch.setattr(castrig.serve.app, "serve", lambda root, **kw: served.append(root))  # never serve here
    typo = tmp_path / "runz"
    if how == "--data":
        done = castrig_main(capsys, "serve", "--data", str(typo), "--port", "0")
    else:
        monkeypatch.setenv("CASTRIG_DATA", str(typo))
        done = castrig_main(capsys, "serve", "--port", "0")
    refused(done, f"{how} {typo}: no such folder")
    assert not served and not typo.exists()
    monkeypatch.delenv("CASTRIG_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert castrig_main(capsys, "serve", "--port", "0").returncode == 0 and [Path(p).resolve() for p in served] == [tmp_path / "runs"]


@pytest.mark.parametrize("scheme", ["journal:", ""])
def test_explore_worker_on_a_journal_that_is_not_there_makes_nothing(tmp_path, capsys, scheme):
    """Audit 3: `explore worker --storage journal:/new/dir/j.log --study x` was refused ("no
    study") after it had made the folder and an empty journal: now refused before."""
    journal = tmp_path / "new" / "dir" / "j.log"
    refused(castrig_main(capsys, "explore", "worker", "--storage", f"{scheme}{journal}", "--study", "x",
                         "--data", str(tmp_path / "w")),
            "no study 'x'", f"{journal} does not exist")
    assert not (tmp_path / "new").exists() and not (tmp_path / "w").exists()
    (tmp_path / "new").mkdir()  # the folder there, the file not: still nothing made
    refused(castrig_main(capsys, "explore", "worker", "--storage", f"{scheme}{journal}", "--study", "x"), "no study 'x'")
    assert list((tmp_path / "new").iterdir()) == []


def test_a_map_or_search_on_a_journal_in_a_folder_that_is_not_there_is_refused(tmp_path, capsys):
    """`explore map --storage journal:/mnt/shraed/j` (a typo in the mount the workers share) made the
    folder and ran the map in a journal no other machine sees, exit 0 (SQLite there: refused)."""
    journal = tmp_path / "mnt" / "shraed" / "j.journal"
    for argv in (["explore", "map", "--rh", "60", "--concentration", "5"], ["explore", "--target-grade", "claim1", "--workers", "2"]):
        refused(castrig_main(capsys, *argv, "--data", str(tmp_path / "d"), "--storage", f"journal:{journal}"),
                f"--storage journal:{journal}: the journal's folder {journal.parent} does not exist", "allowed:")
    assert not (tmp_path / "mnt").exists()


def test_sim_render_to_a_file(afile, capsys):
    refused(castrig_main(capsys, "sim", "render", "--out", str(afile), "--n", "1"), f"--out {afile}: not a folder")
    assert afile.read_text() == ""


@pytest.mark.parametrize("url, says", [("sqlite:////nonexistent/dir/x.db", "unable to open database file"),
                                       ("bogus://x", "Can't load plugin"),
                                       ("postgresql://who:secret@127.0.0.1:1/x", "who:***@127.0.0.1:1")])
def test_explore_with_a_storage_that_cannot_be_opened(tmp_path, url, says, capsys):
    err = refused(castrig_main(capsys, "explore", "--target-grade", "claim1", "--data", str(tmp_path / "exp"), "--storage", url),
                  "--storage", "cannot open it", says, "allowed:")
    assert "secret" not in err


@pytest.mark.parametrize("url", ["journal:", "journal:FOLDER"])
def test_explore_with_a_journal_storage_that_names_no_file(tmp_path, url, capsys):
    """`--storage journal:` ended in "ValueError: PosixPath('.') has an empty name" (exit 1)."""
    url = url.replace("FOLDER", str(tmp_path))
    refused(castrig_main(capsys, "explore", "--target-grade", "claim1", "--data", str(tmp_path / "exp"), "--storage", url),
            f"--storage {url}: names no journal file", "allowed:")


@pytest.mark.parametrize("given", ["run.json", "queue_of_another_shape", "folder"])
def test_queue_resume_of_a_file_that_is_no_queue_state(given, tmp_path, capsys):
    """`castrig queue --resume` given a run's run.json (its 'profile' an object) or a JSON file
    without 'items' answered with Python's own words ("expected str, bytes or os.PathLike
    object, not dict", "'items'"): the message says what a queue state file holds."""
    path = tmp_path / "state.json"
    if given == "run.json":
        path.write_text('{"run_id": "20260101-000001-demo", "profile": {"name": "sim"}, "recipe": {"name": "demo"}}')
    elif given == "queue_of_another_shape":
        path.write_text(f'{{"profile": "{ROOT / "hw_profiles" / "sim.yaml"}", "recipes": ["demo.yaml"]}}')
    else:
        path = tmp_path
    says = "not a regular file" if given == "folder" else "needs an object with 'profile' (a path) and 'items' (a list)"
    refused(castrig_main(capsys, "queue", "--resume", str(path)), f"--resume {path}: not a queue state file", says)


@pytest.mark.parametrize("how", ["--data", "$CASTRIG_DATA"])
def test_status_of_a_missing_data_root_is_refused_not_read_as_idle(tmp_path, capsys, monkeypatch, how):
    """`castrig status --data <typo>` said "no run is running under <typo>" (exit 0) — an operator
    told nothing runs while a run goes on elsewhere; `castrig runs` refuses the same typo. A file
    given as the data root is refused the same way; ./runs, the default, may not be there yet."""
    typo = tmp_path / "runz"
    afile = tmp_path / "afile"
    afile.write_text("")
    for root, says in ((typo, "no such folder"), (afile, "not a folder")):
        if how == "--data":
            done = castrig_main(capsys, "status", "--data", str(root))
        else:
            monkeypatch.setenv("CASTRIG_DATA", str(root))
            done = castrig_main(capsys, "status")
        refused(done, f"{how} {root}: {says}")
        assert "no run is running" not in done.stdout
    assert not typo.exists()
    monkeypatch.delenv("CASTRIG_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    idle = castrig_main(capsys, "status")
    assert idle.returncode == 0 and "no run is running under runs" in idle.stdout, idle.stdout + idle.stderr


def test_lots_of_a_missing_or_file_data_root_is_refused_not_read_as_no_lots(tmp_path, capsys):
    """An outside tester: `castrig lots --data <typo>` (or a file) listed an empty table, exit 0:
    "no lots" where `castrig runs` refuses the same typo."""
    typo = tmp_path / "runz"
    afile = tmp_path / "afile"
    afile.write_text("")
    for root, says in ((typo, "no such folder"), (afile, "not a folder")):
        done = castrig_main(capsys, "lots", "--data", str(root))
        refused(done, f"--data {root}: {says}")
        assert "membrane lots" not in done.stdout
    assert not typo.exists()


def test_a_path_name_longer_than_the_file_system_allows_is_refused_naming_the_option(tmp_path, capsys, monkeypatch):
    """A name past 255 bytes (a script's generated name, a pasted path) in a folder that exists:
    Path.exists() and is_dir() raise "File name too long" where they answer False for a missing
    path, and run --data, lots --data, report RUN_DIR, status RUN_DIR, export --to and explore
    --folder each ended in an OSError traceback (exit 1). Also from $CASTRIG_DATA."""
    long = tmp_path / ("x" * 300)
    run_dir = ROOT / "recipes"  # (never reached: the name is refused first)
    for args, named in ((("run", DEMO, "--data", long, "-q"), "--data"), (("lots", "--data", long), "--data"),
                        (("report", long), "RUN_DIR"), (("status", long), "RUN_DIR"),
                        (("export", run_dir, "--to", long), "--to"),
                        (("explore", "--target-grade", "claim1", "--budget", "1", "--folder", long), "--folder")):
        refused(castrig_main(capsys, *args), f"{named} {str(long)[:40]}", "a name longer than the file system allows")
    monkeypatch.setenv("CASTRIG_DATA", str(long))
    refused(castrig_main(capsys, "runs"), "a name longer than the file system allows")
    assert list(tmp_path.iterdir()) == []


def test_a_study_journal_that_cannot_be_written_is_refused_naming_the_storage(tmp_path, capsys, read_only_mount):
    """A study journal on a read-only mount (or a colleague's, not writable by this user): the
    storage was taken as opened, and the map's first append (and a worker's lease beside the
    journal) ended in an OSError traceback (exit 1)."""
    src = tmp_path / "shared"
    make_study(src)  # map-claim1 over a 2 x 2 grid, queued
    journal = read_only_mount(src) / "study.journal"
    for args in (("explore", "map", "--rh", "60:70:10", "--concentration", "5:10:5", "--folder", tmp_path / "mine"),
                 ("explore", "worker", "--study", "map-claim1", "--data", tmp_path / "worker")):
        refused(castrig_main(capsys, *args, "--storage", f"journal:{journal}"), f"--storage journal:{journal}", "read-only file system")
    assert not (tmp_path / "worker").exists()
