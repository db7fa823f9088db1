"""A profile's fleet-store URL with its password (``store: postgresql://castrig:PW@host/db``):
the password must not be copied in clear wherever castrig records the profile — run.json, the
report's "hardware profile the run used", ``castrig serve`` (the same report data) and the fleet
store's ``runs.info_json`` — as it already was not in castrig's own logs. Before, each held it.

A resume still reaches the same store and devices: run.json's redacted copy is never used as a
URL (the store comes from the data root / ``$CASTRIG_STORE``; a device password from the
operator's profile file again).
"""

from __future__ import annotations

import json
from pathlib import Path
import uuid

import pytest

from conftest import (ROOT, campaign, castrig, castrig_main, files_holding, only_run_dir, pg_password_or_skip, profile_with_store,
                      run_then_kill_9, signal_hook, step_running, with_sitecustomize)
from conftest import STORE_PASSWORD as PASSWORD

SHORT = ROOT / "tests" / "data" / "short.yaml"


def test_the_store_password_is_kept_out_of_run_json_and_the_report(tmp_path, capsys):
    profile = profile_with_store(tmp_path, f"postgresql://castrig:{PASSWORD}@127.0.0.1:1/castrig_test")
    data = tmp_path / "runs"
    done = castrig("run", str(SHORT), "--profile", str(profile), "--data", str(data), "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = [p.parent for p in data.glob("*/run.json")]
    report = castrig_main(capsys, "report", str(run_dir))  # (the report through the CLI's entry point in this process)
    assert report.returncode == 0, report.stderr
    assert files_holding(run_dir, PASSWORD) == [] and "Pw-7f3a9c" not in done.stdout + done.stderr
    assert files_holding(run_dir, "Pw-7f3a9c") == []
    info = json.loads((run_dir / "run.json").read_text())
    assert info["profile"]["store"] == "postgresql://castrig:***@127.0.0.1:1/castrig_test"  # what it was, without the secret
    assert "castrig:***@127.0.0.1" in next(run_dir.glob("report*.html")).read_text()


QUERY_OR_FRAGMENT_SECRETS = ["Pw?7f3a9c", "Pw#7f3a9c", "Pw/7f?a@9c"]


# CI runs the first (a run of its own each, ~0.6 s of CPU); the redaction of each of the three,
# where the run's records and log lines are redacted, is checked in every suite just below
@pytest.mark.parametrize("secret", campaign(QUERY_OR_FRAGMENT_SECRETS, ci={0}))
def test_a_password_holding_query_or_fragment_characters_is_kept_out_too(tmp_path, secret):
    """libpq takes ``postgresql://castrig:pa?ss@host/db`` with the password ``pa?ss``. The
    redaction ended a password at the first '?', '#' or '/', so such a password was written in
    clear into run.json (its profile and its fleet store record) and every log line."""
    profile = profile_with_store(tmp_path, f"postgresql://castrig:{secret}@127.0.0.1:1/castrig_test")
    data = tmp_path / "runs"
    done = castrig("run", str(SHORT), "--profile", str(profile), "--data", str(data), "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = [p.parent for p in data.glob("*/run.json")]
    assert files_holding(run_dir, "7f") == [] and "7f" not in done.stdout + done.stderr
    assert json.loads((run_dir / "run.json").read_text())["profile"]["store"] == "postgresql://castrig:***@127.0.0.1:1/castrig_test"


@pytest.mark.parametrize("secret", QUERY_OR_FRAGMENT_SECRETS)
def test_the_redaction_ends_no_password_at_a_query_or_fragment_character(secret):
    """The redaction the run applies to its profile's URLs (run.json, the fleet record) and to its
    log lines, for each of the three characters (the run above is castrig's, on one of them)."""
    from castrig.redact import redact, redact_url, redact_urls

    url = f"postgresql://castrig:{secret}@127.0.0.1:1/castrig_test"
    masked = "postgresql://castrig:***@127.0.0.1:1/castrig_test"
    assert redact_urls({"store": url}) == {"store": masked} and redact_url(url) == masked
    assert redact(f"fleet database unreachable url={url} attempt=1") == f"fleet database unreachable url={masked} attempt=1"


def _four_hour_wait(tmp_path) -> Path:
    """A recipe to kill -9 in its second step, a 4-hour wait (~2 s on the twin): killed after
    SHORT's second step, four steps of a few virtual minutes left, the run finished first on a
    loaded CI machine ("run already completed; nothing to resume")."""
    recipe = tmp_path / "wait.yaml"
    recipe.write_text("name: four-hour-wait\nsteps:\n  - {type: purge, duration_s: 30}\n  - {type: wait, duration_s: 14400}\n")
    return recipe


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
def test_a_resume_works_from_the_redacted_record_and_keeps_it_redacted(tmp_path):
    profile = profile_with_store(tmp_path, f"postgresql://castrig:{PASSWORD}@127.0.0.1:1/castrig_test")
    data = tmp_path / "runs"
    run_dir = run_then_kill_9(_four_hour_wait(tmp_path), data, step_running(1), args=("--profile", str(profile)))
    done = castrig("resume", str(run_dir), "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    info = json.loads((run_dir / "run.json").read_text())
    assert info["outcome"] == "completed" and len(info["parts"]) == 2
    assert files_holding(run_dir, "Pw-7f3a9c") == []


def test_a_device_password_comes_back_from_the_operators_profile_on_resume():
    """The resume's own step: run.json's redacted URLs are filled from the profile file where it
    names the same URL; what the file no longer gives stays redacted (and is refused for a device)."""
    from castrig.redact import is_redacted, redact, redact_urls, restore_redacted

    profile = {"store": f"postgresql://castrig:{PASSWORD}@db/fleet", "devices": {"camera": {"source": "rtsp://cam:pw@10.0.0.9/1"}},
               "name": "rig-2"}
    recorded = redact_urls(profile)
    assert recorded["devices"]["camera"]["source"] == "rtsp://cam:***@10.0.0.9/1" and is_redacted(recorded)
    assert restore_redacted(recorded, profile) == profile
    moved = {**profile, "devices": {"camera": {"source": "rtsp://cam:pw@10.0.0.10/1"}}}
    assert is_redacted(restore_redacted(recorded, moved)["devices"])  # another camera: not its password
    assert redact("postgresql://db/fleet?password=pw&user=u") == "postgresql://db/fleet?password=***&user=u"


def test_the_fleet_store_catalog_keeps_no_password(tmp_path):
    """With a PostgreSQL fleet store (``CASTRIG_TEST_PG``): ``runs.info_json`` holds the profile redacted."""
    url, password = pg_password_or_skip()
    psycopg = pytest.importorskip("psycopg")
    masked = url.replace(f":{password}@", ":***@", 1)
    schema = "t_" + uuid.uuid4().hex[:12]
    profile = profile_with_store(tmp_path, url)
    try:
        done = castrig("run", str(SHORT), "--profile", str(profile), "-q", CASTRIG_DATA=str(tmp_path / "runs"),
                       CASTRIG_STORE_SCHEMA=schema)
        assert done.returncode == 0, done.stdout + done.stderr
        with psycopg.connect(url) as conn:
            rows = [json.dumps(r[0]) for r in conn.execute(f"SELECT info_json FROM {schema}.runs")]  # type: ignore[arg-type]
        # (the CI URL's password is also its user and database name: look for it where a password goes)
        assert rows and all(f":{password}@" not in r for r in rows) and all(masked in r for r in rows), rows
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")  # type: ignore[arg-type]


def test_a_fleet_store_run_resumes_into_the_store_from_the_environment(tmp_path):
    """With a PostgreSQL fleet store (``CASTRIG_TEST_PG``): a run killed -9 and resumed with
    ``$CASTRIG_STORE`` set reaches the store with the real password (not run.json's ``***``) and
    the catalog still holds none."""
    url, password = pg_password_or_skip()
    psycopg = pytest.importorskip("psycopg")
    schema = "t_" + uuid.uuid4().hex[:12]
    profile = profile_with_store(tmp_path, url)
    data = tmp_path / "runs"
    env = {"CASTRIG_STORE": url, "CASTRIG_STORE_SCHEMA": schema}
    try:
        # killed by itself as its wait begins (seeded: no race with a poll, so the wait need not
        # outlast one on a loaded machine; 10 min, not _four_hour_wait's 4 h: the resume runs it
        # all and pushes it to the store, ~2 s of CPU less)
        recipe = tmp_path / "wait.yaml"
        recipe.write_text("name: ten-minute-wait\nsteps:\n  - {type: purge, duration_s: 30}\n  - {type: wait, duration_s: 600}\n")
        killed = castrig("run", str(recipe), "--profile", str(profile), "--data", str(data), "-q", AT_STEP="SIGKILL",
                         **with_sitecustomize(tmp_path, signal_hook("castrig.recipe.runner:Runner._step_wait", "AT_STEP")), **env)
        assert killed.returncode == -9, killed.stdout + killed.stderr
        run_dir = only_run_dir(data)
        assert run_dir is not None and step_running(1)(run_dir)
        done = castrig("resume", str(run_dir), "-q", **env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "unreachable" not in done.stderr and "***" not in done.stderr, done.stderr
        with psycopg.connect(url) as conn:
            rows = [(o, json.dumps(i)) for o, i in conn.execute(f"SELECT outcome, info_json FROM {schema}.runs")]  # type: ignore[arg-type]
        assert [o for o, _ in rows] == ["completed"], rows
        assert all(f":{password}@" not in i for _, i in rows)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")  # type: ignore[arg-type]


@pytest.mark.parametrize("url", [f"postgresql://castrig:{PASSWORD}@[::1:5499/castrig_test",  # a bracket left open
                                 "postgresql://castrig:Pw%zz7f3a9c@127.0.0.1:1/castrig_test",  # a bad escape
                                 "postgresql://castrig:Pw 7f3a9c@127.0.0.1:1/castrig_test"])  # a space
def test_a_store_url_the_driver_refuses_is_named_without_its_password(tmp_path, url):
    """psycopg's own error quotes the URL ("… in URI: postgresql://castrig:PW@[::1…") or a piece
    of it ("invalid percent-encoded token: Pw%zz…"); it was printed as it came, 19 times in a
    run's console. A password with a space in it was shown whole by `store sync` and `explore`."""
    pytest.importorskip("psycopg")
    data = tmp_path / "runs"
    done = castrig("run", str(SHORT), "--data", str(data), "-q", CASTRIG_STORE=url)
    (run_dir,) = [p.parent for p in data.glob("*/run.json")]
    synced = castrig("store", "sync", str(run_dir), "--url", url)
    said = done.stdout + done.stderr + synced.stdout + synced.stderr
    assert synced.returncode != 0 and "7f3a9c" not in said and "***" in said, said
    assert files_holding(run_dir, "7f3a9c") == []


def test_store_warnings_go_to_stderr_not_into_the_output_scripts_read(finished_demo_run):
    """The fleet store's "unreachable" warnings were printed on stdout, two lines every 2 s of an
    outage, mixed into what `castrig runs` and `store sync` print (and read by scripts)."""
    pytest.importorskip("psycopg")
    root, run_id = finished_demo_run
    done = castrig("store", "sync", str(root / run_id), "--url", "postgresql://castrig:x@127.0.0.1:1/db")
    assert done.returncode == 3 and done.stdout == "" and "fleet database unreachable" in done.stderr, done.stdout
