"""The analyse step measures a field's section on a thread of its own while its surface pair is
measured (issue 19: the twin's overnight spent its four fields' analyses one after the other on
one of two cores), with the same results and errors as one after the other."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import castrig.recipe.analyse as step
from castrig.recipe.analyse import analyse_capture, latest_capture
from tests.conftest import run_with_twin_field


def _analysed(rec):
    return analyse_capture(Path(rec.run_dir), latest_capture(rec), grade="claim1")


def test_the_section_is_measured_while_the_surface_pair_is(tmp_path, monkeypatch):
    """The surface analysis waits (up to 20 s) for the section's to have begun: one after the
    other, the section began only once the surface had returned, and the wait ran out."""
    rec = run_with_twin_field(tmp_path, field_px=384)
    section_began = threading.Event()
    real_surface, real_section = step.analyse_surface, step.analyse_section

    def section(*a, **k):
        section_began.set()
        return real_section(*a, **k)

    def surface(*a, **k):
        assert section_began.wait(20.0), "the section's analysis had not begun while the surface pair was measured"
        return real_surface(*a, **k)

    monkeypatch.setattr(step, "analyse_section", section)
    monkeypatch.setattr(step, "analyse_surface", surface)
    monkeypatch.delenv("CASTRIG_ANALYSIS_THREADS", raising=False)
    result = _analysed(rec)
    assert result["metrics"]["mean_thickness_um"] is not None and result["metrics"]["pore_count"] > 0


def test_with_or_without_threads_the_step_gives_the_same_outcome(tmp_path, monkeypatch):
    rec = run_with_twin_field(tmp_path, field_px=384)
    monkeypatch.setenv("CASTRIG_ANALYSIS_THREADS", "0")
    alone = _analysed(rec)
    monkeypatch.setenv("CASTRIG_ANALYSIS_THREADS", "2")
    beside = _analysed(rec)
    assert repr(beside) == repr(alone)


@pytest.mark.parametrize("failing", ["surface", "section"])
def test_a_failing_analysis_raises_its_own_error_as_one_after_the_other_did(tmp_path, monkeypatch, failing):
    """The surface's error when it fails (whatever the section's thread met meanwhile), else the
    section's: a run's 'analysis failed' event names the same cause as before."""
    rec = run_with_twin_field(tmp_path, field_px=384)

    def broken(*a, **k):
        raise ValueError(f"{failing} unreadable")

    monkeypatch.setattr(step, f"analyse_{failing}", broken)
    if failing == "surface":  # the section fails too, on its thread: the surface's error is the one raised
        monkeypatch.setattr(step, "analyse_section", lambda *a, **k: (_ for _ in ()).throw(ValueError("section unreadable")))
    with pytest.raises(ValueError, match=f"{failing} unreadable"):
        _analysed(rec)
