"""The pure core: given records and a date, decide what happens to each deployment. No I/O, no wall clock;
imports nothing from collect/, store/ or notify/."""

from daemon.lifecycle.assess import (
    Assessment,
    Consequence,
    DateSource,
    DateStatus,
    assess,
    deployment_retirement,
    replacement_of,
    retirement_of,
)
from daemon.lifecycle.catalog import CatalogIndex
from daemon.lifecycle.curated import CuratedDate, CuratedDates, DateConflict
from daemon.lifecycle.scope import (
    ScopeOverride,
    ScopeOverrides,
    UpdateScope,
    classify_update,
    compare_versions,
    is_downgrade,
    parse_model_name,
    parse_scope_overrides,
)
from daemon.lifecycle.skus import SkuFamily, azure_upgrades, is_provisioned, sku_family
from daemon.lifecycle.words import lifecycle_words

__all__ = [
    "Assessment",
    "CatalogIndex",
    "Consequence",
    "CuratedDate",
    "CuratedDates",
    "DateConflict",
    "DateSource",
    "DateStatus",
    "ScopeOverride",
    "ScopeOverrides",
    "SkuFamily",
    "UpdateScope",
    "assess",
    "azure_upgrades",
    "classify_update",
    "compare_versions",
    "deployment_retirement",
    "is_downgrade",
    "is_provisioned",
    "lifecycle_words",
    "parse_model_name",
    "parse_scope_overrides",
    "replacement_of",
    "retirement_of",
    "sku_family",
]
