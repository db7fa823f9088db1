"""`--pitch-um nan`: typer's range check compares NaN false both ways and said "must be less
than or equal to 100000" of a number that is no number. Every number option with a range now
refuses nan and ±inf naming the option, the value and its range, before anything is parsed."""

from __future__ import annotations

import pytest
import typer

from castrig.cli.main import _ranged_float_options, app
from castrig.cli.typer_params import number_range
from conftest import castrig, castrig_main


def _ranged_options() -> list[tuple[list[str], str, object]]:
    """(command path, option, its parameter) for every ranged number option of the CLI."""
    out = []

    def walk(cmd, path: list[str]) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])
        seen = set()
        for opt, p in _ranged_float_options(cmd).items():
            if p.name not in seen:
                seen.add(p.name)
                out.append((path, opt, p))

    walk(typer.main.get_command(app), [])
    return out


def test_the_cli_has_ranged_number_options_to_check():
    found = {(" ".join(path), opt) for path, opt, _ in _ranged_options()}
    assert {("calibrate camera", "--pitch-um"), ("tune rh", "--max-phase-s"), ("sim render", "--rh")} <= found, found


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_every_ranged_number_option_refuses_a_non_finite_value_naming_its_range(capsys, value):
    for path, opt, p in _ranged_options():
        for argv in ([*path, opt, value], [*path, f"{opt}={value}"]):
            done = castrig_main(capsys, *argv)
            said = " ".join(done.stderr.split())
            assert done.returncode == 2 and "Traceback" not in said, (argv, said)
            assert f"{opt} {value}: not a number castrig can use (allowed: " in said, (argv, said)
            lo, hi = number_range(p)
            assert (f"{lo:g}" in said if lo is not None else True) and (f"{hi:g}" in said if hi is not None else True), said


def test_calibrate_camera_pitch_nan_through_the_castrig_process(tmp_path):
    done = castrig("calibrate", "camera", str(tmp_path / "target.tif"), "--pitch-um", "nan")
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and "Traceback" not in said, said
    assert "--pitch-um nan: not a number castrig can use (allowed: 0.01 to 100000)" in said, said
    assert "less than or equal" not in said, said
