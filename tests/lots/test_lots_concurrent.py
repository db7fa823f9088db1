"""`castrig lots assign` from several processes at once: one use per lot holds, no assignment is lost.

The assignments are a read-check-write of ``DATA/lots.json``; without a lock around it two
processes both saw "no use yet" and both wrote (the second silently overwriting the first).
The processes here write through a slow disk (a ``sitecustomize`` that holds every rename onto
``lots.json`` for a while), so their read-check-write overlap every time, not once in a few tries.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from conftest import add_graded_run, signal_self, start_castrig, with_sitecustomize
from conftest import membrane_metrics as _metrics


def _root_with_lots(tmp_path, n: int) -> tuple:
    root = tmp_path / "data"
    return root, [add_graded_run(root, f"lot{k:02d}", _metrics(3.0)) for k in range(n)]


_SLOW_DISK = """
import os, time
_replace = os.replace
def _slow_replace(src, dst, *a, **kw):
    if str(dst).endswith("lots.json"):
        time.sleep(float(os.environ.get("SLOW_LOTS_WRITE_S", "1.0")))
    return _replace(src, dst, *a, **kw)
os.replace = _slow_replace
"""


def _all_at_once(argvs: list[list[str]], tmp_path: Path, reap, slow_s: float = 1.0) -> list[tuple[int, str, str]]:
    """Run every ``castrig ARGV`` at once through the slow disk; ``(exit code, stdout, stderr)``
    of each, all within 120 s in all (those still running then are killed after the test: ``reap``)."""
    env = with_sitecustomize(tmp_path, _SLOW_DISK)
    procs = [reap(start_castrig(*argv, **env, SLOW_LOTS_WRITE_S=str(slow_s))) for argv in argvs]
    deadline = time.monotonic() + 120
    out = []
    for p in procs:
        so, se = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        out.append((p.returncode, so, se))
    return out


def test_concurrent_assigns_of_one_lot_give_it_one_use(tmp_path, reap):
    root, lots = _root_with_lots(tmp_path, 2)
    lot = lots[0]
    uses = ["blood_filter", "coculture"] * 2  # two of each at once (three of each cost 0.5 s of CPU more, and showed nothing two do not)
    got = _all_at_once([["lots", "assign", lot, "--use", u, "--data", str(root)] for u in uses], tmp_path, reap)
    won = {u for u, (rc, _, _) in zip(uses, got) if rc == 0}
    assert len(won) == 1, f"contradicting uses both accepted: {got}"
    (use,) = won
    other = next(u for u in uses if u != use)
    for u, (rc, so, se) in zip(uses, got):
        if u == use:
            assert rc == 0 and f"lot {lot}: intended use {use}" in so, (rc, so, se)
        else:  # refused with the use the lot got, and how to change it deliberately
            assert rc == 2, (rc, so, se)
            assert f"lot {lot}: already assigned to {use}" in se and "castrig lots unassign" in se and "Traceback" not in se
            assert other not in so
    recorded = json.loads((root / "lots.json").read_text())
    assert recorded[lot]["intended_use"] == use


def test_concurrent_assigns_of_different_lots_are_all_recorded(tmp_path, reap):
    """Four assigns of four lots and two unassigns (unassign takes the same lock) at once: none
    lost. (Was two batches, six assigns then two unassigns and two assigns: the two lots the
    unassigns take back are assigned beforehand in this process, by castrig's own assign_use, so
    that one batch of six writers has both kinds in it: four castrig processes fewer.)"""
    from castrig.lots.registry import assign_use

    root, lots = _root_with_lots(tmp_path, 6)
    for lot in lots[:2]:
        assign_use(lot, "blood_filter", root)
    assert set(json.loads((root / "lots.json").read_text())) == set(lots[:2])
    uses = {lot: ("blood_filter", "coculture")[k % 2] for k, lot in enumerate(lots[2:])}
    got = _all_at_once([["lots", "unassign", lots[0], "--data", str(root)],
                        *[["lots", "assign", lot, "--use", uses[lot], "--data", str(root)] for lot in lots[2:4]],
                        ["lots", "unassign", lots[1], "--data", str(root)],
                        *[["lots", "assign", lot, "--use", uses[lot], "--data", str(root)] for lot in lots[4:]]],
                       tmp_path, reap, 0.5)
    assert all(rc == 0 for rc, _, _ in got), got
    recorded = json.loads((root / "lots.json").read_text())
    assert {lot: a["intended_use"] for lot, a in recorded.items()} == uses


#: A sitecustomize: the process stops itself (SIGSTOP, as Ctrl-Z does) as it writes lots.json,
#: holding the lock on the lot assignments.
_STOP_IN_THE_WRITE = signal_self("os:replace", "SIGSTOP", when='str(args[1]).endswith("lots.json")')


def test_an_assign_held_up_by_a_stopped_assign_is_busy_at_once_saying_so(tmp_path, reap):
    """`castrig lots assign` Ctrl-Z'd as it writes holds the assignments' lock for as long as it is
    stopped. Another assign waited the whole minute (LOCK_WAIT_S) saying nothing, then was
    refused. It is refused at once now (exit 4), naming the stopped process and `kill -CONT`;
    once continued, the first assign finishes and the second goes through."""
    from conftest import castrig, stopped, wait_until

    root, lots = _root_with_lots(tmp_path, 2)
    first = reap(start_castrig("lots", "assign", lots[0], "--use", "blood_filter", "--data", str(root), "--allow-simulated",
                               **with_sitecustomize(tmp_path, _STOP_IN_THE_WRITE)))
    wait_until(lambda: stopped(first.pid), timeout_s=30,
               what="the first assign stopped in its write")
    second = castrig("lots", "assign", lots[1], "--use", "coculture", "--data", str(root), "--allow-simulated", timeout_s=120)
    assert second.returncode == 4, (second.returncode, second.stdout, second.stderr)
    said = " ".join(second.stderr.split())
    assert f"pid {first.pid}" in said and "STOPPED" in said and f"kill -CONT {first.pid}" in said, said
    first.send_signal(__import__("signal").SIGCONT)
    assert first.wait(timeout=60) == 0
    again = castrig("lots", "assign", lots[1], "--use", "coculture", "--data", str(root), "--allow-simulated")
    assert again.returncode == 0, again.stderr
    recorded = json.loads((root / "lots.json").read_text())
    assert recorded[lots[0]]["intended_use"] == "blood_filter" and recorded[lots[1]]["intended_use"] == "coculture"
