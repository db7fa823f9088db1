"""A run's ``control`` folder linked to another run's (whoever may write the data root can make the
link): ``castrig abort A`` and the served ``POST /api/runs/A/abort`` wrote their command into B's
channel, and B's runner took it and aborted B; A's runner took B's commands. Now the channel is
refused where it is no real folder of the run's own, saying so, and B is left as it was."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from castrig.store.commands import CommandInbox, read_status, send_command
from conftest import castrig, held_running_run


def _commands(channel: Path) -> list[str]:
    return sorted(p.name for p in channel.glob("*.json") if p.name != "status.json")


def test_a_control_folder_linked_to_another_runs_is_refused_and_the_other_run_is_untouched(tmp_path: Path, castrig_serve):
    data = tmp_path / "data"
    with held_running_run(data, "a") as run_a, held_running_run(data, "b") as run_b:
        b_inbox = CommandInbox(run_b)  # B's runner: its channel made and polled
        (run_a / "control").symlink_to(run_b / "control")

        done = castrig("abort", str(run_a), "--wait", "0", timeout_s=60)
        said = " ".join(done.stderr.split())
        assert done.returncode == 2 and "Traceback" not in said, (done.returncode, said)
        assert f"{run_a / 'control'} is a symbolic link (to {run_b / 'control'})" in said and "nothing was sent" in said, said
        assert _commands(run_b / "control") == [] and b_inbox.pending() == []

        with castrig_serve(data) as served:
            req = urllib.request.Request(served.url + f"api/runs/{run_a.name}/pause", method="POST", data=b"",
                                         headers={"Authorization": f"Bearer {served.token}"})
            try:
                urllib.request.urlopen(req, timeout=20)
                raise AssertionError("the pause was sent")
            except urllib.error.HTTPError as exc:
                code, body = exc.code, json.loads(exc.read())
        assert code == 409 and "DATA/" in body["error"] and "is a symbolic link" in body["error"], (code, body)
        assert str(data) not in body["error"]  # the server's own paths stay its own
        assert _commands(run_b / "control") == [] and b_inbox.pending() == []

        # A's runner, its channel linked to B's, takes none of B's commands and writes no status over B's
        a_inbox = CommandInbox(run_a)
        meant_for_b = send_command(run_b, "abort", "cli:ada")
        assert a_inbox.pending() == [] and "is a symbolic link" in (a_inbox.refused or "")
        a_inbox.write_status({"state": "running", "run": "a"})
        b_inbox.write_status({"state": "paused", "run": "b"})
        assert read_status(run_b)["run"] == "b" and read_status(run_a) is None  # (not B's said as A's)
        assert [c.name for c in b_inbox.pending()] == [meant_for_b.name]  # B's own still reach B
        os.unlink(run_a / "control")  # a real folder again: A's channel works
        send_command(run_a, "pause", "cli:ada")
        assert [c.action for c in a_inbox.pending()] == ["pause"] and a_inbox.refused is None
