"""Turn SDK models into records, defensively: absent fields stay absent, unknown enum text is kept as text,
``2099-12-31`` means "no date", and the same model listed under several kinds becomes one record."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from azure.mgmt.cognitiveservices import models as sdk

from daemon.records import (
    Account,
    CatalogModel,
    CatalogScope,
    Deployment,
    SkuRetirement,
    sku_key,
)

NO_DATE_FROM_YEAR = 2099  # Azure writes 2099-12-31 for "no retirement date"
_RESOURCE_GROUP = re.compile(r"/resourceGroups/([^/]+)/", re.IGNORECASE)


class ParseError(ValueError):
    """A value Azure sent that cannot mean anything (a date that is not a date)."""


def normalise_location(location: str | None) -> str:
    return (location or "").replace(" ", "").casefold()


def resource_group_of(arm_id: str) -> str:
    match = _RESOURCE_GROUP.search(arm_id)
    return match.group(1) if match else ""


def as_date(value: date | datetime | str | None) -> date | None:
    """A retirement date, or None for absent values and the far-future sentinel."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value.date()
    elif isinstance(value, date):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00")).date()
        except ValueError:
            raise ParseError(f"not a date: {value!r}") from None
    return None if parsed.year >= NO_DATE_FROM_YEAR else parsed


def enum_text(value: Any) -> str | None:
    """SDK enums arrive as str subclasses or plain strings (unknown values); keep Azure's spelling either way."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


def account_record(account: sdk.Account, subscription_id: str) -> Account:
    arm_id = account.id or ""
    return Account(
        id=arm_id,
        subscription_id=subscription_id,
        resource_group=resource_group_of(arm_id),
        name=account.name or arm_id.rsplit("/", 1)[-1],
        kind=account.kind or "",
        location=normalise_location(account.location),
        tags=dict(account.tags or {}),
    )


def deployment_record(deployment: sdk.Deployment, account: Account) -> Deployment:
    properties = deployment.properties or sdk.DeploymentProperties()
    model = properties.model or sdk.DeploymentModel()
    sku = deployment.sku
    arm_id = deployment.id or f"{account.id}/deployments/{deployment.name}"
    return Deployment(
        id=arm_id,
        account_id=account.id,
        subscription_id=account.subscription_id,
        resource_group=account.resource_group,
        account_name=account.name,
        location=account.location,
        name=deployment.name or arm_id.rsplit("/", 1)[-1],
        model_format=model.format,
        model_name=model.name,
        model_version=model.version,
        model_publisher=model.publisher,
        model_source=model.source,
        sku_name=sku.name if sku else None,
        sku_capacity=sku.capacity if sku else None,
        upgrade_option=enum_text(properties.version_upgrade_option),
        provisioning_state=enum_text(properties.provisioning_state),
    )


def catalog_record(model: sdk.AccountModel, scope: CatalogScope, kind: str | None) -> CatalogModel:
    """One catalog entry; raises :class:`ParseError` for a date that is not a date."""
    deprecation = model.deprecation or sdk.ModelDeprecationInfo()
    replacement = model.replacement_config or sdk.ReplacementConfig()
    return CatalogModel(
        scope=scope,
        format=model.format or "",
        name=model.name or "",
        version=model.version or "",
        publisher=model.publisher,
        kinds=(kind,) if kind else (),
        is_default_version=bool(model.is_default_version),
        lifecycle_status=enum_text(model.lifecycle_status),
        inference_retirement=as_date(deprecation.inference),
        fine_tune_retirement=as_date(deprecation.fine_tune),
        deprecation_status=enum_text(deprecation.deprecation_status),
        sku_retirements=tuple(
            SkuRetirement(sku_name=sku.name, retirement_date=as_date(sku.deprecation_date))
            for sku in model.skus or ()
            if sku.name
        ),
        replacement_model=replacement.target_model_name,
        replacement_version=replacement.target_model_version,
        auto_upgrade_start=as_date(replacement.auto_upgrade_start_date),
        upgrade_lead_days=replacement.upgrade_on_expiry_lead_time_days,
    )


def merge_catalog(entries: Iterable[CatalogModel]) -> list[CatalogModel]:
    """Fold entries of the same (format, name, version) in one scope into one: the union of kinds and SKU dates,
    the first non-empty value of every other field."""
    merged: dict[tuple[str, str, str, str], CatalogModel] = {}
    for entry in entries:
        key = (entry.scope, *entry.key)
        previous = merged.get(key)
        merged[key] = entry if previous is None else _merge_two(previous, entry)
    return list(merged.values())


def _merge_two(first: CatalogModel, second: CatalogModel) -> CatalogModel:
    values: dict[str, Any] = {}
    for name in CatalogModel.__slots__:
        mine, theirs = getattr(first, name), getattr(second, name)
        values[name] = mine if mine not in (None, "", ()) else theirs
    values["kinds"] = tuple(dict.fromkeys(first.kinds + second.kinds))
    values["is_default_version"] = first.is_default_version or second.is_default_version
    skus = {sku_key(sku.sku_name): sku for sku in second.sku_retirements}
    skus.update({sku_key(sku.sku_name): sku for sku in first.sku_retirements if sku.retirement_date or
                 sku_key(sku.sku_name) not in skus})
    values["sku_retirements"] = tuple(skus.values())
    return CatalogModel(**values)
