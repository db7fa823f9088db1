"""A profile or ``--storage`` URL with a password: castrig explore keeps the password out of what
it writes (search.json, each trial's profile.yaml, the Optuna study's attributes) and out of what
it prints, as castrig run does (castrig.redact)."""

from __future__ import annotations



from conftest import ROOT, castrig, castrig_main, files_holding, profile_with_store
from conftest import STORE_PASSWORD as PASSWORD

SEARCH = ("explore", "--target-grade", "claim1", "--target-d-um", "3", "--tolerance", "0.01")


def test_an_explore_writes_and_prints_no_password_of_its_profile(tmp_path):
    data = tmp_path / "data"
    r = castrig(*SEARCH, "--budget", "1", "--profile", str(profile_with_store(tmp_path)), "--data", str(data),
                "--template", str(ROOT / "tests" / "explore" / "one_view.yaml"), timeout_s=180)  # (one field, one view: a cheaper trial)
    assert r.returncode in (0, 1) and "#0" in r.stdout, r.stdout + r.stderr
    assert list(data.glob("explore/*/search.json")) and list(data.glob("explore/*/trials/*/profile.yaml"))
    assert files_holding(data, "Pw-7f3a9c") == []
    assert "Pw-7f3a9c" not in r.stdout + r.stderr
    (settings,) = data.glob("explore/*/search.json")
    assert "castrig:***@127.0.0.1:1" in settings.read_text()  # the URL is kept, without its password


def test_a_study_holds_no_password_of_the_profile(tmp_path):
    from castrig.explore.distributed import start_search, storage_url
    from castrig.explore.search import make_settings

    settings = make_settings(grade="claim1", target_d_um=3.0, profile_path=profile_with_store(tmp_path), budget=1)
    url = storage_url(None, tmp_path / "study")
    start_search(url, "s", settings)
    assert files_holding(tmp_path / "study", "Pw-7f3a9c") == []


def test_a_bad_storage_url_is_named_without_its_password(tmp_path, capsys):
    """(Refused as the storage is opened, before any trial: the CLI's entry point in this process,
    conftest ``castrig_main``.)"""
    url = f"postgresql://u:{PASSWORD}@127.0.0.1:1/nodb"
    for args in ((*SEARCH, "--budget", "1", "--storage", url), ("explore", "worker", "--storage", url, "--study", "s")):
        r = castrig_main(capsys, *args, "--data", str(tmp_path / "data"))
        assert r.returncode == 2, r.stdout + r.stderr
        assert "postgresql://u:***@127.0.0.1:1/nodb" in r.stderr, r.stderr
        assert "Pw-7f3a9c" not in r.stdout + r.stderr


def test_a_key_value_connection_string_is_refused_and_its_password_masked_everywhere(tmp_path, capsys, monkeypatch):
    """libpq's keyword/value form ("host=… password=…"): `explore map --storage` took it for a
    journal file's name (exit 0: a file named after the whole string, password and all, in the
    working folder, a study no worker elsewhere could see, the password printed in its name);
    CASTRIG_STORE and `store sync --url` refused it but printed the password in the message."""
    conninfo = f"host=127.0.0.1 user=castrig password={PASSWORD} dbname=castrig_test"
    run = castrig("run", "recipes/demo.yaml", "--data", str(tmp_path / "runs"), CASTRIG_STORE=conninfo)  # (read at start-up)
    monkeypatch.chdir(tmp_path)  # (the working folder the map wrote its journal into)
    runs = [castrig_main(capsys, "explore", "map", "--rh", "60", "--concentration", "5", "--storage", conninfo, "--study", "k",
                         "--folder", str(tmp_path / "map"), "--profile", str(ROOT / "hw_profiles" / "sim.yaml")),
            run,
            castrig_main(capsys, "store", "sync", str(tmp_path), "--url", conninfo)]  # (refused before anything runs: in this process)
    for r in runs:
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stdout + r.stderr
        assert PASSWORD not in r.stdout + r.stderr and "password=***" in r.stderr, r.stdout + r.stderr
    assert "a key=value connection string is no storage URL" in runs[0].stderr, runs[0].stderr
    assert files_holding(tmp_path, "Pw-7f3a9c") == [] and not list(tmp_path.glob("host=*")), list(tmp_path.iterdir())


def test_on_a_real_rig_the_store_is_the_operators_own_url_with_its_password(tmp_path):
    from castrig.cli.explore import _operator_profile
    from castrig.explore.search import make_settings

    settings = make_settings(grade="claim1", target_d_um=3.0, profile_path=profile_with_store(tmp_path), budget=1)
    assert settings.profile["store"] == "postgresql://castrig:***@127.0.0.1:1/castrig_test"
    assert _operator_profile(settings)["store"] == f"postgresql://castrig:{PASSWORD}@127.0.0.1:1/castrig_test"
