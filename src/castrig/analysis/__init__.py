"""Micrograph analysis: surface and section metrics, and the specification verdict.

Pure functions over 2-D numpy arrays (numpy, scipy, scikit-image only); nothing here knows a
device, a link or the store.

The names below are imported when first used (lazy_loader, as scikit-image does), not with
the package: a submodule that needs none of scipy (``castrig.analysis.spec``, read by
``castrig serve``'s explore pages and ``castrig report``) imported the whole package with it,
and scipy's 0.4 s of start-up.
"""

from typing import TYPE_CHECKING

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "lattice": ["fft_pitch", "nearest_neighbour_pitch"],
    "overlay": ["surface_overlay"],
    "section": ["SectionMetrics", "analyse_section"],
    "spec": ["Spec", "load_spec"],
    "surface": ["SurfaceMetrics", "analyse_surface"],
    "verdict": ["BoundCheck", "GradeVerdict", "Verdict", "judge"],
})

if TYPE_CHECKING:  # what type checkers see: the names as if imported here
    from .lattice import fft_pitch, nearest_neighbour_pitch
    from .overlay import surface_overlay
    from .section import SectionMetrics, analyse_section
    from .spec import Spec, load_spec
    from .surface import SurfaceMetrics, analyse_surface
    from .verdict import BoundCheck, GradeVerdict, Verdict, judge
