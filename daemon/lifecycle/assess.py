"""What happens to a deployment and when (DOMAIN.md, "What happens at the deadline"). Pure: records and a date in,
an :class:`Assessment` out.

| deployment                                         | consequence      | strikes on                              |
|----------------------------------------------------|------------------|-----------------------------------------|
| provisioned SKU (any option)                       | outage (manual)  | retirement date                         |
| NoAutoUpgrade, or an option this code does not know | outage           | retirement date                         |
| OnceCurrentVersionExpired or no option, with target | forced-upgrade   | retirement - upgradeOnExpiryLeadTimeDays |
| OnceNewDefaultVersionAvailable, with target        | auto-upgrade     | autoUpgradeStartDate, else retirement    |
| an upgrade option but nothing to upgrade to        | outage           | retirement date                         |
| no retirement date (and no auto-upgrade date)      | none             | -                                       |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from daemon.lifecycle.catalog import CatalogIndex
from daemon.lifecycle.scope import ScopeOverrides, UpdateScope, classify_update
from daemon.records import CatalogModel, Deployment, sku_key

NO_DATE_FROM_YEAR = 2099
NO_AUTO_UPGRADE = "noautoupgrade"
ONCE_EXPIRED = "oncecurrentversionexpired"
ONCE_NEW_DEFAULT = "oncenewdefaultversionavailable"
KNOWN_OPTIONS = frozenset({NO_AUTO_UPGRADE, ONCE_EXPIRED, ONCE_NEW_DEFAULT})


class Consequence(StrEnum):
    OUTAGE = "outage"
    FORCED_UPGRADE = "forced-upgrade"
    AUTO_UPGRADE = "auto-upgrade"
    NONE = "none"


class DateStatus(StrEnum):
    CONFIRMED = "confirmed"  # deprecationStatus Planned
    TENTATIVE = "tentative"
    UNCONFIRMED = "unconfirmed"  # a date with no status, or one this code does not know


class DateSource(StrEnum):
    SKU = "sku"  # skus[].deprecationDate for the deployment's own SKU
    INFERENCE = "inference"  # deprecation.inference, the model's retirement date


@dataclass(frozen=True)
class Assessment:
    deployment_id: str
    consequence: Consequence
    reason: str
    retirement_date: date | None = None
    date_source: DateSource | None = None
    date_status: DateStatus | None = None
    lifecycle_status: str | None = None
    strikes_on: date | None = None
    days_left: int | None = None
    replacement_model: str | None = None
    replacement_version: str | None = None
    update_scope: UpdateScope | None = None
    manual_migration: bool = False
    upgrade_option_known: bool = True
    catalog_found: bool = True


def is_provisioned(sku_name: str | None) -> bool:
    """ProvisionedManaged, GlobalProvisionedManaged, DataZoneProvisionedManaged, or plain "provisioned"."""
    return "provisioned" in sku_key(sku_name)


def _real_date(value: date | None) -> date | None:
    return None if value is None or value.year >= NO_DATE_FROM_YEAR else value


def retirement_of(deployment: Deployment, model: CatalogModel | None) -> tuple[date | None, DateSource | None]:
    """The deployment's own SKU date when the catalog gives one, else the model's inference retirement date."""
    if model is None:
        return None, None
    wanted = sku_key(deployment.sku_name)
    for sku in model.sku_retirements:
        if sku_key(sku.sku_name) == wanted and _real_date(sku.retirement_date):
            return sku.retirement_date, DateSource.SKU
    inference = _real_date(model.inference_retirement)
    return (inference, DateSource.INFERENCE) if inference else (None, None)


def date_status_of(model: CatalogModel | None) -> DateStatus:
    status = (model.deprecation_status or "").casefold() if model else ""
    if status == "planned":
        return DateStatus.CONFIRMED
    if status == "tentative":
        return DateStatus.TENTATIVE
    return DateStatus.UNCONFIRMED


def replacement_of(deployment: Deployment, model: CatalogModel | None,
                   catalog: CatalogIndex) -> tuple[str | None, str | None]:
    """``replacementConfig`` first (its version, else the default version of the target), else the catalog's
    default version of the same model when it differs from the deployed one."""
    if model is not None and model.replacement_model:
        version = model.replacement_version
        if not version:
            default = catalog.default_for(deployment, model.replacement_model)
            version = default.version if default else None
        return model.replacement_model, version
    default = catalog.default_for(deployment, deployment.model_name)
    if default is not None and default.version.casefold() != (deployment.model_version or "").casefold():
        return default.name, default.version
    return None, None


def assess(deployment: Deployment, catalog: CatalogIndex, today: date,
           scope_overrides: ScopeOverrides | None = None) -> Assessment:
    model = catalog.find(deployment)
    retirement, source = retirement_of(deployment, model)
    target_model, target_version = replacement_of(deployment, model, catalog)
    option = (deployment.upgrade_option or "").casefold()
    known = not option or option in KNOWN_OPTIONS
    common = {
        "deployment_id": deployment.id, "retirement_date": retirement, "date_source": source,
        "date_status": date_status_of(model) if retirement else None,
        "lifecycle_status": model.lifecycle_status if model else None,
        "replacement_model": target_model, "replacement_version": target_version,
        "update_scope": classify_update(deployment.model_name, deployment.model_version, target_model,
                                        target_version, scope_overrides or ()) if target_model else None,
        "manual_migration": is_provisioned(deployment.sku_name), "upgrade_option_known": known,
        "catalog_found": model is not None,
    }
    consequence, strikes_on, reason = _consequence(deployment, model, retirement, target_model is not None, known)
    days_left = (strikes_on - today).days if strikes_on else None
    return Assessment(consequence=consequence, strikes_on=strikes_on, days_left=days_left, reason=reason,
                      **common)  # type: ignore[arg-type]


def _consequence(deployment: Deployment, model: CatalogModel | None, retirement: date | None, has_target: bool,
                 known_option: bool) -> tuple[Consequence, date | None, str]:
    option = (deployment.upgrade_option or "").casefold()
    if model is None:
        return Consequence.NONE, None, "model not in the catalog: no retirement date known"
    auto_start = _real_date(model.auto_upgrade_start)
    if retirement is None and not (option == ONCE_NEW_DEFAULT and auto_start and has_target):
        return Consequence.NONE, None, "no retirement date announced"
    if is_provisioned(deployment.sku_name):
        return Consequence.OUTAGE, retirement, "provisioned SKUs are never auto-upgraded: stops at retirement"
    if not known_option:
        return (Consequence.OUTAGE, retirement,
                f"unknown upgrade option {deployment.upgrade_option!r}: read as NoAutoUpgrade, stops at retirement")
    if option == NO_AUTO_UPGRADE:
        return Consequence.OUTAGE, retirement, "NoAutoUpgrade: stops answering at retirement"
    if not has_target:
        return Consequence.OUTAGE, retirement, "no replacement to upgrade to: stops answering at retirement"
    if option == ONCE_NEW_DEFAULT:
        if auto_start and (retirement is None or auto_start < retirement):
            return Consequence.AUTO_UPGRADE, auto_start, "OnceNewDefaultVersionAvailable: upgraded from the new default"
        return Consequence.AUTO_UPGRADE, retirement, "OnceNewDefaultVersionAvailable: upgraded at retirement at latest"
    assert retirement is not None
    lead = max(0, model.upgrade_lead_days or 0)
    strikes = retirement - timedelta(days=lead)
    why = "upgraded at retirement" if not lead else f"upgraded {lead} days before retirement"
    return Consequence.FORCED_UPGRADE, strikes, f"{deployment.upgrade_option or 'no upgrade option'}: {why}"
