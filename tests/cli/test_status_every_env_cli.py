"""``CASTRIG_STATUS_EVERY_MIN`` that is no number of minutes is refused, as the other CASTRIG_*
settings are (``CASTRIG_MAX_IMAGE_PIXELS``, ``CASTRIG_STORE_SCHEMA``: exit 2 naming the variable).

An outside tester's find: ``abc`` fell back to every 5 minutes, ``-5`` and ``nan`` turned the
periodic status lines off, all silently (exit 0). The real CLI in a subprocess, as a service's
unit file or a cron line would start it: refused before a run folder or a queue file exists.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT, castrig, refused

SHORT = ROOT / "tests" / "data" / "short.yaml"


@pytest.mark.parametrize("value", ["abc", "-5", "nan", "inf"])
def test_run_refuses_a_status_interval_that_is_no_number_of_minutes(tmp_path: Path, value: str):
    data = tmp_path / "runs"
    done = castrig("run", str(SHORT), "--data", str(data), "-q", CASTRIG_STATUS_EVERY_MIN=value)
    refused(done, f"CASTRIG_STATUS_EVERY_MIN = '{value}'", "allowed: 0", "positive number of minutes")
    assert not data.exists() or not any(p.name != "catalog.sqlite" for p in data.iterdir())  # no run folder


def test_queue_refuses_it_before_its_state_file_exists(tmp_path: Path):
    data = tmp_path / "runs"
    done = castrig("queue", str(SHORT), "--data", str(data), CASTRIG_STATUS_EVERY_MIN="-5")
    refused(done, "CASTRIG_STATUS_EVERY_MIN = '-5'", "allowed: 0")
    assert not (data.exists() and list(data.glob("queue-*.json")))  # no queue state file


# " 2.5 " (a number of minutes, with spaces and a decimal point) stands for "15" in CI; -m slow runs both
@pytest.mark.parametrize("value", ["0", pytest.param("15", marks=pytest.mark.slow), " 2.5 ", ""])
def test_zero_a_number_of_minutes_or_unset_still_run(tmp_path: Path, value: str):
    done = castrig("run", str(SHORT), "--data", str(tmp_path / "runs"), "-q", CASTRIG_STATUS_EVERY_MIN=value)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("name, value, argv", [
    # a traceback at import (int('abc')) as a worker started
    ("CASTRIG_EXPLORE_HEARTBEAT_S", "abc", ("explore", "worker", "--storage", "{tmp}/s.journal", "--study", "s")),
    ("CASTRIG_EXPLORE_HEARTBEAT_S", "0", ("explore", "worker", "--storage", "{tmp}/s.journal", "--study", "s")),
    # fell back to 2 threads, silently
    ("CASTRIG_ANALYSIS_THREADS", "abc", ("analyse", "surface", str(ROOT / "benchmarks" / "micrographs" /
                                                                 "porous_silicon_zeiss_100kx_weiss.tif"), "--json")),
    ("CASTRIG_ANALYSIS_THREADS", "-1", ("run", str(SHORT), "--data", "{tmp}/runs", "-q")),
])
def test_the_other_whole_number_settings_are_refused_too(tmp_path: Path, name: str, value: str, argv: tuple):
    done = castrig(*(a.replace("{tmp}", str(tmp_path)) for a in argv), **{name: value})
    refused(done, f"{name} = '{value}'", "allowed a whole number")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "s.journal").exists()
