"""Microsoft's own example responses (tests/data/azure-examples, from the Microsoft.CognitiveServices REST spec,
2025-09-01) served verbatim by the ARM emulator for one region and one account, polled through the real pipeline
(DefaultAzureCredential, the azure-core pipeline, the store) on SQLite and PostgreSQL; the stored catalog is checked
field by field against what the JSON says. Microsoft's ListDeployments example (2025-10-01-preview, with fields newer
than the API version read) goes through the same pipeline as an account's whole deployment list."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from azure.identity import ManagedIdentityCredential
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daemon.clock import FixedClock
from daemon.collect.azure import AzureClients
from daemon.config import Config, parse_config
from daemon.emulators.arm import ArmEmulator, load_scenario
from daemon.poll import PollReport, run_poll
from daemon.report import status_rows
from daemon.store import queries
from daemon.store.schema import CatalogModelRow, DeploymentRow
from tests.conftest import TODAY
from tests.integration.world import sign_in_to

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "azure-examples"
SUB = "5a7c0f10-0000-4000-8000-00000000e001"
ACCOUNT_ID = (f"/subscriptions/{SUB}/resourceGroups/rg-examples/providers/Microsoft.CognitiveServices/accounts/"
              "contoso-ai")
LOCATION_MODELS = f"/subscriptions/{SUB}/providers/Microsoft.CognitiveServices/locations/eastus/models"


def example(name: str) -> list[Any]:
    items: list[Any] = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))["value"]
    return items


def deployment(name: str, model_format: str, model: str, version: str, sku: str,
               option: str | None = None, **model_extra: str) -> dict[str, Any]:
    properties: dict[str, Any] = {"model": {"format": model_format, "name": model, "version": version, **model_extra},
                                  "provisioningState": "Succeeded"}
    if option is not None:
        properties["versionUpgradeOption"] = option
    return {"name": name, "sku": {"name": sku, "capacity": 1}, "properties": properties}


# name, format, model, version, SKU, versionUpgradeOption (None: absent)
DEPLOYMENTS = [
    ("ptu-35", "OpenAI", "gpt-35-turbo", "0301", "ProvisionedManaged", "NoAutoUpgrade"),
    ("std-35", "OpenAI", "gpt-35-turbo", "0301", "Standard", "OnceCurrentVersionExpired"),
    ("gs-4o", "OpenAI", "gpt-4o", "2024-05-13", "GlobalStandard", "OnceNewDefaultVersionAvailable"),
    ("ft-ada", "OpenAI", "ada.1", "1", "Standard", None),
    ("dz-dalle", "OpenAI", "dall-e-3", "3.0", "DataZoneProvisionedManaged", "NoAutoUpgrade"),
    ("llama", "Meta", "Llama-3.2-90B-Vision-Instruct", "2", "GlobalStandard", None),
]


def scenario() -> dict[str, Any]:
    deployments = [deployment(*row) for row in DEPLOYMENTS]
    deployments[3]["properties"]["model"]["source"] = f"{ACCOUNT_ID}/models/ada.1"
    return load_scenario({
        "locationModels": {"eastus": example("ListLocationModels.response.json")},
        "subscriptions": [{"subscriptionId": SUB, "displayName": "examples", "accounts": [
            {"name": "contoso-ai", "resourceGroup": "rg-examples", "kind": "AIServices", "location": "eastus",
             "deployments": deployments, "models": example("ListAccountModels.response.json")}]}],
    }, TODAY)


@pytest.fixture
def arm(monkeypatch: pytest.MonkeyPatch) -> Iterator[ArmEmulator]:
    with ArmEmulator(scenario(), page_size=2) as emulator:
        sign_in_to(emulator, monkeypatch)
        yield emulator


def config_for(arm: ArmEmulator, url: str) -> Config:
    return parse_config({"database": {"url": url}, "azure": {
        "resource_manager_endpoint": arm.base_url, "ca_bundle": arm.ca_bundle_path, "max_retries": 1,
        "max_retry_after_seconds": 1, "timeout_seconds": 10}}, "<test>")


def poll(arm: ArmEmulator, url: str, clock: FixedClock, sessions: sessionmaker[Session]) -> PollReport:
    return run_poll(config_for(arm, url), clock, sessions)


COLUMNS = ("format", "kinds", "is_default_version", "lifecycle_status", "inference_retirement",
           "fine_tune_retirement", "deprecation_status", "sku_retirements", "replacement_model", "replacement_version",
           "auto_upgrade_start", "upgrade_lead_days", "base_format", "base_name", "base_version")


def stored_catalog(sessions: sessionmaker[Session]) -> dict[tuple[str, str, str], dict[str, Any]]:
    with sessions() as session:
        return {(row.scope, row.name, row.version): {column: getattr(row, column) for column in COLUMNS}
                for row in session.scalars(select(CatalogModelRow))}


def expect(format: str = "OpenAI", kinds: list[str] | None = None, default: bool = False,
           lifecycle: str | None = None, inference: date | None = None, fine_tune: date | None = None,
           status: str | None = None, skus: list[tuple[str, str | None]] | None = None,
           replacement: tuple[str, str, date, int] | None = None,
           base: tuple[str, str, str] | None = None) -> dict[str, Any]:
    model, version, start, lead = replacement or (None, None, None, None)
    base_format, base_name, base_version = base or (None, None, None)
    return {"format": format, "kinds": kinds or [], "is_default_version": default, "lifecycle_status": lifecycle,
            "inference_retirement": inference, "fine_tune_retirement": fine_tune, "deprecation_status": status,
            "sku_retirements": [{"sku": sku, "date": day} for sku, day in skus or []],
            "replacement_model": model, "replacement_version": version, "auto_upgrade_start": start,
            "upgrade_lead_days": lead, "base_format": base_format, "base_name": base_name,
            "base_version": base_version}


REGION = "location:eastus"
ACCOUNT = ACCOUNT_ID.casefold()
GPT4O_REPLACEMENT = ("gpt-4.1", "2025-04-14", date(2025, 3, 26), 7)

EXPECTED_CATALOG = {
    # ListLocationModels.response.json, item by item
    (REGION, "ada", "1"): expect(
        kinds=["OpenAI"], lifecycle="Legacy", inference=date(2024, 6, 14), fine_tune=date(2024, 6, 14),
        status="Planned", skus=[("provisioned", None)]),
    (REGION, "dall-e-3", "3.0"): expect(
        kinds=["AIServices"], default=True, lifecycle="GenerallyAvailable", inference=date(2025, 6, 30),
        status="Tentative", skus=[("Provisioned", "2025-09-30")]),
    (REGION, "gpt-35-turbo", "0301"): expect(
        kinds=["OpenAI"], lifecycle="Deprecated", inference=date(2025, 4, 30), status="Planned",
        skus=[("Provisioned", "2025-05-15"), ("Standard", "2025-02-13")]),
    (REGION, "gpt-4o", "2024-05-13"): expect(
        kinds=["OpenAI"], lifecycle="Deprecating", inference=date(2025, 9, 15), status="Tentative",
        skus=[("provisioned", None)], replacement=GPT4O_REPLACEMENT),
    (REGION, "Llama-3.2-90B-Vision-Instruct", "2"): expect(
        format="Meta", kinds=["AIServices"], lifecycle="Stable", inference=None, status=None,
        skus=[("GlobalStandard", None)]),
    (REGION, "gpt-4o", "2024-08-06"): expect(
        kinds=["OpenAI"], lifecycle="GenerallyAvailable", skus=[("provisioned", None), ("Standard", None)]),
    # ListAccountModels.response.json, item by item (read because ada.1 is not in the region's catalog)
    (ACCOUNT, "ada.1", "1"): expect(
        lifecycle="Legacy", inference=date(2024, 1, 1), fine_tune=date(2024, 1, 1), status="Planned",
        base=("OpenAI", "ada", "1")),
    (ACCOUNT, "dall-e-3", "3.0"): expect(
        default=True, lifecycle="GenerallyAvailable", inference=date(2025, 6, 30), status="Tentative"),
    (ACCOUNT, "gpt-35-turbo", "0301"): expect(
        lifecycle="Deprecated", inference=date(2025, 4, 30), status="Planned"),
    (ACCOUNT, "gpt-4o", "2024-05-13"): expect(
        lifecycle="Deprecating", inference=date(2025, 9, 15), status="Tentative", replacement=GPT4O_REPLACEMENT),
    (ACCOUNT, "Llama-3.2-90B-Vision-Instruct", "2"): expect(
        format="Meta", lifecycle="Stable", inference=None, status="Tentative"),
    (ACCOUNT, "gpt-4o", "2024-08-06"): expect(lifecycle="GenerallyAvailable"),
}


def test_the_emulator_serves_the_examples_verbatim(arm: ArmEmulator) -> None:
    config = config_for(arm, "sqlite://")
    clients = AzureClients(config.azure, ManagedIdentityCredential())
    try:
        reader = clients.arm()
        assert reader.list(LOCATION_MODELS) == example("ListLocationModels.response.json")
        assert reader.list(f"{ACCOUNT_ID}/models") == example("ListAccountModels.response.json")
        assert clients.requests.count == len(arm.requests) == 6, "every page through the counting hook"
    finally:
        clients.close()
    assert arm.count("skipToken") == 4, "both lists came in pages"
    assert all(r.query["api-version"] == ["2025-09-01"] for r in arm.requests)


def test_a_poll_stores_microsofts_catalog_field_by_field(arm: ArmEmulator, sessions: sessionmaker[Session],
                                                         database_url: str, clock: FixedClock) -> None:
    report = poll(arm, database_url, clock, sessions)
    assert report.ok, report.failures
    assert (report.subscriptions, report.accounts, report.deployments) == (1, 1, len(DEPLOYMENTS))
    assert arm.count("/accounts/contoso-ai/models") >= 1, "ada.1 is only in the account's own list"
    stored = stored_catalog(sessions)
    assert set(stored) == set(EXPECTED_CATALOG)
    for key, expected in EXPECTED_CATALOG.items():
        assert stored[key] == expected, key

    with sessions() as session:
        rows = {row.name: row for row in session.scalars(select(DeploymentRow))}
    assert {name: (row.model_format, row.model_name, row.model_version, row.sku_name, row.upgrade_option)
            for name, row in rows.items()} == {name: (fmt, model, version, sku, option)
                                               for name, fmt, model, version, sku, option in DEPLOYMENTS}
    assert rows["ft-ada"].model_source == f"{ACCOUNT_ID}/models/ada.1"
    assert all(row.removed_at is None and row.provisioning_state == "Succeeded" for row in rows.values())


def test_a_page_with_one_malformed_date_keeps_every_other_item(arm: ArmEmulator, sessions: sessionmaker[Session],
                                                               database_url: str, clock: FixedClock) -> None:
    # page 2 of the region's list holds gpt-35-turbo 0301 (item 0) and gpt-4o 2024-05-13 (item 1)
    page_2 = "/locations/eastus/models/?api-version=2025-09-01&$skipToken=2"
    arm.faults.wrong_value(page_2, ["value", 0, "model", "skus", 1, "deprecationDate"], "mid-May")
    arm.faults.wrong_value(page_2, ["value", 1, "model", "replacementConfig", "autoUpgradeStartDate"],
                           "2025-03-27")  # a date without a time part is that day, not a malformed field
    report = poll(arm, database_url, clock, sessions)
    assert [(f.operation, f.target, f.error) for f in report.failures] == [
        ("parse-field", "/providers/Microsoft.CognitiveServices/locations/eastus/models (gpt-35-turbo 0301): "
                        "skus[1].deprecationDate", "not a date: 'mid-May'")]
    stored = stored_catalog(sessions)
    assert set(stored) == set(EXPECTED_CATALOG), "every item of every page is kept"
    changed = copy.deepcopy(EXPECTED_CATALOG)
    changed[(REGION, "gpt-35-turbo", "0301")]["sku_retirements"] = [
        {"sku": "Provisioned", "date": None}, {"sku": "Standard", "date": "2025-02-13"}]
    changed[(REGION, "gpt-4o", "2024-05-13")]["auto_upgrade_start"] = date(2025, 3, 27)
    for key, expected in changed.items():
        assert stored[key] == expected, key

    arm.faults.reset()
    assert poll(arm, database_url, clock, sessions).ok
    assert stored_catalog(sessions) == EXPECTED_CATALOG, "the next clean poll restores the date"


STATUS_COLUMNS = ("consequence", "retirement_date", "date_source", "date_status", "strikes_on", "days_left", "struck",
                  "lifecycle", "replacement_model", "replacement_version", "manual_migration", "fine_tune_retirement")


def row(consequence: str, retirement: str | None, source: str | None, status: str | None, strikes: str | None,
        days_left: int | None, struck: bool, lifecycle: str, replacement: tuple[str, str] | None = None,
        manual: bool = False, fine_tune: str | None = None) -> tuple[Any, ...]:
    model, version = replacement or (None, None)
    return (consequence, retirement, source, status, strikes, days_left, struck, lifecycle, model, version, manual,
            fine_tune)


# What `retirewatch status --format json` says of each deployment on 2025-01-15, before any of the examples'
# dates, and on the suite's TODAY (2026-11-25), after all of them.
EXPECTED_STATUS = {
    date(2025, 1, 15): {
        # Family-level "Provisioned" 2025-05-15 is later than the model's 2025-04-30: the earlier applies.
        "ptu-35": row("outage", "2025-04-30", "inference", "confirmed", "2025-04-30", 105, False, "retired",
                      manual=True),
        # The exact Standard date; the catalog names no replacement and no default version: an outage.
        "std-35": row("outage", "2025-02-13", "sku", "confirmed", "2025-02-13", 29, False, "retired"),
        # OnceNewDefaultVersionAvailable with autoUpgradeStartDate ahead: auto-upgrade to gpt-4.1 on that day.
        "gs-4o": row("auto-upgrade", "2025-09-15", "inference", "tentative", "2025-03-26", 70, False, "retiring",
                     ("gpt-4.1", "2025-04-14")),
        # ada.1 has dates of its own (2024-01-01, already past): an outage that has struck.
        "ft-ada": row("outage", "2024-01-01", "inference", "confirmed", "2024-01-01", -380, True,
                      "legacy: retirement coming", fine_tune="2024-01-01"),
        "dz-dalle": row("outage", "2025-06-30", "inference", "tentative", "2025-06-30", 166, False,
                        "generally available", manual=True),
        "llama": row("none", None, None, None, None, None, False, "generally available", manual=True),
    },
    TODAY: {
        "ptu-35": row("outage", "2025-04-30", "inference", "confirmed", "2025-04-30", -574, True, "retired",
                      manual=True),
        "std-35": row("outage", "2025-02-13", "sku", "confirmed", "2025-02-13", -650, True, "retired"),
        # The auto-upgrade window opened long ago and it still runs 2024-05-13: the retirement (minus the
        # 7-day lead) is its deadline, and that has passed too.
        "gs-4o": row("forced-upgrade", "2025-09-15", "inference", "tentative", "2025-09-08", -443, True, "retiring",
                     ("gpt-4.1", "2025-04-14")),
        "ft-ada": row("outage", "2024-01-01", "inference", "confirmed", "2024-01-01", -1059, True,
                      "legacy: retirement coming", fine_tune="2024-01-01"),
        "dz-dalle": row("outage", "2025-06-30", "inference", "tentative", "2025-06-30", -513, True,
                        "generally available", manual=True),
        "llama": row("none", None, None, None, None, None, False, "generally available", manual=True),
    },
}


@pytest.mark.parametrize("day", list(EXPECTED_STATUS), ids=str)
def test_status_on_microsofts_examples(arm: ArmEmulator, sessions: sessionmaker[Session], database_url: str,
                                       clock: FixedClock, day: date) -> None:
    assert poll(arm, database_url, clock, sessions).ok
    with sessions() as session:
        rows = status_rows(queries.current_deployments(session), queries.catalog(session), day)
    got = {r.deployment: tuple(getattr(r, column) for column in STATUS_COLUMNS) for r in rows}
    assert got == EXPECTED_STATUS[day]


def listed_deployments_scenario() -> dict[str, Any]:
    """Microsoft's ListDeployments example as an account's whole deployment list, beside the region's example
    catalog (which lists its model, ada 1)."""
    return load_scenario({
        "locationModels": {"eastus": example("ListLocationModels.response.json")},
        "subscriptions": [{"subscriptionId": SUB, "displayName": "examples", "accounts": [
            {"name": "accountName", "resourceGroup": "resourceGroupName", "kind": "OpenAI", "location": "eastus",
             "deployments": example("ListDeployments.response.json")}]}],
    }, TODAY)


# ada 1 retired on 2024-06-14 (deprecation.inference, "Planned"; its only SKU date is the "no date" sentinel), with
# no replacement and no default version of ada in the catalog: on the Standard SKU with no versionUpgradeOption
# (Azure then upgrades at expiry, where it has something to upgrade to) it is an outage that has struck.
EXAMPLE_DEPLOYMENT_STATUS = {
    date(2025, 1, 15): row("outage", "2024-06-14", "inference", "confirmed", "2024-06-14", -215, True,
                           "legacy: retirement coming", fine_tune="2024-06-14"),
    TODAY: row("outage", "2024-06-14", "inference", "confirmed", "2024-06-14", -894, True,
               "legacy: retirement coming", fine_tune="2024-06-14"),
}


def test_microsofts_list_deployments_example_through_the_pipeline(monkeypatch: pytest.MonkeyPatch,
                                                                  sessions: sessionmaker[Session], database_url: str,
                                                                  clock: FixedClock) -> None:
    with ArmEmulator(listed_deployments_scenario()) as arm:
        sign_in_to(arm, monkeypatch)
        report = poll(arm, database_url, clock, sessions)
    assert report.ok, report.failures
    assert (report.accounts, report.deployments) == (1, 1)
    with sessions() as session:
        stored = session.scalars(select(DeploymentRow)).one()
        rows = {day: status_rows(queries.current_deployments(session), queries.catalog(session), day)
                for day in EXAMPLE_DEPLOYMENT_STATUS}
    item = example("ListDeployments.response.json")[0]
    assert (stored.name, stored.model_format, stored.model_name, stored.model_version, stored.sku_name,
            stored.sku_capacity, stored.provisioning_state, stored.upgrade_option) == (
        item["name"], "OpenAI", "ada", "1", "Standard", 1, "Succeeded", None)
    assert stored.arm_id.endswith("/resourceGroups/resourceGroupName/providers/Microsoft.CognitiveServices/"
                                  "accounts/accountName/deployments/deploymentName")
    for day, expected in EXAMPLE_DEPLOYMENT_STATUS.items():
        (only,) = rows[day]
        assert (only.deployment, tuple(getattr(only, column) for column in STATUS_COLUMNS)) == (
            "deploymentName", expected), day
