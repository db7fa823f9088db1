"""Process-window search: find a recipe that makes a membrane of a grade at a target pore size.

On the twin the search runs its trials in virtual time and maps the window; on a real rig it
proposes the next recipe from the runs in the store and the operator confirms each run. With
``--workers N`` or ``--storage URL`` the search, and ``castrig explore map`` (a grid over the
window), run on many worker processes through Optuna's storage (:mod:`castrig.explore.distributed`,
:mod:`castrig.explore.gridmap`).

The names below are imported when first used (lazy_loader): ``castrig serve``'s explore pages
need the journal and the plots, not the search.
"""

from typing import TYPE_CHECKING

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "journal": ["SearchFolder", "SearchSettings", "Trial"],
    "objective": ["Outcome", "score_run"],
    "search": ["Search", "SearchResult", "make_settings"],
    "space": ["SearchSpace", "load_space"],
})

if TYPE_CHECKING:  # what type checkers see: the names as if imported here
    from castrig.explore.journal import SearchFolder, SearchSettings, Trial
    from castrig.explore.objective import Outcome, score_run
    from castrig.explore.search import Search, SearchResult, make_settings
    from castrig.explore.space import SearchSpace, load_space
