"""The work of a control tick on the twin, counted: an RH-held wait's ticks, by the calls they make.

``benchmarks/virtual_time.py --instructions`` counts a held tick's machine instructions under
valgrind (minutes); here the same difference (a long hold's run less a short one's: start-up, the
purge and the condition cancel out) is taken of the calls seen by ``sys.setprofile``, in seconds:
Python calls, and the builtins whose C work dominated a tick's instructions beside the bytecode
(regex matches of replies, number formatting, ``min``/``max``, ``round``). Counts, not times: the
load of the machine does not move them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, castrig_env

#: A purge, a condition to 70 %RH, then an RH-held wait: the hold whose ticks
#: ``benchmarks/virtual_time.py --instructions`` counts (its HOLD_RECIPE, read from there)
sys.path.insert(0, str(ROOT / "benchmarks"))
from virtual_time import HOLD_RECIPE as HOLD  # noqa: E402

#: ``castrig ARGS`` in this process, its calls counted (the main thread's: the ticks')
COUNTED = """
import collections, json, sys
from castrig.cli.main import main
COSTLY = {"min", "max", "round", "format", "fullmatch", "match", "search"}
counts = collections.Counter()
def seen(frame, event, arg):
    if event == "call":
        counts["python"] += 1
    elif event == "c_call" and getattr(arg, "__name__", "") in COSTLY:
        counts["costly"] += 1
code = 0
sys.setprofile(seen)
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sys.setprofile(None)
print(json.dumps({"code": code, **counts}))
"""


def _counted_run(tmp_path: Path, hold_s: int) -> dict[str, int]:
    recipe = tmp_path / f"hold{hold_s}.yaml"
    recipe.write_text(HOLD.format(hold_s=hold_s))
    done = subprocess.run([sys.executable, "-c", COUNTED, "run", str(recipe), "--profile", str(ROOT / "hw_profiles" / "sim.yaml"),
                           "--data", str(tmp_path / "runs"), "-q"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL, env=castrig_env(PYTHONPATH=str(ROOT / "src")))
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["code"] in (0, None), done.stderr[-2000:]
    return counts


def test_a_held_tick_on_the_twin_makes_few_calls_and_little_costly_c_work(tmp_path: Path) -> None:
    """Per tick of an RH-held wait (1 s control period: 240 ticks between the two runs): the
    exchanges' setpoint commands and replies worked out once per distinct setpoint (formatting,
    the reply's regex), no min/max calls in the emulators' and the runner's arithmetic, the
    virtual clock read by the link's loops without a call. At 4c8620e 197.5 Python calls and 24.7
    such builtins a tick; now 176.9 and 5.6."""
    short, long_ = _counted_run(tmp_path, 60), _counted_run(tmp_path, 300)
    ticks = 300 - 60
    python_per_tick = (long_["python"] - short["python"]) / ticks
    costly_per_tick = (long_["costly"] - short["costly"]) / ticks
    assert costly_per_tick <= 10.0, costly_per_tick
    assert python_per_tick <= 185.0, python_per_tick
