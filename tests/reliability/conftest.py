"""Hypothesis keeps its caches out of the work tree (a temporary folder per session)."""

from __future__ import annotations

import tempfile

from hypothesis.configuration import set_hypothesis_home_dir

_HOME = tempfile.TemporaryDirectory(prefix="castrig-hypothesis-")
set_hypothesis_home_dir(_HOME.name)
