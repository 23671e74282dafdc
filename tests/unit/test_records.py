"""Records cross from the reading process to the storing one pickled: every field arrives, nothing else."""

from __future__ import annotations

import pickle
from dataclasses import fields
from datetime import date

import pytest

from daemon.records import (
    Account,
    AccountUsage,
    CatalogModel,
    DailyUsage,
    Deployment,
    DeploymentObservation,
    Failure,
    SkuRetirement,
    Subscription,
    SubscriptionInventory,
)

DEPLOYMENT = Deployment(id="/subscriptions/s/rg/a/deployments/d", account_id="/subscriptions/s/rg/a",
                        subscription_id="s", resource_group="rg", account_name="a", location="eastus", name="d",
                        model_format="OpenAI", model_name="gpt-4o", model_version="2024-05-13",
                        sku_name="GlobalStandard", sku_capacity=10, upgrade_option="OnceNewDefaultVersionAvailable")
CATALOG = CatalogModel(scope="location:eastus", format="OpenAI", name="gpt-4o", version="2024-05-13",
                       kinds=("OpenAI", "AIServices"), inference_retirement=date(2027, 6, 13),
                       sku_retirements=(SkuRetirement("GlobalStandard", date(2027, 6, 13)),))
INVENTORY = SubscriptionInventory(
    subscription=Subscription("s", "Search", "Enabled"),
    accounts=[Account("/subscriptions/s/rg/a", "s", "rg", "a", "OpenAI", "eastus", {"team": "search"})],
    deployments={"/subscriptions/s/rg/a": [DEPLOYMENT]},
    partial_accounts={"/subscriptions/s/rg/b"},
    catalog=[CATALOG],
    catalog_scopes_read={"location:eastus"},
    failures=[Failure("s", "/subscriptions/s/rg/b", "list-deployments", "boom", 500)],
    usage={"/subscriptions/s/rg/a": AccountUsage("/subscriptions/s/rg/a", date(2026, 11, 1), date(2026, 11, 29),
                                                 (DailyUsage("d", date(2026, 11, 2), 7, None),), ("tokens",))},
)


@pytest.mark.parametrize("record", [DEPLOYMENT, CATALOG, INVENTORY, DeploymentObservation(DEPLOYMENT, True),
                                    SkuRetirement("Standard", None), Subscription("only-the-id")],
                         ids=lambda record: type(record).__name__)
def test_a_record_survives_pickling_field_for_field(record: object) -> None:
    copy = pickle.loads(pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL))
    assert type(copy) is type(record)
    assert copy == record
    for f in fields(record):  # type: ignore[arg-type]
        assert getattr(copy, f.name) == getattr(record, f.name), f.name


def test_a_record_pickles_as_its_values_not_its_dataclass_state() -> None:
    assert DEPLOYMENT.__reduce__() == (Deployment, tuple(getattr(DEPLOYMENT, f.name) for f in fields(Deployment)))
