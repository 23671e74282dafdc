"""What happens to a deployment and when (DOMAIN.md, "What happens at the deadline"). Pure: records and a date in,
an :class:`Assessment` out.

The date: the deployment's own SKU date (exact name), else a family-level SKU date (the catalog's ``provisioned``
for every provisioned deployment type) or the model's inference date, whichever is earlier; a fine-tune without
dates of its own takes its base model's. A curated date (``daemon.lifecycle.curated``) that is earlier wins, and
one fills in where the catalog has no date. A date on or before today has struck: Azure acts at 00:00 UTC.

| deployment                                                          | consequence     | strikes on           |
|---------------------------------------------------------------------|-----------------|----------------------|
| the catalog calls the model retired (``Deprecated``), no/past date  | outage, struck  | the date, or already |
| not Azure OpenAI on a Standard-family SKU (provisioned, batch,      | outage (manual) | retirement           |
| developer SKUs; partner and open models)                            |                 |                      |
| NoAutoUpgrade, or an option this code does not know                 | outage          | retirement           |
| nothing to upgrade to (none named, older, or retiring first)        | outage          | retirement           |
| OnceNewDefaultVersionAvailable, autoUpgradeStartDate today or ahead | auto-upgrade    | autoUpgradeStartDate |
| OnceNewDefaultVersionAvailable, start passed, still the old version | forced-upgrade  | retirement - lead    |
| OnceNewDefaultVersionAvailable, no start date                       | auto-upgrade    | retirement           |
| OnceCurrentVersionExpired, or no option                             | forced-upgrade  | retirement - lead    |
| ``Legacy`` / ``Deprecating`` but no real date                       | as above        | pending (one notice) |
| no retirement date                                                  | none            | -                    |

"lead" is ``replacementConfig.upgradeOnExpiryLeadTimeDays``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from enum import StrEnum

from daemon.lifecycle.catalog import CatalogIndex
from daemon.lifecycle.curated import DateConflict, Dated, table_name
from daemon.lifecycle.scope import ScopeOverrides, UpdateScope, classify_update, is_downgrade
from daemon.lifecycle.skus import SkuFamily, azure_upgrades, family_level, sku_family
from daemon.lifecycle.words import is_retired, lifecycle_words, retirement_announced
from daemon.records import CatalogModel, Deployment, sku_key

NO_DATE_FROM_YEAR = 2099
NO_AUTO_UPGRADE = "noautoupgrade"
ONCE_EXPIRED = "oncecurrentversionexpired"
ONCE_NEW_DEFAULT = "oncenewdefaultversionavailable"
KNOWN_OPTIONS = frozenset({NO_AUTO_UPGRADE, ONCE_EXPIRED, ONCE_NEW_DEFAULT})
INACTIVE_STATES = frozenset({"failed", "deleting", "canceled"})


class Consequence(StrEnum):
    OUTAGE = "outage"
    FORCED_UPGRADE = "forced-upgrade"
    AUTO_UPGRADE = "auto-upgrade"
    NONE = "none"


class DateStatus(StrEnum):
    CONFIRMED = "confirmed"  # deprecationStatus Planned
    TENTATIVE = "tentative"
    UNCONFIRMED = "unconfirmed"  # a date with no status, or one this code does not know
    PUBLISHED = "published"  # a curated date: copied from a published retirement table


class DateSource(StrEnum):
    SKU = "sku"  # skus[].deprecationDate for the deployment's own SKU
    SKU_FAMILY = "sku-family"  # a family-level SKU date (the catalog's "provisioned" for ProvisionedManaged)
    INFERENCE = "inference"  # deprecation.inference, the model's retirement date
    CURATED = "curated"  # a row of the dates file / [[dates.rows]] (Assessment.date_url names its source)


@dataclass(frozen=True)
class Assessment:
    deployment_id: str
    consequence: Consequence
    reason: str
    retirement_date: date | None = None
    date_source: DateSource | None = None
    date_status: DateStatus | None = None
    date_model: str | None = None  # "ada 1" when a fine-tune's dates come from its base model
    date_url: str | None = None  # the source URL of the curated row whose date was taken
    date_conflict: DateConflict | None = None  # the catalog and a curated row disagree by more than conflict_days
    lifecycle_status: str | None = None  # Azure's word, for machines
    lifecycle: str | None = None  # the plain words a person reads ("retired", "retiring", ...)
    strikes_on: date | None = None
    days_left: int | None = None
    struck: bool = False  # the consequence has taken effect (today or earlier; or the catalog says retired)
    date_pending: bool = False  # a retirement is announced (Legacy / Deprecating) but has no date yet
    catalog_says_retired: bool = False
    replacement_model: str | None = None
    replacement_version: str | None = None
    replacement_refused: str | None = None  # why the catalog's replacement is not one (older, retires first)
    update_scope: UpdateScope | None = None
    manual_migration: bool = False  # Azure will not move it: the team migrates by hand
    manual_reason: str | None = None
    upgrade_option_known: bool = True
    catalog_found: bool = True
    fine_tuned: bool = False
    fine_tune_retirement: date | None = None  # deprecation.fineTune: the last day to train on the model
    escalate: bool = True  # False for deployments Azure reports Failed, Deleting or Canceled

    @property
    def has_deadline(self) -> bool:
        """Something for the escalation policy to act on: a date, a retirement already struck, or one announced."""
        return self.consequence is not Consequence.NONE and (
            self.strikes_on is not None or self.struck or self.date_pending)


def _real_date(value: date | None) -> date | None:
    return None if value is None or value.year >= NO_DATE_FROM_YEAR else value


def has_own_dates(model: CatalogModel) -> bool:
    return bool(_real_date(model.inference_retirement)
                or any(_real_date(sku.retirement_date) for sku in model.sku_retirements))


def retirement_of(sku_name: str | None, model: CatalogModel | None) -> tuple[date | None, DateSource | None]:
    """The exact SKU date when the catalog gives one; else the earlier of a family-level SKU date and the model's
    inference date (Microsoft's own example: gpt-35-turbo 0301 lists Provisioned 2025-05-15 but retires
    2025-04-30)."""
    if model is None:
        return None, None
    wanted, family = sku_key(sku_name), sku_family(sku_name)
    family_date: date | None = None
    for sku in model.sku_retirements:
        day = _real_date(sku.retirement_date)
        if day is None:
            continue
        if sku_key(sku.sku_name) == wanted:
            return day, DateSource.SKU
        if family is not SkuFamily.UNKNOWN and family_level(sku.sku_name) is family:
            family_date = day if family_date is None else min(family_date, day)
    inference = _real_date(model.inference_retirement)
    if family_date is not None and (inference is None or family_date <= inference):
        return family_date, DateSource.SKU_FAMILY
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


def refuse_replacement(deployment: Deployment, retirement: date | None, target_model: str, target_version: str | None,
                       catalog: CatalogIndex) -> str | None:
    """Why ``target`` cannot be what the deployment moves to, or None: a replacement is never older than the
    deployed version and never retires before it (by the catalog, or by a curated row that would date the
    deployment once moved: same SKU, same region)."""
    if is_downgrade(deployment.model_version, target_version, from_name=deployment.model_name, to_name=target_model):
        return f"{target_model} {target_version} is older than the deployed {deployment.model_version}"
    target = catalog.find_model(deployment, deployment.model_format, target_model, target_version)
    catalog_day, source = retirement_of(deployment.sku_name, target)
    moved = replace(deployment, model_name=target_model, model_version=target_version)
    target_retires = curated_retirement(moved, catalog, catalog_day, source)
    if target_retires.day is not None and retirement is not None and target_retires.day < retirement:
        where = f" ({table_name(target_retires.curated.source)})" if target_retires.curated else ""
        return f"{target_model} {target_version} retires first, on {target_retires.day}{where}"
    return None


def dated_model(model: CatalogModel | None, base: CatalogModel | None) -> CatalogModel | None:
    """The catalog entry whose dates apply: a fine-tune's own, else its base model's."""
    return base if model is not None and base is not None and not has_own_dates(model) else model


def deployment_retirement(deployment: Deployment, catalog: CatalogIndex) -> tuple[date | None, DateSource | None]:
    """What the catalog alone says (what a poll records); :func:`assess` adds the curated dates."""
    model = catalog.find(deployment)
    return retirement_of(deployment.sku_name, dated_model(model, catalog.base_of(deployment, model)))


def curated_retirement(deployment: Deployment, catalog: CatalogIndex, retirement: date | None,
                       source: DateSource | None) -> Dated:
    """The catalog's date beside the curated rows that apply (``catalog.dates``): the earlier one, and a conflict
    when they disagree by more than ``conflict_days``."""
    if catalog.dates is None or not len(catalog.dates):
        return Dated(retirement, None, None, retirement)
    return catalog.dates.combine(deployment, retirement, source.value if source else None)


def assess(deployment: Deployment, catalog: CatalogIndex, today: date,
           scope_overrides: ScopeOverrides | None = None) -> Assessment:
    model = catalog.find(deployment)
    base = catalog.base_of(deployment, model)
    dated = dated_model(model, base)
    retirement, source = retirement_of(deployment.sku_name, dated)
    combined = curated_retirement(deployment, catalog, retirement, source)
    retirement = combined.day
    curated = combined.curated
    target_model, target_version = replacement_of(deployment, model, catalog)
    refused = None
    if target_model:
        refused = refuse_replacement(deployment, retirement, target_model, target_version, catalog)
        if refused:
            target_model = target_version = None
    option = (deployment.upgrade_option or "").casefold()
    known = not option or option in KNOWN_OPTIONS
    upgradable = azure_upgrades(deployment.model_format, deployment.sku_name)
    lifecycle = model.lifecycle_status if model else None
    target = catalog.find_model(deployment, deployment.model_format, target_model, target_version) if target_model \
        else None
    common = {
        "deployment_id": deployment.id, "retirement_date": retirement,
        "date_source": DateSource.CURATED if curated else source,
        "date_status": DateStatus.PUBLISHED if curated else date_status_of(dated) if retirement else None,
        "date_model": f"{dated.name} {dated.version}" if dated is not None and dated is not model and not curated
        else None,
        "date_url": curated.source if curated else None, "date_conflict": combined.conflict,
        "lifecycle_status": lifecycle, "lifecycle": lifecycle_words(lifecycle),
        "replacement_model": target_model, "replacement_version": target_version, "replacement_refused": refused,
        "update_scope": classify_update(deployment.model_name, deployment.model_version, target_model,
                                        target_version, scope_overrides or (), from_sku=deployment.sku_name,
                                        target_skus=[sku.sku_name for sku in target.sku_retirements] if target
                                        else None, from_is_fine_tuned=base is not None,
                                        target_is_fine_tuned=bool(target and target.base_name))
        if target_model else None,
        "manual_migration": not upgradable, "manual_reason": None if upgradable else _manual_reason(deployment),
        "upgrade_option_known": known, "catalog_found": model is not None,
        "fine_tuned": base is not None or ".ft-" in (deployment.model_name or "").casefold(),
        "fine_tune_retirement": _real_date((model.fine_tune_retirement if model else None)
                                           or (base.fine_tune_retirement if base else None)),
        "escalate": (deployment.provisioning_state or "").casefold() not in INACTIVE_STATES,
    }
    if model is None and curated is None:
        return Assessment(consequence=Consequence.NONE, reason="model not in the catalog: no retirement date known",
                          **common)  # type: ignore[arg-type]
    if model is None:  # the catalog does not list it, a curated row dates it: no replacement, lead or start known
        model = CatalogModel(scope="", format=deployment.model_format or "", name=deployment.model_name or "",
                             version=deployment.model_version or "")
    retired = is_retired(lifecycle)
    if retired and (retirement is None or retirement <= today or combined.catalog_day is None):
        # The API's word wins over a later curated date: a model it calls retired without a date is retired now.
        past = retirement if retirement is not None and retirement <= today else None
        return Assessment(consequence=Consequence.OUTAGE, strikes_on=past, struck=True,
                          days_left=(past - today).days if past else None,
                          reason="the catalog calls this model retired: calls to it fail (HTTP 410)",
                          **common)  # type: ignore[arg-type]
    consequence, strikes_on, reason = _consequence(deployment, model, retirement, today, refused,
                                                   target_model is not None, known, upgradable)
    pending = strikes_on is None and retirement_announced(lifecycle)
    if pending:  # what will happen once a date is set: the same rules, with any date
        consequence, _, then = _consequence(deployment, model, date.max, today, refused, target_model is not None,
                                            known, upgradable)
        reason = f"retirement announced ({lifecycle_words(lifecycle)}), date pending; then: {then}"
    elif retired:
        reason += "; the catalog already calls it retired"
    return Assessment(consequence=consequence, strikes_on=strikes_on,
                      days_left=(strikes_on - today).days if strikes_on else None,
                      struck=strikes_on is not None and strikes_on <= today, date_pending=pending,
                      catalog_says_retired=retired, reason=reason, **common)  # type: ignore[arg-type]


def _manual_reason(deployment: Deployment) -> str:
    family = sku_family(deployment.sku_name)
    if (deployment.model_format or "").casefold() != "openai":
        return f"{deployment.model_format or 'this'} models are never upgraded by Azure: the migration is manual"
    if family is SkuFamily.PROVISIONED:
        return "provisioned deployments are never upgraded by Azure: migrate in place or side by side"
    if family is SkuFamily.BATCH:
        return "batch deployments are never upgraded by Azure: deploy the replacement side by side"
    if family is SkuFamily.DEVELOPER:
        return "developer deployments are never upgraded by Azure: redeploy on the replacement"
    return (f"SKU {deployment.sku_name or '(none)'} is not one Azure is known to upgrade: read as never upgraded by "
            "Azure, the migration is manual")


def _consequence(deployment: Deployment, model: CatalogModel, retirement: date | None, today: date,
                 refused: str | None, has_target: bool, known_option: bool,
                 upgradable: bool) -> tuple[Consequence, date | None, str]:
    option = (deployment.upgrade_option or "").casefold()
    auto_start = _real_date(model.auto_upgrade_start)
    start_ahead = auto_start is not None and auto_start >= today
    if retirement is None and not (option == ONCE_NEW_DEFAULT and start_ahead and has_target and upgradable):
        return Consequence.NONE, None, "no retirement date announced"
    if not upgradable:
        return Consequence.OUTAGE, retirement, f"{_manual_reason(deployment)}; stops at retirement"
    if not known_option:
        return (Consequence.OUTAGE, retirement,
                f"unknown upgrade option {deployment.upgrade_option!r}: read as NoAutoUpgrade, stops at retirement")
    if option == NO_AUTO_UPGRADE:
        return Consequence.OUTAGE, retirement, "NoAutoUpgrade: stops answering at retirement"
    if not has_target:
        why = f" ({refused})" if refused else ""
        return Consequence.OUTAGE, retirement, f"no replacement to upgrade to{why}: stops answering at retirement"
    if option == ONCE_NEW_DEFAULT:
        if auto_start is not None and start_ahead and (retirement is None or auto_start < retirement):
            return Consequence.AUTO_UPGRADE, auto_start, "OnceNewDefaultVersionAvailable: upgraded from the new default"
        if auto_start is None or retirement is None or auto_start >= retirement:
            return (Consequence.AUTO_UPGRADE, retirement,
                    "OnceNewDefaultVersionAvailable: upgraded at retirement at latest")
        why = f"the auto-upgrade window opened on {auto_start} and it still runs this version"
        return Consequence.FORCED_UPGRADE, _lead(retirement, model), f"{why}: Azure upgrades it at retirement"
    assert retirement is not None
    lead = max(0, model.upgrade_lead_days or 0)
    why = "upgraded at retirement" if not lead else f"upgraded {lead} days before retirement"
    option_text = deployment.upgrade_option or "no upgrade option"
    return Consequence.FORCED_UPGRADE, _lead(retirement, model), f"{option_text}: {why}"


def _lead(retirement: date, model: CatalogModel) -> date:
    return retirement - timedelta(days=max(0, model.upgrade_lead_days or 0))
