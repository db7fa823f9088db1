"""Calibration targets as a camera sees them: stage micrometers and grids with known pitch.

The ground truth of every image is its pixel size (``pitch_um / pitch_px``), so the camera
calibration (:mod:`castrig.analysis.calibration`) is measured against it, not by eye.
"""

from __future__ import annotations

import math

import numpy as np


def render_target(
    *,
    pitch_px: float,
    angle_deg: float = 0.0,
    kind: str = "grid",
    shape: tuple[int, int] = (768, 1024),
    line_width_px: float | None = None,
    noise: float = 0.02,
    blur_px: float = 0.8,
    shading: float = 0.2,
    seed: int = 0,
    dark_lines: bool = True,
    major_every: int = 0,
) -> np.ndarray:
    """A float image in [0, 1] of parallel lines (``kind="micrometer"``) or a square grid.

    ``pitch_px``: line spacing in pixels; ``angle_deg``: the lines' normal against the x axis;
    ``line_width_px``: full width of a line (default 12 % of the pitch, at least 1.2 px);
    ``blur_px``: the optics' Gaussian blur (σ, px); ``noise``: Gaussian noise σ (fraction of
    the contrast); ``shading``: a smooth illumination fall-off towards the corners;
    ``major_every``: longer/thicker tick every n lines (a stage micrometer's 5/10 marks).
    """
    if kind not in ("grid", "micrometer"):
        raise ValueError(f"kind {kind!r}: allowed grid or micrometer")
    rng = np.random.default_rng(seed)
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(float)
    width = line_width_px if line_width_px is not None else max(1.2, 0.12 * pitch_px)
    sigma = math.hypot(width / 2.355, blur_px)  # a line's Gaussian profile after the optics

    def lines(normal_deg: float, phase: float) -> np.ndarray:
        a = math.radians(normal_deg)
        u = x * math.cos(a) + y * math.sin(a)
        k = np.round(u / pitch_px - phase)
        d = u - (k + phase) * pitch_px  # distance to the nearest line centre
        amp = np.ones_like(d)
        if major_every:
            amp = np.where(np.mod(k, major_every) == 0, 1.0, 0.8)
        return amp * np.exp(-0.5 * (d / sigma) ** 2)

    img = lines(angle_deg, rng.uniform(0, 1))
    if kind == "grid":
        img = np.maximum(img, lines(angle_deg + 90.0, rng.uniform(0, 1)))
    if dark_lines:
        img = 1.0 - 0.7 * img
    else:
        img = 0.15 + 0.7 * img
    r2 = ((x - w / 2) ** 2 + (y - h / 2) ** 2) / (0.25 * (w * w + h * h))
    img = img * (1.0 - shading * r2)
    img = img + rng.normal(0.0, noise, img.shape)
    return np.clip(img, 0.0, 1.0)
