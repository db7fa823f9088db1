"""A data root moved to another place (``mv runs /archive/runs``, a copy on the analysis PC): its
catalog keeps the absolute paths its run folders had, so its readers looked for every indexed run
where it no longer is. Driven through the real CLI in subprocesses."""

from __future__ import annotations

from pathlib import Path

from conftest import ROOT, castrig, castrig_main, recipe_variant


def test_a_moved_data_root_still_lists_its_membranes_and_lots(tmp_path: Path, capsys):
    """After the move `castrig runs` showed the run without membranes and `castrig lots` said
    "no lots yet" (its lot refused by `lots assign` as unknown): a silent wrong answer. Each reads
    the folder where it is now."""
    before, after = tmp_path / "runs", tmp_path / "archive" / "runs"
    # the demo with one field per view, not two: a lot all the same, ~0.4 s of CPU less
    recipe = recipe_variant(ROOT / "recipes" / "demo.yaml", tmp_path / "recipes", ("fields: 2}", "fields: 1}"))
    done = castrig("run", str(recipe), "--data", str(before), "-q")
    assert done.returncode == 0, done.stderr
    (run_json,) = before.glob("*/run.json")
    run_id = run_json.parent.name
    after.parent.mkdir()
    before.rename(after)

    listed = castrig_main(capsys, "runs", "--data", str(after))
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if run_id in line)
    assert "completed" in row and "1: 1 met" in row, listed.stdout
    lots = castrig_main(capsys, "lots", "--data", str(after))
    assert lots.returncode == 0 and f"{run_id}-m1" in lots.stdout, lots.stdout + lots.stderr
    assigned = castrig_main(capsys, "lots", "assign", f"{run_id}-m1", "--use", "blood_filter", "--allow-simulated", "--data", str(after))
    assert assigned.returncode == 0, assigned.stderr
    assert not before.exists()  # nothing was made where the root used to be
