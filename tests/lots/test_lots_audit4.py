"""Audit 4: `castrig lots --data ROOT assign|unassign` acts on ROOT; a crashed run's lots in
`castrig filter check` / `coculture check`; a lot listed twice in a build."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import add_membrane_run, castrig_main, crashed_membrane_run
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


# -- filter check / coculture check: a crashed run's lot, a lot listed twice -------------------------
ROOT = Path(__file__).resolve().parents[2]


def _crashed_run(root: Path, run_id: str = "20260101-000001-night") -> str:
    """m1's lot id in a run folder as a kill -9 in m2's evaporation leaves it (conftest)."""
    return crashed_membrane_run(root, run_id).name + "-m1"


def _build(tmp_path: Path, name: str, **changes) -> Path:
    import yaml

    data = yaml.safe_load((ROOT / "examples" / ("filter-build.yaml" if name == "filter" else "coculture.yaml")).read_text())
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**data, **changes}))
    return path


def test_filter_and_coculture_check_refuse_a_lot_of_a_crashed_run(tmp_path, capsys):
    root = tmp_path / "data"
    lot = _crashed_run(root)
    assert lot in castrig_main(capsys, "lots", "--data", str(root)).stdout  # listed: its membrane was judged
    run = lot.rsplit("-m", 1)[0]
    for kind, changes in (("filter", {"lots": [lot]}), ("coculture", {"lot": lot})):
        done = castrig_main(capsys, kind, "check", str(_build(tmp_path, kind, **changes)), "--data", str(root))
        assert done.returncode == 2, done.stdout
        assert f"made by run {run}, which is crashed, its record not closed" in done.stderr and "castrig resume" in done.stderr
        assert "Traceback" not in done.stderr
    # once the run has ended (castrig resume to the recipe's end, or aborted there), the same lot
    # is taken: m1 was judged before the run went on; an abort after it leaves m1 as it was,
    # and the check's record says how its run ended
    from castrig.store import open_store

    store = open_store(root)
    for outcome in ("aborted", "completed"):
        with store.open_run(root / run) as rec:
            rec.update_info(outcome=outcome, ended_utc="2026-01-01T08:00:00Z")
            store.index_run(rec, ["claim1", "claim2", "claim3", "claim4"])  # as the run's end does
        done = castrig_main(capsys, "filter", "check", str(_build(tmp_path, "filter", lots=[lot])), "--data", str(root))
        assert done.returncode == 0, done.stderr
        assert ("which ended aborted after this membrane was judged" in done.stdout) == (outcome == "aborted"), done.stdout


def test_filter_check_refuses_a_lot_listed_twice(tmp_path, capsys):
    root = tmp_path / "data"
    lot, other = add_membrane_run(root, "20260101-000001-two", [_metrics(3.0), _metrics(4.0)])
    done = castrig_main(capsys, "filter", "check", str(_build(tmp_path, "filter", lots=[lot, lot], layers=2)), "--data", str(root))
    assert done.returncode == 2
    assert f"lots[1] = '{lot}': the same lot as lots[0]" in done.stderr and "Traceback" not in done.stderr
    done = castrig_main(capsys, "filter", "check", str(_build(tmp_path, "filter", lots=[lot, other], layers=2)), "--data", str(root))
    assert done.returncode == 0, done.stderr
