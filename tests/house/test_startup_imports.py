"""The commands an operator or a script runs often start without loading numpy or scipy: each
castrig process pays its imports, and the suite starts hundreds (``castrig check``, ``runs``,
``lots``, ``serve``)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, castrig, raw_get


def imported(stderr: str) -> set[str]:
    """Module names from ``PYTHONPROFILEIMPORTTIME`` lines (``import time: self | cum | name``)."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:") and "|" in line}


@pytest.mark.parametrize("args", [
    ("check", str(ROOT / "recipes" / "overnight.yaml")),
    ("runs",),
    ("lots",),
    ("status",),
])
def test_listing_and_checking_commands_do_not_load_numpy_or_structlog(tmp_path: Path, args: tuple[str, ...]) -> None:
    """structlog (0.06 s of CPU: asyncio, rich.traceback) was loaded by the entry point for every
    command; only the commands that log load it now (castrig.logs.module_logger)."""
    if args[0] != "check":
        args = (*args, "--data", str(tmp_path))
    out = castrig(*args, PYTHONPROFILEIMPORTTIME="1")
    assert out.returncode == 0, out.stderr[-2000:]
    mods = imported(out.stderr)
    assert "castrig.cli.main" in mods  # the profile was read
    assert "numpy" not in mods and "structlog" not in mods
    # nor pydantic where the command reads no recipe: typer 0.29 coerces every option through a
    # pydantic TypeAdapter (castrig status 0.24 s of CPU, not 0.13 s: pyproject.toml holds typer below it);
    # `castrig lots` loaded it with castrig.lots's filter and co-culture models (~0.1 s), which it never reads
    assert args[0] == "check" or not {m for m in mods if m.split(".")[0] in ("pydantic", "pydantic_core")}
    # only the command's own cli module is built: all eight were, ~0.04 s of CPU at every start
    needed = {"lots": {"castrig.cli.explore"}, "status": {"castrig.cli.operate"}}.get(args[0], set())
    assert args[0] != "runs" or "yaml" not in mods  # (the grades' names without the spec's YAML reader)
    assert {m for m in mods if m.startswith("castrig.cli.") and m[12:] in CLI_MODULES} == needed, sorted(m for m in mods if m.startswith("castrig.cli."))


#: The cli modules castrig.cli.main mounts the commands of (SUBCOMMANDS)
CLI_MODULES = ("sim", "report", "explore", "commission", "safe", "operate", "schema", "analyse")


def test_the_entry_point_knows_the_module_of_every_command() -> None:
    """A ``castrig`` process builds only the cli module of its command (cli/entry.py: COMMAND):
    the table it goes by names each command of the whole CLI with the module that defines it."""
    from castrig.cli.main import OWN_COMMANDS, SUBCOMMANDS, app

    assert tuple(SUBCOMMANDS) == CLI_MODULES
    defined = {}
    for c in app.registered_commands:
        defined[c.name or c.callback.__name__.replace("_", "-")] = c.callback.__module__
    for g in app.registered_groups:
        sub = g.typer_instance.registered_commands[0].callback
        defined[g.name] = sub.__module__
    told = {word: f"castrig.cli.{module}" for module, words in SUBCOMMANDS.items() for word in words}
    told.update((word, "castrig.cli.main") for word in OWN_COMMANDS)
    assert told == defined


def test_a_twin_run_that_captures_nothing_does_not_load_the_renderer(tmp_path: Path) -> None:
    """scipy (the micrograph renderer) loads with the first image, not with the twin."""
    recipe = tmp_path / "dry.yaml"
    recipe.write_text("name: dry\ngrade: claim1\npolymer: polystyrene\nsolvent: chloroform\n"
                      "concentration_mg_ml: 5.0\nsupport_pore_um: 5.0\nsteps:\n  - {type: purge, duration_s: 60}\n")
    out = castrig("run", str(recipe), "--data", str(tmp_path / "runs"), PYTHONPROFILEIMPORTTIME="1")
    assert out.returncode == 0, out.stderr[-2000:]
    mods = imported(out.stderr)
    assert "castrig.sim.twin" in mods
    assert "scipy" not in mods


def served_imports(castrig_serve: Any, data: Path, paths: tuple[str, ...]) -> set[str]:
    """The modules `castrig serve` on ``data`` has imported once it has answered ``paths`` (each 200)."""
    with castrig_serve(data, env={"PYTHONPROFILEIMPORTTIME": "1"}) as served:
        for path in paths:
            status, body, _ = raw_get(served.url, path, token=served.token)
            assert status == 200, (path, status, body[:300])
        served.proc.send_signal(signal.SIGINT)
        _, stderr = served.proc.communicate(timeout=30)
    return imported(stderr)


def test_castrig_serve_answers_its_listing_pages_without_loading_scipy(finished_demo_run, castrig_serve) -> None:
    """`castrig serve` imported castrig.analysis whole (the explore pages read the spec's grades
    through castrig.explore, which imported its search, which imported the analysis package): 0.2 s
    more CPU at every start, scipy loaded before any page asked. The analysis loads with a
    report, which measures the run's images."""
    data, run_id = finished_demo_run
    mods = served_imports(castrig_serve, data, ("/", f"/runs/{run_id}", "/api/runs", "/explore", "/api/explore"))
    assert "castrig.serve.explore" in mods  # the profile was read, the explore pages built
    assert "scipy" not in mods and "castrig.analysis.surface" not in mods


def test_castrig_serve_starts_without_numpy_or_pydantic(tmp_path: Path, castrig_serve) -> None:
    """`castrig serve` imported the search map's plots for their stylesheet's hash (the explore
    pages' frame policy) and the report's renderer for the hash function: pydantic, the recipe
    and profile models, yaml and numpy (~0.2 s of CPU) at every start, before any page asked.
    They load with the first page that shows a search or a report."""
    mods = served_imports(castrig_serve, tmp_path, ("/", "/api/runs", "/explore"))
    assert "castrig.serve.explore" in mods  # the profile was read, the explore pages built
    heavy = {m.split(".")[0] for m in mods} & {"numpy", "pydantic", "yaml"}
    assert not heavy and "castrig.report.html" not in mods, (heavy, "castrig.report.html" in mods)


@pytest.mark.parametrize("args", [
    ("analyse", "surface", "{missing}"),
    ("analyse", "section", "{unreadable}"),
    ("analyse", "membrane", "--surface", "{unreadable}", "--section", "{unreadable}"),
])
def test_analyse_refuses_a_file_it_cannot_read_without_loading_scipy(tmp_path: Path, args: tuple[str, ...]) -> None:
    """`castrig analyse` imported the analysis (scipy.ndimage and scipy.spatial, ~0.25 s of CPU)
    before reading its images: a missing or unreadable file was refused after 0.55 s of CPU, not
    0.3 s. The analysis now loads once the images are read and checked."""
    (tmp_path / "bad.tif").write_bytes(b"not an image")
    files = {"missing": str(tmp_path / "missing.tif"), "unreadable": str(tmp_path / "bad.tif")}
    out = castrig(*(a.format(**files) for a in args), PYTHONPROFILEIMPORTTIME="1")
    assert out.returncode == 2, out.stderr[-2000:]
    said = [line for line in out.stderr.splitlines() if not line.startswith("import time:")]
    assert any("error:" in line and "tif" in line for line in said), said
    mods = imported(out.stderr)
    assert "castrig.cli.analyse" in mods
    assert "scipy" not in mods, sorted(m for m in mods if m.startswith("scipy"))[:5]


def test_an_optical_analysis_does_not_load_numba(tmp_path: Path) -> None:
    """numba (the SEM lip fit's compiler, castrig.analysis._lipfit: ~0.15 s of CPU to import and
    ~0.2 s to load the compiled fit) loads with the first lip fit, not with the analysis: an
    optical top view, even under --appearance auto (which looks for SEM rims), never loads it."""
    import numpy as np

    from castrig.sim.micrograph import make_structure, render_surface
    from castrig.tiffio import write_micrograph

    rng = np.random.default_rng(5)
    st = make_structure(rng, mean_diameter_um=4.0, opening_ratio=0.4, thickness_um=4.0, field_um=256 * 0.4,
                        section_length_um=40.0)
    write_micrograph(tmp_path / "top.tif", render_surface(st, 0.4, rng)[0], 0.4)
    out = castrig("analyse", "surface", str(tmp_path / "top.tif"), "--appearance", "auto", "--json",
                  PYTHONPROFILEIMPORTTIME="1")
    assert out.returncode == 0, out.stderr[-2000:]
    mods = imported(out.stderr)
    assert "castrig.analysis.edges_rims" in mods  # the profile was read, the view looked at for rims
    assert "numba" not in mods and "castrig.analysis._lipfit" not in mods
