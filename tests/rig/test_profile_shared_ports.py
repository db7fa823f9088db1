"""``castrig check`` of a profile knows one port however it is spelled: the device locks' key
(castrig.rig.ownership.serial_key / visa_key), not the URL's text.

Before: dry_mfc and wet_mfc both unit A on ``socket://127.0.0.1:47102`` was refused, but the same
with one of them on ``socket://localhost:47102`` was "valid profile" (exit 0), as were two NE-1000
pumps at address 1 on /dev/ttyS0 and on a symlink to it; the run then drove one device as two.
"""

from __future__ import annotations

import os
import socket

import pytest

from conftest import ROOT, LoopbackServer, castrig_main, refused

SERIAL = (ROOT / "hw_profiles" / "sim-serial.yaml").read_text()


def _profile(tmp_path, text: str):
    path = tmp_path / "profile.yaml"
    path.write_text(text)
    return path

@pytest.mark.parametrize("spelling", ["socket://127.0.0.1:47102", "socket://localhost:47102", "socket://LOCALHOST:47102"])
def test_two_mfcs_with_one_unit_id_on_one_endpoint_however_spelled(tmp_path, spelling, capsys):
    assert "unit_id: B" in SERIAL and "socket://127.0.0.1:47106" in SERIAL
    text = SERIAL.replace("unit_id: B", "unit_id: A").replace("socket://127.0.0.1:47106", spelling)
    profile = _profile(tmp_path, text)
    refused(castrig_main(capsys, "check", str(profile)), str(profile), "devices dry_mfc, wet_mfc share the port",
            "socket://127.0.0.1:47102", "same or no unit_id", "allowed: a distinct unit_id")
    refused(castrig_main(capsys, "run", str(ROOT / "recipes" / "demo-short.yaml"), "--profile", str(profile), "--data", str(tmp_path / "runs"), "-q"),
            "same or no unit_id")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_two_pumps_at_one_address_on_a_tty_and_a_symlink_to_it(tmp_path, capsys):
    tty = "/dev/ttyS0" if os.path.exists("/dev/ttyS0") else "/dev/null"
    link = tmp_path / "ttylink"
    link.symlink_to(tty)
    assert "socket://127.0.0.1:47101" in SERIAL and "socket://127.0.0.1:47105" in SERIAL and "address: 2," in SERIAL
    text = (SERIAL.replace("socket://127.0.0.1:47101", tty).replace("socket://127.0.0.1:47105", str(link))
            .replace("address: 2,", "address: 1,"))
    profile = _profile(tmp_path, text)
    refused(castrig_main(capsys, "check", str(profile)), "devices caster, water_pump share the port", tty, str(link),
            "same or no address")


def test_one_endpoint_spelled_two_ways_with_distinct_ids_is_still_a_bus(tmp_path, capsys):
    """Distinct unit ids on one line spelled two ways: a valid bus (the spelling is not a line setting)."""
    text = SERIAL.replace("socket://127.0.0.1:47106", "socket://localhost:47102")
    assert castrig_main(capsys, "check", str(_profile(tmp_path, text))).returncode == 0


def test_validating_a_profile_asks_no_name_server(monkeypatch):
    """A profile is validated on every check, run and resume: it must not wait on DNS (an offline
    rig PC waits out the resolver's timeout). Host names are compared as written there; the
    device locks, taken when the rig is claimed, look them up."""
    import socket

    import yaml

    from castrig.rig.profile import Profile

    asked: list[str] = []

    def no_dns(host: str) -> str:  # the boundary of the outside world: the resolver
        asked.append(host)
        raise OSError("no name server")

    monkeypatch.setattr(socket, "gethostbyname", no_dns)
    data = yaml.safe_load(SERIAL.replace("socket://127.0.0.1:47106", "socket://moxa-1.lab.example:4001"))
    Profile.model_validate(data)
    assert asked == []


def test_one_address_written_as_another_literal_is_one_port(tmp_path, capsys):
    """An outside tester: rh_near on ``socket://127.0.0.1:47103`` and rh_room on
    ``socket://127.1:47103`` (the short form connect() takes for 127.0.0.1) was a "valid
    profile"; the run then opened that port twice and failed to open the rig ("is another client
    connected to that port?"; the device locks look the address up, the check compared the text).
    IP literals are one spelling now, without asking DNS: refused as one port, by check too."""
    from castrig.rig.ownership import serial_key

    assert "socket://127.0.0.1:47104" in SERIAL
    profile = _profile(tmp_path, SERIAL.replace("socket://127.0.0.1:47104", "socket://127.1:47103"))
    refused(castrig_main(capsys, "check", str(profile)), "devices rh_near, rh_room share the port", "socket://127.1:47103",
            "(one port, spelled 2 ways)")
    for spelling in ("127.1", "[::ffff:127.0.0.1]", "0x7f000001"):  # (the key the device locks take too)
        assert serial_key(f"socket://{spelling}:47103", resolve=False) == serial_key(f"socket://{spelling}:47103") \
            == "tcp:this-machine:47103"
    for spelling in ("10.1", "[::ffff:10.0.0.1]", "0x0a000001"):  # (an address elsewhere: its one literal)
        assert serial_key(f"socket://{spelling}:5025", resolve=False) == "tcp:10.0.0.1:5025"


def test_the_unspecified_address_is_the_loopback_it_connects_to(tmp_path, capsys):
    """An outside tester: rh_near on ``socket://127.0.0.1:47103`` and rh_room on
    ``socket://0.0.0.0:47103`` was a "valid profile", and a second process with its rig spelled
    0.0.0.0 was let past a live run's device locks: connect() to the unspecified address (0.0.0.0,
    ``0``, ``::``) reaches this host's loopback on Linux (the kernel's own substitution), so it is
    that one port, for check and for the locks alike."""
    from castrig.rig.ownership import serial_key

    with LoopbackServer() as server:  # (the premise: a listener on 127.0.0.1 takes a connection to 0.0.0.0)
        socket.create_connection(("0.0.0.0", server.port), timeout=5).close()
    assert "socket://127.0.0.1:47104" in SERIAL
    profile = _profile(tmp_path, SERIAL.replace("socket://127.0.0.1:47104", "socket://0.0.0.0:47103"))
    refused(castrig_main(capsys, "check", str(profile)), "devices rh_near, rh_room share the port", "socket://0.0.0.0:47103",
            "(one port, spelled 2 ways)")
    for spelling in ("0.0.0.0", "0", "[::ffff:0.0.0.0]"):
        assert serial_key(f"socket://{spelling}:47103", resolve=False) == serial_key(f"socket://{spelling}:47103") \
            == "tcp:this-machine:47103"
    assert serial_key("socket://[::]:47103") == serial_key("socket://[::1]:47103")
