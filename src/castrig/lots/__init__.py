"""Membrane lots and their uses: blood filters (claims 5, 9-13) and co-culture diaphragms (6, 14).

The names below are imported when first used (lazy_loader): ``castrig lots`` lists lots from
the registry, without the filter and co-culture files' pydantic models (checks), ~0.1 s of CPU.
"""

from typing import TYPE_CHECKING

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "checks": ["FILTER_BOUNDS", "CheckReport", "CocultureSetup", "FilterBuild", "check_coculture", "check_filter",
               "load_coculture", "load_filter"],
    "registry": ["SUITABLE_GRADES", "USES", "Lot", "assign_use", "get_lot", "list_lots", "not_lots", "scan_lots",
                 "unassign_use"],
})

if TYPE_CHECKING:  # what type checkers see: the names as if imported here
    from castrig.lots.checks import (FILTER_BOUNDS, CheckReport, CocultureSetup, FilterBuild, check_coculture,
                                     check_filter, load_coculture, load_filter)
    from castrig.lots.registry import (SUITABLE_GRADES, USES, Lot, assign_use, get_lot, list_lots, not_lots,
                                       scan_lots, unassign_use)
