"""A key given twice in one YAML mapping is refused with exit 2 (file, line, key), never "last wins".

Before: ``duration_s: 300, duration_s: 30000`` in an evaporate step ran 30000 s; a second top-level
``grade`` replaced the first; ``kp: 0.015`` then ``kp: 0.0`` in a profile turned the RH loop's P off
— all three passed ``castrig check`` with exit 0.
"""

from __future__ import annotations

from pathlib import Path

from conftest import ROOT, castrig_main

DEMO = (ROOT / "recipes" / "demo.yaml").read_text()
SIM = (ROOT / "hw_profiles" / "sim.yaml").read_text()


def _line_of(text: str, needle: str, nth: int = 1) -> int:
    at = -1
    for _ in range(nth):
        at = text.index(needle, at + 1)
    return text[:at].count("\n") + 1


def _refused(done, path: Path, key: str, line: int) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    err = " ".join(done.stderr.split())  # rich may wrap
    assert str(path) in err and f"duplicate key '{key}'" in err and f"line {line}," in err, err


def test_duplicate_key_in_a_step_is_refused_by_check_and_run(tmp_path, capsys):
    assert "duration_s: 300," in DEMO
    text = DEMO.replace("duration_s: 300,", "duration_s: 300, duration_s: 30000,")
    recipe = tmp_path / "dup_step.yaml"
    recipe.write_text(text)
    _refused(castrig_main(capsys, "check", str(recipe)), recipe, "duration_s", _line_of(text, "duration_s: 30000"))
    data = tmp_path / "runs"
    _refused(castrig_main(capsys, "run", str(recipe), "--data", str(data), "-q"), recipe, "duration_s", _line_of(text, "duration_s: 30000"))
    assert not data.exists() or not any(data.iterdir())  # no run folder


def test_duplicate_top_level_key_is_refused(tmp_path, capsys):
    text = DEMO.replace("\ngrade: claim1\n", "\ngrade: claim1\ngrade: claim4\n")
    assert text != DEMO
    recipe = tmp_path / "dup_top.yaml"
    recipe.write_text(text)
    _refused(castrig_main(capsys, "check", str(recipe)), recipe, "grade", _line_of(text, "grade: claim4"))


def test_duplicate_key_in_a_profile_is_refused(tmp_path, capsys):
    text = SIM.replace("\n  kp: 0.015\n", "\n  kp: 0.015\n  kp: 0.0\n")
    assert text != SIM
    profile = tmp_path / "dup_profile.yaml"
    profile.write_text(text)
    _refused(castrig_main(capsys, "check", str(profile)), profile, "kp", _line_of(text, "kp: 0.0\n"))
    recipe = ROOT / "recipes" / "demo.yaml"
    _refused(castrig_main(capsys, "check", str(recipe), "--profile", str(profile)), profile, "kp", _line_of(text, "kp: 0.0\n"))


def test_a_merge_key_override_is_not_a_duplicate(tmp_path, capsys):
    """``<<: *base`` then a key of its own overrides the merged one: YAML's meaning, not a repeat."""
    recipe = tmp_path / "merge.yaml"
    recipe.write_text("name: merged\nsteps:\n  - &p {type: purge, duration_s: 60}\n  - {<<: *p, duration_s: 30}\n")
    done = castrig_main(capsys, "check", str(recipe))
    assert done.returncode == 0, done.stderr
