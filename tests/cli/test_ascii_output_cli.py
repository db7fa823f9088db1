"""Output to a stream that takes ASCII only (``PYTHONIOENCODING=ascii``; ``LC_ALL=C`` with
``PYTHONUTF8=0``; a cron or service environment): what castrig cannot encode is escaped, never a
traceback and never a line dropped (a run's last lines there: tests/store/test_non_utf8_paths_cli.py)."""

from __future__ import annotations

from conftest import add_membrane_run, castrig, membrane_metrics


def test_micrometres_on_an_ascii_stdout(tmp_path):
    """`castrig lots` (its header "D µm", "σd/D") ended in a UnicodeEncodeError traceback, exit 1,
    as did the tables of `castrig analyse`. Now the table is written, µ as its escape."""
    add_membrane_run(tmp_path, "20260101-000001-night", [membrane_metrics(3.0)])
    lots = castrig("lots", "--data", str(tmp_path), PYTHONIOENCODING="ascii")
    assert lots.returncode == 0 and "Traceback" not in lots.stderr, lots.stderr[-2000:]
    assert "D \\xb5m" in lots.stdout and "20260101-000001-night-m1" in lots.stdout, lots.stdout
