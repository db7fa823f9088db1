"""Modbus exception replies a lab meets beyond the controller's own 01-04: a Modbus TCP gateway
in front of the chamber's controller answers 0A/0B when its target is out of reach, and a device
may answer codes of its own. Outside in: the real `castrig run` on the devices `sim serve`
serves, the chamber's line through a proxy that rewrites one reply."""

from __future__ import annotations

import struct

import pytest

from castrig.devices.modbus import ExceptionResponse, parse_response, read_holding_pdu
from conftest import run_recipe_through_a_proxy, run_rows

PROFILE = "hw_profiles/sim-watlow-f4t-serial.yaml"


def test_a_gateways_target_not_answering_once_is_ridden_out_not_a_fault(tmp_path, sim_serve):
    """One reply of the F4T replaced by exception 0B (gateway target device failed to respond) as
    the run's control loop reads the chamber: before, the run faulted at once ("Modbus exception
    11 (unknown)", exit 3), where a timeout of the same exchange is ridden out. Now it is taken
    for the timeout one hop further that it is: the run completes, the exception said in its
    events by name."""
    rewritten = []

    def gateway(request: bytes, data: bytes) -> bytes:
        # the first read of the RH loop's process value (2980, loop 2): the control loop's, mid-run
        if rewritten or len(data) < 8 or request[7:10] != bytes([0x03]) + (2980).to_bytes(2, "big"):
            return data
        rewritten.append(request)
        tid, _, _, unit = struct.unpack(">HHHB", data[:7])
        return struct.pack(">HHHB", tid, 0, 3, unit) + bytes([data[7] | 0x80, 0x0B])

    recipe = {"name": "gateway", "steps": [{"type": "purge", "duration_s": 1}]}
    done, _ = run_recipe_through_a_proxy(tmp_path, sim_serve, "chamber", recipe, profile=PROFILE, reply=gateway)
    assert rewritten, "the reply was never rewritten: the test shows nothing"
    said = done.stdout + done.stderr
    assert done.returncode == 0 and "completed" in said, said[-2000:]
    (run_dir,) = [p.parent for p in (tmp_path / "runs").glob("*/run.json")]
    events = run_rows(run_dir, "SELECT message FROM events WHERE message LIKE '%Modbus exception%'")
    assert any("read 2980+2': Modbus exception 0B (gateway target device failed to respond)" in m
               for (m,) in events), events


@pytest.mark.parametrize("code, text", [(0x0A, "0A (gateway path unavailable)"), (0x42, "42 (not a standard code)")])
def test_exception_codes_are_named_in_hex_as_manuals_write_them(code, text):
    """An exception code outside 01-04 was named "unknown", and in decimal ("11" for 0B)."""
    with pytest.raises(ExceptionResponse, match=text.replace("(", r"\(").replace(")", r"\)")):
        parse_response(read_holding_pdu(2820, 2), bytes([0x83, code]))
