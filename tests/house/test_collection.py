"""The suite's own collection: xdist's controller rewrites each test module once (conftest.py:
``_rewrite_test_modules_once``) so that the workers, collecting the suite all at once on a clean
clone, read pytest's rewritten modules instead of each rewriting them again (28 s of CPU)."""

from __future__ import annotations

import marshal
from pathlib import Path

import pytest

from conftest import _rewrite_test_modules_once


def test_the_controller_leaves_each_test_module_rewritten_as_the_workers_import_it(tmp_path: Path,
                                                                                     request: pytest.FixtureRequest) -> None:
    from _pytest.assertion.rewrite import PYC_TAIL

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "test_a.py").write_text("def test_a():\n    x = 1\n    assert x == 2\n")
    (tmp_path / "helpers.py").write_text("def helper():\n    assert True\n")  # not a test module: not rewritten
    (tmp_path / "test_broken.py").write_text("def test_(:\n")  # its import will say so, not the controller

    _rewrite_test_modules_once(request.config, tmp_path)

    pyc = tmp_path / "sub" / "__pycache__" / ("test_a" + PYC_TAIL)
    code = marshal.loads(pyc.read_bytes()[16:])
    test_a = next(c for c in code.co_consts if getattr(c, "co_name", "") == "test_a")
    assert any(name.startswith("@py_assert") for name in test_a.co_varnames), test_a.co_varnames  # pytest's rewrite
    assert not (tmp_path / "__pycache__").exists() or not list((tmp_path / "__pycache__").glob("helpers*"))
    assert not list(tmp_path.glob("__pycache__/test_broken*"))
