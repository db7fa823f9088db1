"""Bad input is exit 2, not 3 (DESIGN §7: 3 is a run aborted or faulted, the rig left safe).

Audit 3: `CASTRIG_STORE_SCHEMA=pg_catalog castrig store sync RUN` exited 3 calling the fleet
database "unreachable" (creating tables in PostgreSQL's own catalog schema failed); `castrig
serve` on a port in use exited 3 (uvicorn's "startup failure" code), after making the operator
token. Both are a value the person gave that cannot be used: exit 2 naming it, nothing made.
In-process (conftest ``castrig_main``): refused before anything runs (no PostgreSQL needed: the
URL points at a closed port, which the old code went on to try).
"""

from __future__ import annotations

import shutil
import socket

import pytest

from conftest import castrig_main


@pytest.mark.parametrize("schema", ["pg_catalog", "pg_toast", "information_schema"])
def test_store_sync_into_a_reserved_schema_is_bad_input(finished_demo_run, tmp_path, capsys, monkeypatch, schema):
    data, uid = finished_demo_run
    run_dir = tmp_path / uid
    shutil.copytree(data / uid, run_dir)
    monkeypatch.setenv("CASTRIG_STORE_SCHEMA", schema)
    done = castrig_main(capsys, "store", "sync", str(run_dir), "--url", "postgresql://castrig@127.0.0.1:1/castrig")
    err = " ".join(done.stderr.split())
    assert done.returncode == 2, (done.returncode, err)
    assert f"CASTRIG_STORE_SCHEMA '{schema}': reserved by PostgreSQL" in err and "not starting with" in err, err
    assert "unreachable" not in err and "Traceback" not in err


def test_serve_on_a_port_in_use_is_bad_input_and_makes_no_token(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = castrig_main(capsys, "serve", "--data", str(data), "--port", str(port))
    err = " ".join(done.stderr.split())
    assert done.returncode == 2, (done.returncode, err)
    assert f"error: --port {port}: port {port} on 127.0.0.1 already in use" in err and "0 for any free port" in err, err
    assert list(data.iterdir()) == []  # no .castrig/tokens made for a server that never served
