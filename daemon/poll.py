"""One inventory pass: collect -> (catalog facts per deployment) -> store, one subscription at a time."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from azure.core.credentials import TokenCredential
from sqlalchemy.orm import Session, sessionmaker

from daemon.clock import Clock
from daemon.collect.azure import AzureClients
from daemon.collect.inventory import CollectError, InventoryCollector
from daemon.config import Config
from daemon.lifecycle import CatalogIndex, deployment_retirement
from daemon.notify.ops import raise_operational
from daemon.records import DeploymentObservation, Failure, SubscriptionInventory, location_scope
from daemon.store.inventory import DiedHook, InventoryStore
from daemon.store.poll_lock import poll_lock
from daemon.store.schema import PollRow
from daemon.usage import UsageRound

log = logging.getLogger(__name__)
LOCK_WAIT_SECONDS = 900.0  # a poll waits this long for another to finish before giving up


@dataclass
class PollReport:
    poll_id: int
    subscriptions: int = 0
    accounts: int = 0
    deployments: int = 0
    catalog_models: int = 0
    events: int = 0
    requests: int = 0
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    stopped: bool = False  # asked to stop between subscriptions (the service shutting down)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.stopped


def observe(inventory: SubscriptionInventory) -> list[DeploymentObservation]:
    """Attach to each listed deployment what this poll's catalog says about its model."""
    index = CatalogIndex(inventory.catalog)
    observations = []
    for deployments in inventory.deployments.values():
        for deployment in deployments:
            model = index.find(deployment)
            read = inventory.catalog_scopes_read
            # Not found is only "no catalog facts" when both lists that could name it were read.
            catalog_read = model is not None or (
                location_scope(deployment.location) in read and deployment.account_id in read)
            retirement, source = deployment_retirement(deployment, index)
            observations.append(DeploymentObservation(
                deployment=deployment,
                catalog_read=catalog_read,
                retirement_date=retirement,
                retirement_source=source.value if source else None,
                deprecation_status=model.deprecation_status if model else None,
                lifecycle_status=model.lifecycle_status if model else None,
            ))
    return observations


def run_poll(config: Config, clock: Clock, sessions: sessionmaker[Session],
             credential: TokenCredential | None = None, *, lock_wait_seconds: float = LOCK_WAIT_SECONDS,
             should_stop: Callable[[], bool] | None = None) -> PollReport:
    """One poll, holding the poll lock: a second poll started meanwhile waits for this one, then runs.
    ``should_stop`` is asked between subscriptions (each one is stored whole or not at all)."""
    store = InventoryStore(sessions)
    with poll_lock(sessions.kw["bind"], lock_wait_seconds) as held:
        if not held:
            failure = Failure(None, "poll", "wait-for-poll", f"another poll held the poll lock for "
                              f"{lock_wait_seconds:.0f} s; this one read nothing (the next poll reads everything)")
            return PollReport(poll_id=store.record_skipped(clock.now(), failure), failures=[failure])
        return _locked_poll(config, clock, store, credential, should_stop,
                            UsageRound.start(config.usage, clock.now(), sessions))


def _report_died(config: Config, now: datetime) -> DiedHook:
    channel = config.slack.fallback_channel or config.slack.default_channel

    def report(session: Session, died: Sequence[PollRow], found_by: int) -> None:
        lines = [f"poll {row.id}, started {row.started_at:%Y-%m-%d %H:%M:%S} UTC, never finished" for row in died]
        lines.append(f"marked `died`; poll {found_by} reads everything again, nothing from a died poll is kept half")
        problem = "poll-died|" + ",".join(str(row.id) for row in died)
        raise_operational(session, channel, now, problem,
                          f"{len(died)} poll(s) stopped without finishing (killed, or the machine restarted)", lines)
        log.warning("poll(s) %s stopped without finishing: marked died", ", ".join(str(row.id) for row in died))

    return report


def _locked_poll(config: Config, clock: Clock, store: InventoryStore, credential: TokenCredential | None,
                 should_stop: Callable[[], bool] | None, usage: UsageRound) -> PollReport:
    started = clock.now()
    timer = time.monotonic()
    report = PollReport(poll_id=store.start_poll(started, on_died=_report_died(config, started)))
    clients = AzureClients(config.azure, credential)
    try:
        collector = InventoryCollector(clients, config.azure, usage=usage.plan)
        try:
            subscriptions = collector.subscriptions()
        except CollectError as exc:
            report.failures.append(Failure(None, "/subscriptions", "list-subscriptions", str(exc)))
            subscriptions = []
        else:
            if not config.azure.subscriptions:
                report.events += store.mark_subscriptions_gone(
                    report.poll_id, clock.now(), (s.subscription_id for s in subscriptions))
        for inventory in collector.collect(subscriptions):
            written = store.record(report.poll_id, clock.now(), inventory, observe(inventory))
            usage.record(clock.now(), inventory)
            report.subscriptions += 1
            report.accounts += written.accounts
            report.deployments += written.deployments
            report.catalog_models += written.catalog_models
            report.events += written.events
            report.failures.extend(inventory.failures)
            if should_stop is not None and should_stop():
                report.stopped = True
                break
    finally:
        report.requests = clients.requests.count
        clients.close()
    finished = clock.now()
    report.seconds = time.monotonic() - timer
    status = "ok" if report.ok else ("failed" if not report.subscriptions else "partial")
    store.finish_poll(
        report.poll_id, finished, status="stopped" if report.stopped else status,
        counts={"subscriptions": report.subscriptions, "accounts": report.accounts,
                "deployments": report.deployments, "catalog_models": report.catalog_models,
                "events": report.events, "requests": report.requests},
        failures=report.failures,
    )
    return report
