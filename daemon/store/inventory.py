"""Write what a poll saw, one subscription per transaction, and record every difference as an event.

Only what was listed completely can mark things removed: an account whose deployment list failed keeps its
deployments, a catalog that could not be read keeps the last known dates. Polling twice with nothing changed
writes no events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from daemon.records import (
    Account,
    CatalogModel,
    DeploymentObservation,
    Failure,
    Subscription,
    SubscriptionInventory,
)
from daemon.store.schema import (
    AccountRow,
    CatalogModelRow,
    DeploymentRow,
    EventRow,
    PollFailureRow,
    PollRow,
    SubscriptionRow,
)

RUNNING, DIED = "running", "died"
# Told, in the transaction that marks them, which polls died (and which poll found out).
DiedHook = Callable[[Session, Sequence[PollRow], int], None]

# Deployment fields whose change is an event, and the event kind it becomes.
DEPLOYMENT_FIELD_EVENTS: Mapping[str, str] = {
    "model_format": "model_changed",
    "model_name": "model_changed",
    "model_version": "model_version_changed",
    "upgrade_option": "upgrade_option_changed",
    "sku_name": "sku_changed",
    "sku_capacity": "sku_capacity_changed",
    "provisioning_state": "provisioning_state_changed",
    "retirement_date": "retirement_date_changed",
    "deprecation_status": "date_status_changed",
    "lifecycle_status": "lifecycle_status_changed",
}
_CATALOG_FACTS = ("retirement_date", "retirement_source", "deprecation_status", "lifecycle_status")
CATALOG_FIELD_EVENTS: Mapping[str, str] = {
    "inference_retirement": "catalog_retirement_changed",
    "sku_retirements": "catalog_retirement_changed",
    "deprecation_status": "catalog_date_status_changed",
    "lifecycle_status": "catalog_lifecycle_changed",
    "replacement_model": "catalog_replacement_changed",
    "replacement_version": "catalog_replacement_changed",
    "auto_upgrade_start": "catalog_replacement_changed",
    "upgrade_lead_days": "catalog_replacement_changed",
    "is_default_version": "catalog_default_changed",
}


def arm_key(arm_id: str) -> str:
    return arm_id.casefold()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


class Fenced(Exception):
    """The write's guard refused it: this process no longer holds the work it was writing."""


@dataclass
class WriteResult:
    accounts: int = 0
    deployments: int = 0
    catalog_models: int = 0
    events: int = 0


class _EventLog:
    def __init__(self, session: Session, poll_id: int, now: datetime) -> None:
        self._session, self._poll_id, self._now = session, poll_id, now
        self.count = 0

    def add(self, subject_type: str, subject_key: str, kind: str, field: str | None = None,
            old: Any = None, new: Any = None) -> None:
        self._session.add(EventRow(poll_id=self._poll_id, occurred_at=self._now, subject_type=subject_type,
                                   subject_key=subject_key, kind=kind, field=field,
                                   old_value=_text(old), new_value=_text(new)))
        self.count += 1


class InventoryStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._catalog_written: dict[str, str] = {}  # scope -> digest written by this process's current poll

    # -- polls ---------------------------------------------------------------------------------------------------

    def start_poll(self, now: datetime, on_died: DiedHook | None = None) -> int:
        """Record a new running poll. Call it holding the poll lock (``store.poll_lock``): any other poll still
        ``running`` then belongs to a process that ended without finishing; it is marked ``died`` here, once
        (compare-and-set on its status), and ``on_died`` is told in the same transaction."""
        self._catalog_written.clear()
        with self._sessions.begin() as session:
            # A shared poll (the service's, with a leader epoch) never dies with one process: its units go on.
            died = list(session.scalars(select(PollRow).where(PollRow.status == RUNNING,
                                                              PollRow.leader_epoch.is_(None)).order_by(PollRow.id)))
            marked = []
            for row in died:
                result = session.execute(update(PollRow).where(PollRow.id == row.id, PollRow.status == RUNNING)
                                         .values(status=DIED).execution_options(synchronize_session=False))
                if getattr(result, "rowcount", 0) == 1:
                    marked.append(row)
            poll = PollRow(started_at=now, status=RUNNING)
            session.add(poll)
            session.flush()
            if marked and on_died is not None:
                on_died(session, marked, poll.id)
            return poll.id

    def record_skipped(self, now: datetime, failure: Failure) -> int:
        """A poll that did not run (another held the poll lock for too long), recorded with why."""
        with self._sessions.begin() as session:
            poll = PollRow(started_at=now, finished_at=now, status="skipped", failures=1)
            session.add(poll)
            session.flush()
            session.add(PollFailureRow(poll_id=poll.id, subscription_id=failure.subscription_id, target=failure.target,
                                       operation=failure.operation, status_code=failure.status_code,
                                       error=failure.error))
            return poll.id

    def finish_poll(self, poll_id: int, now: datetime, *, status: str, counts: Mapping[str, int],
                    failures: Sequence[Failure]) -> None:
        with self._sessions.begin() as session:
            poll = session.get_one(PollRow, poll_id)
            poll.finished_at, poll.status = now, status
            for name, value in counts.items():
                setattr(poll, name, value)
            poll.failures = len(failures)
            session.add_all(
                PollFailureRow(poll_id=poll_id, subscription_id=f.subscription_id, target=f.target,
                               operation=f.operation, status_code=f.status_code, error=f.error)
                for f in failures
            )

    def mark_subscriptions_gone(self, poll_id: int, now: datetime, seen: Iterable[str]) -> int:
        """After a complete subscription listing: subscriptions no longer listed are gone, with what they held."""
        with self._sessions.begin() as session:
            return self.mark_subscriptions_gone_in(session, poll_id, now, seen)

    @staticmethod
    def mark_subscriptions_gone_in(session: Session, poll_id: int, now: datetime, seen: Iterable[str]) -> int:
        """:meth:`mark_subscriptions_gone` inside the caller's transaction; the number of events written."""
        seen_ids = set(seen)
        events = _EventLog(session, poll_id, now)
        gone = session.scalars(select(SubscriptionRow).where(SubscriptionRow.removed_at.is_(None))).all()
        for row in gone:
            if row.subscription_id in seen_ids:
                continue
            row.removed_at = now
            events.add("subscription", row.subscription_id, "subscription_removed")
            accounts = session.scalars(select(AccountRow).where(
                AccountRow.subscription_id == row.subscription_id, AccountRow.removed_at.is_(None))).all()
            for account in accounts:
                _remove_account(session, account, now, events)
        return events.count

    # -- one subscription ----------------------------------------------------------------------------------------

    def record(self, poll_id: int, now: datetime, inventory: SubscriptionInventory,
               observations: Sequence[DeploymentObservation], *,
               guard: Callable[[Session, WriteResult], bool] | None = None) -> WriteResult:
        """Write one subscription in one transaction. ``guard`` runs last in that transaction, with what was
        written: False rolls it all back and raises :class:`Fenced` (a replica whose claim was taken over)."""
        result = WriteResult()
        with self._sessions.begin() as session:
            events = _EventLog(session, poll_id, now)
            _upsert_subscription(session, inventory.subscription, now, events)
            if inventory.accounts is not None:
                result.accounts = _sync_accounts(session, inventory.subscription.subscription_id,
                                                 inventory.accounts, now, events)
            result.deployments = _sync_deployments(session, inventory, observations, now, events)
            result.catalog_models = self._sync_catalog(session, inventory, now, events)
            result.events = events.count
            if guard is not None and not guard(session, result):
                self._catalog_written.clear()  # nothing of this transaction stays
                raise Fenced(f"subscription {inventory.subscription.subscription_id}: the claim on it was lost")
        return result

    def _sync_catalog(self, session: Session, inventory: SubscriptionInventory, now: datetime,
                      events: _EventLog) -> int:
        by_scope: dict[str, list[CatalogModel]] = {scope: [] for scope in inventory.catalog_scopes_read}
        for entry in inventory.catalog:
            by_scope.setdefault(entry.scope, []).append(entry)
        for scope, entries in by_scope.items():
            digest = _digest(entries)
            if self._catalog_written.get(scope) == digest:
                continue  # another subscription of this poll saw the same catalog for this scope
            _sync_catalog_scope(session, scope, entries, now, events)
            self._catalog_written[scope] = digest
        return len(inventory.catalog)


def _digest(entries: Sequence[CatalogModel]) -> str:
    return hashlib.sha256(repr(sorted(entries, key=lambda e: e.key)).encode()).hexdigest()


def _upsert_subscription(session: Session, subscription: Subscription, now: datetime, events: _EventLog) -> None:
    row = session.get(SubscriptionRow, subscription.subscription_id)
    if row is None:
        row = SubscriptionRow(subscription_id=subscription.subscription_id, first_seen=now)
        session.add(row)
        events.add("subscription", subscription.subscription_id, "subscription_added")
    elif row.removed_at is not None:
        events.add("subscription", subscription.subscription_id, "subscription_added")
    row.display_name = subscription.display_name or row.display_name
    row.state = subscription.state or row.state
    row.last_seen, row.removed_at = now, None


def _sync_accounts(session: Session, subscription_id: str, accounts: Sequence[Account], now: datetime,
                   events: _EventLog) -> int:
    existing = {row.key: row for row in session.scalars(
        select(AccountRow).where(AccountRow.subscription_id == subscription_id))}
    for account in accounts:
        key = arm_key(account.id)
        row = existing.pop(key, None)
        if row is None:
            row = AccountRow(key=key, first_seen=now)
            session.add(row)
            events.add("account", key, "account_added", new=account.id)
        else:
            if row.removed_at is not None:
                events.add("account", key, "account_added", new=account.id)
            if dict(row.tags or {}) != dict(account.tags):
                events.add("account", key, "account_tags_changed", "tags", _tags(row.tags), _tags(account.tags))
        row.arm_id, row.subscription_id, row.resource_group = account.id, subscription_id, account.resource_group
        row.name, row.kind, row.location, row.tags = account.name, account.kind, account.location, dict(account.tags)
        row.last_seen, row.removed_at = now, None
    for row in existing.values():
        if row.removed_at is None:
            _remove_account(session, row, now, events)
    session.flush()
    return len(accounts)


def _tags(tags: Mapping[str, str] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted((tags or {}).items()))


def _remove_account(session: Session, account: AccountRow, now: datetime, events: _EventLog) -> None:
    account.removed_at = now
    events.add("account", account.key, "account_removed", old=account.arm_id)
    for deployment in session.scalars(select(DeploymentRow).where(
            DeploymentRow.account_key == account.key, DeploymentRow.removed_at.is_(None))):
        deployment.removed_at = now
        events.add("deployment", deployment.key, "deployment_removed", old=deployment.model_version)


def _sync_deployments(session: Session, inventory: SubscriptionInventory,
                      observations: Sequence[DeploymentObservation], now: datetime, events: _EventLog) -> int:
    listed_accounts = {arm_key(account_id) for account_id in inventory.deployments
                       if account_id not in inventory.partial_accounts}
    if not inventory.deployments:
        return 0
    existing = {row.key: row for row in session.scalars(select(DeploymentRow).where(
        DeploymentRow.subscription_id == inventory.subscription.subscription_id))}
    for observation in observations:
        deployment = observation.deployment
        key = arm_key(deployment.id)
        row = existing.pop(key, None)
        values = _deployment_values(observation)
        if row is None or row.removed_at is not None:
            if row is None:
                row = DeploymentRow(key=key, first_seen=now)
                session.add(row)
            events.add("deployment", key, "deployment_added", new=deployment.model_version)
        else:
            for field, kind in DEPLOYMENT_FIELD_EVENTS.items():
                if field in values and getattr(row, field) != values[field]:
                    events.add("deployment", key, kind, field, getattr(row, field), values[field])
        for field, value in values.items():
            setattr(row, field, value)
        row.last_seen, row.removed_at = now, None
    for row in existing.values():
        if row.account_key in listed_accounts and row.removed_at is None:
            row.removed_at = now
            events.add("deployment", row.key, "deployment_removed", old=row.model_version)
    return len(observations)


def _deployment_values(observation: DeploymentObservation) -> dict[str, Any]:
    d = observation.deployment
    values: dict[str, Any] = {
        "arm_id": d.id, "account_key": arm_key(d.account_id), "subscription_id": d.subscription_id,
        "resource_group": d.resource_group, "account_name": d.account_name, "location": d.location,
        "name": d.name, "model_format": d.model_format, "model_name": d.model_name,
        "model_version": d.model_version, "model_publisher": d.model_publisher, "model_source": d.model_source,
        "sku_name": d.sku_name, "sku_capacity": d.sku_capacity, "upgrade_option": d.upgrade_option,
        "provisioning_state": d.provisioning_state,
    }
    if observation.catalog_read:
        values.update({name: getattr(observation, name) for name in _CATALOG_FACTS})
    return values


def _sync_catalog_scope(session: Session, scope: str, entries: Sequence[CatalogModel], now: datetime,
                        events: _EventLog) -> None:
    scope = scope.casefold()  # account scopes are ARM ids, stored by key like the accounts themselves
    existing = {(row.format_key, row.name_key, row.version_key): row for row in session.scalars(
        select(CatalogModelRow).where(CatalogModelRow.scope == scope))}
    for entry in entries:
        row = existing.pop(entry.key, None)
        values = _catalog_values(entry)
        if row is None:
            row = CatalogModelRow(scope=scope, format_key=entry.key[0], name_key=entry.key[1],
                                  version_key=entry.key[2], first_seen=now)
            session.add(row)
        else:
            for field, kind in CATALOG_FIELD_EVENTS.items():
                if getattr(row, field) != values[field]:
                    subject = f"{scope}|{entry.format}|{entry.name}|{entry.version}"
                    events.add("catalog_model", subject, kind, field, _jsonish(getattr(row, field)),
                               _jsonish(values[field]))
        for field, value in values.items():
            setattr(row, field, value)
        row.last_seen = now


def _jsonish(value: Any) -> Any:
    if isinstance(value, list):
        return "; ".join(f"{item.get('sku')}={item.get('date')}" for item in value)
    return value


def _catalog_values(entry: CatalogModel) -> dict[str, Any]:
    return {
        "format": entry.format, "name": entry.name, "version": entry.version, "publisher": entry.publisher,
        "kinds": list(entry.kinds), "is_default_version": entry.is_default_version,
        "lifecycle_status": entry.lifecycle_status, "inference_retirement": entry.inference_retirement,
        "fine_tune_retirement": entry.fine_tune_retirement, "deprecation_status": entry.deprecation_status,
        "sku_retirements": [
            {"sku": sku.sku_name, "date": sku.retirement_date.isoformat() if sku.retirement_date else None}
            for sku in sorted(entry.sku_retirements, key=lambda s: s.sku_name.casefold())
        ],
        "replacement_model": entry.replacement_model, "replacement_version": entry.replacement_version,
        "auto_upgrade_start": entry.auto_upgrade_start, "upgrade_lead_days": entry.upgrade_lead_days,
        "base_format": entry.base_format, "base_name": entry.base_name, "base_version": entry.base_version,
    }
