"""Plain records that flow between the stages: collect yields them, store persists them, lifecycle reads them.

They are deliberately free of SDK and ORM types, so the pure core (``daemon.lifecycle``) can be tested with
literals and the collector can be replaced without touching the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from operator import attrgetter
from typing import Any, NamedTuple, TypeVar

_Record = TypeVar("_Record", bound=type)


def pickled_by_value(cls: _Record) -> _Record:
    """Pickle a slotted dataclass as its class and its field values (rebuilt through ``__init__``), not as the
    ``__getstate__`` that ``dataclass(slots=True)`` writes, which walks ``fields()`` for every instance: a poll
    sends tens of thousands of these from the reading process to the storing one, and that walk cost both sides
    more than the rest of the pickling."""
    names = tuple(f.name for f in fields(cls))
    values: Callable[[Any], tuple[Any, ...]] = (
        attrgetter(*names) if len(names) > 1 else (lambda record: (getattr(record, names[0]),)))

    def __reduce__(self: Any) -> tuple[type, tuple[Any, ...]]:
        return cls, values(self)

    cls.__reduce__ = __reduce__  # type: ignore[assignment]
    return cls


@pickled_by_value
@dataclass(frozen=True, slots=True)
class Subscription:
    subscription_id: str
    display_name: str | None = None
    state: str | None = None


@pickled_by_value
@dataclass(frozen=True, slots=True)
class Account:
    """A Cognitive Services account (kind OpenAI or AIServices)."""

    id: str  # ARM id, as Azure spells it
    subscription_id: str
    resource_group: str
    name: str
    kind: str
    location: str  # normalised: lower case, no spaces ("eastus")
    tags: Mapping[str, str] = field(default_factory=dict)


@pickled_by_value
@dataclass(frozen=True, slots=True)
class Deployment:
    """One model deployment as Azure reports it; fields Azure left out are None."""

    id: str  # ARM id
    account_id: str
    subscription_id: str
    resource_group: str
    account_name: str
    location: str
    name: str
    model_format: str | None
    model_name: str | None
    model_version: str | None
    model_publisher: str | None = None
    model_source: str | None = None  # set for fine-tuned / account-specific models
    sku_name: str | None = None
    sku_capacity: int | None = None
    upgrade_option: str | None = None  # versionUpgradeOption, kept as Azure's text (unknown values too)
    provisioning_state: str | None = None


@pickled_by_value
@dataclass(frozen=True, slots=True)
class SkuRetirement:
    """A per-SKU retirement date from ``AccountModel.skus[].deprecationDate``."""

    sku_name: str  # as Azure spelled it; compare with ``sku_key``
    retirement_date: date | None


CatalogScope = str
"""Where a catalog entry was listed: ``"location:<region>"`` or an account's ARM id (account models)."""


def location_scope(location: str) -> CatalogScope:
    return f"location:{location}"


@pickled_by_value
@dataclass(frozen=True, slots=True)
class CatalogModel:
    """One model version from the catalog (``Model.model`` / ``AccountModel``), merged over the kinds it is listed
    under. Dates are ``None`` when absent or when Azure's "no date" sentinel (2099-12-31) was given."""

    scope: CatalogScope
    format: str
    name: str
    version: str
    publisher: str | None = None
    kinds: tuple[str, ...] = ()
    is_default_version: bool = False
    lifecycle_status: str | None = None  # Azure's text, unknown values kept as they are
    inference_retirement: date | None = None  # deprecation.inference
    fine_tune_retirement: date | None = None  # deprecation.fineTune
    deprecation_status: str | None = None  # "Planned" (confirmed) / "Tentative" / other text
    sku_retirements: tuple[SkuRetirement, ...] = ()
    replacement_model: str | None = None
    replacement_version: str | None = None
    auto_upgrade_start: date | None = None
    upgrade_lead_days: int | None = None
    # A fine-tuned account model (``ada.1``) names the model it was trained from; that model's dates apply when
    # the fine-tune has none of its own.
    base_format: str | None = None
    base_name: str | None = None
    base_version: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return model_key(self.format, self.name, self.version)


def model_key(model_format: str | None, name: str | None, version: str | None) -> tuple[str, str, str]:
    """The identity of a model version: format, name and version compared case-insensitively."""
    return ((model_format or "").casefold(), (name or "").casefold(), (version or "").casefold())


def sku_key(sku_name: str | None) -> str:
    """SKU names vary in case in Azure's own data (``provisioned`` / ``Provisioned``)."""
    return (sku_name or "").casefold()


@pickled_by_value
@dataclass(frozen=True, slots=True)
class Failure:
    """Something the collector could not read (or could not make sense of); the poll goes on without it."""

    subscription_id: str | None
    target: str  # the ARM id or path of what failed
    operation: str  # list-subscriptions | list-accounts | list-deployments | list-location-models | ...
    error: str
    status_code: int | None = None


class DailyUsage(NamedTuple):
    """One deployment's traffic on one UTC day, from Azure Monitor (``AzureOpenAIRequests``,
    ``ProcessedPromptTokens``; aggregation Total, interval P1D). A named tuple, not a dataclass: a first read of
    a large estate makes hundreds of thousands of them, and they cross a process boundary pickled."""

    deployment: str  # the ModelDeploymentName, as Azure spelled it
    day: date
    requests: int
    tokens: int | None  # None: the token metric could not be read


@pickled_by_value
@dataclass(frozen=True, slots=True)
class AccountUsage:
    """What one metrics request said about one account's deployments over ``first_day`` .. ``last_day``: a
    deployment (or a day) absent from ``days`` had no traffic."""

    account_id: str
    first_day: date
    last_day: date
    days: tuple[DailyUsage, ...] = ()
    issues: tuple[str, ...] = ()  # parts that could not be read (the token figures); the request counts were


@pickled_by_value
@dataclass(slots=True)
class SubscriptionInventory:
    """Everything one poll read about one subscription. ``None`` / missing keys mean "could not be read", which the
    store must not mistake for "gone": only what was listed completely can mark things removed."""

    subscription: Subscription
    accounts: list[Account] | None = None
    deployments: dict[str, list[Deployment]] = field(default_factory=dict)  # account id -> its deployments
    partial_accounts: set[str] = field(default_factory=set)  # listed, but some items were unreadable
    catalog: list[CatalogModel] = field(default_factory=list)
    catalog_scopes_read: set[CatalogScope] = field(default_factory=set)
    failures: list[Failure] = field(default_factory=list)
    usage: dict[str, AccountUsage] = field(default_factory=dict)  # account id -> its usage, when read this poll


@pickled_by_value
@dataclass(frozen=True, slots=True)
class DeploymentObservation:
    """A deployment as seen by one poll, with what the catalog said about its model at that moment.

    ``catalog_read`` is False when the catalog the deployment depends on could not be read: the store then keeps
    the previous catalog facts rather than recording a date that "disappeared"."""

    deployment: Deployment
    catalog_read: bool
    retirement_date: date | None = None
    retirement_source: str | None = None
    deprecation_status: str | None = None
    lifecycle_status: str | None = None
