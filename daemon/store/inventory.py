"""Write what a poll saw, one subscription per transaction, and record every difference as an event.

Only what was listed completely can mark things removed: an account whose deployment list failed keeps its
deployments, a catalog that could not be read keeps the last known dates. Polling twice with nothing changed
writes no events, and nothing else but the poll's own record.

Each subscription is one read of what is stored for it, a diff in memory, and batched Core statements: one
executemany per kind of insert or update, the events in one insert without RETURNING. ``last_seen`` moves only with
a write the row needs anyway; ``missed_since`` marks what a complete poll did not see (see ``store.schema``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, date, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Row, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from daemon.records import (
    CatalogModel,
    DeploymentObservation,
    Failure,
    Subscription,
    SubscriptionInventory,
)
from daemon.store.bulk import insert_many
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


COMPLETE = ("ok", "partial")  # polls that went through every subscription they listed


class Fenced(Exception):
    """The write's guard refused it: this process no longer holds the work it was writing."""


@dataclass
class WriteResult:
    accounts: int = 0
    deployments: int = 0
    catalog_models: int = 0
    events: int = 0
    catalog_scopes: set[str] = dataclass_field(default_factory=set)  # the catalogs the subscription listed (casefolded)


SUBSCRIPTIONS: Table = SubscriptionRow.__table__  # type: ignore[assignment]
ACCOUNTS: Table = AccountRow.__table__  # type: ignore[assignment]
DEPLOYMENTS: Table = DeploymentRow.__table__  # type: ignore[assignment]
CATALOG: Table = CatalogModelRow.__table__  # type: ignore[assignment]
EVENTS: Table = EventRow.__table__  # type: ignore[assignment]
FAILURES: Table = PollFailureRow.__table__  # type: ignore[assignment]
_CATALOG_FIELDS = ("format", "name", "version", "publisher", "kinds", "is_default_version", "lifecycle_status",
                   "inference_retirement", "fine_tune_retirement", "deprecation_status", "sku_retirements",
                   "replacement_model", "replacement_version", "auto_upgrade_start", "upgrade_lead_days",
                   "base_format", "base_name", "base_version")


def _aware(value: datetime | None) -> datetime | None:
    """SQLite gives timestamps back without their zone; they were written in UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def seen_until(last_seen: datetime | None, missed_since: datetime | None, removed_at: datetime | None,
               last_complete: datetime | None) -> datetime | None:
    """When a subscription, account or catalog entry was last seen: ``last_seen`` as written, or, for a row that
    is neither removed nor missed, the start of the latest complete poll if that is later (every complete poll
    since ``last_seen`` saw it)."""
    last_seen, last_complete = _aware(last_seen), _aware(last_complete)
    if missed_since is not None or removed_at is not None or last_complete is None or last_seen is None:
        return last_seen
    return max(last_seen, last_complete)


class _Writes:
    """What one transaction writes, gathered during the diff and sent as one executemany per statement."""

    def __init__(self, poll_id: int | None, now: datetime) -> None:
        self.poll_id, self.now = poll_id, now
        self.events: list[dict[str, Any]] = []
        self._inserts: dict[str, tuple[Table, list[dict[str, Any]]]] = {}
        self._updates: dict[tuple[str, tuple[str, ...]], tuple[Table, str, list[dict[str, Any]]]] = {}

    def event(self, subject_type: str, subject_key: str, kind: str, field: str | None = None,
              old: Any = None, new: Any = None) -> None:
        self.events.append({"poll_id": self.poll_id, "occurred_at": self.now, "subject_type": subject_type,
                            "subject_key": subject_key, "kind": kind, "field": field, "old_value": _text(old),
                            "new_value": _text(new)})

    def insert(self, table: Table, row: dict[str, Any]) -> None:
        self._inserts.setdefault(table.name, (table, []))[1].append(row)

    def update(self, table: Table, key_column: str, key: Any, values: dict[str, Any]) -> None:
        """``UPDATE table SET values WHERE key_column = key``; rows setting the same columns share a statement."""
        group = (table.name, tuple(sorted(values)))
        self._updates.setdefault(group, (table, key_column, []))[2].append({"b_key": key, **values})

    def execute(self, session: Session) -> None:
        connection = session.connection()
        for table, rows in self._inserts.values():
            insert_many(connection, table, rows)
        for table, key_column, rows in self._updates.values():
            session.execute(update(table).where(table.c[key_column] == bindparam("b_key")), rows)
        if self.events:
            insert_many(connection, EVENTS, self.events)
        self._inserts.clear()
        self._updates.clear()


class InventoryStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        # scope -> the entries this process's current poll wrote for it (the collector hands every subscription the
        # same parsed entries for the same answer: comparing them is cheap)
        self._catalog_written: dict[str, tuple[CatalogModel, ...]] = {}
        self._last_complete: datetime | None = None  # when the latest complete poll before this one started
        self._subscriptions_seen: set[str] = set()
        self._scopes_seen: set[str] = set()
        self._shared_poll: int | None = None  # the shared poll whose units this store records (service replicas)

    # -- polls ---------------------------------------------------------------------------------------------------

    def start_poll(self, now: datetime, on_died: DiedHook | None = None) -> int:
        """Record a new running poll. Call it holding the poll lock (``store.poll_lock``): any other poll still
        ``running`` then belongs to a process that ended without finishing; it is marked ``died`` here, once
        (compare-and-set on its status), and ``on_died`` is told in the same transaction."""
        self._catalog_written.clear()
        self._subscriptions_seen.clear()
        self._scopes_seen.clear()
        with self._sessions.begin() as session:
            self._last_complete = _aware(session.scalar(
                select(PollRow.started_at).where(PollRow.status.in_(COMPLETE)).order_by(PollRow.id.desc()).limit(1)))
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

    def join_shared_poll(self, session: Session, poll_id: int) -> None:
        """Before recording units of a shared poll this process did not start: what :meth:`start_poll` learns."""
        if self._shared_poll == poll_id:
            return
        self._shared_poll = poll_id
        self._catalog_written.clear()
        self._last_complete = _aware(session.scalar(
            select(PollRow.started_at).where(PollRow.status.in_(COMPLETE), PollRow.id < poll_id)
            .order_by(PollRow.id.desc()).limit(1)))

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
        """Close the poll's record. A complete poll (``ok``, ``partial``) also marks as missed what it did not see:
        subscriptions it did not read and catalog scopes it did not list (accounts and entries of what it did read
        were marked as it went)."""
        with self._sessions.begin() as session:
            values: dict[str, Any] = {"finished_at": now, "status": status, "failures": len(failures), **counts}
            session.execute(update(PollRow).where(PollRow.id == poll_id).values(values)
                            .execution_options(synchronize_session=False))
            if failures:
                session.execute(insert(FAILURES), [
                    {"poll_id": poll_id, "subscription_id": f.subscription_id, "target": f.target,
                     "operation": f.operation, "status_code": f.status_code, "error": f.error} for f in failures])
            if status in COMPLETE:
                self.mark_unseen_in(session, now, self._subscriptions_seen, self._scopes_seen)

    def mark_unseen_in(self, session: Session, now: datetime, seen: Collection[str],
                       scopes_seen: Collection[str] | None) -> None:
        """Mark as missed what a complete poll did not see: subscriptions not in ``seen`` with their accounts, and
        catalog scopes (casefolded) not in ``scopes_seen`` (None: not known, none marked). A shared poll's
        finisher passes what all its units saw."""
        writes = _Writes(None, now)
        for sub_id, last_seen in session.execute(select(SUBSCRIPTIONS.c.subscription_id, SUBSCRIPTIONS.c.last_seen)
                                                 .where(SUBSCRIPTIONS.c.removed_at.is_(None),
                                                        SUBSCRIPTIONS.c.missed_since.is_(None))):
            if sub_id not in seen:
                writes.update(SUBSCRIPTIONS, "subscription_id", sub_id, self._missed(last_seen, now))
        for key, sub_id, last_seen in session.execute(
                select(ACCOUNTS.c.key, ACCOUNTS.c.subscription_id, ACCOUNTS.c.last_seen)
                .where(ACCOUNTS.c.removed_at.is_(None), ACCOUNTS.c.missed_since.is_(None))):
            if sub_id not in seen:
                writes.update(ACCOUNTS, "key", key, self._missed(last_seen, now))
        if scopes_seen is not None:
            for row_id, scope, last_seen in session.execute(select(CATALOG.c.id, CATALOG.c.scope, CATALOG.c.last_seen)
                                                            .where(CATALOG.c.missed_since.is_(None))):
                if scope not in scopes_seen:
                    writes.update(CATALOG, "id", row_id, self._missed(last_seen, now))
        writes.execute(session)

    def _missed(self, last_seen: datetime | None, now: datetime) -> dict[str, Any]:
        """The write that marks a row this poll did not see: when it was last seen, and since when it is missed."""
        return {"last_seen": seen_until(last_seen, None, None, self._last_complete) or now, "missed_since": now}

    def _before(self, row: Row[Any]) -> datetime | None:
        """When a stored row (with ``last_seen``, ``missed_since``, ``removed_at``) was last seen before this poll."""
        return seen_until(row.last_seen, row.missed_since, row.removed_at, self._last_complete)

    def mark_subscriptions_gone(self, poll_id: int, now: datetime, seen: Iterable[str]) -> int:
        """After a complete subscription listing: subscriptions no longer listed are gone, with what they held."""
        with self._sessions.begin() as session:
            return self.mark_subscriptions_gone_in(session, poll_id, now, seen)

    def mark_subscriptions_gone_in(self, session: Session, poll_id: int, now: datetime, seen: Iterable[str]) -> int:
        """:meth:`mark_subscriptions_gone` inside the caller's transaction; the number of events written."""
        seen_ids = set(seen)
        writes = _Writes(poll_id, now)
        gone = [row for row in session.execute(select(SUBSCRIPTIONS).where(SUBSCRIPTIONS.c.removed_at.is_(None)))
                if row.subscription_id not in seen_ids]
        for row in gone:
            writes.update(SUBSCRIPTIONS, "subscription_id", row.subscription_id,
                          {"removed_at": now, "last_seen": self._before(row)})
            writes.event("subscription", row.subscription_id, "subscription_removed")
            accounts = session.execute(select(ACCOUNTS).where(ACCOUNTS.c.subscription_id == row.subscription_id,
                                                              ACCOUNTS.c.removed_at.is_(None))).all()
            deployments = _by_account(session.execute(select(DEPLOYMENTS).where(
                DEPLOYMENTS.c.subscription_id == row.subscription_id, DEPLOYMENTS.c.removed_at.is_(None))))
            for account in accounts:
                self._remove_account(account, deployments.get(account.key, []), writes)
        writes.execute(session)
        return len(writes.events)

    def _remove_account(self, account: Row[Any], deployments: Iterable[Row[Any]], writes: _Writes) -> None:
        before = self._before(account)
        writes.update(ACCOUNTS, "key", account.key, {"removed_at": writes.now, "last_seen": before})
        writes.event("account", account.key, "account_removed", old=account.arm_id)
        for deployment in deployments:
            if deployment.removed_at is None:
                self._remove_deployment(deployment, before, writes)

    @staticmethod
    def _remove_deployment(row: Row[Any], account_before: datetime | None, writes: _Writes) -> None:
        last = max(filter(None, (_aware(row.last_seen), account_before)), default=writes.now)
        writes.update(DEPLOYMENTS, "key", row.key, {"removed_at": writes.now, "last_seen": last})
        writes.event("deployment", row.key, "deployment_removed", old=row.model_version)

    # -- one subscription ----------------------------------------------------------------------------------------

    def record(self, poll_id: int, now: datetime, inventory: SubscriptionInventory,
               observations: Sequence[DeploymentObservation], *,
               guard: Callable[[Session, WriteResult], bool] | None = None) -> WriteResult:
        """Write one subscription in one transaction. ``guard`` runs last in that transaction, with what was
        written: False rolls it all back and raises :class:`Fenced` (a replica whose claim was taken over)."""
        result = WriteResult()
        sub_id = inventory.subscription.subscription_id
        with self._sessions.begin() as session:
            if guard is not None:
                self.join_shared_poll(session, poll_id)
            writes = _Writes(poll_id, now)
            self._sync_subscription(session, inventory.subscription, writes)
            accounts = {row.key: row for row in session.execute(
                select(ACCOUNTS).where(ACCOUNTS.c.subscription_id == sub_id))}
            deployments = _by_account(session.execute(  # all(): one fetch, not one per row
                select(DEPLOYMENTS).where(DEPLOYMENTS.c.subscription_id == sub_id)).all())
            before = {key: self._before(row) for key, row in accounts.items()}
            if inventory.accounts is not None:
                result.accounts = len(inventory.accounts)
            self._sync_accounts(inventory, accounts, deployments, writes)
            result.deployments = self._sync_deployments(inventory, observations, accounts, deployments, before,
                                                        writes)
            result.catalog_models = self._sync_catalog(session, inventory, writes, result)
            writes.execute(session)
            result.events = len(writes.events)
            if guard is not None and not guard(session, result):
                self._catalog_written.clear()  # nothing of this transaction stays
                raise Fenced(f"subscription {sub_id}: the claim on it was lost")
        self._subscriptions_seen.add(sub_id)
        self._scopes_seen |= result.catalog_scopes
        return result

    def _sync_subscription(self, session: Session, subscription: Subscription, writes: _Writes) -> None:
        sub_id = subscription.subscription_id
        row = session.execute(select(SUBSCRIPTIONS).where(SUBSCRIPTIONS.c.subscription_id == sub_id)).first()
        if row is None:
            writes.insert(SUBSCRIPTIONS, {"subscription_id": sub_id, "display_name": subscription.display_name,
                                          "state": subscription.state, "first_seen": writes.now,
                                          "last_seen": writes.now, "removed_at": None, "missed_since": None})
            writes.event("subscription", sub_id, "subscription_added")
            return
        if row.removed_at is not None:
            writes.event("subscription", sub_id, "subscription_added")
        values = {"display_name": subscription.display_name or row.display_name,
                  "state": subscription.state or row.state}
        if (row.removed_at is not None or row.missed_since is not None
                or any(row._mapping[name] != value for name, value in values.items())):
            writes.update(SUBSCRIPTIONS, "subscription_id", sub_id,
                          {**values, "last_seen": writes.now, "removed_at": None, "missed_since": None})

    def _sync_accounts(self, inventory: SubscriptionInventory, existing: dict[str, Row[Any]],
                       deployments: dict[str, list[Row[Any]]], writes: _Writes) -> None:
        """Accounts are seen when their deployments were listed completely; listed accounts are upserted, accounts
        no longer listed are removed with their deployments, and when the account list itself could not be read,
        every known account of the subscription is missed."""
        now = writes.now
        complete = {arm_key(account_id) for account_id in inventory.deployments
                    if account_id not in inventory.partial_accounts}
        if inventory.accounts is None:
            for stored in existing.values():
                if stored.removed_at is None and stored.missed_since is None:
                    writes.update(ACCOUNTS, "key", stored.key, self._missed(stored.last_seen, now))
            return
        listed: set[str] = set()
        for account in inventory.accounts:
            key = arm_key(account.id)
            listed.add(key)
            values: dict[str, Any] = {
                "arm_id": account.id, "subscription_id": inventory.subscription.subscription_id,
                "resource_group": account.resource_group, "name": account.name, "kind": account.kind,
                "location": account.location, "tags": dict(account.tags)}
            seen = key in complete
            row = existing.get(key)
            if row is None:
                writes.insert(ACCOUNTS, {"key": key, **values, "first_seen": now, "last_seen": now,
                                         "removed_at": None, "missed_since": None if seen else now})
                writes.event("account", key, "account_added", new=account.id)
                continue
            if row.removed_at is not None:
                writes.event("account", key, "account_added", new=account.id)
            elif dict(row.tags or {}) != values["tags"]:
                writes.event("account", key, "account_tags_changed", "tags", _tags(row.tags), _tags(account.tags))
            changed = row.removed_at is not None or any(row._mapping[name] != value for name, value in values.items())
            if seen:
                if changed or row.missed_since is not None:
                    writes.update(ACCOUNTS, "key", key,
                                  {**values, "last_seen": now, "removed_at": None, "missed_since": None})
                continue
            # listed, but its deployments were not read completely: missed (the account itself is here)
            missed: dict[str, Any] = {}
            if row.removed_at is not None:
                missed = {"last_seen": now, "missed_since": now}
            elif row.missed_since is None:
                missed = self._missed(row.last_seen, now)
            if changed or missed:
                writes.update(ACCOUNTS, "key", key, {**values, **missed, "removed_at": None})
        for key, row in existing.items():
            if key not in listed and row.removed_at is None:
                self._remove_account(row, deployments.get(key, []), writes)

    def _sync_deployments(self, inventory: SubscriptionInventory, observations: Sequence[DeploymentObservation],
                          accounts: dict[str, Row[Any]], deployments: dict[str, list[Row[Any]]],
                          before: dict[str, datetime | None], writes: _Writes) -> int:
        if not inventory.deployments:
            return 0
        now = writes.now
        listed_accounts = {arm_key(account_id) for account_id in inventory.deployments
                           if account_id not in inventory.partial_accounts}
        partial = {arm_key(account_id) for account_id in inventory.partial_accounts}
        stored = {row.key: row for account_key in {arm_key(a) for a in inventory.deployments}
                  for row in deployments.get(account_key, [])}
        observed: set[str] = set()
        for observation in observations:
            deployment = observation.deployment
            key = arm_key(deployment.id)
            if key in observed:
                continue  # listed twice: the first one counts
            observed.add(key)
            values = _deployment_values(observation)
            row = stored.get(key)
            if row is None:
                writes.insert(DEPLOYMENTS, {"key": key, **dict.fromkeys(_CATALOG_FACTS), **values, "first_seen": now,
                                            "last_seen": now, "removed_at": None})
                writes.event("deployment", key, "deployment_added", new=deployment.model_version)
                continue
            mapping = row._mapping
            if row.removed_at is not None:
                writes.event("deployment", key, "deployment_added", new=deployment.model_version)
                changed = True
            else:
                fields = _fields_of(values)
                changed = fields(mapping) != fields(values)
                if changed:
                    for field, kind in DEPLOYMENT_FIELD_EVENTS.items():
                        if field in values and mapping[field] != values[field]:
                            writes.event("deployment", key, kind, field, mapping[field], values[field])
            if changed or values["account_key"] in partial:  # a partly listed account is missed, not its listed
                writes.update(DEPLOYMENTS, "key", key, {**values, "last_seen": now, "removed_at": None})
        for account_key in listed_accounts:
            for row in deployments.get(account_key, []):
                if row.key not in observed and row.removed_at is None:
                    self._remove_deployment(row, before.get(account_key), writes)
        return len(observations)

    def _sync_catalog(self, session: Session, inventory: SubscriptionInventory, writes: _Writes,
                      result: WriteResult) -> int:
        by_scope: dict[str, list[CatalogModel]] = {scope: [] for scope in inventory.catalog_scopes_read}
        for entry in inventory.catalog:
            by_scope.setdefault(entry.scope, []).append(entry)
        for scope, entries in by_scope.items():
            result.catalog_scopes.add(scope.casefold())
            snapshot = tuple(entries)
            if self._catalog_written.get(scope) == snapshot:
                continue  # another subscription of this poll saw the same catalog for this scope
            self._sync_catalog_scope(session, scope, entries, writes)
            self._catalog_written[scope] = snapshot
        return len(inventory.catalog)

    def _sync_catalog_scope(self, session: Session, scope: str, entries: Sequence[CatalogModel],
                            writes: _Writes) -> None:
        """Listed entries are upserted (an event per changed fact); stored entries not listed are missed."""
        now = writes.now
        scope = scope.casefold()  # account scopes are ARM ids, stored by key like the accounts themselves
        existing = {(row.format_key, row.name_key, row.version_key): row for row in session.execute(
            select(CATALOG).where(CATALOG.c.scope == scope))}
        listed: set[tuple[str, str, str]] = set()
        for entry in entries:
            if entry.key in listed:
                continue
            listed.add(entry.key)
            row = existing.get(entry.key)
            values = _catalog_values(entry)
            if row is None:
                writes.insert(CATALOG, {"scope": scope, "format_key": entry.key[0], "name_key": entry.key[1],
                                        "version_key": entry.key[2], **values, "first_seen": now, "last_seen": now,
                                        "missed_since": None})
                continue
            mapping = row._mapping
            for field, kind in CATALOG_FIELD_EVENTS.items():
                if mapping[field] != values[field]:
                    subject = f"{scope}|{entry.format}|{entry.name}|{entry.version}"
                    writes.event("catalog_model", subject, kind, field, _jsonish(mapping[field]),
                                 _jsonish(values[field]))
            if row.missed_since is not None or any(mapping[field] != values[field] for field in _CATALOG_FIELDS):
                writes.update(CATALOG, "id", row.id, {**values, "last_seen": now, "missed_since": None})
        for key, row in existing.items():
            if key not in listed and row.missed_since is None:
                writes.update(CATALOG, "id", row.id, self._missed(row.last_seen, now))


def _by_account(rows: Iterable[Row[Any]]) -> dict[str, list[Row[Any]]]:
    grouped: dict[str, list[Row[Any]]] = {}
    for row in rows:
        grouped.setdefault(row.account_key, []).append(row)
    return grouped


def _tags(tags: Mapping[str, str] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted((tags or {}).items()))


_GETTERS: dict[tuple[str, ...], itemgetter[Any]] = {}  # a values dict's keys -> a getter of those fields


def _fields_of(values: dict[str, Any]) -> itemgetter[Any]:
    """A getter of ``values``' fields: a deployment's values come in two shapes (with and without the catalog
    facts), and one tuple comparison tells the usual re-poll (nothing changed) from a change."""
    keys = tuple(values)
    getter = _GETTERS.get(keys)
    if getter is None:
        getter = _GETTERS[keys] = itemgetter(*keys)
    return getter


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
