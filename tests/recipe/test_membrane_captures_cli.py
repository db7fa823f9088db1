"""A membrane imaged in several capture steps is analysed on all of them (each kind's latest),
never on another membrane's images, and a kill -9 between its captures loses none of them.

From the outside: the real ``castrig run`` / ``castrig resume`` on the twin (virtual time)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import castrig, run_rows, run_then_kill_9, step_running

# m1: a surface capture, a wait (killed there), then a section capture; m2: a section capture,
# then a surface + section capture (its section taken twice: the latest counts)
TWO_CAPTURES = """\
name: two-captures
grade: claim1
concentration_mg_ml: 5.0
support_pore_um: 5.0
steps:
  - {type: cast, volume_ml: 0.1, rate_ml_min: 0.8}
  - {type: evaporate, setpoint_rh_pct: 70, duration_s: 30, band_rh_pct: 20.0, max_out_of_band_s: 120}
  - {type: capture, views: [reflected, transmitted], fields: 1}
  - {type: wait, duration_s: 600}
  - {type: capture, views: [section], fields: 1}
  - {type: analyse, grade: claim1}
  - {type: cast, volume_ml: 0.1, rate_ml_min: 0.8}
  - {type: evaporate, setpoint_rh_pct: 70, duration_s: 30, band_rh_pct: 20.0, max_out_of_band_s: 120}
  - {type: capture, views: [section], fields: 1}
  - {type: capture, views: [reflected, section], fields: 1}
  - {type: analyse, grade: claim1}
"""


def test_a_membrane_captured_in_two_steps_is_analysed_on_both_after_a_kill_between_them(tmp_path: Path) -> None:
    recipe = tmp_path / "two-captures.yaml"
    recipe.write_text(TWO_CAPTURES)
    data = tmp_path / "runs"
    run_dir = run_then_kill_9(recipe, data, step_running(3))  # m1's surface captured, its section not yet
    first = dict(run_rows(run_dir, "select name, sha256 from images"))
    assert set(first) == {"s2_field0_reflected", "s2_field0_transmitted"}

    done = castrig("resume", str(run_dir), "-q")
    assert done.returncode == 0, done.stderr[-2000:]
    images = dict(run_rows(run_dir, "select name, sha256 from images"))
    # the first capture kept as it was, not taken again; each capture once
    assert {k: images[k] for k in first} == first
    assert sorted(images) == sorted([*first, "s4_field0_section", "s8_field0_section", "s9_field0_reflected", "s9_field0_section"])

    metrics = {k: json.loads(mj) for k, mj in run_rows(run_dir, "select k, metrics_json from membranes")}
    assert metrics[1].get("opening_ratio") is not None, metrics[1]  # its surface measured (was: the section only)
    assert metrics[2].get("opening_ratio") is not None and metrics[2]["through_pore_fraction"] is None  # no transmitted of m1's
    analyses = {d["membrane_id"].rsplit("-", 1)[1]: (msg, d) for msg, d in
                ((msg, json.loads(d)) for msg, d in run_rows(run_dir, "select message, data_json from events where kind='analysis'"))}
    msg1, m1 = analyses["m1"]
    # every image of m1, from both its captures (was: the section step's only, no surface metric)
    assert m1["images"] == {"reflected": ["s2_field0_reflected"], "transmitted": ["s2_field0_transmitted"],
                            "section": ["s4_field0_section"]}
    assert "reflected, transmitted from step 3; section from step 5" in msg1
    msg2, m2 = analyses["m2"]
    # none of m1's images; its section taken twice: the latest, said in the log
    assert m2["images"] == {"reflected": ["s9_field0_reflected"], "section": ["s9_field0_section"]}
    assert "section of step 9 replaced by step 10's" in msg2 and m2["superseded_steps"] == {"section": [9]}


def test_the_images_measured_are_each_views_latest_capture_of_that_membrane_only() -> None:
    """The choice itself (:func:`select_images`), which the report's histogram shares: a view
    captured twice counts once (its latest capture, its fields not mixed with the earlier ones), a
    transmitted view only with the reflected view of its own capture, nothing of another membrane."""
    from castrig.store.measured_images import select_images
    from castrig.report.html import _measured_names
    from castrig.store.base import ImageRecord

    def im(step: int, field: int, view: str, mid: str = "r-m1") -> ImageRecord:
        return ImageRecord(0.0, f"s{step}_field{field}_{view}", f"images/s{step}_field{field}_{view}.tif", view, 0.1, "",
                           {"step": step, "field": field, "membrane_id": mid})

    ims = [im(2, 0, "reflected"), im(2, 1, "reflected"), im(2, 0, "transmitted"), im(3, 0, "section"),
           im(5, 0, "reflected"), im(6, 0, "section", "r-m2")]
    taken = select_images([i for i in ims if i.metadata["membrane_id"] == "r-m1"])
    assert {f: sorted(i.name for i in v.values()) for f, v in taken.fields.items()} == {0: ["s3_field0_section", "s5_field0_reflected"]}
    assert taken.superseded == {"reflected": [2]} and taken.unused == {"transmitted": [2]}
    assert taken.said() == ("section from step 4; reflected from step 6; reflected of step 3 replaced by step 6's; "
                            "transmitted of step 3 not used (not taken with the reflected view it belongs to)")
    # a transmitted view taken again, alone, after its pair: the pair is measured, and the later
    # view is said not used (it was said to be "replaced" by the earlier one)
    again = select_images([im(1, 0, "reflected"), im(1, 0, "transmitted"), im(2, 0, "transmitted")])
    assert again.steps == {"reflected": 1, "transmitted": 1} and again.superseded == {}
    assert again.said() == ("reflected, transmitted from step 2; "
                            "transmitted of step 3 not used (not taken with the reflected view it belongs to)")
    assert _measured_names(ims) == {"s3_field0_section", "s5_field0_reflected", "s6_field0_section"}
