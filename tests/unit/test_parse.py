"""Raw ARM JSON -> records, field by field: Microsoft's own example responses item by item, then the traps one row
each."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from daemon.collect.parse import (
    FieldIssue,
    ItemError,
    ParseError,
    _deployment_as_usual,
    _deployment_carefully,
    as_date,
    item_label,
    merge_catalog,
    normalise_location,
    parse_account,
    parse_account_model,
    parse_deployment,
    parse_location_model,
    resource_group_of,
)
from daemon.records import Account, CatalogModel, Deployment, SkuRetirement, location_scope

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "azure-examples"
ACCOUNT_ID = "/subscriptions/s1/resourceGroups/RG-Search/providers/Microsoft.CognitiveServices/accounts/acct"
EASTUS = location_scope("eastus")
ACCOUNT = Account(id=ACCOUNT_ID, subscription_id="s1", resource_group="RG-Search", name="acct", kind="OpenAI",
                  location="eastus")


def example(name: str) -> list[Any]:
    items: list[Any] = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))["value"]
    return items


# -- Microsoft's examples, verbatim --------------------------------------------------------------------------------

LOCATION_MODELS = [
    CatalogModel(
        scope=EASTUS, format="OpenAI", name="ada", version="1", kinds=("OpenAI",), is_default_version=False,
        lifecycle_status="Legacy", inference_retirement=date(2024, 6, 14), fine_tune_retirement=date(2024, 6, 14),
        deprecation_status="Planned", sku_retirements=(SkuRetirement("provisioned", None),)),
    CatalogModel(
        scope=EASTUS, format="OpenAI", name="dall-e-3", version="3.0", kinds=("AIServices",),
        is_default_version=True, lifecycle_status="GenerallyAvailable", inference_retirement=date(2025, 6, 30),
        deprecation_status="Tentative", sku_retirements=(SkuRetirement("Provisioned", date(2025, 9, 30)),)),
    CatalogModel(
        scope=EASTUS, format="OpenAI", name="gpt-35-turbo", version="0301", kinds=("OpenAI",),
        is_default_version=False, lifecycle_status="Deprecated", inference_retirement=date(2025, 4, 30),
        deprecation_status="Planned",
        sku_retirements=(SkuRetirement("Standard", date(2025, 2, 13)),
                         SkuRetirement("Provisioned", date(2025, 5, 15)))),
    CatalogModel(
        scope=EASTUS, format="OpenAI", name="gpt-4o", version="2024-05-13", kinds=("OpenAI",),
        is_default_version=False, lifecycle_status="Deprecating", inference_retirement=date(2025, 9, 15),
        deprecation_status="Tentative", sku_retirements=(SkuRetirement("provisioned", None),),
        replacement_model="gpt-4.1", replacement_version="2025-04-14", auto_upgrade_start=date(2025, 3, 26),
        upgrade_lead_days=7),
    CatalogModel(
        scope=EASTUS, format="Meta", name="Llama-3.2-90B-Vision-Instruct", version="2", kinds=("AIServices",),
        is_default_version=False, lifecycle_status="Stable", inference_retirement=None, deprecation_status=None,
        sku_retirements=(SkuRetirement("GlobalStandard", None),)),
    CatalogModel(
        scope=EASTUS, format="OpenAI", name="gpt-4o", version="2024-08-06", kinds=("OpenAI",),
        is_default_version=False, lifecycle_status="GenerallyAvailable",
        sku_retirements=(SkuRetirement("Standard", None), SkuRetirement("provisioned", None))),
]

ACCOUNT_MODELS = [
    CatalogModel(
        scope=ACCOUNT_ID, format="OpenAI", name="ada.1", version="1", is_default_version=False,
        lifecycle_status="Legacy", inference_retirement=date(2024, 1, 1), fine_tune_retirement=date(2024, 1, 1),
        deprecation_status="Planned", base_format="OpenAI", base_name="ada", base_version="1"),
    CatalogModel(
        scope=ACCOUNT_ID, format="OpenAI", name="dall-e-3", version="3.0", is_default_version=True,
        lifecycle_status="GenerallyAvailable", inference_retirement=date(2025, 6, 30),
        deprecation_status="Tentative"),
    CatalogModel(
        scope=ACCOUNT_ID, format="OpenAI", name="gpt-35-turbo", version="0301", is_default_version=False,
        lifecycle_status="Deprecated", inference_retirement=date(2025, 4, 30), deprecation_status="Planned"),
    CatalogModel(
        scope=ACCOUNT_ID, format="OpenAI", name="gpt-4o", version="2024-05-13", is_default_version=False,
        lifecycle_status="Deprecating", inference_retirement=date(2025, 9, 15), deprecation_status="Tentative",
        replacement_model="gpt-4.1", replacement_version="2025-04-14", auto_upgrade_start=date(2025, 3, 26),
        upgrade_lead_days=7),
    CatalogModel(
        scope=ACCOUNT_ID, format="Meta", name="Llama-3.2-90B-Vision-Instruct", version="2", is_default_version=False,
        lifecycle_status="Stable", inference_retirement=None, deprecation_status="Tentative"),
    CatalogModel(
        scope=ACCOUNT_ID, format="OpenAI", name="gpt-4o", version="2024-08-06", is_default_version=False,
        lifecycle_status="GenerallyAvailable"),
]


@pytest.mark.parametrize("index", range(len(LOCATION_MODELS)), ids=[f"{m.name} {m.version}" for m in LOCATION_MODELS])
def test_every_item_of_microsofts_location_models_example(index: int) -> None:
    items = example("ListLocationModels.response.json")
    assert len(items) == len(LOCATION_MODELS)
    parsed = parse_location_model(items[index], EASTUS)
    assert parsed.issues == ()
    assert parsed.record == LOCATION_MODELS[index]


@pytest.mark.parametrize("index", range(len(ACCOUNT_MODELS)), ids=[f"{m.name} {m.version}" for m in ACCOUNT_MODELS])
def test_every_item_of_microsofts_account_models_example(index: int) -> None:
    items = example("ListAccountModels.response.json")
    assert len(items) == len(ACCOUNT_MODELS)
    parsed = parse_account_model(items[index], ACCOUNT_ID)
    assert parsed.issues == ()
    assert parsed.record == ACCOUNT_MODELS[index]


def test_the_examples_as_whole_catalogs() -> None:
    location = merge_catalog(parse_location_model(item, EASTUS).record
                             for item in example("ListLocationModels.response.json"))
    assert location == LOCATION_MODELS, "no model is listed twice there, so merging changes nothing"
    account = merge_catalog(parse_account_model(item, ACCOUNT_ID).record
                            for item in example("ListAccountModels.response.json"))
    assert account == ACCOUNT_MODELS


# -- dates -------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("2026-03-31T00:00:00Z", date(2026, 3, 31)),
        ("2026-12-25", date(2026, 12, 25)),
        ("2026-12-25T00:00:00", date(2026, 12, 25)),
        ("2025-04-16T04:45:33.9367873Z", date(2025, 4, 16)),
        ("2026-12-24T23:30:00-05:00", date(2026, 12, 25)),
        ("2026-12-25T04:59:59-05:00", date(2026, 12, 25)),
        ("2026-12-25T00:30:00+01:00", date(2026, 12, 24)),
        ("2026-12-25T23:59:59+00:00", date(2026, 12, 25)),
        ("2099-12-31T00:00:00Z", None),
        ("2099-12-31", None),
        ("2150-01-01T00:00:00Z", None),
        ("2098-12-31T00:00:00Z", date(2098, 12, 31)),
        (datetime(2099, 12, 31, tzinfo=UTC), None),
        (datetime(2026, 10, 1, 23, 59, tzinfo=UTC), date(2026, 10, 1)),
        (datetime(2026, 10, 1, 22, 0, tzinfo=timezone(timedelta(hours=-3))), date(2026, 10, 2)),
    ],
    ids=["absent", "empty", "iso-datetime", "date-only", "no-offset", "seven-digit-fraction",
         "offset-west-crosses-midnight", "offset-west-same-day", "offset-east-crosses-back", "last-second",
         "sentinel", "sentinel-date-only", "beyond-sentinel", "year-before-sentinel", "sentinel-datetime", "datetime",
         "datetime-offset"],
)
def test_dates_are_days_in_utc(value: object, expected: date | None) -> None:
    assert as_date(value) == expected


@pytest.mark.parametrize("value", ["soon", "2026-13-01", "31/12/2026", 20261225, True, {"date": "2026-12-25"}])
def test_a_date_that_is_not_a_date_is_an_error_not_a_guess(value: object) -> None:
    with pytest.raises(ParseError, match="not a date"):
        as_date(value)


def test_locations_and_resource_groups() -> None:
    assert normalise_location("East US 2") == "eastus2"
    assert resource_group_of(ACCOUNT_ID) == "RG-Search"
    assert resource_group_of("/subscriptions/s1/providers/x") == ""


# -- one malformed field costs that field --------------------------------------------------------------------------

def gpt4o() -> dict[str, Any]:
    """Microsoft's gpt-4o 2024-05-13 location item, with a second, dated SKU."""
    item: dict[str, Any] = copy.deepcopy(example("ListLocationModels.response.json")[3])
    item["model"]["skus"].append({"name": "Standard", "deprecationDate": "2026-03-31T00:00:00Z"})
    return item


def edited(path: list[str | int], value: Any) -> dict[str, Any]:
    item = gpt4o()
    target: Any = item["model"]
    for step in path[:-1]:
        target = target[step]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return item


_DELETE = object()
BASE = parse_location_model(gpt4o(), EASTUS).record


@pytest.mark.parametrize(
    ("path", "value", "changed", "issues"),
    [
        (["skus", 1, "deprecationDate"], "2026-12-25", {"sku_retirements": (
            SkuRetirement("provisioned", None), SkuRetirement("Standard", date(2026, 12, 25)))}, []),
        (["skus", 1, "deprecationDate"], "2026-12-24T23:30:00-05:00", {"sku_retirements": (
            SkuRetirement("provisioned", None), SkuRetirement("Standard", date(2026, 12, 25)))}, []),
        (["skus", 1, "deprecationDate"], "soon", {"sku_retirements": (
            SkuRetirement("provisioned", None), SkuRetirement("Standard", None))},
         [FieldIssue("skus[1].deprecationDate", "not a date: 'soon'")]),
        (["replacementConfig", "autoUpgradeStartDate"], "2026-03-09", {"auto_upgrade_start": date(2026, 3, 9)}, []),
        (["replacementConfig", "autoUpgradeStartDate"], "next spring", {"auto_upgrade_start": None},
         [FieldIssue("replacementConfig.autoUpgradeStartDate", "not a date: 'next spring'")]),
        (["replacementConfig", "upgradeOnExpiryLeadTimeDays"], "a week", {"upgrade_lead_days": None},
         [FieldIssue("replacementConfig.upgradeOnExpiryLeadTimeDays", "not a whole number: 'a week'")]),
        (["deprecation", "inference"], "2099-12-31T00:00:00Z", {"inference_retirement": None}, []),
        (["deprecation", "inference"], 1767225600, {"inference_retirement": None},
         [FieldIssue("deprecation.inference", "not a date: 1767225600")]),
        (["deprecation"], "Tentative", {"inference_retirement": None, "deprecation_status": None},
         [FieldIssue("deprecation", "not an object: 'Tentative'")]),
        (["deprecation"], _DELETE, {"inference_retirement": None, "deprecation_status": None}, []),
        (["replacementConfig"], _DELETE, {"replacement_model": None, "replacement_version": None,
                                          "auto_upgrade_start": None, "upgrade_lead_days": None}, []),
        (["skus"], _DELETE, {"sku_retirements": ()}, []),
        (["skus"], "provisioned", {"sku_retirements": ()}, [FieldIssue("skus", "not a list: 'provisioned'")]),
        (["skus", 0], "provisioned", {"sku_retirements": (SkuRetirement("Standard", date(2026, 3, 31)),)},
         [FieldIssue("skus[0]", "not an object: 'provisioned'")]),
        (["skus", 0, "name"], _DELETE, {"sku_retirements": (SkuRetirement("Standard", date(2026, 3, 31)),)},
         [FieldIssue("skus[0].name", "missing")]),
        (["lifecycleStatus"], "Sunsetting", {"lifecycle_status": "Sunsetting"}, []),
        (["lifecycleStatus"], ["Deprecating"], {"lifecycle_status": None},
         [FieldIssue("lifecycleStatus", "not text: ['Deprecating']")]),
        (["deprecation", "deprecationStatus"], "Rumoured", {"deprecation_status": "Rumoured"}, []),
        (["isDefaultVersion"], "true", {"is_default_version": True}, []),
        (["isDefaultVersion"], "yes", {"is_default_version": False},
         [FieldIssue("isDefaultVersion", "not true or false: 'yes'")]),
        (["capabilities", "chat"], "false", {}, []),
        (["baseModel"], {"format": "OpenAI", "name": "gpt-4o"}, {"base_format": "OpenAI", "base_name": "gpt-4o"},
         []),
    ],
    ids=["sku-date-only", "sku-offset", "sku-malformed", "auto-upgrade-date-only", "auto-upgrade-malformed",
         "lead-days-malformed", "sentinel-with-status", "inference-number", "deprecation-not-object",
         "no-deprecation", "no-replacement", "no-skus", "skus-not-list", "sku-not-object", "sku-without-name",
         "unknown-lifecycle", "lifecycle-not-text", "unknown-deprecation-status", "default-as-text",
         "default-nonsense", "capability-text", "partial-base-model"],
)
def test_a_malformed_or_missing_field_costs_that_field_only(path: list[str | int], value: Any,
                                                            changed: dict[str, Any], issues: list[FieldIssue]) -> None:
    parsed = parse_location_model(edited(path, value), EASTUS)
    expected = {name: getattr(BASE, name) for name in CatalogModel.__slots__} | changed
    assert parsed.record == CatalogModel(**expected)
    assert list(parsed.issues) == issues


def test_the_sentinel_with_and_without_a_deprecation_status() -> None:
    llama = example("ListLocationModels.response.json")[4]  # 2099-12-31, no deprecationStatus
    assert "deprecationStatus" not in llama["model"]["deprecation"]
    record = parse_location_model(llama, EASTUS).record
    assert (record.inference_retirement, record.deprecation_status) == (None, None)
    account_llama = example("ListAccountModels.response.json")[4]  # 2099-12-31, Tentative
    record = parse_account_model(account_llama, ACCOUNT_ID).record
    assert (record.inference_retirement, record.deprecation_status) == (None, "Tentative")


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"kind": "OpenAI", "skuName": "S0"}, "no model"),
        ({"kind": "OpenAI", "model": "gpt-4o"}, "no model"),
        ({"kind": "OpenAI", "model": {"format": "OpenAI", "version": "1"}}, "no name"),
        ({"kind": "OpenAI", "model": {"format": "OpenAI", "name": "gpt-4o"}}, "no version"),
        ({"kind": "OpenAI", "model": {"format": "OpenAI", "name": "gpt-4o", "version": ""}}, "no version"),
        ({"kind": "OpenAI", "model": {"format": "OpenAI", "name": 4, "version": "1"}}, "no name"),
        ("gpt-4o", "not an object"),
    ],
)
def test_an_item_without_identity_is_skipped(item: Any, reason: str) -> None:
    with pytest.raises(ItemError, match=reason):
        parse_location_model(item, EASTUS)


def test_item_labels_name_the_model() -> None:
    assert item_label(gpt4o()) == "gpt-4o 2024-05-13"
    assert item_label(example("ListAccountModels.response.json")[0]) == "ada.1 1"
    assert item_label({"name": "chat", "id": "/x/deployments/chat"}) == "chat"
    assert item_label({"id": "/x/deployments/chat"}) == "chat"
    assert item_label(["odd"]) == "item"


# -- SKU names and kinds ----------------------------------------------------------------------------------------------

def test_sku_names_keep_azures_spelling_and_kinds_merge() -> None:
    def listed(kind: str, skus: list[dict[str, Any]], default: bool | None = None) -> CatalogModel:
        model: dict[str, Any] = {"format": "OpenAI", "name": "gpt-4o", "version": "2024-05-13", "skus": skus}
        if default is not None:
            model["isDefaultVersion"] = default
        return parse_location_model({"kind": kind, "skuName": "S0", "model": model}, EASTUS).record

    as_openai = listed("OpenAI", [{"name": "Standard", "deprecationDate": "2026-03-31T00:00:00Z"},
                                  {"name": "provisioned"}])
    as_ai = listed("AIServices", [{"name": "Provisioned", "deprecationDate": "2026-10-01T00:00:00Z"}], True)
    assert [s.sku_name for s in as_openai.sku_retirements] == ["Standard", "provisioned"]
    assert [s.sku_name for s in as_ai.sku_retirements] == ["Provisioned"]
    merged = merge_catalog([as_openai, as_ai])
    assert len(merged) == 1
    model = merged[0]
    assert model.kinds == ("OpenAI", "AIServices")
    assert model.is_default_version is True
    assert set(model.sku_retirements) == {SkuRetirement("Standard", date(2026, 3, 31)),
                                          SkuRetirement("Provisioned", date(2026, 10, 1))}, \
        "provisioned/Provisioned are one SKU; the dated listing wins"


# -- accounts and deployments -----------------------------------------------------------------------------------------

def test_account_fields_and_absent_ones() -> None:
    parsed = parse_account({"id": ACCOUNT_ID, "name": "acct", "kind": "AIServices", "location": "Sweden Central",
                            "tags": {"team": "search"}}, "s1")
    assert parsed.record == Account(id=ACCOUNT_ID, subscription_id="s1", resource_group="RG-Search", name="acct",
                                    kind="AIServices", location="swedencentral", tags={"team": "search"})
    bare = parse_account({"id": ACCOUNT_ID}, "s1")
    assert (bare.record.name, bare.record.kind, bare.record.location, bare.record.tags) == ("acct", "", "", {})
    assert parse_account({"id": ACCOUNT_ID, "tags": ["team"]}, "s1").issues == (
        FieldIssue("tags", "not an object: ['team']"),)
    with pytest.raises(ItemError, match="no id"):
        parse_account({"name": "acct"}, "s1")


def test_deployment_fields_and_absent_ones() -> None:
    raw = {"id": f"{ACCOUNT_ID}/deployments/chat", "name": "chat", "sku": {"name": "GlobalStandard", "capacity": 10},
           "properties": {"model": {"format": "OpenAI", "name": "gpt-4o", "version": "2024-05-13",
                                    "publisher": "OpenAI", "source": "/subscriptions/s1/x"},
                          "versionUpgradeOption": "OnceNewDefaultVersionAvailable", "provisioningState": "Succeeded"}}
    assert parse_deployment(raw, ACCOUNT).record == Deployment(
        id=f"{ACCOUNT_ID}/deployments/chat", account_id=ACCOUNT_ID, subscription_id="s1", resource_group="RG-Search",
        account_name="acct", location="eastus", name="chat", model_format="OpenAI", model_name="gpt-4o",
        model_version="2024-05-13", model_publisher="OpenAI", model_source="/subscriptions/s1/x",
        sku_name="GlobalStandard", sku_capacity=10, upgrade_option="OnceNewDefaultVersionAvailable",
        provisioning_state="Succeeded")
    bare = parse_deployment({"name": "d1"}, ACCOUNT)
    assert bare.issues == ()
    assert bare.record.id == f"{ACCOUNT_ID}/deployments/d1"
    assert (bare.record.model_name, bare.record.sku_name, bare.record.upgrade_option) == (None, None, None)
    odd = parse_deployment({"name": "d2", "sku": {"name": "ProvisionedManaged", "capacity": True},
                            "properties": {"versionUpgradeOption": "EveryFullMoon", "model": "gpt-4o"}}, ACCOUNT)
    assert odd.record.upgrade_option == "EveryFullMoon", "unknown enum text is kept"
    assert (odd.record.sku_name, odd.record.sku_capacity, odd.record.model_name) == ("ProvisionedManaged", None, None)
    assert odd.issues == (FieldIssue("properties.model", "not an object: 'gpt-4o'"),
                          FieldIssue("sku.capacity", "not a whole number: True"))
    with pytest.raises(ItemError, match="no name or id"):
        parse_deployment({"sku": {"name": "Standard"}}, ACCOUNT)


# -- the usual path for deployments reads exactly what the careful one reads ------------------------------------------

def _deployment_variants() -> list[Any]:
    """Microsoft's example deployment, then each field of it absent, empty, null or of another JSON type."""
    base = example("ListDeployments.response.json")[0]
    variants: list[Any] = [base, {"name": "bare"}, [], "deployment", None]
    odd_values: list[Any] = [None, "", "  ", 0, 7, -3, True, False, 1.5, "12", [], ["x"], {}, {"a": 1}]
    paths = [("id",), ("name",), ("sku",), ("sku", "name"), ("sku", "capacity"), ("properties",),
             ("properties", "model"), ("properties", "model", "format"), ("properties", "model", "name"),
             ("properties", "model", "version"), ("properties", "model", "publisher"),
             ("properties", "model", "source"), ("properties", "versionUpgradeOption"),
             ("properties", "provisioningState")]
    for path in paths:
        for value in [*odd_values, "absent"]:
            variant = copy.deepcopy(base)
            parent = variant
            for key in path[:-1]:
                parent = parent[key]
            if value == "absent":
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = value
            variants.append(variant)
    return variants


@pytest.mark.parametrize("raw", _deployment_variants())
def test_the_usual_path_reads_a_deployment_as_the_careful_one_does(raw: Any) -> None:
    try:
        expected: Any = _deployment_carefully(raw, ACCOUNT)
    except ItemError as exc:
        expected = exc.args
    try:
        got: Any = parse_deployment(raw, ACCOUNT)
    except ItemError as exc:
        got = exc.args
    assert got == expected


def test_microsofts_example_deployment_takes_the_usual_path() -> None:
    raw = example("ListDeployments.response.json")[0]
    usual = _deployment_as_usual(raw, ACCOUNT)
    assert usual is not None and usual.issues == ()
    assert (usual.record.name, usual.record.model_name, usual.record.model_version, usual.record.sku_name,
            usual.record.sku_capacity, usual.record.upgrade_option) == ("deploymentName", "ada", "1", "Standard", 1,
                                                                         None)
