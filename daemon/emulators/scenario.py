"""The estate the ARM emulator serves: a JSON-compatible dict, loadable from a file, with dates relative to a day.

Format (every key not listed here is passed through to the client untouched)::

    {
      "locationModels": {                       # the regional catalog, served to every subscription
        "eastus": [{"kind": "OpenAI", "skuName": "S0", "model": AccountModel}, ...]
      },
      "subscriptions": [{
        "subscriptionId": "6f1c2a10-...",       # required
        "displayName": "contoso-prod",          # optional, default: the id
        "state": "Enabled",                     # optional, default "Enabled"
        "tenantId": "...", "tags": {...},       # optional
        "locationModels": {"eastus": [...]},    # optional: replaces the shared list of those locations only
        "accounts": [{
          "name": "search-openai-eus",          # required
          "resourceGroup": "rg-search",         # required
          "kind": "OpenAI",                     # default "OpenAI"
          "location": "eastus",                 # default "eastus"; served as written
          "tags": {"team": "search"},           # optional: absent means the account has no tags
          "sku": {"name": "S0"},                # optional, default S0
          "properties": {...},                  # optional: merged over {provisioningState, endpoint}
          "deployments": [{"name": "chat", "sku": {"name": "Standard", "capacity": 10},
                           "properties": {"model": {"format", "name", "version", "publisher"?, "source"?},
                                          "versionUpgradeOption"?: "NoAutoUpgrade", ...},
                           "usage"?: {"requests": [per-day ints], "tokens": [...], "last_day"?: "{{today}}"}}],
          "models": [AccountModel, ...]         # the account's own model list (fine-tuned models live here)
        }]
      }]
    }

``AccountModel`` is Microsoft's shape (``format``, ``name``, ``version``, ``lifecycleStatus``, ``isDefaultVersion``,
``deprecation {inference, fineTune, deprecationStatus}``, ``skus [{name, usageName, deprecationDate, capacity}]``,
``replacementConfig {targetModelName, targetModelVersion, autoUpgradeStartDate, upgradeOnExpiryLeadTimeDays}``,
``capabilities`` as strings, ...); the emulator serves it as written, so a scenario can carry every trap of the
real API (absent fields, odd casing, unknown enum values, the ``2099-12-31`` sentinel).

Relative dates: any string holding ``{{today}}``, ``{{today+N}}`` or ``{{today-N}}`` has the marker replaced by the
ISO date (``YYYY-MM-DD``) that many days from the ``today`` given to :func:`load_scenario`, so
``"{{today+23}}T00:00:00Z"`` becomes ``"2026-12-18T00:00:00Z"`` and a packaged estate never goes stale.

The helpers at the end find and change parts of a scenario in place; use them on the dict that
``ArmEmulator.update()`` yields, so the change happens under the emulator's lock.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

Scenario = dict[str, Any]

_RELATIVE = re.compile(r"\{\{\s*today\s*(?:([+-])\s*(\d+)\s*)?\}\}")
_LEFTOVER = re.compile(r"\{\{[^}]*\}\}")


class ScenarioError(ValueError):
    """A scenario the emulator cannot serve (a missing key, a wrong type, an unreadable date marker)."""


def resolve_dates(value: Any, today: date) -> Any:
    """``value`` (any JSON-compatible structure) with every ``{{today±N}}`` marker replaced; a new object."""
    if isinstance(value, str):
        return _resolve_string(value, today)
    if isinstance(value, Mapping):
        return {key: resolve_dates(item, today) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [resolve_dates(item, today) for item in value]
    return copy.deepcopy(value)


def _resolve_string(text: str, today: date) -> str:
    def replace(match: re.Match[str]) -> str:
        sign, days = match.group(1), match.group(2)
        offset = 0 if days is None else int(days) * (-1 if sign == "-" else 1)
        return (today + timedelta(days=offset)).isoformat()

    resolved = _RELATIVE.sub(replace, text)
    leftover = _LEFTOVER.search(resolved)
    if leftover:
        raise ScenarioError(f"unreadable date marker {leftover.group(0)!r} in {text!r}: "
                            "write {{today}}, {{today+N}} or {{today-N}}")
    return resolved


def load_scenario(source: str | Path | Mapping[str, Any], today: date) -> Scenario:
    """A scenario from a JSON file (path) or a dict, validated, with ``{{today±N}}`` resolved against ``today``.

    The result is a new dict: the source is never changed.
    """
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ScenarioError(f"{path}: not JSON: {exc}") from exc
    else:
        raw = source
    scenario: Scenario = resolve_dates(raw, today)
    validate(scenario)
    return scenario


def demo_estate(today: date) -> Scenario:
    """The packaged simulated estate (``estates/demo.json``) that ``retirewatch demo`` shows, dated from ``today``."""
    text = resources.files("daemon.emulators").joinpath("estates/demo.json").read_text(encoding="utf-8")
    return load_scenario(json.loads(text), today)


def validate(scenario: Any) -> None:
    """Raise :class:`ScenarioError` naming the first part of ``scenario`` the emulator could not serve."""
    if not isinstance(scenario, Mapping):
        raise ScenarioError("a scenario is a JSON object")
    _check_location_models(scenario.get("locationModels"), "locationModels")
    subscriptions = scenario.get("subscriptions", [])
    if not isinstance(subscriptions, list):
        raise ScenarioError("subscriptions: expected a list")
    seen: set[str] = set()
    for i, sub in enumerate(subscriptions):
        where = f"subscriptions[{i}]"
        if not isinstance(sub, Mapping) or not isinstance(sub.get("subscriptionId"), str) or not sub["subscriptionId"]:
            raise ScenarioError(f"{where}: needs a subscriptionId (a string)")
        if sub["subscriptionId"].casefold() in seen:
            raise ScenarioError(f"{where}: subscription {sub['subscriptionId']} is listed twice")
        seen.add(sub["subscriptionId"].casefold())
        _check_location_models(sub.get("locationModels"), f"{where}.locationModels")
        accounts = sub.get("accounts", [])
        if not isinstance(accounts, list):
            raise ScenarioError(f"{where}.accounts: expected a list")
        for j, account in enumerate(accounts):
            _check_account(account, f"{where}.accounts[{j}]")


def _check_location_models(value: Any, where: str) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping) or not all(isinstance(v, list) for v in value.values()):
        raise ScenarioError(f"{where}: expected {{location: [catalog entries]}}")


def _check_account(account: Any, where: str) -> None:
    if not isinstance(account, Mapping):
        raise ScenarioError(f"{where}: expected an object")
    for key in ("name", "resourceGroup"):
        if not isinstance(account.get(key), str) or not account[key]:
            raise ScenarioError(f"{where}: needs {key} (a string)")
    for key in ("tags", "sku", "properties"):
        if account.get(key) is not None and not isinstance(account[key], Mapping):
            raise ScenarioError(f"{where}.{key}: expected an object")
    for key in ("deployments", "models"):
        if not isinstance(account.get(key, []), list):
            raise ScenarioError(f"{where}.{key}: expected a list")
    names: set[str] = set()
    for k, deployment in enumerate(account.get("deployments", [])):
        if not isinstance(deployment, Mapping) or not isinstance(deployment.get("name"), str):
            raise ScenarioError(f"{where}.deployments[{k}]: needs a name (a string)")
        if deployment["name"].casefold() in names:
            raise ScenarioError(f"{where}.deployments[{k}]: deployment {deployment['name']} is listed twice")
        names.add(deployment["name"].casefold())
        _check_usage(deployment.get("usage"), f"{where}.deployments[{k}].usage")


def _check_usage(usage: Any, where: str) -> None:
    """Traffic for the metrics endpoint (daemon.emulators.metrics): per-day counts, the last one for ``last_day``
    (default: the day a metrics request ends on)."""
    if usage is None:
        return
    if not isinstance(usage, Mapping):
        raise ScenarioError(f"{where}: expected {{\"requests\": [per-day counts], \"tokens\": [...]}}")
    unknown = sorted(set(usage) - {"requests", "tokens", "last_day"})
    if unknown:
        raise ScenarioError(f"{where}: unknown key {unknown[0]!r} (requests, tokens and last_day are known)")
    if usage.get("last_day") is not None:
        try:
            date.fromisoformat(str(usage["last_day"]))
        except ValueError:
            raise ScenarioError(f"{where}.last_day: expected a day, YYYY-MM-DD (or {{{{today}}}})") from None
    for key in ("requests", "tokens"):
        counts = usage.get(key, [])
        if not isinstance(counts, list) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
            raise ScenarioError(f"{where}.{key}: expected a list of counts (integers >= 0), one per day")


# -- finding and changing parts of a scenario (in place) ---------------------------------------------------------------

def subscription(scenario: Scenario, subscription_id: str) -> dict[str, Any]:
    """The subscription entry with this id (case-insensitive); ``KeyError`` if there is none."""
    for sub in scenario.get("subscriptions", []):
        if str(sub["subscriptionId"]).casefold() == subscription_id.casefold():
            found: dict[str, Any] = sub
            return found
    raise KeyError(f"no subscription {subscription_id}")


def iter_accounts(scenario: Scenario) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Every (subscription, account) pair, in scenario order."""
    for sub in scenario.get("subscriptions", []):
        for account in sub.get("accounts", []):
            yield sub, account


def account(scenario: Scenario, name: str, *, subscription_id: str | None = None,
            resource_group: str | None = None) -> dict[str, Any]:
    """The one account called ``name`` (narrowed by subscription / resource group when names repeat)."""
    found = [acct for sub, acct in iter_accounts(scenario)
             if acct["name"].casefold() == name.casefold()
             and (subscription_id is None or sub["subscriptionId"].casefold() == subscription_id.casefold())
             and (resource_group is None or acct["resourceGroup"].casefold() == resource_group.casefold())]
    if len(found) != 1:
        raise KeyError(f"{len(found)} accounts match {name!r}; expected exactly one")
    return found[0]


def deployment(scenario: Scenario, account_name: str, deployment_name: str, **narrow: str) -> dict[str, Any]:
    """The deployment ``deployment_name`` of the account ``account_name``."""
    for entry in account(scenario, account_name, **narrow).get("deployments", []):
        if entry["name"].casefold() == deployment_name.casefold():
            found: dict[str, Any] = entry
            return found
    raise KeyError(f"no deployment {deployment_name!r} in account {account_name!r}")


def add_deployment(scenario: Scenario, account_name: str, entry: dict[str, Any], **narrow: str) -> None:
    """Append a deployment (``{"name", "sku", "properties"}``) to an account."""
    account(scenario, account_name, **narrow).setdefault("deployments", []).append(entry)


def remove_deployment(scenario: Scenario, account_name: str, deployment_name: str, **narrow: str) -> dict[str, Any]:
    """Delete a deployment from an account; returns what was removed."""
    owner = account(scenario, account_name, **narrow)
    removed = deployment(scenario, account_name, deployment_name, **narrow)
    owner["deployments"] = [d for d in owner.get("deployments", []) if d is not removed]
    return removed


def remove_account(scenario: Scenario, account_name: str, **narrow: str) -> dict[str, Any]:
    """Delete an account (and with it its deployments and model list); returns what was removed."""
    removed = account(scenario, account_name, **narrow)
    for sub in scenario.get("subscriptions", []):
        sub["accounts"] = [a for a in sub.get("accounts", []) if a is not removed]
    return removed


def catalog_models(scenario: Scenario, name: str, version: str | None = None) -> list[dict[str, Any]]:
    """Every ``AccountModel`` dict for this model (and version) anywhere in the scenario: the shared and
    per-subscription regional catalogs (all regions, all kinds) and the accounts' model lists.

    Change them all to move a date everywhere at once::

        with arm.update() as estate:
            for model in catalog_models(estate, "gpt-4o", "2024-05-13"):
                model["deprecation"]["inference"] = "2027-01-31T00:00:00Z"
    """
    def matches(model: Any) -> bool:
        return (isinstance(model, dict) and str(model.get("name", "")).casefold() == name.casefold()
                and (version is None or str(model.get("version", "")).casefold() == version.casefold()))

    found: list[dict[str, Any]] = []
    catalogs = [scenario.get("locationModels") or {}]
    catalogs += [sub.get("locationModels") or {} for sub in scenario.get("subscriptions", [])]
    for catalog in catalogs:
        for entries in catalog.values():
            found += [entry["model"] for entry in entries if isinstance(entry, dict) and matches(entry.get("model"))]
    for _, acct in iter_accounts(scenario):
        found += [model for model in acct.get("models", []) if matches(model)]
    return found
