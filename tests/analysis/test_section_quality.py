"""A section's quality: ``interface_lost`` means the film's edges were not followed, not that the
film has holes; the support's few pores carry their uncertainty."""

from __future__ import annotations

import numpy as np

from castrig.analysis import analyse_section
from castrig.sim.micrograph import make_structure, render_section

PX_UM = 0.05


def _section(seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    st = make_structure(rng, mean_diameter_um=3.3, opening_ratio=0.6, through_fraction=0.9, thickness_um=1.5,
                        thickness_cv=0.1, field_um=60.0, section_length_um=1024 * PX_UM)
    return render_section(st, PX_UM, rng, bit_depth=8)


def test_a_film_with_through_pores_is_followed():
    """A film whose pores go through it has no film over many of its columns (the overnight
    twin's sections: half of them); the envelope bridges them by design. Flagged before, every
    membrane of the overnight recipe was judged 'marginal' on T and all of claim 1's section."""
    m = analyse_section(_section(), PX_UM)
    assert "interface_lost" not in m.flags and m.mean_thickness_um is not None


def test_a_film_missing_over_a_fifth_of_the_width_is_flagged():
    img = _section()
    # nothing but the background at the right side (its own noise: a constant band would be a
    # padded margin, cropped off): the edges are extrapolated there
    bg = img[:5, :-220].ravel()
    img[:, -220:] = np.random.default_rng(0).choice(bg, size=(img.shape[0], 220))
    assert "interface_lost" in analyse_section(img, PX_UM).flags


def test_the_support_pore_diameter_carries_a_95_interval():
    """A section shows 5-20 support pores: their mean is not to be trusted like a surface's
    hundreds. Before, it had no interval at all (the verdict's 'support pores >= 0.5 D' could
    never be marginal)."""
    from castrig.sim.micrograph import ground_truth

    rng = np.random.default_rng(11)
    st = make_structure(rng, mean_diameter_um=1.0, opening_ratio=0.45, thickness_um=1.2, thickness_cv=0.1,
                        support_pore_um=2.0, field_um=60.0, section_length_um=1024 * 0.03)
    img = render_section(st, 0.03, rng, bit_depth=8)
    m = analyse_section(img, 0.03)
    lo, hi = m.quality()["intervals"]["support_pore_diameter_um"]
    truth = ground_truth(st, section_pixel_size_um=0.03)["support_pore_diameter_um"]
    assert m.support_pore_count >= 2
    assert lo < m.support_pore_diameter_um < hi and lo <= truth <= hi
    assert hi - lo >= 2 * 0.03  # at least the pixel of edge shift
