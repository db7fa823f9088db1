"""`castrig explore --space FILE` refusals name the file, the field as written and the range.

Audit 3 (repro explore_space_msg.sh): `rh_pct: {low: 90, high: 50}` was refused with
``rh_pct.function-after[_ordered(), RhRange].low (90) must be below high (50)`` — pydantic's
label of a union member in the field path — and a second, wrong line ``rh_pct.float: must be a
number in %RH`` (the union's other member complaining about the mapping). Now the path is the
one in the file (``rh_pct.low``) and only the member the person wrote (a range or a number) speaks.
In-process (conftest ``castrig_main``): refused before anything runs.
"""

from __future__ import annotations

import pytest

from conftest import castrig_main

CASES = {
    "low_above_high": ("rh_pct: {low: 90, high: 50}\n", ["rh_pct.low (90) must be below high (50)"]),
    "low_not_above_0": ("concentration_mg_ml: {low: 0, high: 5, log: true}\n",
                        ["concentration_mg_ml.low = 0: must be more than 0 mg/mL (allowed: > 0; <= 200)"]),
    "low_below_range": ("rh_pct: {low: 10, high: 50}\n", ["rh_pct.low = 10: must be at least 20 %RH (allowed: 20 to 100)"]),
    "low_not_a_number": ("rh_pct: {low: abc, high: 50}\n", ["rh_pct.low = 'abc': must be a number in %RH, not text (allowed: 20 to 100)"]),
    "unknown_key": ("rh_pct: {low: 30, high: 50, hgih: 1}\n", ["rh_pct.hgih = 1: is not a known field; did you mean 'high'?"]),
    "text_for_a_value": ("rh_pct: abc\n", ["rh_pct = 'abc': must be a number in %RH, not text, or a range `{low: …, high: …, log: …}`"]),
}


@pytest.mark.parametrize("case", CASES)
def test_space_refusals_name_the_field_as_written(tmp_path, capsys, case):
    text, wanted = CASES[case]
    space = tmp_path / "space.yaml"
    space.write_text(text)
    data = tmp_path / "data"
    done = castrig_main(capsys, "explore", "--target-grade", "claim1", "--budget", "1", "--data", str(data), "--space", str(space))
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == len(wanted), lines  # no second line from the union's other member
    for line, want in zip(lines, wanted):
        assert line.removeprefix("error: ").startswith(f"{space}: {want}; line 1, column "), (line, want)
    for junk in ("function-after", "RhRange", "Range]", ".float", "Traceback"):
        assert junk not in done.stderr, done.stderr
    assert not data.exists()
