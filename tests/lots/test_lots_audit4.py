"""Audit 4: `castrig lots --data ROOT assign|unassign` acts on ROOT; a crashed run's lots in
`castrig filter check` / `coculture check`; a lot listed twice in a build."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import add_membrane_run, castrig_main
from conftest import membrane_metrics as _metrics


@pytest.fixture
def elsewhere_and_cwd_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A data root ``elsewhere`` with one simulated lot, and a working directory holding an
    unrelated ``./runs`` (a copy of the same run) -- the audit's set-up; (elsewhere, lot id)."""
    elsewhere = tmp_path / "elsewhere"
    (lot,) = add_membrane_run(elsewhere, "20260101-000001-three", [_metrics(3.0)], simulated=True)
    cwd = tmp_path / "cwd"
    (cwd / "runs").mkdir(parents=True)
    shutil.copytree(elsewhere / "20260101-000001-three", cwd / "runs" / "20260101-000001-three")
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("CASTRIG_DATA", raising=False)
    monkeypatch.delenv("CASTRIG_STORE", raising=False)
    return elsewhere, lot


def test_lots_group_data_is_where_assign_and_unassign_write(elsewhere_and_cwd_runs, capsys):
    elsewhere, lot = elsewhere_and_cwd_runs
    done = castrig_main(capsys, "lots", "--data", "../elsewhere", "assign", lot, "--use", "coculture", "--allow-simulated")
    assert done.returncode == 0, done.err
    assert json.loads((elsewhere / "lots.json").read_text())[lot]["intended_use"] == "coculture"
    assert not Path("runs/lots.json").exists()  # never written to the other root
    listed = castrig_main(capsys, "lots", "--data", "../elsewhere")
    assert "coculture" in listed.stdout
    done = castrig_main(capsys, "lots", "--data", "../elsewhere", "unassign", lot)
    assert done.returncode == 0, done.err
    assert lot not in json.loads((elsewhere / "lots.json").read_text())


def test_lots_group_data_without_cwd_runs_finds_the_lot(tmp_path, monkeypatch, capsys):
    (lot,) = add_membrane_run(tmp_path / "elsewhere", "20260101-000001-three", [_metrics(3.0)], simulated=True)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.delenv("CASTRIG_DATA", raising=False)
    done = castrig_main(capsys, "lots", "--data", str(tmp_path / "elsewhere"), "assign", lot, "--use", "blood_filter",
                        "--allow-simulated")
    assert done.returncode == 0 and "no such lot" not in done.stderr
    assert not (tmp_path / "cwd" / "runs").exists()


def test_lots_group_and_subcommand_data_that_differ_are_refused(elsewhere_and_cwd_runs, capsys):
    elsewhere, lot = elsewhere_and_cwd_runs
    done = castrig_main(capsys, "lots", "--data", str(elsewhere), "assign", lot, "--use", "coculture", "--allow-simulated",
                        "--data", "runs")
    assert done.returncode == 2
    assert str(elsewhere) in done.stderr and "runs" in done.stderr and "Traceback" not in done.stderr
    assert not (elsewhere / "lots.json").exists() and not Path("runs/lots.json").exists()
    # the same folder named twice is one root
    done = castrig_main(capsys, "lots", "--data", str(elsewhere), "assign", lot, "--use", "coculture", "--allow-simulated",
                        "--data", "../elsewhere")
    assert done.returncode == 0, done.stderr
    done = castrig_main(capsys, "lots", "--data", "runs", "unassign", lot, "--data", str(elsewhere))
    assert done.returncode == 2 and lot in json.loads((elsewhere / "lots.json").read_text())
