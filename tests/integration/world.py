"""A small world for notify tests: the ARM and Slack emulators, a database, a clock that tests move, and the
real poll + notify pipeline between them."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import pytest
from azure.identity import ManagedIdentityCredential
from sqlalchemy.orm import Session, sessionmaker

from daemon.clock import FixedClock
from daemon.config import Config, parse_config
from daemon.emulators.arm import IDENTITY_ENV_CONFLICTS, ArmEmulator
from daemon.emulators.slack import Message, SlackEmulator
from daemon.notify.run import NotifyReport, run_notify
from daemon.notify.slack import SlackClient
from daemon.poll import PollReport, run_poll
from daemon.store import database

SUB = "11111111-2222-3333-4444-555555555555"


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 6, 0, tzinfo=UTC)


def catalog_entry(name: str, version: str, retires: date | None, *, status: str = "Planned",
                  default: bool = False, **extra: Any) -> dict[str, Any]:
    model: dict[str, Any] = {"format": "OpenAI", "name": name, "version": version, "isDefaultVersion": default,
                             "lifecycleStatus": "GenerallyAvailable", **extra}
    if retires is not None:
        model["deprecation"] = {"inference": f"{retires}T00:00:00Z", "deprecationStatus": status}
    return {"kind": "OpenAI", "skuName": "S0", "model": model}


def deployment_entry(name: str, model: str, version: str, option: str = "NoAutoUpgrade",
                     sku: str = "Standard") -> dict[str, Any]:
    return {"name": name, "sku": {"name": sku, "capacity": 1},
            "properties": {"model": {"format": "OpenAI", "name": model, "version": version},
                           "versionUpgradeOption": option, "provisioningState": "Succeeded"}}


def estate(accounts: list[dict[str, Any]], catalog: list[dict[str, Any]]) -> dict[str, Any]:
    return {"locationModels": {"eastus": catalog},
            "subscriptions": [{"subscriptionId": SUB, "displayName": "prod", "accounts": accounts}]}


def account_entry(name: str, tags: dict[str, str], deployments: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "resourceGroup": f"rg-{name}", "kind": "OpenAI", "location": "eastus", "tags": tags,
            "deployments": deployments}


@dataclass
class World:
    arm: ArmEmulator
    slack: SlackEmulator
    clock: FixedClock
    config: Config
    sessions: sessionmaker[Session]

    @property
    def today(self) -> date:
        return self.clock.now().date()

    def go_to(self, day: date) -> None:
        self.clock.set(at(day))

    def poll(self) -> PollReport:
        report = run_poll(self.config, self.clock, self.sessions, credential=ManagedIdentityCredential())
        assert report.ok, report.failures
        return report

    def notify(self, *, dry_run: bool = False) -> NotifyReport:
        client = SlackClient(self.config.slack, token=self.slack.token)
        return run_notify(self.config, self.clock, self.sessions, client, dry_run=dry_run, wait_seconds=0)

    def step(self) -> NotifyReport:
        self.poll()
        return self.notify()

    def payloads(self, channel: str | None = None) -> list[dict[str, Any]]:
        return [payload(m) for m in self.slack.messages(channel)]


def payload(message: Message) -> dict[str, Any]:
    return dict((message.metadata or {}).get("event_payload") or {})


def sign_in_to(arm: ArmEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """DefaultAzureCredential finds the emulator's managed identity endpoint, and no other source before it."""
    for name in IDENTITY_ENV_CONFLICTS:
        monkeypatch.delenv(name, raising=False)
    for name, value in arm.identity_env.items():
        monkeypatch.setenv(name, value)


PROXY_ENV = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
             "no_proxy")


def behind_proxy(monkeypatch: pytest.MonkeyPatch, proxy_url: str, *, no_proxy: str | None = None) -> None:
    """The environment names ``proxy_url`` as its HTTPS proxy (and ``no_proxy`` as NO_PROXY), and nothing else."""
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy_url)
    if no_proxy is not None:
        monkeypatch.setenv("NO_PROXY", no_proxy)


def world_config(arm: ArmEmulator, slack: SlackEmulator, url: str, **extra: Any) -> Config:
    raw: dict[str, Any] = {
        "database": {"url": url},
        "azure": {"resource_manager_endpoint": arm.base_url, "ca_bundle": arm.ca_bundle_path, "max_retries": 1},
        "slack": {"api_url": slack.api_url, "ca_bundle": slack.ca_bundle_path, "default_channel": "#ml-platform",
                  "fallback_channel": "#retirewatch-ops", "messages_per_second": 1000, "max_attempts": 3},
        "routes": [{"name": "search", "channel": "#search", "match": {"tags": {"team": "search"}},
                    "mentions": {"critical": ["<!subteam^S0SEARCH>"]}}],
        "testing": {"allow_time_travel": True},  # the world's clock is wherever each test moves it
    }
    raw.update(extra)
    return parse_config(raw, "<world>")


@contextmanager
def make_world(scenario: dict[str, Any], url: str, start: date, **extra: Any) -> Iterator[World]:
    clock = FixedClock(at(start))
    with ArmEmulator(scenario) as arm, SlackEmulator(clock=lambda: clock.now().timestamp()) as slack:
        previous = {name: os.environ.get(name) for name in arm.identity_env}
        os.environ.update(arm.identity_env)
        try:
            engine = database.open_database(url) if url.startswith("sqlite") else _migrated(url)
            yield World(arm, slack, clock, world_config(arm, slack, url, **extra), database.session_factory(engine))
            engine.dispose()
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _migrated(url: str) -> Any:
    engine = database.make_engine(url)
    database.upgrade(engine)
    return engine


def days(start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


T = TypeVar("T")


def eventually(probe: Callable[[], T | None], what: str, *, timeout: float = 15.0, every: float = 0.05,
               explain: Callable[[], str] | None = None) -> T:
    """What ``probe()`` gives once it is truthy, asked every ``every`` seconds; after ``timeout`` an AssertionError
    naming ``what`` (and saying ``explain()``: the state that kept it from happening)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{explain()}" if explain is not None else ""))
