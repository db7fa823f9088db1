"""``castrig serve`` over a data root of many runs: the runs page reloads itself every 10 s, and
each reload read every run's database again (about 1 ms of CPU a run): 3 000 runs took 3.2 s of
the server's CPU per reload of one open page, 10 000 a core for good. Ended runs' rows are now
kept while their files are unchanged; a run whose files change, or whose folder is replaced by
another of the same name, is read again."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

RUNS = 300


def _cpu_s(pid: int) -> float:
    """User + system CPU time the process took so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _runs(url: str) -> dict[str, dict]:
    with urllib.request.urlopen(url + "api/runs", timeout=60) as r:
        return {row["uid"]: row for row in json.loads(r.read())}


def test_the_runs_list_of_many_ended_runs_is_read_once_and_again_only_where_a_run_changed(tmp_path: Path, castrig_serve,
                                                                                          finished_demo_run):
    root, run_id = finished_demo_run
    data = tmp_path / "data"
    data.mkdir()
    records = tmp_path / "run.sqlite"
    shutil.copy(root / run_id / "run.sqlite", records)  # one database, linked into every folder (read only)
    info = json.loads((root / run_id / "run.json").read_text())
    for i in range(RUNS):
        d = data / f"20261101-{i:06d}-demo"
        d.mkdir()
        os.link(records, d / "run.sqlite")
        (d / "run.json").write_text(json.dumps({**info, "run_id": d.name}))
    some = data / "20261101-000007-demo"

    with castrig_serve(data) as served:
        before = _cpu_s(served.proc.pid)
        first = _runs(served.url)
        first_s = _cpu_s(served.proc.pid) - before
        again = _runs(served.url)
        again_s = _cpu_s(served.proc.pid) - before - first_s
        assert len(first) == RUNS and again == first and first[some.name]["status"] == "completed"
        assert again_s * 3 < first_s, (first_s, again_s)  # (0.33 s against 3.3 s for 3 000 runs; equal before)

        (some / "run.json").write_text(json.dumps({**info, "run_id": some.name, "operator": "night shift"}))
        moved = data / "20261101-000008-demo"
        moved.rename(tmp_path / "away")  # a folder replaced by another of the same name, as it is served
        moved.mkdir()
        shutil.copy(records, moved / "run.sqlite")
        (moved / "run.json").write_text(json.dumps({**info, "run_id": moved.name, "outcome": "aborted"}))
        now = _runs(served.url)
        assert now[some.name]["operator"] == "night shift" and now[moved.name]["status"] == "aborted"
        assert {k: v for k, v in now.items() if k not in (some.name, moved.name)} == \
            {k: v for k, v in first.items() if k not in (some.name, moved.name)}
