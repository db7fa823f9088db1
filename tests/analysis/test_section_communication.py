"""Pore communication from the section (claim 1, issue 16) on twin sections whose cavities are
notches open to the top of the film: neighbours are joined only by an opening below the film's
surface (the wall between them cut down, or a window in it), never through the background over
the wall. Measured through the public ``analyse_section`` against the generator's geometry."""

from __future__ import annotations

import numpy as np
import pytest

from castrig.analysis import analyse_section
from castrig.sim.micrograph import ground_truth, make_structure, render_section, section_cavities
from conftest import campaign

VARIANTS = {"default": {}, "flip": {"flip": True}, "dark": {"film_darker": True, "support_texture": 0.15},
            "texture": {"support_level": 0.6, "support_texture": 0.15}, "tilt": {"tilt_deg": 2.0}}


def _twin(seed: int, communication: float, px_per_film: float, variant: dict):
    """A film 1.8 pore diameters thick, pores 3 µm (their cut discs rise above the film's top:
    notches), rendered as the benchmark's case 12 is (blur 1.5 px, noise 0.04, 8 bit)."""
    rng = np.random.default_rng(seed)
    d_um, t_um = 3.0, 5.4
    px = t_um / px_per_film
    st = make_structure(rng, mean_diameter_um=d_um, cv=0.2, opening_ratio=0.5, thickness_um=t_um, thickness_cv=0.08,
                        field_um=1024 * px * 1.2, section_length_um=1024 * px, support_pore_um=2 * d_um,
                        communication=communication)
    img = render_section(st, px, rng, bit_depth=8, blur_px=1.5, noise=0.04, illumination_gradient=0.2, **variant)
    return st, img, px


def _open_to_top(st) -> float:
    """Fraction of the cut cavities whose disc reaches above the film's top."""
    cav = section_cavities(st)
    t = np.interp(cav[:, 0], st.profile_x_um, st.thickness_um)
    return float(np.mean(cav[:, 1] + cav[:, 2] > t))


# CI: seed 9 in each of the five appearances; seed 10 (the same walls, another draw) in the full set (-m slow)
@pytest.mark.parametrize("seed", campaign([9, 10], ci={0}))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_notches_without_windows_are_not_joined_over_their_walls(seed, variant):
    """No windows drawn (communication 0): the truth joins only cavities overlapping inside the
    film. Walls 2–4 px thin between notches used to read as cut down (the film's mask, set
    between film and support, misses their blurred tops) or as one dark run (the column profile
    smoothed over 3 columns bridged a 1-column wall): joined 0.15–0.38 against 0–0.05."""
    st, img, px = _twin(seed, 0.0, 37.0, VARIANTS[variant])
    assert _open_to_top(st) > 0.5
    truth = ground_truth(st, section_pixel_size_um=px)["pore_communication"]
    m = analyse_section(img, px)
    assert m.cavity_pairs >= 10
    assert m.pore_communication == pytest.approx(truth, abs=0.1)


@pytest.mark.parametrize("seed", [0, 1, 3, 5])
def test_windows_between_notches_are_still_measured(seed):
    """Windows 6–8 px high between the notches (communication 0.9, 70 px across the film): the
    openings below the surface are counted (the fraction stays near the truth, far from 0)."""
    st, img, px = _twin(seed, 0.9, 70.0, {})
    assert _open_to_top(st) > 0.5
    truth = ground_truth(st, section_pixel_size_um=px)["pore_communication"]
    m = analyse_section(img, px)
    assert truth >= 0.6
    assert m.pore_communication == pytest.approx(truth, abs=0.1)


@pytest.mark.parametrize("seed", [2, 5])
def test_thin_walls_without_windows_are_not_joined_by_their_waist(seed):
    """Closed cavities 28 px across in a film 1.5 diameters thick, dense (opening 0.6), no
    windows drawn: walls a few px thin at the cavities' waist dim under the blur (1.5 px). A
    rule that took a dip of the wall's grey down it for an opening joined them: 0.083 and 0.25
    against 0.0-0.043 and 0.087-0.130, the range the image can rightly show
    (``communication_range``: windows 2-3 px high and walls under 2 px either way)."""
    from castrig.sim.micrograph import communication_range

    rng = np.random.default_rng(seed)
    d_um, px = 3.0, 3.0 / 28
    st = make_structure(rng, mean_diameter_um=d_um, cv=0.1, opening_ratio=0.6, thickness_um=4.5, thickness_cv=0.05,
                        field_um=1024 * px * 1.2, section_length_um=1024 * px, support_pore_um=2 * d_um,
                        communication=0.0)
    img = render_section(st, px, rng, bit_depth=8, blur_px=1.5, noise=0.03)
    lo, hi = communication_range(st, px)
    assert lo == ground_truth(st, section_pixel_size_um=px)["pore_communication"]
    m = analyse_section(img, px)
    assert m.cavity_pairs >= 15
    assert lo - 0.03 <= m.pore_communication <= hi + 0.03


@pytest.mark.parametrize("family", ["sec_flip", "sec_texture"])
def test_a_cavity_split_off_along_a_window_keeps_its_own_width(family):
    """Benchmark seed 2000 case 1: two cavities joined by a window are one run of dark columns,
    split at the window's dip — anywhere along it, here 15 px into the wall. The cavity up to
    the split (62 px for 42) made its other neighbour, 41 px away, a pair it is not (the truth's
    neighbours: a wall thinner than their mean width), counted not joined: 2 of 3 for 2 of 2."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import analysis_accuracy as acc

    truth, ours, _ = acc.run_case(1, acc.CASES[1], 1024, 2000, family)
    assert truth["pore_communication"] == 1.0
    assert ours["pore_communication"] == 1.0
