"""DESIGN §1's layers, read from the source: what the lowest layers may import.

The in-process simulator link imported ``castrig.sim.emulator`` to tell whether an emulator kept
Emulator's own methods (a speed shortcut): the link layer reaching up into the simulator, which
§1 allows only the composition root (``castrig.rig``). The emulator now says so itself
(``Emulator.link_shortcuts``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "castrig"

#: §1's "may import" column for the layers every other stands on. Layers are castrig's
#: packages (folders); its top-level modules (errors, tiffio, utc ...) are shared helpers.
ALLOWED = {
    "clock": {"clock"},
    "links": {"links", "clock"},
    "devices": {"devices", "links", "clock"},
    # the run folder's records and the micrograph analysis: what everything else reads and
    # writes through; neither knows a device, a recipe or a page (the analyse step's segmentation
    # for the report is made in analysis and kept by the store, not imported from the report)
    "store": {"store"},
    "analysis": {"analysis"},
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


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_low_layer_imports_only_what_design_allows_it(layer):
    wrong = {str(p.relative_to(SRC)): sorted((_castrig_imports(p) & LAYERS) - ALLOWED[layer])
             for p in sorted((SRC / layer).rglob("*.py"))}
    assert not {k: v for k, v in wrong.items() if v}, wrong
