"""Link faults over real OS links (sim serve on TCP and a pty): typed errors while the fault
lasts, talking again right after — including a TCP connection that drops and comes back."""

from __future__ import annotations

import pytest

from castrig.reliability.linkfaults import link_trial


@pytest.mark.parametrize("device", ["ne1000", "alicat", "hmt330"])
def test_port_vanishes_and_comes_back_over_tcp(device):
    t = link_trial(device, "tcp", "drop", fault_s=0.4)
    assert t.typed_errors >= 1 and not t.untyped
    assert t.recovered_after is not None and t.recovered_after <= 2


@pytest.mark.parametrize("fault", ["no_reply", "garbage", "truncate"])
def test_glitches_over_a_pty(fault):
    t = link_trial("alicat", "pty", fault, fault_s=0.4)
    assert t.passed, (t.untyped, t.recovered_after)
