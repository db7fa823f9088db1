"""Membrane lots from the store, and the filter-build and co-culture checks at and across every bound."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from castrig.errors import BadInput
from castrig.lots import (
    FILTER_BOUNDS,
    CocultureSetup,
    FilterBuild,
    assign_use,
    check_coculture,
    check_filter,
    get_lot,
    list_lots,
    load_coculture,
    load_filter,
)

from conftest import add_graded_run
from conftest import membrane_metrics as _metrics

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path) -> dict:
    root = tmp_path / "data"
    ids = {
        "all": add_graded_run(root, "all", _metrics(3.0)),  # meets claim1..claim4
        "c1only": add_graded_run(root, "c1only", _metrics(30.0)),  # D 30: claim1 and claim2 only (claim3/4: D <= 20)
        "none": add_graded_run(root, "none", _metrics(3.0, through=0.1)),  # completed, no grade met: not a lot
        "aborted": add_graded_run(root, "aborted", _metrics(3.0), outcome="aborted"),
    }
    return {"root": root, **ids}


def lookup(store):
    return lambda lot_id, where: get_lot(lot_id, store["root"], field_name=where)


# -- the registry ------------------------------------------------------------------------------
def test_lots_are_completed_runs_that_met_a_grade(store):
    lots = {lot.lot_id: lot for lot in list_lots(store["root"])}
    assert set(lots) == {store["all"], store["c1only"]}
    lot = lots[store["all"]]
    assert lot.grades_met == ["claim1", "claim2", "claim3", "claim4"]
    assert lot.metrics["mean_pore_diameter_um"] == 3.0
    assert lot.uses == ["blood_filter", "coculture"] and lot.intended_use is None
    assert lots[store["c1only"]].grades_met == ["claim1", "claim2"]


def test_assigning_an_intended_use_is_kept_and_checked(store):
    assign_use(store["all"], "coculture", store["root"])
    assert get_lot(store["all"], store["root"]).intended_use == "coculture"
    with pytest.raises(BadInput, match=r"--use 'dialysis': unknown use \(allowed: one of blood_filter, coculture\)"):
        assign_use(store["all"], "dialysis", store["root"])
    with pytest.raises(BadInput, match=r"no such lot"):
        assign_use(store["none"], "coculture", store["root"])


# -- filter builds -----------------------------------------------------------------------------
def _build(**kw) -> FilterBuild:
    data = {"name": "f", "lots": ["L"], "layers": 2, "effective_area_cm2": 50.0, "element_volume_cm3": 8.0,
            "first_stage": {"log_removal": 2.0}, "device": {"log_removal": 4.5}}
    for k, v in kw.items():
        if k in ("first_stage", "device"):
            data[k] = {"log_removal": v} if not isinstance(v, dict) else v
        else:
            data[k] = v
    return FilterBuild.model_validate(data)


def _good_lookup(lot_id, where):
    from castrig.lots import Lot

    return Lot(lot_id, "", "r", "", ["claim1", "claim2", "claim3", "claim4"], {"mean_pore_diameter_um": 3.0})


_FIELD_ARG = {"effective_area_cm2": "effective_area_cm2", "element_volume_cm3": "element_volume_cm3",
              "first_stage.log_removal": "first_stage", "device.log_removal": "device"}
_CASES = []
for _field, _label, _lo, _hi, _unit in FILTER_BOUNDS:
    for _limit in (_lo, _hi):
        if _limit is None:
            continue
        _eps = 1e-6 * max(1.0, abs(_limit))
        inside = _limit + (_eps if _limit == _lo else -_eps)
        outside = _limit - (_eps if _limit == _lo else -_eps)
        _CASES += [(_field, _limit, True), (_field, inside, True), (_field, outside, False)]
_CASES += [("device.log_removal", 12.0, True)]  # no upper bound on the device


@pytest.mark.parametrize("field,value,ok", _CASES, ids=[f"{f}={v:.7g}" for f, v, _ in _CASES])
def test_filter_bounds_at_and_across_every_bound(field, value, ok):
    report = check_filter(_build(**{_FIELD_ARG[field]: value}), _good_lookup, file="f.yaml")
    b = next(b for b in report.bounds if b.field == field)
    assert b.value == pytest.approx(value, rel=1e-12)
    assert b.ok is ok and report.ok is ok
    if ok:
        report.raise_if_failed()
    else:
        with pytest.raises(BadInput) as e:
            report.raise_if_failed()
        assert f"f.yaml: {field} = " in str(e.value) and "allowed: " + b.allowed() in str(e.value)
        assert e.value.field == field and e.value.file == "f.yaml"


def test_log_removal_is_computed_from_counts_at_the_bounds():
    # device: 1e9 → 1e5 is exactly 4.0 log (the bound), 1e9 → 1.0001e5 just below it
    at = check_filter(_build(device={"counts": {"before": 1e9, "after": 1e5}}), _good_lookup)
    assert at.ok and next(b for b in at.bounds if b.field == "device.log_removal").value == pytest.approx(4.0)
    below = check_filter(_build(device={"counts": {"before": 1e9, "after": 1.0001e5}}), _good_lookup)
    assert not below.ok
    first = check_filter(_build(first_stage={"counts": {"before": 4.5e9, "after": 4.5e8}}), _good_lookup)
    assert first.ok and next(b for b in first.bounds if b.field == "first_stage.log_removal").value == pytest.approx(1.0)
    low = check_filter(_build(first_stage={"counts": {"before": 4.5e9, "after": 4.6e8}}), _good_lookup)
    assert not low.ok  # 0.99 log: below the first stage's 1.0
    high = check_filter(_build(first_stage={"counts": {"before": 1e9, "after": 3.1e5}}), _good_lookup)
    assert not high.ok  # 3.51 log: above the first stage's 3.5
    assert any("log10(" in n for n in at.notes)


def test_filter_file_errors_name_file_field_and_range(tmp_path):
    data = yaml.safe_load((ROOT / "examples" / "filter-build.yaml").read_text())
    bad = tmp_path / "bad.yaml"
    cases = [
        ({"effective_area_cm2": -1}, r"bad\.yaml: effective_area_cm2 = -1: .*\(allowed: > 0; <= 100000\)"),
        ({"lots": []}, r"bad\.yaml: lots = \[\]: .*at least 1"),
        ({"layers": 0}, r"bad\.yaml: layers = 0: .*\(allowed: 1 to 1000\)"),
        ({"device": {"log_removal": 4.2, "counts": {"before": 1e9, "after": 1e4}}}, r"either log_removal or counts"),
        ({"device": {"counts": {"before": 1e9, "after": 0}}}, r"device\.counts\.after = 0: .*\(allowed: > 0"),
        ({"layers": 1, "lots": ["a", "b"]}, r"fewer layers than lots"),
        ({"colour": "red"}, r"colour = 'red': is not a known field"),
        ({"first_stage": {"log_removal": 2.2, "suspension_volume_cm3": 1}},
         r"first_stage\.suspension_volume_cm3 = 1: the claim's removal is per 450 cm³.*\(allowed: 450\)"),
    ]
    for change, pattern in cases:
        bad.write_text(yaml.safe_dump({**data, **change}))
        with pytest.raises(BadInput, match=pattern):
            load_filter(bad)
    missing = {k: v for k, v in data.items() if k != "element_volume_cm3"}
    bad.write_text(yaml.safe_dump(missing))
    with pytest.raises(BadInput, match=r"element_volume_cm3: is required"):
        load_filter(bad)


def test_filter_lots_must_exist_and_suit_the_use(store):
    ok = check_filter(_build(lots=[store["all"]]), lookup(store), file="f.yaml")
    assert ok.ok, ok.errors()
    missing = check_filter(_build(lots=[store["all"], "nope"]), lookup(store), file="f.yaml")
    assert not missing.ok and "f.yaml: lots[1] = 'nope': no such lot" in missing.errors()[0]
    not_a_lot = check_filter(_build(lots=[store["none"]]), lookup(store))
    assert not not_a_lot.ok
    narrow = check_filter(_build(lots=[store["c1only"]], required_grade="claim3"), lookup(store), file="f.yaml")
    assert not narrow.ok and "does not suit blood_filter (allowed: a lot meeting claim3)" in narrow.errors()[0]
    assert check_filter(_build(lots=[store["c1only"]]), lookup(store)).ok


# -- co-culture --------------------------------------------------------------------------------
def _setup(lot: str, **kw) -> CocultureSetup:
    data = {"name": "cc", "lot": lot, "regions": [{"name": "upper", "cell_groups": ["endothelial"]},
                                                   {"name": "lower", "cell_groups": ["astrocytes"]}]}
    data.update(kw)
    return CocultureSetup.model_validate(data)


def test_coculture_lot_grade_must_suit(store):
    assert check_coculture(_setup(store["all"]), lookup(store)).ok
    assert check_coculture(_setup(store["all"], required_grade="claim4"), lookup(store)).ok
    r = check_coculture(_setup(store["c1only"], required_grade="claim4"), lookup(store), file="cc.yaml")
    assert not r.ok and r.errors()[0].startswith("cc.yaml: lot = ") and "claim4" in r.errors()[0]
    with pytest.raises(BadInput) as e:
        r.raise_if_failed()
    assert e.value.field == "lot"
    assert not check_coculture(_setup("ghost"), lookup(store)).ok


def test_coculture_regions(tmp_path, store):
    same = _setup(store["all"], regions=[{"name": "a", "cell_groups": ["x", "y"]}, {"name": "b", "cell_groups": ["y", "x"]}])
    r = check_coculture(same, lookup(store), file="cc.yaml")
    assert not r.ok and "different cell groups" in r.errors()[0]
    # the same cells written with another case or spacing (they passed as different cells)
    same = _setup(store["all"], regions=[{"name": "a", "cell_groups": ["Astrocytes"]}, {"name": "b", "cell_groups": ["astrocytes "]}])
    r = check_coculture(same, lookup(store), file="cc.yaml")
    assert not r.ok and "different cell groups" in r.errors()[0]
    data = yaml.safe_load((ROOT / "examples" / "coculture.yaml").read_text())
    bad = tmp_path / "cc.yaml"
    for change, pattern in [
        ({"regions": data["regions"][:1]}, r"cc\.yaml: regions = .*at least 2"),
        ({"regions": data["regions"] * 2}, r"cc\.yaml: regions = .*at most 2"),
        ({"regions": [data["regions"][0], {"name": "upper", "cell_groups": ["b"]}]}, r"both regions are named 'upper'"),
        ({"regions": [data["regions"][0], {"name": "lower", "cell_groups": []}]}, r"regions\[1\]\.cell_groups = \[\]: .*at least 1"),
        ({"required_grade": "claim7"}, r"required_grade = 'claim7'"),
        ({"regions": [data["regions"][0], {"name": "Upper ", "cell_groups": ["b"]}]}, r"both regions are named"),
        ({"regions": [data["regions"][0], {"name": "  ", "cell_groups": ["b"]}]}, r"regions\[1\]\.name = .*only spaces"),
        ({"regions": [data["regions"][0], {"name": "lower", "cell_groups": [" "]}]}, r"regions\[1\]\.cell_groups.*a cell group needs a name"),
    ]:
        bad.write_text(yaml.safe_dump({**data, **change}))
        with pytest.raises(BadInput, match=pattern):
            load_coculture(bad)


def test_examples_are_valid_files():
    b = load_filter(ROOT / "examples" / "filter-build.yaml")
    assert b.device.value == pytest.approx(math.log10(2.4e9 / 1.5e5))
    assert check_filter(b, _good_lookup).ok
    c = load_coculture(ROOT / "examples" / "coculture.yaml")
    assert check_coculture(c, _good_lookup).ok


def test_a_first_stage_removal_for_another_volume_is_refused_by_filter_check(tmp_path):
    """`castrig filter check` passed a first stage's 2.2 log stated for 1 cm³ (or 10 L) of
    suspension, its table still saying "per 450 cm³": the field was never read."""
    from conftest import castrig

    data = yaml.safe_load((ROOT / "examples" / "filter-build.yaml").read_text())
    data["first_stage"]["suspension_volume_cm3"] = 10000
    bad = tmp_path / "build.yaml"
    bad.write_text(yaml.safe_dump(data))
    done = castrig("filter", "check", str(bad), "--data", str(tmp_path / "runs"))
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and "first_stage.suspension_volume_cm3 = 10000" in said and "Traceback" not in said, said
