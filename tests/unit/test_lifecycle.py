"""The pure core, one row per rule in DOMAIN.md: retirement date, consequence, when it strikes, replacement, scope."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from daemon.lifecycle import (
    CatalogIndex,
    Consequence,
    DateSource,
    DateStatus,
    UpdateScope,
    assess,
)
from daemon.records import CatalogModel, Deployment, SkuRetirement, location_scope

TODAY = date(2026, 1, 15)
EASTUS = location_scope("eastus")
ACCOUNT = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a"


def dep(name: str = "gpt-4o", version: str = "2024-05-13", sku: str | None = "Standard",
        option: str | None = "NoAutoUpgrade", fmt: str = "OpenAI") -> Deployment:
    return Deployment(id=f"{ACCOUNT}/deployments/d", account_id=ACCOUNT, subscription_id="s", resource_group="rg",
                      account_name="a", location="eastus", name="d", model_format=fmt, model_name=name,
                      model_version=version, sku_name=sku, upgrade_option=option)


GPT4O = CatalogModel(scope=EASTUS, format="OpenAI", name="gpt-4o", version="2024-05-13",
                     lifecycle_status="GenerallyAvailable", inference_retirement=date(2026, 10, 1),
                     deprecation_status="Planned",
                     sku_retirements=(SkuRetirement("Standard", date(2026, 3, 31)),
                                      SkuRetirement("GlobalStandard", date(2026, 10, 1))),
                     replacement_model="gpt-5.1", auto_upgrade_start=date(2026, 3, 9))
GPT51 = CatalogModel(scope=EASTUS, format="OpenAI", name="gpt-5.1", version="2025-11-13", is_default_version=True)
MINI = CatalogModel(scope=EASTUS, format="OpenAI", name="gpt-4o-mini", version="2024-07-18",
                    inference_retirement=date(2026, 3, 31), deprecation_status="Planned",
                    replacement_model="gpt-4.1-mini", replacement_version="2025-04-14", upgrade_lead_days=14)
O1 = CatalogModel(scope=EASTUS, format="OpenAI", name="o1", version="2024-12-17",
                  inference_retirement=date(2026, 7, 15), deprecation_status="Tentative")
O1_NEXT = CatalogModel(scope=EASTUS, format="OpenAI", name="o1", version="2025-06-01", is_default_version=True)
LLAMA = CatalogModel(scope=EASTUS, format="Meta", name="Meta-Llama-3.1-70B-Instruct", version="4",
                     lifecycle_status="Legacy", inference_retirement=date(2026, 2, 14))
NO_DATE = CatalogModel(scope=EASTUS, format="OpenAI", name="gpt-4.1", version="2025-04-14",
                       inference_retirement=None, lifecycle_status="Sunsetting")
FINE_TUNED = CatalogModel(scope=ACCOUNT, format="OpenAI", name="gpt-4o-mini.ft-abc", version="1",
                          inference_retirement=date(2026, 2, 1))
INDEX = CatalogIndex([GPT4O, GPT51, MINI, O1, O1_NEXT, LLAMA, NO_DATE, FINE_TUNED])


@pytest.mark.parametrize(
    ("deployment", "consequence", "strikes_on", "source"),
    [
        (dep(option="NoAutoUpgrade"), Consequence.OUTAGE, date(2026, 3, 31), DateSource.SKU),
        (dep(sku="GlobalStandard"), Consequence.OUTAGE, date(2026, 10, 1), DateSource.SKU),
        (dep(sku="DataZoneStandard"), Consequence.OUTAGE, date(2026, 10, 1), DateSource.INFERENCE),
        (dep(sku="standard"), Consequence.OUTAGE, date(2026, 3, 31), DateSource.SKU),
        (dep(sku="GlobalProvisionedManaged", option="OnceCurrentVersionExpired"), Consequence.OUTAGE,
         date(2026, 10, 1), DateSource.INFERENCE),
        (dep(sku="provisioned", option="OnceNewDefaultVersionAvailable"), Consequence.OUTAGE, date(2026, 10, 1),
         DateSource.INFERENCE),
        (dep(option="OnceCurrentVersionExpired"), Consequence.FORCED_UPGRADE, date(2026, 3, 31), DateSource.SKU),
        (dep(option=None), Consequence.FORCED_UPGRADE, date(2026, 3, 31), DateSource.SKU),
        (dep(option="OnceNewDefaultVersionAvailable"), Consequence.AUTO_UPGRADE, date(2026, 3, 9), DateSource.SKU),
        (dep("gpt-4o-mini", "2024-07-18", option=None), Consequence.FORCED_UPGRADE, date(2026, 3, 17),
         DateSource.INFERENCE),
        (dep("o1", "2024-12-17", option="OnceNewDefaultVersionAvailable"), Consequence.AUTO_UPGRADE,
         date(2026, 7, 15), DateSource.INFERENCE),
        (dep("Meta-Llama-3.1-70B-Instruct", "4", sku="GlobalStandard", option=None, fmt="Meta"),
         Consequence.OUTAGE, date(2026, 2, 14), DateSource.INFERENCE),
        (dep(option="SomethingNew"), Consequence.OUTAGE, date(2026, 3, 31), DateSource.SKU),
        (dep("gpt-4.1", "2025-04-14"), Consequence.NONE, None, None),
        (dep("gpt-unknown", "1"), Consequence.NONE, None, None),
        (dep("gpt-4o-mini.ft-abc", "1", option="OnceCurrentVersionExpired"), Consequence.OUTAGE,
         date(2026, 2, 1), DateSource.INFERENCE),
    ],
    ids=["no-auto-upgrade", "sku-date-global", "other-sku-falls-back-to-model-date", "sku-case",
         "provisioned-ignores-option", "provisioned-lowercase", "once-expired", "option-absent",
         "auto-upgrade-from-start-date", "lead-days", "auto-upgrade-at-retirement-without-start",
         "partner-model-no-target", "unknown-option-is-outage", "no-date", "not-in-catalog",
         "account-scope-fine-tune-no-target"],
)
def test_consequence_and_when(deployment: Deployment, consequence: Consequence, strikes_on: date | None,
                              source: DateSource | None) -> None:
    result = assess(deployment, INDEX, TODAY)
    assert result.consequence is consequence, result.reason
    assert result.strikes_on == strikes_on
    assert result.date_source == source
    assert result.days_left == ((strikes_on - TODAY).days if strikes_on else None)


def test_details_of_the_gpt4o_row() -> None:
    result = assess(dep(option="OnceNewDefaultVersionAvailable"), INDEX, TODAY)
    assert (result.retirement_date, result.date_status) == (date(2026, 3, 31), DateStatus.CONFIRMED)
    assert (result.replacement_model, result.replacement_version) == ("gpt-5.1", "2025-11-13")
    assert result.update_scope is UpdateScope.MAJOR_VERSION
    assert result.days_left == 53 and result.lifecycle_status == "GenerallyAvailable"


def test_tentative_unknown_status_and_provisioned_is_manual() -> None:
    assert assess(dep("o1", "2024-12-17"), INDEX, TODAY).date_status is DateStatus.TENTATIVE
    odd = CatalogIndex([replace(GPT4O, deprecation_status="Rumoured")])
    assert assess(dep(), odd, TODAY).date_status is DateStatus.UNCONFIRMED
    provisioned = assess(dep(sku="ProvisionedManaged"), INDEX, TODAY)
    assert provisioned.manual_migration and "never upgraded by Azure" in provisioned.reason


def test_unknown_values_are_kept_not_fatal() -> None:
    result = assess(dep(option="SomethingNew"), INDEX, TODAY)
    assert not result.upgrade_option_known and "SomethingNew" in result.reason
    assert assess(dep("gpt-4.1", "2025-04-14"), INDEX, TODAY).lifecycle_status == "Sunsetting"


def test_default_version_of_the_same_model_is_the_replacement() -> None:
    result = assess(dep("o1", "2024-12-17"), INDEX, TODAY)
    assert (result.replacement_model, result.replacement_version) == ("o1", "2025-06-01")
    assert result.update_scope is UpdateScope.MINOR_VERSION


def test_sentinel_dates_and_past_dates() -> None:
    sentinel = CatalogIndex([replace(GPT4O, sku_retirements=(SkuRetirement("Standard", date(2099, 12, 31)),),
                                     inference_retirement=date(2099, 12, 31))])
    assert assess(dep(), sentinel, TODAY).consequence is Consequence.NONE
    late = assess(dep(), INDEX, date(2026, 4, 2))
    assert late.days_left == -2 and late.consequence is Consequence.OUTAGE
