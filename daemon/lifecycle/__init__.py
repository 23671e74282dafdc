"""The pure core: given records and a date, decide what happens to each deployment. No I/O, no wall clock;
imports nothing from collect/, store/ or notify/."""

from daemon.lifecycle.assess import (
    Assessment,
    Consequence,
    DateSource,
    DateStatus,
    assess,
    is_provisioned,
    replacement_of,
    retirement_of,
)
from daemon.lifecycle.catalog import CatalogIndex
from daemon.lifecycle.scope import (
    ScopeOverride,
    ScopeOverrides,
    UpdateScope,
    classify_update,
    parse_model_name,
    parse_scope_overrides,
)

__all__ = [
    "Assessment",
    "CatalogIndex",
    "Consequence",
    "DateSource",
    "DateStatus",
    "ScopeOverride",
    "ScopeOverrides",
    "UpdateScope",
    "assess",
    "classify_update",
    "is_provisioned",
    "parse_model_name",
    "parse_scope_overrides",
    "replacement_of",
    "retirement_of",
]
