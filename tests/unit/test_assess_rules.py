"""One table row per rule of issue "Right on Microsoft's own data", on the values of Microsoft's own example
responses (ListLocationModels / ListAccountModels, 2025-09-01) plus edge cases of our own."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from daemon.lifecycle import CatalogIndex, Consequence, DateSource, assess
from daemon.lifecycle.escalation import DEFAULT_THRESHOLDS, EscalationPolicy, Reason, decide
from daemon.records import CatalogModel, Deployment, SkuRetirement, location_scope

EASTUS = location_scope("eastus")
ACCOUNT = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a"
TODAY = date(2025, 1, 15)

# Microsoft's ListLocationModels example, as parsed: gpt-35-turbo 0301 lists Standard 2025-02-13 and
# Provisioned 2025-05-15 but retires (inference) on 2025-04-30; the catalog calls it Deprecated (= retired).
GPT35_0301 = CatalogModel(scope=EASTUS, format="OpenAI", name="gpt-35-turbo", version="0301",
                          lifecycle_status="Deprecated", inference_retirement=date(2025, 4, 30),
                          deprecation_status="Planned",
                          sku_retirements=(SkuRetirement("Standard", date(2025, 2, 13)),
                                           SkuRetirement("Provisioned", date(2025, 5, 15))))
# gpt-4o 2024-05-13: Deprecating, inference 2025-09-15 (Tentative), replacementConfig gpt-4.1 2025-04-14 with
# autoUpgradeStartDate 2025-03-26 and a 7-day lead; its only SKU entry is "provisioned", without a date.
GPT4O = CatalogModel(scope=EASTUS, format="OpenAI", name="gpt-4o", version="2024-05-13",
                     lifecycle_status="Deprecating", inference_retirement=date(2025, 9, 15),
                     deprecation_status="Tentative", sku_retirements=(SkuRetirement("provisioned", None),),
                     replacement_model="gpt-4.1", replacement_version="2025-04-14",
                     auto_upgrade_start=date(2025, 3, 26), upgrade_lead_days=7)
# dall-e-3 3.0: GenerallyAvailable, inference 2025-06-30 (Tentative), Provisioned SKU date 2025-09-30.
DALLE = CatalogModel(scope=EASTUS, format="OpenAI", name="dall-e-3", version="3.0", is_default_version=True,
                     lifecycle_status="GenerallyAvailable", inference_retirement=date(2025, 6, 30),
                     deprecation_status="Tentative",
                     sku_retirements=(SkuRetirement("Provisioned", date(2025, 9, 30)),))
# Llama-3.2-90B-Vision-Instruct: Stable, 2099-12-31 ("no date", parsed to None).
LLAMA = CatalogModel(scope=EASTUS, format="Meta", name="Llama-3.2-90B-Vision-Instruct", version="2",
                     lifecycle_status="Stable", sku_retirements=(SkuRetirement("GlobalStandard", None),))
# ListAccountModels: the fine-tune ada.1 of ada 1 (Legacy), with its own dates 2024-01-01.
ADA = CatalogModel(scope=EASTUS, format="OpenAI", name="ada", version="1", lifecycle_status="Legacy",
                   inference_retirement=date(2024, 6, 14), fine_tune_retirement=date(2024, 6, 14),
                   deprecation_status="Planned")
ADA_FT = CatalogModel(scope=ACCOUNT, format="OpenAI", name="ada.1", version="1", lifecycle_status="Legacy",
                      inference_retirement=date(2024, 1, 1), fine_tune_retirement=date(2024, 1, 1),
                      deprecation_status="Planned", base_format="OpenAI", base_name="ada", base_version="1")
INDEX = CatalogIndex([GPT35_0301, GPT4O, DALLE, LLAMA, ADA, ADA_FT])


def dep(name: str, version: str, sku: str | None = "Standard", option: str | None = "NoAutoUpgrade",
        fmt: str = "OpenAI", state: str | None = "Succeeded") -> Deployment:
    return Deployment(id=f"{ACCOUNT}/deployments/d", account_id=ACCOUNT, subscription_id="s", resource_group="rg",
                      account_name="a", location="eastus", name="d", model_format=fmt, model_name=name,
                      model_version=version, sku_name=sku, upgrade_option=option, provisioning_state=state)


@pytest.mark.parametrize(
    ("deployment", "retirement", "source"),
    [
        # Exact per-SKU date first.
        (dep("gpt-35-turbo", "0301", "Standard"), date(2025, 2, 13), DateSource.SKU),
        (dep("gpt-35-turbo", "0301", "standard"), date(2025, 2, 13), DateSource.SKU),
        # Every provisioned deployment type finds the catalog's family-level "Provisioned" date; it is later than
        # the model's date, so the model's (earlier) date applies, and date_source says so.
        (dep("gpt-35-turbo", "0301", "ProvisionedManaged"), date(2025, 4, 30), DateSource.INFERENCE),
        (dep("gpt-35-turbo", "0301", "GlobalProvisionedManaged"), date(2025, 4, 30), DateSource.INFERENCE),
        (dep("gpt-35-turbo", "0301", "DataZoneProvisionedManaged"), date(2025, 4, 30), DateSource.INFERENCE),
        # dall-e-3: Provisioned 2025-09-30 vs model 2025-06-30: the earlier, the model's.
        (dep("dall-e-3", "3.0", "DataZoneProvisionedManaged"), date(2025, 6, 30), DateSource.INFERENCE),
        # A family date earlier than the model's wins and is named as the family's.
        (dep("dall-e-3-early", "3.0", "GlobalProvisionedManaged"), date(2025, 3, 1), DateSource.SKU_FAMILY),
        # Standard-family SKUs are not a family-level match for each other: GlobalStandard -> the model's date.
        (dep("gpt-35-turbo", "0301", "GlobalStandard"), date(2025, 4, 30), DateSource.INFERENCE),
        # A SKU entry without a date falls through to the model's date.
        (dep("gpt-4o", "2024-05-13", "ProvisionedManaged"), date(2025, 9, 15), DateSource.INFERENCE),
    ],
)
def test_sku_dates_match_exactly_then_by_family(deployment: Deployment, retirement: date,
                                                source: DateSource) -> None:
    early = replace(DALLE, name="dall-e-3-early", sku_retirements=(SkuRetirement("provisioned", date(2025, 3, 1)),))
    result = assess(deployment, CatalogIndex([*INDEX_ENTRIES, early]), TODAY)
    assert (result.retirement_date, result.date_source) == (retirement, source)


INDEX_ENTRIES = [GPT35_0301, GPT4O, DALLE, LLAMA, ADA, ADA_FT]


@pytest.mark.parametrize(
    ("today", "deployment", "consequence", "strikes_on", "struck", "says_retired"),
    [
        # Deprecated = retired: a past date is an outage that has struck, whatever the upgrade option.
        (date(2025, 5, 1), dep("gpt-35-turbo", "0301", option="OnceCurrentVersionExpired"), Consequence.OUTAGE,
         date(2025, 2, 13), True, False),
        # With a future date the date is kept, and the catalog's word is noted.
        (TODAY, dep("gpt-35-turbo", "0301"), Consequence.OUTAGE, date(2025, 2, 13), False, True),
    ],
)
def test_deprecated_means_retired(today: date, deployment: Deployment, consequence: Consequence,
                                  strikes_on: date, struck: bool, says_retired: bool) -> None:
    result = assess(deployment, INDEX, today)
    assert (result.consequence, result.strikes_on, result.struck) == (consequence, strikes_on, struck)
    assert result.lifecycle == "retired" and result.lifecycle_status == "Deprecated"
    if says_retired:
        assert result.catalog_says_retired and "already calls it retired" in result.reason


def test_deprecated_without_a_date_is_an_outage_already_struck() -> None:
    undated = CatalogIndex([replace(GPT35_0301, inference_retirement=None, sku_retirements=())])
    result = assess(dep("gpt-35-turbo", "0301", option="OnceNewDefaultVersionAvailable"), undated, TODAY)
    assert (result.consequence, result.strikes_on, result.days_left, result.struck) == (
        Consequence.OUTAGE, None, None, True)
    decision = decide(EscalationPolicy(), consequence="outage", scope=None, days_left=None, today=TODAY,
                      struck=True)
    assert decision.due and decision.step is not None and decision.step.key == f"overdue@{TODAY}"


@pytest.mark.parametrize("status", ["Legacy", "Deprecating"])
@pytest.mark.parametrize("inference", [None, date(2099, 12, 31)])
def test_announced_without_a_date_is_pending_and_told_once(status: str, inference: date | None) -> None:
    model = replace(LLAMA, format="OpenAI", name="gpt-x", version="1", lifecycle_status=status,
                    inference_retirement=inference)
    result = assess(dep("gpt-x", "1"), CatalogIndex([model]), TODAY)
    assert (result.consequence, result.strikes_on, result.date_pending) == (Consequence.OUTAGE, None, True)
    assert result.lifecycle in ("legacy: retirement coming", "retiring")
    first = decide(EscalationPolicy(), consequence="outage", scope=None, days_left=None, today=TODAY,
                   date_pending=True)
    again = decide(EscalationPolicy(), consequence="outage", scope=None, days_left=None, today=TODAY,
                   date_pending=True, sent_keys=frozenset({"notice"}))
    assert (first.reason, again.reason) == (Reason.FIRST_ALERT, Reason.ALREADY_SENT)


def test_generally_available_without_a_date_is_nothing() -> None:
    result = assess(dep("Llama-3.2-90B-Vision-Instruct", "2", "GlobalStandard", fmt="Meta"), INDEX, TODAY)
    assert (result.consequence, result.date_pending, result.lifecycle) == (
        Consequence.NONE, False, "generally available")


@pytest.mark.parametrize(
    ("deployment", "consequence", "manual"),
    [
        (dep("gpt-4o", "2024-05-13", "GlobalStandard", "OnceCurrentVersionExpired"), Consequence.FORCED_UPGRADE,
         False),
        (dep("gpt-4o", "2024-05-13", "DataZoneStandard", None), Consequence.FORCED_UPGRADE, False),
        (dep("gpt-4o", "2024-05-13", "ProvisionedManaged", "OnceCurrentVersionExpired"), Consequence.OUTAGE, True),
        (dep("gpt-4o", "2024-05-13", "GlobalBatch", "OnceCurrentVersionExpired"), Consequence.OUTAGE, True),
        (dep("gpt-4o", "2024-05-13", "DeveloperTier", "OnceCurrentVersionExpired"), Consequence.OUTAGE, True),
        (dep("gpt-4o", "2024-05-13", "SomeNewSku", "OnceCurrentVersionExpired"), Consequence.OUTAGE, True),
        (dep("gpt-4o", "2024-05-13", "GlobalStandard", "OnceCurrentVersionExpired", fmt="Meta"),
         Consequence.OUTAGE, True),
    ],
)
def test_only_azure_openai_on_standard_skus_is_upgraded(deployment: Deployment, consequence: Consequence,
                                                        manual: bool) -> None:
    model = replace(GPT4O, format=deployment.model_format or "", auto_upgrade_start=None)
    result = assess(deployment, CatalogIndex([model]), TODAY)
    assert (result.consequence, result.manual_migration) == (consequence, manual), result.reason
    assert result.replacement_model == "gpt-4.1"  # the replacement stays, as advice
    if manual:
        assert result.manual_reason and "never upgraded by Azure" in result.manual_reason


@pytest.mark.parametrize(
    ("target_name", "target_version", "target_retires", "refused"),
    [
        ("gpt-4.1", "2025-04-14", None, None),
        # An older release of the same model is no upgrade (another model is never "older": gpt-4o-mini
        # 2024-07-18 can replace gpt-4o 2024-08-06).
        ("gpt-4o", "2024-01-01", None, "older than the deployed 2024-05-13"),
        ("gpt-4o", "2024-11-20", None, None),
        ("gpt-4.1", "2025-04-14", date(2025, 6, 1), "retires first, on 2025-06-01"),
        ("gpt-4.1", "2025-04-14", date(2025, 12, 1), None),
    ],
)
def test_a_replacement_is_never_older_and_never_retires_first(target_name: str, target_version: str,
                                                              target_retires: date | None,
                                                              refused: str | None) -> None:
    model = replace(GPT4O, replacement_model=target_name, replacement_version=target_version,
                    auto_upgrade_start=None)
    target = CatalogModel(scope=EASTUS, format="OpenAI", name=target_name, version=target_version,
                          inference_retirement=target_retires)
    result = assess(dep("gpt-4o", "2024-05-13", option="OnceCurrentVersionExpired"),
                    CatalogIndex([model, target]), TODAY)
    if refused is None:
        assert result.consequence is Consequence.FORCED_UPGRADE and result.replacement_version == target_version
        return
    assert result.replacement_model is None and result.consequence is Consequence.OUTAGE
    assert result.replacement_refused and refused in result.replacement_refused
    assert refused in result.reason


@pytest.mark.parametrize(
    ("today", "days_left", "struck"),
    [(date(2025, 2, 12), 1, False), (date(2025, 2, 13), 0, True), (date(2025, 2, 14), -1, True)],
)
def test_the_retirement_day_itself_has_struck(today: date, days_left: int, struck: bool) -> None:
    live = replace(GPT35_0301, lifecycle_status="GenerallyAvailable")
    result = assess(dep("gpt-35-turbo", "0301"), CatalogIndex([live]), today)
    assert (result.days_left, result.struck) == (days_left, struck)
    decision = decide(EscalationPolicy(), consequence="outage", scope=None, days_left=days_left, today=today)
    assert (decision.stage is not None and decision.stage.value == "overdue") == struck


@pytest.mark.parametrize(
    ("today", "consequence", "strikes_on"),
    [
        (date(2025, 3, 25), Consequence.AUTO_UPGRADE, date(2025, 3, 26)),
        (date(2025, 3, 26), Consequence.AUTO_UPGRADE, date(2025, 3, 26)),  # the start day: struck, told that day
        # Passed and still on the old version: the retirement (minus the 7-day lead) is the deadline now.
        (date(2025, 3, 27), Consequence.FORCED_UPGRADE, date(2025, 9, 8)),
    ],
)
def test_after_the_auto_upgrade_start_the_deadline_is_the_retirement(today: date, consequence: Consequence,
                                                                      strikes_on: date) -> None:
    result = assess(dep("gpt-4o", "2024-05-13", "GlobalStandard", "OnceNewDefaultVersionAvailable"), INDEX, today)
    assert (result.consequence, result.strikes_on) == (consequence, strikes_on), result.reason


def test_fine_tunes_inherit_base_dates_only_when_they_have_none() -> None:
    own = assess(dep("ada.1", "1", "Standard"), INDEX, date(2023, 6, 1))
    assert (own.retirement_date, own.date_model, own.fine_tuned) == (date(2024, 1, 1), None, True)
    assert own.fine_tune_retirement == date(2024, 1, 1)
    bare = CatalogIndex([ADA, replace(ADA_FT, inference_retirement=None, fine_tune_retirement=None)])
    inherited = assess(dep("ada.1", "1", "Standard"), bare, date(2023, 6, 1))
    assert (inherited.retirement_date, inherited.date_model) == (date(2024, 6, 14), "ada 1")
    assert inherited.fine_tune_retirement == date(2024, 6, 14)


@pytest.mark.parametrize(("state", "escalate"), [("Succeeded", True), ("Creating", True), ("Failed", False),
                                                 ("Deleting", False), ("Canceled", False), ("canceled", False)])
def test_failed_deleting_and_canceled_are_shown_not_escalated(state: str, escalate: bool) -> None:
    result = assess(dep("gpt-35-turbo", "0301", state=state), INDEX, TODAY)
    assert result.consequence is Consequence.OUTAGE and result.escalate is escalate
    decision = decide(EscalationPolicy(), consequence="outage", scope=None, days_left=result.days_left, today=TODAY,
                      escalate=result.escalate)
    assert decision.due is escalate
    assert escalate or decision.reason is Reason.NOT_ESCALATED


def test_plain_words_never_the_raw_api_word() -> None:
    assert DEFAULT_THRESHOLDS.notice == 90
    words = {m.lifecycle_status: assess(dep(m.name, m.version), CatalogIndex([m]), TODAY).lifecycle
             for m in (GPT35_0301, GPT4O, DALLE, ADA)}
    assert words == {"Deprecated": "retired", "Deprecating": "retiring", "GenerallyAvailable": "generally available",
                     "Legacy": "legacy: retirement coming"}
