"""Output to a stream that takes ASCII only (``PYTHONIOENCODING=ascii``; ``LC_ALL=C`` with
``PYTHONUTF8=0``; a cron or service environment): what castrig cannot encode is escaped, never a
traceback and never a line dropped."""

from __future__ import annotations

from conftest import add_membrane_run, castrig, membrane_metrics


def test_micrometres_and_non_ascii_names_on_an_ascii_stdout(tmp_path):
    """`castrig lots` (its header "D µm", "σd/D") ended in a UnicodeEncodeError traceback, exit 1;
    `castrig run` into a data root named "runs ±" ran, exit 0, and said nothing on stdout: its
    "completed: runs ±/..." line could not be encoded and was dropped. Both now say it, escaped."""
    lots_root = tmp_path / "lots"
    add_membrane_run(lots_root, "20260101-000001-night", [membrane_metrics(3.0)])
    lots = castrig("lots", "--data", str(lots_root), PYTHONIOENCODING="ascii")
    assert lots.returncode == 0 and "Traceback" not in lots.stderr, lots.stderr[-2000:]
    assert "D \\xb5m" in lots.stdout and "20260101-000001-night-m1" in lots.stdout, lots.stdout

    recipe, data = tmp_path / "purge µ.yaml", tmp_path / "runs ±"
    recipe.write_text("name: Membran µ\nsteps:\n  - {type: purge, duration_s: 1}\n")
    run = castrig("run", str(recipe), "--data", str(data), "-q", PYTHONIOENCODING="ascii")
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr[-2000:]
    (run_dir,) = [p for p in data.iterdir() if p.is_dir()]
    escaped = str(run_dir).replace("±", "\\xb1")
    assert f"completed: {escaped}" in run.stdout, run.stdout
