"""A run's process keeps OpenBLAS to one thread (its spinning workers took CPU from the control loop)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _threads_after_import(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    env["PYTHONPATH"] = str(SRC)
    if env_value is not None:
        env["OPENBLAS_NUM_THREADS"] = env_value
    code = "import os, castrig.recipe.session; print(os.environ.get('OPENBLAS_NUM_THREADS'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_a_run_process_asks_openblas_for_one_thread() -> None:
    assert _threads_after_import(None) == "1"


def test_the_operators_setting_stands() -> None:
    assert _threads_after_import("2") == "2"
