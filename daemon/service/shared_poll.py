"""The service's poll, shared by every replica: the leader starts it, everyone works its units.

``start``: the leader lists the subscriptions and, fenced by its epoch, records a running poll with one unit per
subscription (and the subscriptions no longer listed as gone). ``work``: any replica claims a few units, renews
its claims while it reads them from Azure, and records each one fenced by its claim token; whoever completes the
last unit finishes the poll. A replica that dies mid-unit delays that unit by ``[service] lease_seconds``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from azure.core.credentials import TokenCredential
from sqlalchemy.orm import Session, sessionmaker

from daemon.clock import Clock
from daemon.collect.azure import AzureClients
from daemon.collect.inventory import CollectError, InventoryCollector
from daemon.config import Config
from daemon.poll import observe
from daemon.records import Failure, Subscription, SubscriptionInventory
from daemon.store import lease as leases
from daemon.store import units
from daemon.store.inventory import COMPLETE, Fenced, InventoryStore, WriteResult
from daemon.store.poll_lock import poll_lock
from daemon.store.schema import PollFailureRow, PollRow
from daemon.usage import UsageRound

log = logging.getLogger("retirewatch.service")
Fence = Callable[[Session], bool]


@dataclass
class UnitsReport:
    recorded: int = 0
    lost: int = 0  # claims taken over while this replica worked (it froze, or was too slow): nothing recorded
    failures: list[Failure] = field(default_factory=list)
    finished: list[PollRow] = field(default_factory=list)  # polls this replica completed (it runs notify next)


def start(config: Config, clock: Clock, sessions: sessionmaker[Session], credential: TokenCredential | None,
          epoch: int, fence: Fence) -> int | None:
    """The leader's part: a new shared poll with its units; None when one is still running or leadership was
    lost. A failed subscription listing is a finished, failed poll."""
    with sessions() as session:
        if units.running_shared_poll(session) is not None:
            return None
    # Held from the listing to the units: a `retirewatch poll` started meanwhile waits, and while one runs the
    # leader does not even list the subscriptions (the next tick tries again).
    with poll_lock(sessions.kw["bind"], 0) as free:
        if not free:  # a one-shot `retirewatch poll` is running: its reads and the units' must not overlap
            log.info("a `retirewatch poll` holds the poll lock: the shared poll starts at a later tick",
                     extra={"event": "poll_deferred"})
            return None
        subscriptions, failure, requests = _list_subscriptions(config, credential)
        return _create(config, clock.now(), sessions, epoch, fence, subscriptions, failure, requests)


def _list_subscriptions(config: Config, credential: TokenCredential | None
                        ) -> tuple[list[Subscription], Failure | None, int]:
    clients = AzureClients(config.azure, credential)
    try:
        return InventoryCollector(clients, config.azure).subscriptions(), None, clients.requests.count
    except CollectError as exc:
        return [], Failure(None, "/subscriptions", "list-subscriptions", str(exc)), clients.requests.count
    finally:
        clients.close()


def _create(config: Config, now: datetime, sessions: sessionmaker[Session], epoch: int, fence: Fence,
            subscriptions: list[Subscription], failure: Failure | None, requests: int) -> int | None:
    """The shared poll's record and its units (the caller holds the poll lock)."""
    store = InventoryStore(sessions)
    with sessions.begin() as session:
        if not fence(session) or units.running_shared_poll(session) is not None:
            return None
        poll = PollRow(started_at=now, status="running", leader_epoch=epoch, requests=requests)
        session.add(poll)
        session.flush()
        if failure is not None:
            poll.status, poll.finished_at, poll.failures = "failed", now, 1
            session.add(PollFailureRow(poll_id=poll.id, subscription_id=None, target=failure.target,
                                       operation=failure.operation, status_code=failure.status_code,
                                       error=failure.error))
            return poll.id
        store.join_shared_poll(session, poll.id)
        poll.events = store.mark_subscriptions_gone_in(session, poll.id, now,
                                                       (s.subscription_id for s in subscriptions)) \
            if not config.azure.subscriptions else 0
        units.create(session, poll.id, subscriptions)
        if not subscriptions:
            poll.status, poll.finished_at = "ok", now
        return poll.id


def work(config: Config, clock: Clock, sessions: sessionmaker[Session], credential: TokenCredential | None,
         replica_id: str, lease: timedelta, should_stop: Callable[[], bool]) -> UnitsReport:
    """Claim and record units until none is left to take (or ``should_stop``)."""
    report = UnitsReport()
    batch = max(1, config.azure.max_concurrency // 2)
    store = InventoryStore(sessions)
    while not should_stop():
        with sessions.begin() as session:
            claims = units.claim(session, replica_id, leases.db_now(session), lease, batch)
        if not claims:
            return report
        _work_claims(config, clock, sessions, credential, store, claims, lease, should_stop, report)
    return report


def _work_claims(config: Config, clock: Clock, sessions: sessionmaker[Session], credential: TokenCredential | None,
                 store: InventoryStore, claims: Sequence[units.Claim], lease: timedelta,
                 should_stop: Callable[[], bool], report: UnitsReport) -> None:
    by_subscription = {c.subscription.subscription_id: c for c in claims}
    open_claims = dict(by_subscription)
    renewer = _Renewer(sessions, open_claims, lease)
    renewer.start()
    clients = AzureClients(config.azure, credential)
    usage = UsageRound.start(config.usage, clock.now(), sessions)
    try:
        collector = InventoryCollector(clients, config.azure, usage=usage.plan)
        for inventory in collector.collect([c.subscription for c in claims]):
            claim = by_subscription[inventory.subscription.subscription_id]
            if _record(clock, sessions, store, claim, inventory, report):
                usage.record(clock.now(), inventory)  # daily figures, replaced by day: safe to write again
            open_claims.pop(claim.subscription.subscription_id, None)
            if should_stop():
                break
    finally:
        renewer.stop()
        clients.close()
        if open_claims:
            with sessions.begin() as session:
                units.release(session, list(open_claims.values()), leases.db_now(session))


def _record(clock: Clock, sessions: sessionmaker[Session], store: InventoryStore, claim: units.Claim,
            inventory: SubscriptionInventory, report: UnitsReport) -> bool:
    now = clock.now()
    finished: list[PollRow] = []

    def guard(session: Session, written: WriteResult) -> bool:
        if not units.still_held(session, claim):
            return False
        session.add_all(PollFailureRow(poll_id=claim.poll_id, subscription_id=f.subscription_id, target=f.target,
                                       operation=f.operation, status_code=f.status_code, error=f.error)
                        for f in inventory.failures)
        units.complete(session, claim, now, {
            "accounts": written.accounts, "deployments": written.deployments,
            "catalog_models": written.catalog_models, "events": written.events, "requests": 0,
            "failures": len(inventory.failures), "catalog_scopes": sorted(written.catalog_scopes)})
        session.flush()
        done = units.finish_if_complete(session, claim.poll_id, now)
        if done is not None:
            if done.status in COMPLETE:  # as a poll in one process does: what no unit saw is missed
                store.mark_unseen_in(session, now, *units.seen(session, claim.poll_id))
            finished.append(done)
        return True

    try:
        store.record(claim.poll_id, now, inventory, observe(inventory), guard=guard)
    except Fenced:
        report.lost += 1
        log.warning("subscription %s: another replica took this unit over (this one was too slow or stopped): "
                    "recorded nothing", claim.subscription.subscription_id, extra={"event": "unit_lost"})
        return False
    report.recorded += 1
    report.failures.extend(inventory.failures)
    report.finished.extend(finished)
    return True


class _Renewer:
    """Renews the claims still open every third of the lease, on its own thread: a replica that is alive keeps
    its units however long Azure takes; one that froze or died loses them when the lease runs out."""

    def __init__(self, sessions: sessionmaker[Session], claims: dict[str, units.Claim], lease: timedelta) -> None:
        self._sessions, self._claims, self._lease = sessions, claims, lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="unit-claims", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._lease.total_seconds() / 3):
            try:
                with self._sessions.begin() as session:
                    units.renew(session, list(self._claims.values()), leases.db_now(session), self._lease)
            except Exception as exc:  # the next renewal tries again; the record's fence keeps it safe meanwhile
                log.warning("cannot renew poll-unit claims: %s", str(exc).splitlines()[0] if str(exc) else exc)
