"""SDK models -> records: the traps in Microsoft's own data, one row each."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from azure.mgmt.cognitiveservices import models as sdk

from daemon.collect.parse import (
    ParseError,
    account_record,
    as_date,
    catalog_record,
    deployment_record,
    merge_catalog,
    normalise_location,
    resource_group_of,
)
from daemon.records import SkuRetirement, location_scope

ACCOUNT_ID = "/subscriptions/s1/resourceGroups/RG-Search/providers/Microsoft.CognitiveServices/accounts/acct"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("2026-03-31T00:00:00Z", date(2026, 3, 31)),
        ("2026-03-31", date(2026, 3, 31)),
        ("2099-12-31T00:00:00Z", None),
        (datetime(2099, 12, 31, tzinfo=UTC), None),
        (datetime(2026, 10, 1, 23, 59, tzinfo=UTC), date(2026, 10, 1)),
    ],
    ids=["absent", "empty", "iso-datetime", "iso-date", "sentinel-text", "sentinel-datetime", "datetime"],
)
def test_dates(value: object, expected: date | None) -> None:
    assert as_date(value) == expected  # type: ignore[arg-type]


def test_a_date_that_is_not_a_date_is_an_error_not_a_guess() -> None:
    with pytest.raises(ParseError, match="not a date: 'soon'"):
        as_date("soon")


def test_locations_and_resource_groups() -> None:
    assert normalise_location("East US 2") == "eastus2"
    assert resource_group_of(ACCOUNT_ID) == "RG-Search"
    assert resource_group_of("/subscriptions/s1/providers/x") == ""


def test_account_and_deployment_with_absent_fields() -> None:
    account = account_record(sdk.Account(kind="OpenAI", location="Sweden Central", tags=None), "s1")
    assert (account.location, account.tags, account.resource_group) == ("swedencentral", {}, "")
    with_id = account_record(sdk.Account(kind="AIServices", location="eastus"), "s1")
    assert with_id.kind == "AIServices"
    bare = sdk.Deployment()
    bare.name = "d1"  # read-only in the SDK model, set by deserialisation in real life
    record = deployment_record(bare, account)
    assert record.model_name is None and record.sku_name is None and record.upgrade_option is None
    assert record.name == "d1"


def test_unknown_enum_text_is_kept() -> None:
    model = sdk.AccountModel(format="OpenAI", name="gpt-x", version="1", lifecycle_status="Sunsetting",
                             deprecation=sdk.ModelDeprecationInfo(inference="2026-05-01",
                                                                  deprecation_status="Rumoured"))
    record = catalog_record(model, location_scope("eastus"), "OpenAI")
    assert (record.lifecycle_status, record.deprecation_status) == ("Sunsetting", "Rumoured")
    assert record.inference_retirement == date(2026, 5, 1)


def test_same_model_under_several_kinds_is_one_model() -> None:
    def listed(kind: str, skus: list[sdk.ModelSku], default: bool | None) -> sdk.AccountModel:
        return sdk.AccountModel(format="OpenAI", name="gpt-4o", version="2024-05-13", skus=skus,
                                is_default_version=default)

    scope = location_scope("eastus")
    as_openai = catalog_record(listed("OpenAI", [sdk.ModelSku(
        name="Standard", deprecation_date=datetime(2026, 3, 31, tzinfo=UTC))], None), scope, "OpenAI")
    as_ai = catalog_record(listed("AIServices", [sdk.ModelSku(
        name="provisioned", deprecation_date=datetime(2026, 10, 1, tzinfo=UTC))], True), scope, "AIServices")
    merged = merge_catalog([as_openai, as_ai])
    assert len(merged) == 1
    model = merged[0]
    assert model.kinds == ("OpenAI", "AIServices")
    assert model.is_default_version is True
    assert set(model.sku_retirements) == {SkuRetirement("Standard", date(2026, 3, 31)),
                                          SkuRetirement("provisioned", date(2026, 10, 1))}
