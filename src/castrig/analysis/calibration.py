"""The camera's pixel size from an image of a target of known pitch (stage micrometer, grid).

Method (Fourier peak, refined)
------------------------------
1. The image, less its smooth illumination (a wide blur, σ a sixteenth of the image), times a
   2-D Hann window, is Fourier transformed; the strongest peak away from the lowest frequencies
   is the lines' fundamental (a harmonic is caught by looking for a comparable peak at 1/n of it).
2. The peak is refined off the FFT grid by maximising the windowed image's discrete-time
   Fourier transform ``|Σ w·I·e^(−2πi(fx·x + fy·y))|`` over (fx, fy), one frequency at a time
   (Brent's method from :mod:`scipy.optimize`): the period ``1/|f|`` px and the lines' angle
   come from the refined frequency, to a small fraction of a bin.
3. A grid has a second family of lines at about 90°; it is measured the same way and the pixel
   size is the mean of both (their difference, e.g. non-square pixels, enters the uncertainty).
4. Uncertainty (k = 1): the spread of the same measurement on the four quadrants of the image
   (standard error of their mean, i.e. what noise and local distortion do), combined with half
   the difference between the two line families; relative, so it carries straight to µm.

Pure functions over numpy arrays, as the rest of the analysis: :func:`pixel_size` takes an
array, :func:`pixel_size_from_image` a file.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage, optimize

from castrig.errors import BadInput


#: How far (power ratio) the lines' peak must stand above the spectrum's median to count.
PEAK_OVER_FLOOR = 200.0
#: A peak at periods shorter than the band's this much stronger than every peak in it: the lines
#: are finer than the band (a thin-line target's harmonics there stay near its fundamental's power).
FINER_OVER_BAND = 10.0


@dataclass
class CameraCalibration:
    """The pixel size (µm) and how well it is known."""

    pixel_size_um: float
    uncertainty_um: float
    pitch_px: float
    angle_deg: float
    families: int
    method: str = "Fourier peak (DTFT-refined)"

    @property
    def relative_uncertainty(self) -> float:
        return self.uncertainty_um / self.pixel_size_um

    def to_dict(self) -> dict[str, float | int | str]:
        return {**asdict(self), "relative_uncertainty": self.relative_uncertainty}


#: The largest relative uncertainty a calibration is given with (the twin's targets: below 0.1 %).
MAX_RELATIVE_UNCERTAINTY = 0.02


def _background(a: np.ndarray, sigma: float) -> np.ndarray:
    """The image's smooth illumination: a blur of width ``sigma`` px (mode reflect), as three
    passes of a box filter along each axis (a running sum: its cost does not grow with σ).

    σ is a sixteenth of the image: a Gaussian kernel 8σ wide took ~580 s on a 9000² image (and 4 s
    on a 5120-px-wide section given by mistake) in one call Ctrl-C could not break into. Three
    boxes of width √(4σ² + 1) have the Gaussian's variance; what they let through of the target's
    lines (their sinc³ response) is below 10⁻⁵ of the lines' amplitude. In float32, filtered in
    place (one buffer half the image's: the illumination needs no more digits)."""
    width = max(1, int(round(math.sqrt(4.0 * sigma * sigma + 1.0))))
    b = a.astype(np.float32)
    for axis in (0, 1):
        for _ in range(3):
            ndimage.uniform_filter1d(b, width, axis=axis, mode="reflect", output=b)
    return b


def _prepare(image: np.ndarray) -> np.ndarray:
    """The image less its illumination and mean, times a 2-D Hann window (in place: a
    9000² image is 650 MB a copy)."""
    a = np.array(image, dtype=float)
    if a.ndim == 3:
        a = a[..., :3].mean(axis=2)
    if a.ndim != 2 or min(a.shape) < 32:
        raise ValueError(f"need a 2-D image of at least 32 x 32 pixels, got shape {a.shape}")
    peak = float(np.max(np.abs(a)))
    if peak > 1e30:  # a float image of 1e307s overflowed float32's 3.4e38 in the background: inf, "no lines found"
        a /= peak
    a -= _background(a, max(a.shape) / 16.0)
    a -= a.mean()
    a *= np.hanning(a.shape[0])[:, None]
    a *= np.hanning(a.shape[1])[None, :]
    return a


def _dtft_power(w: np.ndarray, fx: float, fy: float) -> float:
    """|Σ w[y, x]·e^(−2πi(fx·x + fy·y))|² (frequencies in cycles per pixel)."""
    ny, nx = w.shape
    px, py = 2 * np.pi * fx * np.arange(nx), 2 * np.pi * fy * np.arange(ny)
    rows = (w @ np.cos(px)) - 1j * (w @ np.sin(px))  # two real products: w is never cast to complex
    return float(abs(np.exp(-1j * py) @ rows) ** 2)


def _peaks(w: np.ndarray, min_period_px: float, max_period_px: float) -> list[tuple[float, float, float]]:
    """FFT peaks (fx, fy, power), strongest first, in the half plane fx >= 0, within the periods."""
    ny, nx = w.shape
    power = np.abs(np.fft.rfft2(w)) ** 2
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.rfftfreq(nx)[None, :]
    f = np.hypot(fx, fy)
    band = (f >= 1.0 / max_period_px) & (f <= 1.0 / min_period_px)
    finer = float(power[f > 1.0 / min_period_px].max(initial=0.0))
    power = np.where(band, power, 0.0)
    if finer > FINER_OVER_BAND * power.max():
        # lines closer than the band's shortest period: what the band then holds is their aliases
        # and beats, and sinusoidal lines 2.5 px apart measured 5 px, within 0.000 % (an outside
        # tester), the pixel size written into the profile twice too large
        where = np.unravel_index(int(np.argmax(np.where(f > 1.0 / min_period_px, np.abs(np.fft.rfft2(w)) ** 2, 0.0))),
                                 f.shape)
        raise ValueError(f"lines about {1.0 / float(f[where]):.1f} px apart: closer than {min_period_px:g} px, "
                         "finer than a calibration can measure (image the target at a higher magnification)")
    # A target's lines stand far above the spectrum's floor; noise alone peaks at ~20 x its median.
    floor = float(np.median(power[band])) if band.any() else 0.0
    if not power.max() > PEAK_OVER_FLOOR * floor:
        return []
    local_max = (power == ndimage.maximum_filter(power, size=5, mode="wrap")) & (power > 0)
    iy, ix = np.nonzero(local_max)
    order = np.argsort(power[iy, ix])[::-1][:20]
    return [(float(fx[0, ix[k]]), float(fy[iy[k], 0]), float(power[iy[k], ix[k]])) for k in order]


def _refine(w: np.ndarray, fx0: float, fy0: float, sweeps: int = 6) -> tuple[float, float]:
    """The DTFT power's maximum near the FFT peak (fx0, fy0), one frequency at a time.

    With fx held, the transform of each row at fx is one pass over the image and every trial fy
    then costs a sum over the rows only (and the same the other way round): a sweep is two
    passes, not one per trial (Nelder-Mead on both took ~120 passes, 70 s on an 81 Mpx image).
    The window is separable, so the peak of straight lines nearly is too: two or three sweeps
    settle it to 10⁻⁵ of a bin."""
    ny, nx = w.shape
    x, y = np.arange(nx), np.arange(ny)

    def transform(v: np.ndarray, f: float, along: int) -> np.ndarray:
        ph = 2 * np.pi * f * (x if along == 1 else y)
        c, s_ = np.cos(ph), np.sin(ph)
        return (v @ c - 1j * (v @ s_)) if along == 1 else (c @ v - 1j * (s_ @ v))

    def best(partial: np.ndarray, t: np.ndarray, f0: float, n: int) -> float:
        def cost(b: float) -> float:
            return -float(abs(np.exp(-2j * np.pi * b / n * t) @ partial) ** 2)
        b0 = f0 * n
        res = optimize.minimize_scalar(cost, bounds=(b0 - 1.0, b0 + 1.0), method="bounded",
                                       options={"xatol": 1e-6})
        return float(res.x) / n

    fx, fy = fx0, fy0
    for _ in range(sweeps):
        fy_new = best(transform(w, fx, along=1), y, fy, ny)
        fx_new = best(transform(w, fy_new, along=0), x, fx, nx)
        done = abs(fx_new - fx) * nx < 1e-5 and abs(fy_new - fy) * ny < 1e-5
        fx, fy = fx_new, fy_new
        if done:
            break
    return fx, fy


def _families(w: np.ndarray, min_period_px: float, max_period_px: float) -> list[tuple[float, float]]:
    """The fundamental frequency vector of each line family (one or two)."""
    peaks = _peaks(w, min_period_px, max_period_px)
    if not peaks:
        raise ValueError("no periodic lines found in the image")
    top = peaks[0][2]

    def fundamental(fx: float, fy: float, p: float) -> tuple[float, float]:
        # A peak with comparable power at 1/n of this one means this one is the n-th harmonic;
        # the largest such n wins. Thin lines (1 px on a 20 px pitch) have harmonics as strong
        # as the fundamental, and the strongest may be the 5th, not only the 2nd or 3rd.
        for n in range(int(math.hypot(fx, fy) * max_period_px), 1, -1):
            for qx, qy, qp in peaks:
                if qp >= 0.3 * p and math.hypot(qx - fx / n, qy - fy / n) < 2.0 / min(w.shape):
                    return qx, qy
                if qp >= 0.3 * p and math.hypot(qx + fx / n, qy + fy / n) < 2.0 / min(w.shape):
                    return -qx, -qy
        return fx, fy

    f1 = fundamental(*peaks[0])
    fams = [f1]
    a1 = math.atan2(f1[1], f1[0])
    for fx, fy, p in peaks[1:]:
        if p < 0.5 * top:
            break
        a = math.atan2(fy, fx)
        s60 = abs(math.sin(a - a1))
        if 0.15 < s60 < 0.95 and math.hypot(fx, fy) > 0.8 * math.hypot(*f1):
            # a family as strong at about 60° (or any angle but 0° and 90°): a honeycomb, a
            # hexagonal lattice, not a stage micrometer or grid (taken as lines at 120°, within 0 %)
            raise ValueError(f"a pattern of line families at {math.degrees(abs(a - a1)) % 180:.0f}° to each other, "
                             "as a honeycomb or hexagonal lattice shows: no line target or square grid")
    for fx, fy, p in peaks[1:]:
        if p < 0.2 * top:
            break
        a = math.atan2(fy, fx)
        if abs(abs(math.sin(a - a1)) - 1.0) < 0.1:  # about 90 degrees to the first family
            fams.append(fundamental(fx, fy, p))
            break
    return fams


def _measure(image: np.ndarray, min_period_px: float, max_period_px: float) -> tuple[list[float], float]:
    periods, angle, _, _ = _measure_prepared(_prepare(image), min_period_px, max_period_px)
    return periods, angle


def _measure_prepared(w: np.ndarray, min_period_px: float,
                      max_period_px: float) -> tuple[list[float], float, tuple[float, float], float]:
    """Periods (px) of each family, the first one's angle (deg), frequency vector and DTFT power."""
    periods, angle, first, power = [], 0.0, (0.0, 0.0), 0.0
    for i, (fx, fy) in enumerate(_families(w, min_period_px, max_period_px)):
        rfx, rfy = _refine(w, fx, fy)
        periods.append(1.0 / math.hypot(rfx, rfy))
        if i == 0:
            angle = math.degrees(math.atan2(rfy, rfx)) % 180.0
            first, power = (rfx, rfy), _dtft_power(w, rfx, rfy)
    return periods, angle, first, power


def _beyond_the_band(w: np.ndarray, first: tuple[float, float], power: float, period_px: float,
                     max_period_px: float) -> float | None:
    """The period (px) of lines wider apart than ``max_period_px`` whose harmonic was measured, or
    None. The search sees periods up to ``max_period_px`` only: lines 300 px apart in a 1024 px
    image were measured at their second harmonic, 150 px, and the pixel size came out twice too
    large. A true grid has (almost) no power at half or a third of its frequency."""
    fx, fy = first
    for n in (2, 3):
        if period_px * n > max_period_px and _dtft_power(w, fx / n, fy / n) >= 0.1 * power:
            return period_px * n
    return None


def pixel_size(image: np.ndarray, pitch_um: float, *, min_period_px: float = 3.0,
               max_period_px: float | None = None) -> CameraCalibration:
    """The pixel size (µm) of ``image``, a target whose lines are ``pitch_um`` apart.

    >>> from castrig.sim.targets import render_target
    >>> cal = pixel_size(render_target(pitch_px=20.0, angle_deg=5.0, seed=1), pitch_um=10.0)
    >>> abs(cal.pixel_size_um - 0.5) < 0.001
    True
    """
    if not (pitch_um > 0 and math.isfinite(pitch_um)):
        raise ValueError(f"pitch_um = {pitch_um}: must be a positive number")
    a = np.asarray(image, dtype=float)
    max_period = max_period_px or min(a.shape[:2]) / 4.0
    w = _prepare(a)
    periods, angle, first, power = _measure_prepared(w, min_period_px, max_period)
    wide = _beyond_the_band(w, first, power, periods[0], max_period)
    if wide is not None:
        raise ValueError(f"lines about {wide:.0f} px apart (their harmonic at {periods[0]:.0f} px): more than "
                         f"{max_period:.0f} px, a quarter of the image")
    pitch_px = float(np.mean(periods))
    # The four quadrants, each measured alone: how much noise and local distortion move it.
    h, w = a.shape[:2]
    quads = []
    for ys in (slice(0, h // 2), slice(h // 2, h)):
        for xs in (slice(0, w // 2), slice(w // 2, w)):
            try:
                q, _ = _measure(a[ys, xs], min_period_px, min(max_period, min(h, w) / 8.0))
            except ValueError:
                continue
            quads.append(float(np.mean(q)))
    rel_stat = float(np.std(quads, ddof=1) / math.sqrt(len(quads)) / pitch_px) if len(quads) >= 2 else 0.01
    rel_fam = abs(periods[0] - periods[1]) / 2 / pitch_px if len(periods) == 2 else 0.0
    rel = math.hypot(rel_stat, rel_fam)
    if rel > MAX_RELATIVE_UNCERTAINTY:  # e.g. a micrograph with no target in it: 89 % between its quarters
        raise ValueError(f"the lines measure {pitch_px:.1f} px apart within ±{rel:.1%} (their quarters disagree): not a "
                         f"regular target (allowed: within ±{MAX_RELATIVE_UNCERTAINTY:.0%})")
    px = pitch_um / pitch_px
    return CameraCalibration(pixel_size_um=px, uncertainty_um=px * rel, pitch_px=pitch_px, angle_deg=angle,
                             families=len(periods))


def pixel_size_from_image(path: str | Path, pitch_um: float, *, loaded=None) -> CameraCalibration:
    """:func:`pixel_size` of an image file (TIFF, PNG, JPEG); BadInput naming the file when it
    shows no periodic target. ``loaded(image)`` (optional): called with the image once read,
    before it is measured (the CLI checks there that the memory left can hold the measurement)."""
    from castrig.tiffio import read_micrograph

    image, _, _ = read_micrograph(path)
    if loaded is not None:
        loaded(image)
    try:
        return pixel_size(image, pitch_um)
    except ValueError as exc:
        raise BadInput(f"{path}: {exc} (allowed: an image of a stage micrometer or grid, lines 3 px to "
                       "a quarter of the image apart)", file=str(path)) from None
