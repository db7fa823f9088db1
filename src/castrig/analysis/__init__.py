"""Micrograph analysis: surface and section metrics, and the specification verdict.

Pure functions over 2-D numpy arrays (numpy, scipy, scikit-image only); nothing here knows a
device, a link or the store.
"""

from .lattice import fft_pitch, nearest_neighbour_pitch
from .overlay import surface_overlay
from .section import SectionMetrics, analyse_section
from .spec import Spec, load_spec
from .surface import SurfaceMetrics, analyse_surface
from .verdict import BoundCheck, GradeVerdict, Verdict, judge

__all__ = [
    "BoundCheck",
    "GradeVerdict",
    "SectionMetrics",
    "Spec",
    "SurfaceMetrics",
    "Verdict",
    "analyse_section",
    "analyse_surface",
    "fft_pitch",
    "judge",
    "load_spec",
    "nearest_neighbour_pitch",
    "surface_overlay",
]
