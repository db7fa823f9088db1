"""DESIGN §1's layers, read from the source: what each layer may import.

The in-process simulator link imported ``castrig.sim.emulator`` to tell whether an emulator kept
Emulator's own methods (a speed shortcut): the link layer reaching up into the simulator, which
§1 allows only the composition root (``castrig.rig``). The emulator now says so itself
(``Emulator.link_shortcuts``)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "castrig"

#: §1's "may import" column, layer by layer (each may import itself; the clock is everyone's).
#: Layers are castrig's packages (folders); its top-level modules (errors, tiffio, pngio, utc ...)
#: are shared helpers. ``cli`` may import everything; ``reliability`` (the campaigns behind
#: benchmarks/reliability.py) is not in §1's table.
ALLOWED = {
    "clock": set(),
    "links": set(),
    "devices": {"links"},
    "sim": set(),
    "control": {"devices"},
    "recipe": {"control", "devices", "store", "analysis"},
    # the run folder's records and the micrograph analysis: what everything else reads and
    # writes through; neither knows a device, a recipe or a page (the analyse step's segmentation
    # for the report is made in analysis and kept by the store, not imported from the report)
    "store": set(),
    "analysis": set(),
    "report": {"store", "analysis"},
    "rig": {"devices", "links", "sim"},
    "lots": {"store", "analysis"},
    "explore": {"recipe", "rig", "analysis", "store"},
    "serve": {"store", "report", "analysis"},
}
#: Imports across layers that §1's table does not list, each (module, layer) with why it is there.
#: A ratchet: a new one fails the test, and so does an entry here that is no longer true (take it
#: out when it is fixed). Each is a candidate for a move, or a line for §1's table.
KNOWN = {
    ("recipe/compat.py", "rig"): "a recipe is checked against the hardware profile it runs on",
    ("recipe/queue.py", "report"): "castrig queue writes each run's report as it ends",
    ("recipe/queue.py", "rig"): "the queue loads the profile to check a night's volumes",
    ("recipe/runner.py", "links"): "the runner tells link errors (a device silent) from device errors",
    ("recipe/resume_unopened.py", "rig"): "a resume that cannot open its whole rig makes safe what answers",
    ("recipe/run_unopened.py", "rig"): "a new run that cannot open its whole rig makes safe what answers",
    ("recipe/runner.py", "rig"): "the runner drives the rig the composition root built",
    ("recipe/session.py", "rig"): "a run opens and owns its rig",
    ("rig/safe_what_answers.py", "control"): "the composition root opens what answers and makes it safe (castrig safe, resume)",
    ("serve/explore.py", "explore"): "the explore pages read the map and search folders",
    ("sim/fit.py", "rig"): "castrig sim fit writes the fitted twin into a profile",
    ("sim/fit.py", "store"): "it reads a run's records to fit the twin to them",
    ("sim/twin.py", "rig"): "the twin is built from a hardware profile's sim settings",
}
LAYERS = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}


def _castrig_imports(path: Path) -> set[str]:
    """The ``castrig`` packages a module imports, anywhere in it (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "castrig" and len(parts) > 1:
                found.add(parts[1])
    return found


def _crossings() -> dict[tuple[str, str], None]:
    """Every (module, layer) import of another layer that §1's table does not allow."""
    out = {}
    for layer, allowed in ALLOWED.items():
        for p in sorted((SRC / layer).rglob("*.py")):
            for other in sorted((_castrig_imports(p) & LAYERS) - allowed - {layer, "clock"}):
                out[(str(p.relative_to(SRC)), other)] = None
    return out


def test_every_layer_imports_only_what_design_allows_it_or_a_known_exception():
    found = _crossings()
    new = [k for k in found if k not in KNOWN]
    assert not new, f"imports across layers that DESIGN §1 does not allow: {new}"
    gone = [k for k in KNOWN if k not in found]
    assert not gone, f"KNOWN lists imports that are gone (take them out): {gone}"


def test_the_table_names_every_layer():
    assert set(ALLOWED) | {"cli", "reliability"} == LAYERS
