"""``render_section``'s shears (tilt, and the support's undulation): each column moved down by the
shear and nothing else, so the ground truth (vertical thicknesses, depths) stays the flat
section's — what benchmarks/analysis_accuracy.py's sec_tilt and sec_wavy families rely on."""

from __future__ import annotations

import math

import numpy as np

from castrig.sim.micrograph import make_structure, render_section


def _render(**kw: float) -> np.ndarray:
    rng = np.random.default_rng(7)
    st = make_structure(rng, mean_diameter_um=5.0, opening_ratio=0.4, thickness_um=5.0, thickness_cv=0.1,
                        field_um=200.0, section_length_um=300.0)
    return render_section(st, 0.1, rng, bit_depth=16, illumination_gradient=0.0, blur_px=0.0, noise=0.0, **kw).astype(float)


def _top_edge(img: np.ndarray) -> np.ndarray:
    """Per column, the first row (sub-pixel) where the grey rises through half the film's level."""
    half = 0.5 * (img.min() + np.percentile(img, 99))
    above = img >= half
    r = np.argmax(above, axis=0)
    cols = np.arange(img.shape[1])
    v0, v1 = img[np.maximum(r - 1, 0), cols], img[r, cols]
    return r - 1 + np.clip((half - v0) / np.where(v1 > v0, v1 - v0, 1), 0, 1)


def test_the_support_wave_moves_each_column_by_its_sine_and_keeps_the_image_otherwise():
    flat = _render()
    a_px, p_px = 6.0, 700.0
    wavy = _render(wave_amplitude_px=a_px, wave_period_px=p_px)
    assert wavy.shape[1] == flat.shape[1] and wavy.shape[0] == flat.shape[0] + math.ceil(a_px) + 2  # (the pad rows above kept)
    x = np.arange(flat.shape[1]) + 0.5
    moved = _top_edge(wavy) - _top_edge(flat)
    expected = math.ceil(a_px) + 2 + a_px * np.sin(2 * math.pi * x / p_px)  # the pad, then the wave
    film = np.abs(moved - np.median(moved - expected) - expected) < 5  # (columns through a pore open to the top differ)
    assert film.mean() > 0.8
    err = np.abs(moved - expected)[film]
    assert np.median(err) < 0.1 and np.mean(err < 0.25) > 0.95  # (the rest: pores' edges cut by the shear)


def test_no_shear_and_a_tilt_render_as_before_the_wave_was_added():
    """The default section and a tilted one are the images they were (the benchmark's other
    families keep their figures): the wave option is off unless both its keywords are given."""
    assert np.array_equal(_render(), _render(wave_amplitude_px=5.0))
    assert np.array_equal(_render(tilt_deg=2.0), _render(tilt_deg=2.0, wave_period_px=300.0))
