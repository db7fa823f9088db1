"""Membrane lots and their uses: blood filters (claims 5, 9-13) and co-culture diaphragms (6, 14)."""

from castrig.lots.checks import (
    FILTER_BOUNDS,
    CheckReport,
    CocultureSetup,
    FilterBuild,
    check_coculture,
    check_filter,
    load_coculture,
    load_filter,
)
from castrig.lots.registry import SUITABLE_GRADES, USES, Lot, assign_use, get_lot, list_lots, not_lots, scan_lots, unassign_use

__all__ = ["FILTER_BOUNDS", "SUITABLE_GRADES", "USES", "CheckReport", "CocultureSetup", "FilterBuild", "Lot", "assign_use",
           "check_coculture", "check_filter", "get_lot", "list_lots", "load_coculture", "load_filter", "not_lots", "scan_lots",
           "unassign_use"]
