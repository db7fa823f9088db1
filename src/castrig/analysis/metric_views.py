"""The view each measured metric comes from: one table, for the quality flags (which metrics a
view's flag marks, :mod:`.quality`) and for a recipe's check (which views a grade's bounds need,
:mod:`castrig.recipe.view_notes`). Numpy-free: ``castrig check`` reads it without loading the
analysis.
"""

from __future__ import annotations

__all__ = ["SURFACE", "SECTION", "CLAIM1", "PITCH", "VIEW_OF_METRIC"]

#: the top view's metrics (the reflected view; the through-pore fraction with the transmitted)
SURFACE = ("opening_ratio", "mean_pore_diameter_um", "pore_diameter_std_um", "through_pore_fraction")
#: the section's film and support
SECTION = ("mean_thickness_um", "thickness_std_um", "support_pore_diameter_um")
#: the section's claim-1 features
CLAIM1 = ("penetration_depth_um", "penetration_fraction", "pore_communication", "support_continuity")
#: the lattice's spacing, from the top view's pores
PITCH = ("pore_pitch_um",)
#: metric → view: the surface's from the reflected view (the pores counted too), its through-pore
#: fraction from the transmitted, the rest from the section (as castrig.recipe.analyse measures them)
VIEW_OF_METRIC = {**dict.fromkeys(SURFACE + PITCH + ("pore_count",), "reflected"), "through_pore_fraction": "transmitted",
                  **dict.fromkeys(SECTION + CLAIM1, "section")}
