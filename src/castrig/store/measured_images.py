"""Which of a membrane's images its analysis measures (and the report pools into its histogram).

In the store layer, beside the image records: the analyse step and the report choose the same
images, the report without loading the analysis (a report of a run whose segmentation was kept
does not import it).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

#: What an analysis measures, by kind: a top view (with its transmitted partner) and a section.
_KINDS = ("reflected", "transmitted", "section")


@dataclass(frozen=True)
class MembraneCapture:
    """The images an analysis measures: ``fields`` (field -> view -> image), the capture step
    each kind came from (``steps``, 0-based), the earlier steps whose images of a kind a later
    capture replaced (``superseded``, kind -> steps), and the steps whose images of a kind are not
    used for another reason (``unused``: a transmitted view taken without its reflected view)."""

    fields: dict[int, dict[str, Any]]
    steps: dict[str, int]
    superseded: dict[str, list[int]]
    unused: dict[str, list[int]]

    def said(self) -> str:
        """Which capture step each kind came from, 1-based as people read steps
        (``reflected, transmitted from step 3; section from step 4; section of step 2 replaced by step 4's``)."""
        by_step: dict[int, list[str]] = defaultdict(list)
        for kind, step in self.steps.items():
            by_step[step].append(kind)
        parts = []
        for step, kinds in sorted(by_step.items()):
            parts.append(f"{', '.join(kinds)} from step {step + 1}")
        for kind, older in self.superseded.items():
            parts.append(f"{kind} of {_steps(older)} replaced by step {self.steps[kind] + 1}'s")
        for kind, left in self.unused.items():
            parts.append(f"{kind} of {_steps(left)} not used (not taken with the reflected view it belongs to)")
        return "; ".join(parts)


def select_images(images: list[Any]) -> MembraneCapture:
    """The images of one membrane an analysis measures, from all of its images (``ImageRecord``;
    :func:`castrig.recipe.analyse.membrane_capture`): also what the report pools into the
    membrane's histogram. Each kind from the latest step that captured it, all its fields from
    that step; a transmitted view only with the reflected view of its own capture (the same field
    under the camera), else not used."""
    captured: dict[str, set[int]] = defaultdict(set)
    for im in images:
        captured[im.illumination].add(_step_of(im))
    steps = {k: max(captured[k]) for k in _KINDS if k in captured}
    if "reflected" in steps and "transmitted" in steps:
        # a transmitted view is the partner of the reflected view of its field (through-pores):
        # only one taken in the same capture shows the same field
        if steps["reflected"] in captured["transmitted"]:
            steps["transmitted"] = steps["reflected"]
        else:
            del steps["transmitted"]
    if not steps:  # (no kind the analysis knows: the latest step's images, as the analysis says)
        steps = {k: max(v) for k, v in captured.items()}
    fields: dict[int, dict[str, Any]] = defaultdict(dict)
    for im in images:
        if steps.get(im.illumination) == _step_of(im):
            fields[_field_of(im)][im.illumination] = im
    # replaced: a kind's captures before the one measured; not used: the others (a transmitted
    # view of a later capture without its reflected view, or of no kind measured at all) -- a
    # later capture was called the one "replaced" by an earlier
    superseded = {k: sorted(s for s in taken if s < steps[k]) for k, taken in captured.items() if k in steps}
    unused = {k: sorted(s for s in taken if k not in steps or s > steps[k]) for k, taken in captured.items()}
    return MembraneCapture(dict(sorted(fields.items())), steps, {k: v for k, v in superseded.items() if v},
                           {k: v for k, v in unused.items() if v})


def _steps(steps: list[int]) -> str:
    return f"step{'s' if len(steps) > 1 else ''} {', '.join(str(s + 1) for s in steps)}"


def _step_of(im: Any) -> int:
    try:
        return int(im.metadata.get("step", -1))
    except (TypeError, ValueError):
        return -1


def _field_of(im: Any) -> int:
    try:
        return int(im.metadata.get("field", 0))
    except (TypeError, ValueError):
        return 0
