"""castrig.regular: files in a run folder or data root are read only if they are regular files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from castrig.regular import FileTooBig, NotRegularFile, open_regular, read_regular


def test_a_device_or_pipe_is_refused_without_being_opened(tmp_path: Path, monkeypatch):
    """A link to a device (a serial port: opening it can toggle its control lines and reset what
    hangs on it) or a named pipe planted as a run's file is looked at, never opened."""
    fifo = tmp_path / "run.json"
    os.mkfifo(fifo)
    device = tmp_path / "linked.json"
    device.symlink_to("/dev/null")
    opened: list[str] = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, *a, **kw: (opened.append(str(p)), real_open(p, *a, **kw))[1])
    for path in (fifo, device):
        with pytest.raises(NotRegularFile):
            read_regular(path, max_bytes=100)
        assert open_regular(path) is None
    assert opened == []


def test_a_regular_file_is_read_bounded_and_a_link_only_when_followed(tmp_path: Path):
    f = tmp_path / "a.json"
    f.write_bytes(b"x" * 10)
    assert read_regular(f, max_bytes=10) == b"x" * 10
    with pytest.raises(FileTooBig):
        read_regular(f, max_bytes=9)
    link = tmp_path / "b.json"
    link.symlink_to(f)
    assert read_regular(link, max_bytes=10) == b"x" * 10
    with pytest.raises(NotRegularFile):
        read_regular(link, max_bytes=10, follow=False)
    assert open_regular(link, follow=False) is None
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "missing.json", max_bytes=10)
