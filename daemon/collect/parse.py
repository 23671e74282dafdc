"""Turn ARM's raw JSON into records, field by field.

Rules: an item that cannot be identified (a catalog model without name or version, a deployment or account without
a name or id) is skipped with :class:`ItemError`; any other field that is malformed costs that field only (it becomes
``None``) and is reported as a :class:`FieldIssue`. Absent fields stay absent, unknown enum text is kept as text,
dates are days in UTC (``2026-12-25`` is that day, an offset is converted to UTC first) and ``2099-12-31`` (any year
from 2099) means "no date". The same model listed under several kinds becomes one record (:func:`merge_catalog`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Generic, TypeVar

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
T = TypeVar("T")


class ParseError(ValueError):
    """A value Azure sent that cannot mean anything (a date that is not a date)."""


class ItemError(ParseError):
    """An item that cannot be identified: skipped, and reported as a whole."""


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """One malformed field of an item that was kept: ``field`` is its JSON path inside the item."""

    field: str  # e.g. "skus[0].deprecationDate"
    problem: str  # e.g. "not a date: 'soon'"


@dataclass(frozen=True, slots=True)
class Parsed(Generic[T]):
    record: T
    issues: tuple[FieldIssue, ...] = ()


# -- values ------------------------------------------------------------------------------------------------------------

def normalise_location(location: str | None) -> str:
    return (location or "").replace(" ", "").casefold()


def resource_group_of(arm_id: str) -> str:
    match = _RESOURCE_GROUP.search(arm_id)
    return match.group(1) if match else ""


def as_date(value: object) -> date | None:
    """A retirement day (UTC), or None for absent values and the far-future sentinel; :class:`ParseError` for
    anything else. ``2026-12-25`` is that day; ``2026-12-24T23:30:00-05:00`` is 2026-12-25 (UTC); a time without an
    offset is taken as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value.astimezone(UTC).date() if value.tzinfo else value.date()
    elif isinstance(value, date):
        parsed = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ParseError(f"not a date: {value!r}") from None
        parsed = moment.astimezone(UTC).date() if moment.tzinfo else moment.date()
    else:
        raise ParseError(f"not a date: {value!r}")
    return None if parsed.year >= NO_DATE_FROM_YEAR else parsed


def enum_text(value: Any) -> str | None:
    """SDK enums arrive as str subclasses or plain strings (unknown values); keep Azure's spelling either way."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


class _Fields:
    """Reads the optional fields of one item, collecting what was malformed instead of failing on it."""

    def __init__(self) -> None:
        self.issues: list[FieldIssue] = []

    def bad(self, path: str, problem: str) -> None:
        self.issues.append(FieldIssue(path, problem))

    def block(self, parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        """A nested object; absent or malformed: an empty one (malformed is reported)."""
        value = parent.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.bad(path, f"not an object: {_short(value)}")
            return {}
        return value

    def items(self, parent: Mapping[str, Any], key: str, path: str) -> list[Any]:
        value = parent.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.bad(path, f"not a list: {_short(value)}")
            return []
        return value

    def text(self, parent: Mapping[str, Any], key: str, path: str) -> str | None:
        value = parent.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            self.bad(path, f"not text: {_short(value)}")
            return None
        return value

    def day(self, parent: Mapping[str, Any], key: str, path: str) -> date | None:
        try:
            return as_date(parent.get(key))
        except ParseError as exc:
            self.bad(path, str(exc))
            return None

    def integer(self, parent: Mapping[str, Any], key: str, path: str) -> int | None:
        value = parent.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        self.bad(path, f"not a whole number: {_short(value)}")
        return None

    def flag(self, parent: Mapping[str, Any], key: str, path: str) -> bool | None:
        """A boolean; Azure also writes them as the strings "true" / "false"."""
        value = parent.get(key)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().casefold() in ("true", "false"):
            return value.strip().casefold() == "true"
        self.bad(path, f"not true or false: {_short(value)}")
        return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _identity(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


# -- items -------------------------------------------------------------------------------------------------------------

def item_label(raw: Any) -> str:
    """How a report names a raw item: "gpt-4o 2024-05-13" for a model, the name of anything else."""
    if not isinstance(raw, Mapping):
        return "item"
    model = raw.get("model")
    inner: Mapping[str, Any] = model if isinstance(model, Mapping) else raw
    name, version = inner.get("name"), inner.get("version")
    if isinstance(name, str) and name and isinstance(version, str | int) and version != "":
        return f"{name} {version}"
    if isinstance(name, str) and name:
        return name
    arm_id = raw.get("id")
    return arm_id.rsplit("/", 1)[-1] if isinstance(arm_id, str) and arm_id else "item"


def parse_account(raw: Any, subscription_id: str) -> Parsed[Account]:
    """One item of ``GET .../providers/Microsoft.CognitiveServices/accounts``."""
    if not isinstance(raw, Mapping):
        raise ItemError(f"not an object: {_short(raw)}")
    arm_id = _identity(raw.get("id"))
    if arm_id is None:
        raise ItemError("no id")
    fields = _Fields()
    tags = fields.block(raw, "tags", "tags")
    account = Account(
        id=arm_id,
        subscription_id=subscription_id,
        resource_group=resource_group_of(arm_id),
        name=_identity(raw.get("name")) or arm_id.rsplit("/", 1)[-1],
        kind=fields.text(raw, "kind", "kind") or "",
        location=normalise_location(fields.text(raw, "location", "location")),
        tags={str(key): value for key, value in tags.items() if isinstance(value, str)},
    )
    return Parsed(account, tuple(fields.issues))


_EMPTY: Mapping[str, Any] = {}


def parse_deployment(raw: Any, account: Account) -> Parsed[Deployment]:
    """One item of ``GET .../accounts/{account}/deployments``."""
    return _deployment_as_usual(raw, account) or _deployment_carefully(raw, account)


def _deployment_as_usual(raw: Any, account: Account) -> Parsed[Deployment] | None:
    """The shape nearly every deployment has (an id and a name, every other field absent or of its JSON type), read
    without the careful path's bookkeeping per field; None for anything else, which the careful path then reads and
    reports. A large estate lists tens of thousands of deployments, and this is the reading process's own work."""
    if raw.__class__ is not dict:
        return None
    arm_id, name = _identity(raw.get("id")), _identity(raw.get("name"))
    if arm_id is None or name is None:
        return None
    sku, properties = _block(raw, "sku"), _block(raw, "properties")
    if sku is None or properties is None:
        return None
    model = _block(properties, "model")
    if model is None:
        return None
    texts = (model.get("format"), model.get("name"), model.get("version"), model.get("publisher"),
             model.get("source"), sku.get("name"), properties.get("versionUpgradeOption"),
             properties.get("provisioningState"))
    for value in texts:
        if value is not None and value.__class__ is not str:
            return None
    capacity = sku.get("capacity")
    if capacity is not None and capacity.__class__ is not int:
        return None
    model_format, model_name, version, publisher, source, sku_name, upgrade, state = (
        value or None for value in texts)
    return Parsed(Deployment(
        id=arm_id, account_id=account.id, subscription_id=account.subscription_id,
        resource_group=account.resource_group, account_name=account.name, location=account.location, name=name,
        model_format=model_format, model_name=model_name, model_version=version, model_publisher=publisher,
        model_source=source, sku_name=sku_name, sku_capacity=capacity, upgrade_option=upgrade,
        provisioning_state=state))


def _block(parent: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    """A nested object for the usual path: absent is empty; anything but an object is None (the careful path)."""
    value = parent.get(key)
    if value is None:
        return _EMPTY
    return value if value.__class__ is dict else None


def _deployment_carefully(raw: Any, account: Account) -> Parsed[Deployment]:
    """:func:`parse_deployment` field by field, each malformed field reported."""
    if not isinstance(raw, Mapping):
        raise ItemError(f"not an object: {_short(raw)}")
    arm_id = _identity(raw.get("id"))
    name = _identity(raw.get("name")) or (arm_id.rsplit("/", 1)[-1] if arm_id else None)
    if name is None:
        raise ItemError("no name or id")
    fields = _Fields()
    sku = fields.block(raw, "sku", "sku")
    properties = fields.block(raw, "properties", "properties")
    model = fields.block(properties, "model", "properties.model")
    deployment = Deployment(
        id=arm_id or f"{account.id}/deployments/{name}",
        account_id=account.id,
        subscription_id=account.subscription_id,
        resource_group=account.resource_group,
        account_name=account.name,
        location=account.location,
        name=name,
        model_format=fields.text(model, "format", "properties.model.format"),
        model_name=fields.text(model, "name", "properties.model.name"),
        model_version=fields.text(model, "version", "properties.model.version"),
        model_publisher=fields.text(model, "publisher", "properties.model.publisher"),
        model_source=fields.text(model, "source", "properties.model.source"),
        sku_name=fields.text(sku, "name", "sku.name"),
        sku_capacity=fields.integer(sku, "capacity", "sku.capacity"),
        upgrade_option=fields.text(properties, "versionUpgradeOption", "properties.versionUpgradeOption"),
        provisioning_state=fields.text(properties, "provisioningState", "properties.provisioningState"),
    )
    return Parsed(deployment, tuple(fields.issues))


def parse_location_model(raw: Any, scope: CatalogScope) -> Parsed[CatalogModel]:
    """One item of ``GET .../locations/{location}/models``: ``{kind, skuName, model: AccountModel}``. Field paths
    in the issues are relative to ``model``."""
    if not isinstance(raw, Mapping):
        raise ItemError(f"not an object: {_short(raw)}")
    model = raw.get("model")
    if not isinstance(model, Mapping):
        raise ItemError("no model")
    kind = raw.get("kind") if isinstance(raw.get("kind"), str) and raw.get("kind") else None
    return parse_account_model(model, scope, kind)


def parse_account_model(raw: Any, scope: CatalogScope, kind: str | None = None) -> Parsed[CatalogModel]:
    """One ``AccountModel``: an item of ``GET .../accounts/{account}/models`` or a location item's ``model``."""
    if not isinstance(raw, Mapping):
        raise ItemError(f"not an object: {_short(raw)}")
    name = _identity(raw.get("name"))
    version = raw.get("version")
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    version = _identity(version)
    if name is None or version is None:
        raise ItemError("no name" if name is None else "no version")
    fields = _Fields()
    deprecation = fields.block(raw, "deprecation", "deprecation")
    replacement = fields.block(raw, "replacementConfig", "replacementConfig")
    base = fields.block(raw, "baseModel", "baseModel")
    record = CatalogModel(
        scope=scope,
        format=fields.text(raw, "format", "format") or "",
        name=name,
        version=version,
        publisher=fields.text(raw, "publisher", "publisher"),
        kinds=(kind,) if kind else (),
        is_default_version=bool(fields.flag(raw, "isDefaultVersion", "isDefaultVersion")),
        lifecycle_status=fields.text(raw, "lifecycleStatus", "lifecycleStatus"),
        inference_retirement=fields.day(deprecation, "inference", "deprecation.inference"),
        fine_tune_retirement=fields.day(deprecation, "fineTune", "deprecation.fineTune"),
        deprecation_status=fields.text(deprecation, "deprecationStatus", "deprecation.deprecationStatus"),
        sku_retirements=_sku_retirements(fields, raw),
        replacement_model=fields.text(replacement, "targetModelName", "replacementConfig.targetModelName"),
        replacement_version=fields.text(replacement, "targetModelVersion", "replacementConfig.targetModelVersion"),
        auto_upgrade_start=fields.day(replacement, "autoUpgradeStartDate", "replacementConfig.autoUpgradeStartDate"),
        upgrade_lead_days=fields.integer(replacement, "upgradeOnExpiryLeadTimeDays",
                                         "replacementConfig.upgradeOnExpiryLeadTimeDays"),
        base_format=fields.text(base, "format", "baseModel.format"),
        base_name=fields.text(base, "name", "baseModel.name"),
        base_version=fields.text(base, "version", "baseModel.version"),
    )
    return Parsed(record, tuple(fields.issues))


def _sku_retirements(fields: _Fields, raw: Mapping[str, Any]) -> tuple[SkuRetirement, ...]:
    found: list[SkuRetirement] = []
    for i, sku in enumerate(fields.items(raw, "skus", "skus")):
        if not isinstance(sku, Mapping):
            fields.bad(f"skus[{i}]", f"not an object: {_short(sku)}")
            continue
        name = fields.text(sku, "name", f"skus[{i}].name")
        if name is None:
            if "name" not in sku:
                fields.bad(f"skus[{i}].name", "missing")
            continue
        found.append(SkuRetirement(sku_name=name,
                                   retirement_date=fields.day(sku, "deprecationDate", f"skus[{i}].deprecationDate")))
    return tuple(found)


# -- merging -----------------------------------------------------------------------------------------------------------

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
