"""The run's control channel (castrig.store.commands): files in the run folder, answered once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from castrig.store.commands import CommandInbox, answer_of, history, read_status, send_command


def test_command_is_answered_once_in_arrival_order(tmp_path: Path):
    inbox = CommandInbox(tmp_path)
    first = send_command(tmp_path, "pause", "cli:ada")
    second = send_command(tmp_path, "abort", "token:operator")
    pending = inbox.pending()
    assert [(c.action, c.by) for c in pending] == [("pause", "cli:ada"), ("abort", "token:operator")]
    assert answer_of(tmp_path, first) is None
    inbox.answer(pending[0], True, "pausing", 12.5)
    assert [c.action for c in inbox.pending()] == ["abort"]
    got = answer_of(tmp_path, first)
    assert got["accepted"] is True and got["by"] == "cli:ada" and got["t_s"] == 12.5
    inbox.answer(inbox.pending()[0], True, "aborting", 13.0)
    assert inbox.pending() == [] and answer_of(tmp_path, second)["action"] == "abort"
    assert [h["action"] for h in history(tmp_path)] == ["pause", "abort"]


def test_garbage_in_the_channel_is_refused_not_retried(tmp_path: Path):
    inbox = CommandInbox(tmp_path)
    (tmp_path / "control" / "00000000000000000001-x.json").write_text("{not json")
    (tmp_path / "control" / ".half-written.json.tmp").write_text('{"action": "ab')  # a writer's temporary: ignored
    pending = inbox.pending()
    assert len(pending) == 1 and pending[0].action == ""
    inbox.answer(pending[0], False, "unreadable", 0.0)
    assert inbox.pending() == []


def test_unknown_action_is_not_sent(tmp_path: Path):
    with pytest.raises(ValueError):
        send_command(tmp_path, "format-disk", "cli:mallory")
    assert not (tmp_path / "control").exists() or not list((tmp_path / "control").glob("*.json"))


def test_status_snapshot_is_atomic_json(tmp_path: Path):
    inbox = CommandInbox(tmp_path)
    inbox.write_status({"state": "running", "step_index": 1})
    assert read_status(tmp_path)["step_index"] == 1
    assert json.loads((tmp_path / "control" / "status.json").read_text())["state"] == "running"
    assert not list((tmp_path / "control").glob(".*tmp"))
