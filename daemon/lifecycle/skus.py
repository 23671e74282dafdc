"""Deployment SKUs and what Azure does with them at retirement (DOMAIN.md, "What happens at the deadline").

Deployments name their SKU exactly (``ProvisionedManaged``, ``GlobalProvisionedManaged``,
``DataZoneProvisionedManaged``, ``Standard``, ``GlobalStandard``, ``DataZoneStandard``, ``GlobalBatch``, ...);
the catalog sometimes names a whole family instead: Microsoft's own examples list ``provisioned`` / ``Provisioned``
(usageName ``OpenAI.Provisioned.*``) for every provisioned deployment type.
"""

from __future__ import annotations

from enum import StrEnum

from daemon.records import sku_key


class SkuFamily(StrEnum):
    STANDARD = "standard"
    PROVISIONED = "provisioned"
    BATCH = "batch"
    DEVELOPER = "developer"
    UNKNOWN = "unknown"


STANDARD_FAMILY = frozenset({"standard", "globalstandard", "datazonestandard"})
# Catalog SKU names that stand for a whole family rather than one deployment type.
FAMILY_LEVEL_NAMES = {"provisioned": SkuFamily.PROVISIONED}


def sku_family(sku_name: str | None) -> SkuFamily:
    key = sku_key(sku_name)
    if key in STANDARD_FAMILY:
        return SkuFamily.STANDARD
    if "provisioned" in key:
        return SkuFamily.PROVISIONED
    if "batch" in key:
        return SkuFamily.BATCH
    if "developer" in key:
        return SkuFamily.DEVELOPER
    return SkuFamily.UNKNOWN


def is_provisioned(sku_name: str | None) -> bool:
    """ProvisionedManaged, GlobalProvisionedManaged, DataZoneProvisionedManaged, or the catalog's "provisioned"."""
    return sku_family(sku_name) is SkuFamily.PROVISIONED


def family_level(catalog_sku_name: str | None) -> SkuFamily | None:
    """The family a catalog SKU name stands for when it names a family (``provisioned``), else None."""
    return FAMILY_LEVEL_NAMES.get(sku_key(catalog_sku_name))


def azure_upgrades(model_format: str | None, sku_name: str | None) -> bool:
    """Only Azure OpenAI models on Standard-family SKUs are ever upgraded by Azure; partner and open models,
    Batch, Developer and every Provisioned SKU (and SKUs this code does not know) stop at retirement."""
    return (model_format or "").casefold() == "openai" and sku_family(sku_name) is SkuFamily.STANDARD
