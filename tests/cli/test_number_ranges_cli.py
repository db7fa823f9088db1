"""A number option's value outside its range, or not a number at all: `castrig sim serve --tcp
70000` and `castrig queue --repeat 0` said typer's pydantic voice ("Invalid value for '--tcp':
Input should be less than or equal to 65000"), `--repeat abc` "Input should be a valid integer,
unable to parse string as an integer". Every ranged option now says it as the house does (as
`explore --workers 0` always did): the option, the value and the allowed range, exit 2, no
traceback -- in-process for each option (nothing runs: refused before parsing), and once through
the castrig process."""

from __future__ import annotations

import pytest
import typer

from castrig.cli.main import app
from conftest import castrig_main, refused


def _ranged_options() -> list[tuple[list[str], str, object, type]]:
    """(command path, option, its parameter, int or float) for every option typer gives a range
    (its ``min``/``max``), found from the commands themselves."""
    from castrig.cli.typer_params import number_kind, number_range

    out = []

    def walk(cmd, path: list[str]) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])
        for p in getattr(cmd, "params", ()):
            kind = number_kind(p)
            if kind is not None and any(b is not None for b in number_range(p)) and not p.is_flag:
                out.append((path, next(o for o in p.opts if o.startswith("--")), p, kind))

    walk(typer.main.get_command(app), [])
    return out


RANGED = _ranged_options()


def test_the_cli_has_ranged_whole_number_options_to_check():
    found = {(" ".join(path), opt) for path, opt, _, kind in RANGED if kind is int}
    assert {("sim serve", "--tcp"), ("queue", "--repeat"), ("serve", "--port"), ("sim render", "--n")} <= found, found


@pytest.mark.parametrize("path, opt, p, kind", RANGED, ids=[f"{' '.join(r[0])} {r[1]}" for r in RANGED])
def test_a_ranged_option_out_of_its_range_or_not_a_number_names_the_option_and_the_range(capsys, path, opt, p, kind):
    from castrig.cli.typer_params import number_range

    lo, hi = number_range(p)
    allowed = f"{lo:g} to {hi:g}" if lo is not None and hi is not None else f"at least {lo:g}" if lo is not None else f"at most {hi:g}"
    outside = ([f"{lo - 1:g}"] if lo is not None else []) + ([f"{hi + 1:g}"] if hi is not None else [])
    # (each value once, `--opt V` and `--opt=V` in turn: every call builds the whole CLI again)
    for k, value in enumerate(outside):
        argv = [*path, opt, value] if k % 2 == 0 else [*path, f"{opt}={value}"]
        said = refused(castrig_main(capsys, *argv), f"{opt} {value}: out of range (allowed: {allowed})")
        assert "Input should" not in said and "Invalid value" not in said, (argv, said)
    value, word = ("1.5", "not a whole number") if kind is int else ("abc", "not a number")
    said = refused(castrig_main(capsys, *path, opt, value), f"{opt} {value}: {word} (allowed: {allowed})")
    assert "Input should" not in said, said


def test_the_bounds_themselves_are_allowed(capsys):
    for argv in (["queue", "--repeat", "1000"], ["sim", "serve", "--tcp", "65000"], ["watch", "--every", "0.2"]):
        done = castrig_main(capsys, *argv, "--help")
        assert done.returncode == 0 and "error" not in done.stderr, (argv, done.stderr)


def test_sim_serve_tcp_70000_through_the_castrig_process(capsys):
    said = refused(castrig_main(capsys, "sim", "serve", "--tcp", "70000"), "--tcp 70000: out of range (allowed: 0 to 65000)")
    assert "Input should" not in said and "Usage:" not in said, said


def test_an_option_value_that_looks_like_an_option_is_the_value_and_a_double_dash_value_ends_nothing(capsys):
    """The check walked argv without knowing which words are option values: `--operator --seed
    --seed 7` (the operator "--seed", as click reads it) was refused as `--seed --seed: not a whole
    number`, and `--operator -- --seed abc` stopped the check at the operator's "--", leaving
    typer's "Input should be a valid integer" for the seed."""
    from castrig.cli.number_options import refuse_bad_numbers

    run = typer.main.get_command(app)
    refuse_bad_numbers(run, ["run", "r.yaml", "--operator", "--seed", "--seed", "7"])  # (nothing to refuse)
    refuse_bad_numbers(run, ["run", "r.yaml", "--", "--seed", "abc"])  # (arguments after --: not options)
    said = refused(castrig_main(capsys, "run", "r.yaml", "--operator", "--", "--seed", "abc"), "--seed abc: not a whole number")
    assert "Input should" not in said, said
