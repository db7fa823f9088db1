"""One rig, one owner — tried from the outside, as two operators (or a cron job) would.

Every test drives the real ``castrig`` command in subprocesses: a second process on the same run
folder or the same devices is refused with exit 4 before it sends a byte or writes a record, and
a process killed with SIGKILL leaves no stale lock behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, LoopbackServer, castrig, castrig_main, hold_rig, only_run_dir, run_rows, start_castrig, wait_until, \
    with_sitecustomize

DATA = ROOT / "tests" / "data"
#: overnight.yaml's steps for two casts (tests/data/reliability/overnight_mini.yaml, analysed, the
#: hold at step 7, which the run is killed in): the whole overnight's four casts cost ~6 s of CPU
#: more in the fixture and the resumes, and showed nothing two do not
OVERNIGHT_TWO = (DATA / "reliability" / "overnight_mini.yaml").read_text().replace(
    "  - {type: wait, duration_s: 1200, label: hold 1}", "  - {type: analyse}\n  - {type: wait, duration_s: 1200, label: hold 1}")
CAST_STEPS = (3, 9)


def _journal(run_dir: Path) -> list[tuple[int, str]]:
    return [(int(i), str(s)) for i, s in run_rows(run_dir, "SELECT step_index, state FROM journal ORDER BY seq")]


# -- the lock itself -------------------------------------------------------------------------------
def test_a_lock_goes_with_its_process_even_on_kill_9(tmp_path, reap):
    """Held by a live process: refused, naming pid and host; after SIGKILL: free, no stale lock."""
    from castrig import oslock
    from castrig.errors import Busy

    path = tmp_path / "x.lock"
    holder = reap(subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from castrig import oslock; "
         f"oslock.acquire({str(path)!r}, purpose='test holder', what='x'); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True))
    assert holder.stdout.readline().strip() == "held"
    assert oslock.is_locked(path)
    with pytest.raises(Busy) as refused:
        oslock.acquire(path, purpose="second", what="the thing")
    assert f"pid {holder.pid}" in str(refused.value) and socket.gethostname() in str(refused.value)
    assert "test holder" in str(refused.value)
    holder.kill()
    holder.wait(timeout=10)
    assert not oslock.is_locked(path)
    oslock.acquire(path, purpose="third", what="x")  # taken at once: nothing stale
    try:
        assert json.loads(path.read_text())["pid"] == os.getpid()
    finally:
        oslock.release(path)


def test_testing_a_lock_never_takes_it(tmp_path):
    """``castrig runs`` looking at a run must not make that run's resume fail: is_locked is read-only."""
    from castrig import oslock

    path = tmp_path / "run.lock"
    path.write_text("{}")
    for _ in range(50):
        assert not oslock.is_locked(path)
    oslock.acquire(path, purpose="p", what="w")
    oslock.release(path)


# -- run folders -----------------------------------------------------------------------------------
def test_resume_of_a_live_run_is_refused_naming_the_holder(tmp_path, reap):
    data = tmp_path / "runs"
    run = reap(start_castrig("run", str(DATA / "long_wait.yaml"), "--data", str(data), "-q"))
    run_dir = wait_until(lambda: only_run_dir(data), what="run folder")
    wait_until(lambda: _journal(run_dir), what="first journal row")
    os.kill(run.pid, signal.SIGSTOP)  # alive but silent: the run must still be seen as owned
    rows_before = _journal(run_dir)
    samples_before = run_rows(run_dir, "SELECT count(*) FROM samples")

    refused = castrig("resume", str(run_dir), "-q", timeout_s=60)

    assert refused.returncode == 4, refused.stderr
    assert f"pid {run.pid}" in refused.stderr and "Traceback" not in refused.stderr
    # and that its holder is stopped, with the way out: a pid alone left the operator waiting on it
    said = " ".join(refused.stderr.split())
    assert "that process is STOPPED" in said and f"kill -CONT {run.pid}" in said, said
    assert _journal(run_dir) == rows_before
    assert run_rows(run_dir, "SELECT count(*) FROM samples") == samples_before
    listed = castrig("runs", "--data", str(data))
    assert "running" in listed.stdout and "crashed" not in listed.stdout
    os.kill(run.pid, signal.SIGCONT)
    run.terminate()  # SIGTERM: abort to the safe state
    assert run.wait(timeout=60) == 3


@pytest.fixture(scope="session")
def crashed_overnight(tmp_path_factory, worker_id) -> Path:
    """An overnight recipe killed with SIGKILL during its first hold, made once per session
    (:func:`made_once`); the folder is copied per test."""
    from conftest import made_once

    def make(data: Path) -> None:
        from conftest import signal_hook

        folder = tmp_path_factory.mktemp("recipe")
        recipe = folder / "overnight-two.yaml"
        recipe.write_text(OVERNIGHT_TWO)
        assert "hold 1" in yaml.safe_load(OVERNIGHT_TWO)["steps"][7].get("label", "")
        # killed by itself as the hold begins (seeded, the recipe's one wait): a kill polled from
        # outside needed a hold of 6000 s to land in, all of which the resume below ran (~0.6 s of CPU)
        killed = castrig("run", str(recipe), "--data", str(data), "-q", "--seed", "3", AT_STEP="SIGKILL",
                         **with_sitecustomize(folder, signal_hook("castrig.recipe.runner:Runner._step_wait", "AT_STEP")))
        assert killed.returncode == -9, killed.stdout + killed.stderr[-2000:]
        run_dir = only_run_dir(data)
        assert run_dir is not None and (7, "started") in _journal(run_dir)

    run_dir = only_run_dir(made_once(tmp_path_factory, worker_id, "crashed-overnight", make))
    assert run_dir is not None
    return run_dir


def _copy_run(run_dir: Path, tmp_path: Path) -> Path:
    import shutil

    dest = tmp_path / "runs" / run_dir.name
    shutil.copytree(run_dir, dest)
    return dest


def test_a_killed_run_shows_as_crashed_and_resumes(crashed_overnight, tmp_path, capsys):
    """A run killed -9 is listed and shown crashed, reported as such, and resumed: the lock went
    with the killed process. Resumed here by two `castrig resume` at once (this was also its own
    test, two_resumes_at_once_one_proceeds_one_is_refused, on another copy of the same folder):
    one proceeds to the end, the other is refused busy, every cast exactly once."""
    run_dir = _copy_run(crashed_overnight, tmp_path)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["outcome"] == "running" and isinstance(info["pid"], int) and info["host"] == socket.gethostname()

    listed = castrig_main(capsys, "runs", "--data", str(run_dir.parent))
    assert "crashed" in listed.stdout, listed.stdout
    assert castrig_main(capsys, "runs", "--data", str(run_dir.parent), "--outcome", "crashed").stdout.count(run_dir.name) == 1
    shown = json.loads(castrig_main(capsys, "status", str(run_dir), "--json").stdout)
    # its time left is unknown, not 0.0 ("nothing left", as an ended run's): it stopped mid-step
    assert shown["status"] == "crashed" and shown["step_left_s"] is None and shown["run_left_s"] is None, shown
    report = castrig_main(capsys, "report", str(run_dir))
    assert report.returncode == 0, report.stderr
    assert "crashed" in (run_dir / "report.html").read_text()

    # -- two resumes at once: one proceeds, one is refused
    journal_before = _journal(run_dir)
    both = [start_castrig("resume", str(run_dir), "-q") for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in both]
    codes = sorted(p.returncode for p in both)

    assert codes == [0, 4], ("two resumes at once: one proceeds, one is refused", outs)
    refused = outs[[p.returncode for p in both].index(4)]
    assert "busy" in refused[1] and "Traceback" not in refused[1]
    # -- the one that proceeded resumed the killed run (the lock went with the killed process)
    assert json.loads((run_dir / "run.json").read_text())["pid"] != info["pid"]
    assert json.loads((run_dir / "run.json").read_text())["outcome"] == "completed"
    journal = _journal(run_dir)
    assert journal[: len(journal_before)] == journal_before
    for step in CAST_STEPS:  # every cast exactly once (it was twice each)
        assert journal.count((step, "started")) == 1, step
    done = [i for i, s in journal if s == "done"]
    assert len(done) == len(set(done)), "a step finished twice"
    t = [r[0] for r in run_rows(run_dir, "SELECT t_s FROM samples ORDER BY rowid")]
    assert all(b >= a for a, b in zip(t, t[1:])), "sample times go backwards"
    assert not run_rows(run_dir, "SELECT t_s, channel FROM samples GROUP BY t_s, channel HAVING count(*) > 1")


# -- devices ---------------------------------------------------------------------------------------
class _Recorder(LoopbackServer):
    """A TCP endpoint that accepts connections and keeps every byte it is sent (never answers)."""

    def __init__(self) -> None:
        self.connections = 0
        self.received = bytearray()
        super().__init__(self._record, everywhere=True)  # (reached however a profile spells this machine)

    def handle(self, conn: socket.socket) -> None:
        self.connections += 1
        super().handle(conn)

    def _record(self, conn: socket.socket) -> None:
        while chunk := conn.recv(4096):
            self.received += chunk


@pytest.fixture
def ptys() -> Iterator[dict[str, tuple[int, int]]]:
    """A real pty per pump role (master, slave): the serial ports of the tests below."""
    pairs = {r: os.openpty() for r in ROLES}
    yield pairs
    for master, slave in pairs.values():
        os.close(master)
        os.close(slave)


def _nothing_reached(ptys: dict[str, tuple[int, int]]) -> None:
    """Not a byte reached any of the ports from a refused second process."""
    for r, (master, _) in ptys.items():
        os.set_blocking(master, False)
        try:
            got = os.read(master, 4096)
        except BlockingIOError:
            got = b""
        assert got == b"", f"{r}: {got!r} reached the port"


def _serial_profile(path: Path, urls: dict[str, str | dict], *, name: str = "rig-under-test") -> Path:
    """A profile reaching each role of ``urls`` through a pyserial URL (or a whole link dict)."""
    devices = {
        "caster": {"model": "ne1000", "address": 1, "syringe_diameter_mm": 4.699, "safe_mode_s": 10},
        "water_pump": {"model": "ne1000", "address": 2, "syringe_diameter_mm": 8.585, "safe_mode_s": 10},
        "dry_mfc": {"model": "alicat", "unit_id": "A"},
        "wet_mfc": {"model": "alicat", "unit_id": "B"},
        "rh_near": {"model": "hmt330"},
        "rh_room": {"model": "hmt330"},
        "camera": {"model": "sim", "pixel_size_um": 0.25, "width_px": 512},
    }
    for role, url in urls.items():
        devices[role]["link"] = (url if isinstance(url, dict) else
                                 {"kind": "serial", "url": url, "timeout_s": 5.0 if role == "camera" else 1.0})
    path.write_text(yaml.safe_dump({"name": name, "clock": "wall", "devices": devices,
                                    "sim": {"chamber_volume_l": 0.2, "params": {"film": {"evaporation_ref_s": 20.0}}}}))
    return path


ROLES = ("caster", "water_pump", "dry_mfc", "wet_mfc", "rh_near", "rh_room", "camera")


def _visa(resource: str) -> dict:
    return {"kind": "visa", "resource": resource, "timeout_s": 1.0}


@contextmanager
def _holding_rig(profile: Path) -> Iterator[int]:
    """This test's own process owns ``profile``'s devices (castrig's claim_rig, as a run takes
    them) while the block runs; yields its pid. (A process of its own to hold them, as
    :func:`_hold_rig`, cost ~0.2 s of CPU more per test: castrig sees another process either way.)"""
    from castrig.rig.ownership import claim_rig
    from castrig.rig.profile import load_profile

    with claim_rig(load_profile(profile), purpose="castrig run night.yaml"):
        yield os.getpid()


def _refused_naming(second: subprocess.CompletedProcess, owner: subprocess.Popen | int, data: Path) -> None:
    owner_pid = owner if isinstance(owner, int) else owner.pid
    assert second.returncode == 4, second.stdout + second.stderr
    assert f"pid {owner_pid}" in second.stderr and "castrig run night.yaml" in second.stderr
    assert not data.exists() or not list(data.glob("*/run.json"))


# the same TCP endpoints, as one profile and as another spells them
SPELLINGS = {
    "localhost vs 127.0.0.1": (lambda port: f"socket://127.0.0.1:{port}", lambda port: f"socket://localhost:{port}"),
    "VISA socket vs pyserial URL": (lambda port: _visa(f"TCPIP0::localhost::{port}::SOCKET"),
                                    lambda port: f"socket://127.0.0.1:{port}"),
    "rfc2217 vs VISA socket": (lambda port: f"rfc2217://localhost:{port}", lambda port: _visa(f"TCPIP::127.0.0.1::{port}::SOCKET")),
    # connect() to the unspecified address reaches the loopback (Linux): a second process so spelled
    # connected to every device of a live run, and was told "rig not reachable" (exit 5), not busy
    "0.0.0.0 vs 127.0.0.1": (lambda port: f"socket://127.0.0.1:{port}", lambda port: f"socket://0.0.0.0:{port}"),
    # this machine's other addresses, where a server on 0.0.0.0 (or :: for both families) is the
    # same socket: each was a lock of its own, and a second run so spelled sent SAF0 to every device
    "127.0.1.1 (Debian's host name address) vs 127.0.0.1": (lambda port: f"socket://127.0.0.1:{port}",
                                                           lambda port: f"socket://127.0.1.1:{port}"),
    "[::1] vs 127.0.0.1": (lambda port: f"socket://127.0.0.1:{port}", lambda port: f"socket://[::1]:{port}"),
    "this machine's LAN address vs localhost": (lambda port: f"socket://localhost:{port}",
                                                lambda port: f"socket://{_lan_address()}:{port}"),
}


def _lan_address() -> str:
    """An address of this machine that is not a loopback one (the way out to a documentation
    network, chosen by the routing table; nothing is sent), else the test is skipped."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("198.51.100.1", 9))
        except OSError:
            pytest.skip("no route off this machine: no LAN address to spell it by")
        address = s.getsockname()[0]
    if address.startswith("127."):
        pytest.skip("no LAN address")
    return address


@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_a_second_run_on_the_same_devices_sends_not_a_byte(tmp_path, reap, spelling):
    """The owner holds the rig; a second ``castrig run`` naming the same endpoints — spelled
    differently (localhost vs 127.0.0.1, a VISA resource vs a pyserial URL) — is refused before
    it connects to any of them."""
    owner_url, second_url = SPELLINGS[spelling]
    recorders = {r: _Recorder() for r in ROLES}
    try:
        second_profile = _serial_profile(tmp_path / "second.yaml", {r: second_url(x.port) for r, x in recorders.items()})
        with _holding_rig(_serial_profile(tmp_path / "owner.yaml", {r: owner_url(x.port) for r, x in recorders.items()})) as owner:
            second = castrig("run", str(DATA / "short.yaml"), "--profile", str(second_profile), "--data", str(tmp_path / "runs"))

        _refused_naming(second, owner, tmp_path / "runs")
        assert sum(x.connections for x in recorders.values()) == 0
        assert not any(x.received for x in recorders.values())
    finally:
        for x in recorders.values():
            x.close()


SAME_PORT = {"device node": lambda node: node, "VISA ASRL resource": lambda node: _visa(f"ASRL{node}::INSTR"),
             # pyserial's wrappers: each was an opaque key, and a second run so spelled stopped the
             # first run's pre-wet (spy) or read its caster's port and crashed (alt)
             "spy:// wrapper": lambda node: f"spy://{node}?file=/dev/null",
             "alt:// wrapper": lambda node: f"alt://{node}?class=PosixPollSerial"}


@pytest.mark.parametrize("spelling", list(SAME_PORT))
def test_a_serial_port_by_its_symlink_or_as_a_visa_resource_is_the_same_port(tmp_path, reap, spelling, ptys):
    """A lab names a USB adapter by its stable symlink (``/dev/serial/by-id/...``) in one profile
    and by its device node, as a VISA ``ASRL...::INSTR`` resource, or through a pyserial wrapper
    (``spy://``, ``alt://``) in another: the second run is refused and not a byte reaches the
    ports (real ptys here, their symlinks in tmp_path)."""
    nodes = {r: os.ttyname(slave) for r, (_, slave) in ptys.items()}
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    for r, node in nodes.items():
        (by_id / f"usb-FTDI_{r}-if00-port0").symlink_to(node)
    second_profile = _serial_profile(tmp_path / "second.yaml",
                                     {r: SAME_PORT[spelling](nodes[r]) for r in ROLES})
    with _holding_rig(_serial_profile(tmp_path / "owner.yaml",
                                      {r: str(by_id / f"usb-FTDI_{r}-if00-port0") for r in ROLES})) as owner:
        second = castrig("run", str(DATA / "short.yaml"), "--profile", str(second_profile), "--data", str(tmp_path / "runs"))

    _refused_naming(second, owner, tmp_path / "runs")
    _nothing_reached(ptys)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node (mknod) needs root")
def test_another_node_of_the_same_device_is_the_same_port(tmp_path, reap, ptys):
    """A port reached through a node of its own (``docker run --device /dev/ttyUSB0:/dev/pump``,
    a node made with mknod, a bind mount: another path, not a symlink) is the port itself: a second
    ``castrig safe`` naming those nodes while a run owns the devices is refused busy (exit 4),
    naming the owner, and nothing reaches the ports. Keyed by real path, it took locks of its own
    and went on to open the ports (here ptys, which refuse a node outside /dev/pts: exit 5)."""
    nodes = {}
    for r, (_, slave) in ptys.items():
        nodes[r] = tmp_path / f"pump-{r}"
        os.mknod(nodes[r], 0o600 | stat.S_IFCHR, os.fstat(slave).st_rdev)
    owner = hold_rig(reap, _serial_profile(tmp_path / "owner.yaml", {r: os.ttyname(s) for r, (_, s) in ptys.items()}))
    second = castrig("safe", "--profile", str(_serial_profile(tmp_path / "second.yaml", {r: str(n) for r, n in nodes.items()})))

    assert second.returncode == 4, second.stdout + second.stderr
    assert f"pid {owner.pid}" in second.stderr and str(tmp_path / "pump-") in second.stderr
    _nothing_reached(ptys)


def test_a_run_of_the_castrig_before_an_upgrade_is_seen_by_the_castrig_after_it(tmp_path, reap, ptys):
    """A night's run goes on in the castrig it was started with while castrig is upgraded; in the
    morning ``castrig safe`` of the new one must see that run's device locks, taken under the keys
    of before (a device file by its real path, a TCP host by its IPv4 address), though it keys
    devices by number and this machine's addresses as one now: it takes both. The run of before is
    stood for by a process holding exactly those lock files."""
    from castrig.rig.ownership import _lock_path

    nodes = {r: os.ttyname(s) for r, (_, s) in ptys.items()}
    profile = _serial_profile(tmp_path / "rig.yaml", nodes)
    before = sorted(str(_lock_path("dev:" + os.path.realpath(n))) for n in nodes.values())
    owner = reap(subprocess.Popen(
        [sys.executable, "-c", "import time; from castrig import oslock; "
         f"[oslock.acquire(p, purpose='castrig run night.yaml', what='x') for p in {before!r}]; "
         "print('owned', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True))
    assert owner.stdout.readline().strip() == "owned"
    second = castrig("safe", "--profile", str(profile))

    assert second.returncode == 4, second.stdout + second.stderr
    assert f"pid {owner.pid}" in second.stderr
    _nothing_reached(ptys)


def test_a_port_another_process_holds_open_exclusively_is_busy_not_unreachable(tmp_path, reap, ptys):
    """Two castrig processes whose device locks are in two folders (one operator's shell sets
    $CASTRIG_LOCK_DIR, as the lock folder's own error advises; ``sudo castrig safe`` where /run/lock
    is root's alone) do not see each other's locks: the port's own exclusive lock (pyserial's
    ``exclusive``, a flock) is then what keeps the second off. It kept it off, but said 'rig not
    reachable' (exit 5), which for a resume goes on to make safe whatever does open. Now busy
    (exit 4), naming the port, before anything is sent."""
    nodes = {r: os.ttyname(slave) for r, (_, slave) in ptys.items()}
    owner = reap(subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from castrig.links.serial_link import SerialLink; "
         f"links = [SerialLink(n, exclusive=True) for n in {sorted(nodes.values())!r}]; print('open', flush=True); "
         "time.sleep(60)"], stdout=subprocess.PIPE, text=True, env={**os.environ, "CASTRIG_LOCK_DIR": str(tmp_path / "a")}))
    assert owner.stdout.readline().strip() == "open"
    (tmp_path / "b").mkdir()
    second = castrig("safe", "--profile", str(_serial_profile(tmp_path / "rig.yaml", nodes)),
                     CASTRIG_LOCK_DIR=str(tmp_path / "b"))

    assert second.returncode == 4, second.stdout + second.stderr
    said = " ".join(second.stderr.split())
    assert "held open exclusively by another process" in said and "/dev/pts/" in said, said
    _nothing_reached(ptys)


def test_a_visa_instrument_with_its_default_device_name_left_out_is_the_same_instrument(tmp_path):
    """``TCPIP0::host::inst0::INSTR`` and ``TCPIP::host::INSTR`` (VISA's default device name, inst0)
    are one VXI-11 instrument, ``…::hislip0::INSTR`` and ``…::hislip0,4880::INSTR`` one HiSLIP one:
    each was a lock of its own, and a second castrig safe so spelled was let past a run holding
    the rig (on to 'rig not reachable' here, where no instrument answers: exit 5). Now busy."""
    owner = _serial_profile(tmp_path / "owner.yaml", {r: _visa(f"TCPIP0::198.51.100.{i}::inst0::INSTR") for i, r in enumerate(ROLES[:4], 1)}
                            | {r: _visa(f"TCPIP0::198.51.100.{i}::hislip0,4880::INSTR") for i, r in enumerate(ROLES[4:], 5)})
    second = _serial_profile(tmp_path / "second.yaml", {r: _visa(f"TCPIP::198.51.100.{i}::INSTR") for i, r in enumerate(ROLES[:4], 1)}
                             | {r: _visa(f"TCPIP::198.51.100.{i}::HISLIP0::INSTR") for i, r in enumerate(ROLES[4:], 5)})
    with _holding_rig(owner) as pid:
        done = castrig("safe", "--profile", str(second), timeout_s=60)
    assert done.returncode == 4, done.stdout + done.stderr
    assert f"pid {pid}" in done.stderr


QUICK = {"name": "quick-wall", "steps": [{"type": "purge", "duration_s": 4}, {"type": "wait", "duration_s": 4}]}


@pytest.mark.parametrize("link", ["tcp", pytest.param("pty", marks=pytest.mark.slow)])  # pty: ~13 s on CI, in the full set
def test_two_runs_against_one_served_rig(tmp_path, reap, link):
    """A real run over ``sim serve`` (TCP sockets or ptys) owns the rig; a second run is refused
    (exit 4, naming the first), and the first goes on to complete undisturbed."""
    serve = reap(start_castrig("sim", "serve", "--profile", str(ROOT / "hw_profiles/sim-serial.yaml"),
                               *(["--tcp", "0"] if link == "tcp" else ["--pty"])))
    addresses = json.loads(serve.stdout.readline())
    profile = _serial_profile(tmp_path / "rig.yaml", addresses)
    recipe = tmp_path / "quick.yaml"
    recipe.write_text(yaml.safe_dump(QUICK))
    data = tmp_path / "runs"

    first = reap(start_castrig("run", str(recipe), "--profile", str(profile), "--data", str(data), "-q"))
    run_dir = wait_until(lambda: only_run_dir(data), timeout_s=30, what="first run's folder")
    second = castrig("run", str(recipe), "--profile", str(profile), "--data", str(tmp_path / "runs2"), timeout_s=60)

    assert second.returncode == 4, second.stdout + second.stderr
    assert f"pid {first.pid}" in second.stderr
    out, err = first.communicate(timeout=90)
    assert first.returncode == 0, out + err
    assert json.loads((run_dir / "run.json").read_text())["outcome"] == "completed"
    assert not (tmp_path / "runs2").exists() or not list((tmp_path / "runs2").glob("*/run.json"))


def test_a_port_that_does_not_exist_is_rig_not_reachable(tmp_path):
    roles = ("caster", "water_pump", "dry_mfc", "wet_mfc", "rh_near", "rh_room", "camera")
    profile = _serial_profile(tmp_path / "rig.yaml", {r: "/dev/ttyUSB9" if r == "caster" else f"socket://127.0.0.1:{i}"
                                                      for i, r in enumerate(roles, 1)})
    cfg = yaml.safe_load(profile.read_text())  # a profile check is a file check: it passes
    assert cfg["devices"]["caster"]["link"]["url"] == "/dev/ttyUSB9"
    data = tmp_path / "runs"

    done = castrig("run", str(DATA / "short.yaml"), "--profile", str(profile), "--data", str(data))

    assert done.returncode == 5, done.stdout + done.stderr
    lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
    assert "caster" in done.stderr and "/dev/ttyUSB9" in done.stderr and "Traceback" not in done.stderr
    assert len(lines) <= 3, done.stderr
    assert not data.exists() or not list(data.iterdir())


def test_a_queue_whose_rig_cannot_be_opened_stops_with_every_recipe_listed(tmp_path):
    """The rig unplugged before the night: exit 5, no run folder, a summary that names every
    recipe 'not run' and says how to go on (castrig queue --resume)."""
    roles = ("caster", "water_pump", "dry_mfc", "wet_mfc", "rh_near", "rh_room", "camera")
    profile = _serial_profile(tmp_path / "rig.yaml", {r: "/dev/ttyUSB9" if r == "caster" else f"socket://127.0.0.1:{i}"
                                                      for i, r in enumerate(roles, 1)})
    data = tmp_path / "runs"

    done = castrig("queue", str(DATA / "short.yaml"), str(DATA / "short.yaml"), "--profile", str(profile), "--data", str(data))

    assert done.returncode == 5, done.stdout + done.stderr
    assert "/dev/ttyUSB9" in done.stderr and "castrig queue --resume" in done.stderr and "Traceback" not in done.stderr
    assert not list(data.glob("*/run.json"))
    (summary,) = data.glob("queue-*.json")
    state = json.loads(summary.read_text())
    assert [i["outcome"] for i in state["items"]] == ["not run", "not run"]


def test_the_machines_lock_folder_and_files_are_shared_by_every_user(tmp_path, reap, ptys, monkeypatch):
    """The first user to run castrig made /run/lock/castrig 0755 and its lock files 0644: every
    other user's run was refused on every rig ("Permission denied"), and the advice to set
    $CASTRIG_LOCK_DIR gave that user locks no one else saw. Now the folder is 1777 (as /tmp) and
    each device's lock file 0666, whoever made them. The machine's /run/lock is stood for by a
    1777 folder of the test's own (ownership.RUN_LOCK): in the machine's, a pty number another
    test's live run still held (its line closed, the number given again) refused this owner."""
    import stat

    from castrig.rig import ownership
    from castrig.rig.ownership import _lock_path, lock_dir, serial_key

    monkeypatch.delenv("CASTRIG_LOCK_DIR")  # (the machine's folder, not the test's own: conftest)
    run_lock, tmp = tmp_path / "run-lock", tmp_path / "tmp"
    for folder in (run_lock, tmp):
        folder.mkdir()
        folder.chmod(0o1777)
    monkeypatch.setattr(ownership, "RUN_LOCK", run_lock)
    folder = lock_dir()
    assert folder == run_lock / "castrig"
    folder.mkdir(mode=0o755)  # as the first user's umask left it
    folder.chmod(0o755)
    nodes = {r: os.ttyname(slave) for r, (_, slave) in ptys.items()}
    profile = _serial_profile(tmp_path / "owner.yaml", nodes)
    owner = reap(subprocess.Popen(
        [sys.executable, "-c", _machine(run_lock, tmp) + "import time; from castrig.rig.profile import load_profile\n"
         f"ownership.claim_rig(load_profile({str(profile)!r}), purpose='castrig run night.yaml'); "
         "print('owned', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True))
    assert owner.stdout is not None and owner.stdout.readline().strip() == "owned"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o1777
    for node in nodes.values():
        assert stat.S_IMODE(_lock_path(serial_key(node)).stat().st_mode) == 0o666
    owner.kill()


#: A user without a login (the tests run as root): a process of castrig's as an operator's account.
NOBODY = 65534


@pytest.fixture
def root_only_run_lock() -> Iterator[tuple[Path, Path]]:
    """A machine where only root may write /run/lock (Fedora's 0755) and its /tmp (1777): the two
    folders, made in a folder another user may enter (tmp_path is root's own, 0700)."""
    base = Path(tempfile.mkdtemp(prefix="castrig-lockdir-", dir="/tmp"))
    try:
        base.chmod(0o755)
        run_lock, tmp = base / "run-lock", base / "tmp"
        run_lock.mkdir(mode=0o755)
        tmp.mkdir()
        tmp.chmod(0o1777)
        yield run_lock, tmp
    finally:
        shutil.rmtree(base)


def _machine(run_lock: Path, tmp: Path) -> str:
    """Python that points castrig's lock folders' candidates at ``run_lock`` and ``tmp``."""
    return (f"from pathlib import Path; from castrig.rig import ownership; "
            f"ownership.RUN_LOCK, ownership.SHARED_TMP = Path({str(run_lock)!r}), Path({str(tmp)!r})\n")


@pytest.mark.skipif(os.getuid() != 0, reason="two users' processes: started as root")
def test_a_users_run_and_roots_run_of_one_rig_take_one_lock(tmp_path, reap, root_only_run_lock, monkeypatch):
    """Where /run/lock is root's alone (Fedora), root took its locks in /run/lock/castrig and any
    other user in <tmp>/castrig-locks: `sudo castrig safe` or a root service's overnight drove the
    TCP devices of a rig a user's run held (serial ports had pyserial's flock, sockets nothing).
    Now every user of the machine locks in one folder: root's run is refused (exit 4), nothing sent."""
    monkeypatch.delenv("CASTRIG_LOCK_DIR")  # (the machine's folder, not the test's own: conftest)
    recorders = {r: _Recorder() for r in ROLES}
    try:
        profile = _serial_profile(tmp_path / "rig.yaml", {r: x.url for r, x in recorders.items()})
        owner = reap(subprocess.Popen(  # an operator's run holds the rig (loaded as root, held as nobody)
            [sys.executable, "-c", _machine(*root_only_run_lock) +
             "import os, time; import castrig.regular; from castrig.rig.profile import load_profile\n"
             f"p = load_profile({str(profile)!r}); os.setgid({NOBODY}); os.setuid({NOBODY})\n"
             "ownership.claim_rig(p, purpose='castrig run night.yaml'); print('owned', flush=True); time.sleep(60)"],
            stdout=subprocess.PIPE, text=True))
        assert owner.stdout is not None and owner.stdout.readline().strip() == "owned"

        second = castrig("run", str(DATA / "short.yaml"), "--profile", str(profile), "--data", str(tmp_path / "runs"),
                         timeout_s=60, **with_sitecustomize(tmp_path, _machine(*root_only_run_lock)))

        _refused_naming(second, owner, tmp_path / "runs")
        assert sum(x.connections for x in recorders.values()) == 0
        owner.kill()
    finally:
        for x in recorders.values():
            x.close()


def test_a_symlink_at_a_lock_files_path_is_not_followed(tmp_path, monkeypatch):
    """Another user may write the machine's lock folder (1777 in /tmp): a symlink put at a device's
    lock file name made root's castrig open, truncate and write the holder record into the file it
    pointed to (a victim of root's). Now it is refused (exit 5, naming the lock), the victim as it was, nothing sent."""
    from castrig.rig.ownership import _lock_path, resource_keys
    from castrig.rig.profile import load_profile

    recorders = {r: _Recorder() for r in ROLES}
    try:
        profile = _serial_profile(tmp_path / "rig.yaml", {r: x.url for r, x in recorders.items()})
        locks, victim = tmp_path / "locks", tmp_path / "victim"
        locks.mkdir()
        victim.write_text("root's own file\n")
        monkeypatch.setenv("CASTRIG_LOCK_DIR", str(locks))
        for key in {**resource_keys(load_profile(profile)), **resource_keys(load_profile(profile), before=True)}:
            _lock_path(key).symlink_to(victim)

        done = castrig("run", str(DATA / "short.yaml"), "--profile", str(profile), "--data", str(tmp_path / "runs"),
                       timeout_s=60, CASTRIG_LOCK_DIR=str(locks))

        assert done.returncode == 5, done.stdout + done.stderr
        assert str(locks) in done.stderr and "Traceback" not in done.stderr
        assert victim.read_text() == "root's own file\n"
        assert sum(x.connections for x in recorders.values()) == 0
    finally:
        for x in recorders.values():
            x.close()


def _camera_profile(path: Path, source: str) -> Path:
    """The twin (hw_profiles/sim.yaml) with an OpenCV camera at ``source``: a rig whose one lock is its camera's."""
    data = yaml.safe_load((ROOT / "hw_profiles" / "sim.yaml").read_text())
    data["devices"]["camera"] = {"model": "opencv", "source": source, "pixel_size_um": 0.5}
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_network_cameras_password_stays_out_of_the_machines_lock_folder(tmp_path, monkeypatch):
    """An outside tester: a camera at ``rtsp://lab:PASSWORD@host/stream`` was locked as the file
    ``dev_rtsp_lab_PASSWORD_host…lock`` in the machine's lock folder, which every user may list (and
    lock files stay), and named with its password in the busy message; the same camera written with
    another password was another lock, so a second process was let at it. Its lock is now the
    camera's address without the user's credentials: one camera, one lock, no password in it."""
    monkeypatch.setenv("CASTRIG_LOCK_DIR", str(tmp_path / "locks"))  # (this process's claim and the castrig process's)
    owner = _camera_profile(tmp_path / "owner.yaml", "rtsp://lab:owners-s3cret@127.0.0.1:8554/stream")
    second = _camera_profile(tmp_path / "second.yaml", "rtsp://lab:another-s3cret@127.0.0.1:8554/stream")
    with _holding_rig(owner) as pid:
        done = castrig("safe", "--profile", str(second))

    assert done.returncode == 4, done.stdout + done.stderr
    assert f"pid {pid}" in done.stderr and "device camera (rtsp://127.0.0.1:8554/stream)" in done.stderr, done.stderr
    said = done.stdout + done.stderr + "".join(p.name + p.read_text() for p in (tmp_path / "locks").iterdir())
    assert "s3cret" not in said, said

    # (review) a camera that takes its login in the path (rtsp://IP/user=admin&password=PW&channel=1,
    # XMEye-like) had the password in its lock file's name; written without its default port (554)
    # it was another lock, and a second process was let at it (exit 0)
    owner = _camera_profile(tmp_path / "owner2.yaml", "rtsp://127.0.0.1:554/user=admin&password=path-s3cret&channel=1")
    second = _camera_profile(tmp_path / "second2.yaml", "rtsp://127.0.0.1/user=admin&password=other-s3cret&channel=1")
    with _holding_rig(owner) as pid:
        done = castrig("safe", "--profile", str(second))
        said = done.stdout + done.stderr + "".join(p.name + p.read_text() for p in (tmp_path / "locks").iterdir())
    assert done.returncode == 4 and f"pid {pid}" in done.stderr, done.stdout + done.stderr
    assert "s3cret" not in said, said


def test_a_network_camera_on_this_machine_is_one_camera_at_each_of_its_addresses(tmp_path, monkeypatch):
    """A camera served on this machine (a stream relay on 0.0.0.0) is one camera at 127.0.0.1,
    127.0.1.1 and ``localhost``: a second ``castrig safe`` naming it at 127.0.1.1 while a run holds
    it at 127.0.0.1 was let at it (exit 0); now refused busy, naming it as its profile spells it."""
    monkeypatch.setenv("CASTRIG_LOCK_DIR", str(tmp_path / "locks"))  # (this process's claim and the castrig process's)
    owner = _camera_profile(tmp_path / "owner.yaml", "rtsp://127.0.0.1:8554/stream")
    second = _camera_profile(tmp_path / "second.yaml", "rtsp://lab:s3cret@127.0.1.1:8554/stream")
    with _holding_rig(owner) as pid:
        done = castrig("safe", "--profile", str(second))

    assert done.returncode == 4, done.stdout + done.stderr
    assert f"pid {pid}" in done.stderr and "device camera (rtsp://127.0.1.1:8554/stream, on this machine)" in done.stderr, done.stderr
    assert "s3cret" not in done.stderr


def test_a_live_runs_lock_file_deleted_by_hand_is_made_again(tmp_path, reap, wall_sim_profile, capsys):
    """`rm RUN/run.lock` (a reflex when a tool says "busy"): the live run read as crashed,
    `castrig abort` refused it ("not running"), and a `castrig resume` became a second writer to
    its run.sqlite. The owner makes the file again and locks it within a fifth of a second."""
    from conftest import castrig, only_run_dir, run_status, start_castrig, wait_until

    data = tmp_path / "runs"
    # on the twin's wall clock (as a rig runs): on virtual time the runner spun through its day at
    # full CPU all the while the commands below ran (~1 s of CPU); the lock's keeper is the same
    runner = reap(start_castrig("run", str(DATA / "day_wait.yaml"), "--profile", str(wall_sim_profile), "--data", str(data), "-q"))
    run_dir = wait_until(lambda: (d := only_run_dir(data)) and run_status(d).get("state") == "running" and d,
                         timeout_s=30, what="a running run")
    (run_dir / "run.lock").unlink()
    # (was a flat 1 s sleep, the virtual-time runner spinning through it: the status below tells a
    # file made again but not locked -- "crashed" -- from one the owner holds)
    wait_until(lambda: (run_dir / "run.lock").exists(), timeout_s=1.0, what="the run.lock made again")
    status = castrig_main(capsys, "status", str(run_dir))
    assert ": running" in status.stdout and "crashed" not in status.stdout, status.stdout
    second = castrig("resume", str(run_dir), "-q")
    assert second.returncode == 4 and f"pid {runner.pid}" in second.stderr, second.stdout + second.stderr
    assert castrig_main(capsys, "abort", str(run_dir)).returncode == 0
    assert runner.wait(timeout=60) == 3



def test_a_resume_while_the_owner_cannot_make_its_deleted_lock_again_is_refused(tmp_path, reap, wall_sim_profile, capsys):
    """The window the keeper leaves (stop 42): `rm run.lock` while the owner is stopped (or in the
    0.2 s before it notices), then `castrig resume`: the resume took the lock on the new file and
    became a second writer of run.sqlite. It is refused (exit 4) naming the process that still has
    the run's records open; once that process goes on it makes its lock again, and an abort ends it."""
    from conftest import castrig, only_run_dir, run_status, start_castrig, wait_until

    data = tmp_path / "runs"
    # on the twin's wall clock (as a rig runs): on virtual time the runner spun through its day at
    # full CPU all the while the commands below ran (~1 s of CPU); the lock's keeper is the same
    runner = reap(start_castrig("run", str(DATA / "day_wait.yaml"), "--profile", str(wall_sim_profile), "--data", str(data), "-q"))
    run_dir = wait_until(lambda: (d := only_run_dir(data)) and run_status(d).get("state") == "running" and d,
                         timeout_s=30, what="a running run")
    os.kill(runner.pid, signal.SIGSTOP)
    try:
        (run_dir / "run.lock").unlink()
        rows_before = _journal_rows(run_dir)
        second = castrig("resume", str(run_dir), "-q")
        said = second.stdout + second.stderr
        assert second.returncode == 4 and f"pid {runner.pid}" in said and "Traceback" not in said, said
        assert "kill -CONT" in said, said
        assert _journal_rows(run_dir) == rows_before  # not a row of a second writer
    finally:
        os.kill(runner.pid, signal.SIGCONT)
    wait_until(lambda: (run_dir / "run.lock").exists() and "running" in castrig_main(capsys, "status", str(run_dir)).stdout,
               timeout_s=10, what="the owner's lock made again")
    assert castrig_main(capsys, "abort", str(run_dir)).returncode == 0
    assert runner.wait(timeout=60) == 3


def _journal_rows(run_dir):
    import sqlite3

    db = sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    finally:
        db.close()

@pytest.mark.parametrize("mode, writer", [("rb", False), ("r+b", True)])
def test_only_a_process_with_the_records_open_for_writing_holds_a_run_without_its_lock(tmp_path, reap, mode, writer):
    """The pid run.json names may be a crashed run's, taken since by a reader (`castrig serve` has
    run.sqlite open read-only): that one does not hold the run; one writing it does."""
    from castrig.store.lock import _live_writer

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.sqlite").write_bytes(b"")
    holder = reap(subprocess.Popen([sys.executable, "-c", f"import sys; f = open(sys.argv[1], {mode!r}); "
                                    "print('open', flush=True); sys.stdin.read()", str(run_dir / "run.sqlite")],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    assert holder.stdout.readline().strip() == "open"
    (run_dir / "run.json").write_text(json.dumps({"outcome": "running", "pid": holder.pid, "host": socket.gethostname()}))
    assert _live_writer(run_dir) == (holder.pid if writer else None)
