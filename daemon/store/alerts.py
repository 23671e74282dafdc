"""The outbox, the threads and the acks: how alerts are written, claimed, and recorded.

Claiming is a conditional UPDATE (``WHERE id = ? AND status/lease allow it``) that only one process can win, so
several replicas can deliver from one database without sending anything twice. Planning is claimed too: each
planner first takes the ``notify-plan`` row (INSERT ... ON CONFLICT, then an UPDATE that holds the row lock, or on
SQLite the write lock, until it commits), so planners run one after the other and each sees what the previous one
wrote. The database still refuses a second open thread for a deployment; a planner that loses that race keeps the
winner's thread and queues no first message of its own (INSERT ... ON CONFLICT DO NOTHING), instead of leaving a
thread without a first message.

A planning pass writes through a :class:`Batch`: in memory until the end, then a few multi-row statements per
``CHUNK`` rows, so the statements grow with the batches, not with the messages.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, bindparam, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from daemon.store.schema import AckRow, AlertRow, AlertStepRow, AlertThreadMemberRow, AlertThreadRow, CursorRow

log = logging.getLogger(__name__)

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"


@dataclass(frozen=True)
class NewAlert:
    key: str
    kind: str
    channel: str
    message: dict[str, Any]
    thread_id: int | None = None
    deployment_key: str | None = None
    stage: str | None = None
    deadline: date | None = None
    is_parent: bool = False
    broadcast: bool = False
    # The deployments whose escalation ``stage`` this message tells (a grouped message tells several); default: the
    # one it is about.
    told: tuple[str, ...] = ()

    @property
    def told_keys(self) -> tuple[str, ...]:
        return self.told or ((self.deployment_key,) if self.deployment_key else ())


def enqueue(session: Session, alert: NewAlert, now: datetime) -> bool:
    """Add ``alert`` unless one with its key exists; True when added. Safe against a concurrent planner."""
    if session.scalar(select(AlertRow.id).where(AlertRow.key == alert.key)) is not None:
        return False
    row = AlertRow(key=alert.key, kind=alert.kind, channel=alert.channel, message=alert.message,
                   thread_id=alert.thread_id, deployment_key=alert.deployment_key, stage=alert.stage,
                   deadline=alert.deadline, is_parent=alert.is_parent, broadcast=alert.broadcast,
                   status=PENDING, attempts=0, created_at=now, next_attempt_at=now)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return False
    return True


def existing_keys(session: Session, prefixes: Iterable[str] = ()) -> set[str]:
    query = select(AlertRow.key)
    wanted = list(prefixes)
    if wanted:
        query = query.where(or_(*(AlertRow.key.startswith(prefix, autoescape=True) for prefix in wanted)))
    return set(session.scalars(query))


def open_thread_of(session: Session, deployment_key: str) -> AlertThreadRow | None:
    """The open thread the deployment is in (its own, or a group's), if it is in one."""
    member_of = (select(AlertThreadMemberRow.thread_id)
                 .where(AlertThreadMemberRow.deployment_key == deployment_key, AlertThreadMemberRow.left_at.is_(None)))
    return session.scalars(select(AlertThreadRow).where(
        AlertThreadRow.closed_at.is_(None),
        or_(AlertThreadRow.id.in_(member_of),
            and_(AlertThreadRow.deployment_key == deployment_key, AlertThreadRow.grouped.is_(False))))
        .order_by(AlertThreadRow.id)).first()


def find_thread(session: Session, thread_id: int) -> AlertThreadRow | None:
    return session.get(AlertThreadRow, thread_id)


def get_thread(session: Session, thread_id: int) -> AlertThreadRow:
    """The thread ``thread_id``, which must exist."""
    return session.get_one(AlertThreadRow, thread_id)


def get_alert(session: Session, alert_id: int) -> AlertRow:
    """The outbox row ``alert_id``, which must exist."""
    return session.get_one(AlertRow, alert_id)


@dataclass(frozen=True)
class FirstMessage:
    """Where a thread's first message stands: its status, and where Slack put it once sent."""

    status: str
    channel_id: str | None
    ts: str | None


def first_message(session: Session, thread_id: int) -> FirstMessage | None:
    """The thread's first message (the oldest parent row), or None when it has none."""
    row = session.execute(
        select(AlertRow.status, AlertRow.channel_id, AlertRow.ts)
        .where(AlertRow.thread_id == thread_id, AlertRow.is_parent.is_(True)).order_by(AlertRow.id).limit(1)
    ).first()
    return None if row is None else FirstMessage(row.status, row.channel_id, row.ts)


def latest_acks(session: Session) -> dict[tuple[str, date | None], AckRow]:
    """The newest ack per (deployment, deadline)."""
    acks: dict[tuple[str, date | None], AckRow] = {}
    for row in session.scalars(select(AckRow).order_by(AckRow.id)):
        acks[(row.deployment_key, row.deadline)] = row
    return acks


def ack_in_force(session: Session, deployment_key: str, deadline: date | None) -> AckRow | None:
    """The newest ack of the deployment's ``deadline``, if any."""
    return session.scalars(select(AckRow).where(AckRow.deployment_key == deployment_key, AckRow.deadline == deadline)
                           .order_by(AckRow.id.desc()).limit(1)).first()


def add_ack(session: Session, ack: AckRow) -> None:
    """Record ``ack`` (flushed, so it counts in :func:`ack_count` at once)."""
    session.add(ack)
    session.flush()


def add_acks(session: Session, acks: Sequence[AckRow]) -> None:
    """Record ``acks`` (one flush)."""
    session.add_all(acks)
    session.flush()


def ack_count(session: Session, deployment_key: str) -> int:
    """How many acks the deployment has had, over all its deadlines."""
    return len(session.scalars(select(AckRow.id).where(AckRow.deployment_key == deployment_key)).all())


def cursor(session: Session, name: str) -> int:
    row = session.get(CursorRow, name)
    return row.value if row else 0


def set_cursor(session: Session, name: str, value: int) -> None:
    """Move the cursor forward to ``value`` (never back): created with INSERT ... ON CONFLICT DO NOTHING, moved with
    a compare-and-set, so two processes at once cannot collide on a missing row or move it backwards."""
    _insert_ignore(session, name, value)
    session.execute(update(CursorRow).where(CursorRow.name == name, CursorRow.value < value).values(value=value)
                    .execution_options(synchronize_session=False))


PLANNING = "notify-plan"


def claim_planning(session: Session) -> None:
    """Take the planning claim for this transaction: a second planner waits here until the first commits (row lock
    on PostgreSQL, the write lock on SQLite), then plans from what the first wrote. Call it before reading."""
    _insert_ignore(session, PLANNING, 0)
    session.execute(update(CursorRow).where(CursorRow.name == PLANNING).values(value=CursorRow.value + 1)
                    .execution_options(synchronize_session=False))


def _insert_ignore(session: Session, name: str, value: int) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(CursorRow).values(name=name, value=value).on_conflict_do_nothing(index_elements=["name"]))


def stale_pending(session: Session, created_before: datetime, exclude_kinds: Sequence[str] = ()) -> list[AlertRow]:
    """Rows still unsent (pending or sending) that were queued before ``created_before`` and not yet reported."""
    query = (select(AlertRow).where(AlertRow.status.in_((PENDING, SENDING)), AlertRow.created_at < created_before,
                                    AlertRow.pending_alarm_at.is_(None))
             .order_by(AlertRow.id))
    if exclude_kinds:
        query = query.where(AlertRow.kind.not_in(list(exclude_kinds)))
    return list(session.scalars(query))


# -- delivery ---------------------------------------------------------------------------------------------------


def due_ids(session: Session, now: datetime, limit: int = 500) -> list[int]:
    """Rows ready to send (pending and due) or abandoned mid-send (lease expired), oldest first."""
    query = (select(AlertRow.id)
             .where(or_(and_(AlertRow.status == PENDING, AlertRow.next_attempt_at <= now),
                        and_(AlertRow.status == SENDING, AlertRow.lease_until < now)))
             .order_by(AlertRow.id).limit(limit))
    return list(session.scalars(query))


def claim(session: Session, alert_id: int, now: datetime, lease: timedelta) -> tuple[AlertRow, datetime | None] | None:
    """Take the row for one delivery attempt, or None when another process has it (or it is done).

    Also returns when the previous attempt started if its outcome is unknown (the process died or the request
    timed out after it may have reached Slack): the caller must look for the message before sending again."""
    previous = session.scalar(select(AlertRow.attempt_started_at).where(AlertRow.id == alert_id))
    result = session.execute(
        update(AlertRow)
        .where(AlertRow.id == alert_id,
               or_(and_(AlertRow.status == PENDING, AlertRow.next_attempt_at <= now),
                   and_(AlertRow.status == SENDING, AlertRow.lease_until < now)))
        .values(status=SENDING, lease_until=now + lease, attempts=AlertRow.attempts + 1, attempt_started_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return None
    return session.get_one(AlertRow, alert_id, populate_existing=True), previous


def next_due_at(session: Session) -> datetime | None:
    """When the earliest pending row falls due (None: nothing is pending)."""
    upcoming = session.query(AlertRow.next_attempt_at).filter(
        AlertRow.status == PENDING).order_by(AlertRow.next_attempt_at).first()
    return None if upcoming is None else upcoming[0]


def pending_count(session: Session) -> int:
    return len(list(session.scalars(select(AlertRow.id).where(AlertRow.status.in_((PENDING, SENDING))))))


def list_alerts(session: Session, statuses: Sequence[str] = ()) -> Sequence[AlertRow]:
    query = select(AlertRow).order_by(AlertRow.id)
    if statuses:
        query = query.where(AlertRow.status.in_(list(statuses)))
    return session.scalars(query).all()


def failed_alerts(session: Session) -> list[AlertRow]:
    return list(session.scalars(select(AlertRow).where(AlertRow.status == FAILED)))


def alerts_named(session: Session, key: str) -> list[AlertRow]:
    """The rows whose key is ``key``, or whose id is ``key`` when it is a number."""
    wanted = [AlertRow.key == key] + ([AlertRow.id == int(key)] if key.isdigit() else [])
    return list(session.scalars(select(AlertRow).where(or_(*wanted))))


def last_alert_id(session: Session) -> int | None:
    """The newest row's id (None: the outbox is empty)."""
    return session.scalar(select(AlertRow.id).order_by(AlertRow.id.desc()).limit(1))


def alerts_from(session: Session, first_id: int) -> Sequence[AlertRow]:
    """Rows with an id of ``first_id`` or later, oldest first."""
    return session.scalars(select(AlertRow).where(AlertRow.id >= first_id).order_by(AlertRow.id)).all()


def alert_status(session: Session, key: str) -> str | None:
    """The status of the row keyed ``key`` (None: there is none)."""
    return session.scalar(select(AlertRow.status).where(AlertRow.key == key))


def alerts_by_key(session: Session, keys: Iterable[str]) -> dict[str, AlertRow]:
    """The rows keyed by any of ``keys``, by key."""
    return {row.key: row for row in session.scalars(select(AlertRow).where(AlertRow.key.in_(list(keys))))}


def stage_alert_since(session: Session, deployment_key: str, deadline: date | None, since: datetime) -> bool:
    """Whether a stage alert about the deployment's ``deadline`` was queued after ``since`` (e.g. an unsilenceable
    stage that broke through an ack)."""
    return session.scalar(select(AlertRow.id).where(
        AlertRow.deployment_key == deployment_key, AlertRow.deadline == deadline, AlertRow.stage.is_not(None),
        AlertRow.created_at > since).limit(1)) is not None


def sent_message_at(session: Session, channel_id: str, ts: str) -> dict[str, Any] | None:
    """The message (text, blocks, metadata) as last sent to Slack at ``channel_id``/``ts``: the newest sent row
    there, which for a thread's first message is its latest edit. None when it is not one of ours."""
    return session.scalar(select(AlertRow.message).where(
        AlertRow.channel_id == channel_id, AlertRow.ts == ts, AlertRow.status == SENT)
        .order_by(AlertRow.id.desc()).limit(1))
# -- delivery, one lane per channel -----------------------------------------------------------------------------


def _ready(now: datetime) -> ColumnElement[bool]:
    """Ready to send (pending and due) or abandoned mid-send (lease expired): what :func:`due_ids` selects."""
    return or_(and_(AlertRow.status == PENDING, AlertRow.next_attempt_at <= now),
               and_(AlertRow.status == SENDING, AlertRow.lease_until < now))


def due_channels(session: Session, now: datetime) -> list[str]:
    """The channels (as queued) that have rows ready to send, the one whose oldest ready row is oldest first."""
    oldest = func.min(AlertRow.id)
    query = select(AlertRow.channel, oldest).where(_ready(now)).group_by(AlertRow.channel).order_by(oldest)
    return [row[0] for row in session.execute(query)]


def due_ids_in(session: Session, channels: Sequence[str], now: datetime, limit: int = 100) -> list[int]:
    """The rows of ``channels`` ready to send, oldest first (as :func:`due_ids`, for one channel's lane)."""
    query = (select(AlertRow.id).where(AlertRow.channel.in_(list(channels)), _ready(now))
             .order_by(AlertRow.id).limit(limit))
    return list(session.scalars(query))


def next_due_by_channel(session: Session) -> dict[str, datetime]:
    """When each channel's earliest pending row falls due (channels with nothing pending are absent)."""
    query = (select(AlertRow.channel, func.min(AlertRow.next_attempt_at)).where(AlertRow.status == PENDING)
             .group_by(AlertRow.channel))
    return {row[0]: row[1] for row in session.execute(query)}


# -- planning in bulk: reads of the current deadlines only, writes in a few statements per CHUNK rows ---------------

CHUNK = 500  # rows or keys per statement: far below SQLite's 32,766 and PostgreSQL's 65,535 bound parameters
_T = TypeVar("_T")
Deadline = tuple[str, date | None]  # (deployment key, the deadline's date or None)


def chunks(items: Iterable[_T], size: int = CHUNK) -> Iterator[list[_T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


@dataclass
class ThreadState:
    """An open thread as the planner sees it: a plain copy, changed only through the :class:`Batch`."""

    id: int
    key: str  # the deployment's key; a grouped thread's: the group's key
    channel: str
    deadline: date | None
    consequence: str
    stage: str | None
    parent_key: str | None  # the key of its first message (None: it has none)
    grouped: bool = False
    members: set[str] = field(default_factory=set)  # deployment keys that have not left
    closed: bool = False  # closed by this pass


def open_threads(session: Session) -> dict[int, ThreadState]:
    """Every open thread by id, with its members and the key of its first message: three statements."""
    is_open = AlertThreadRow.closed_at.is_(None)
    open_ids = select(AlertThreadRow.id).where(is_open)
    parents: dict[int, str] = {}
    for thread_id, key in session.execute(
            select(AlertRow.thread_id, AlertRow.key)
            .where(AlertRow.is_parent.is_(True), AlertRow.thread_id.in_(open_ids)).order_by(AlertRow.id.desc())):
        if thread_id is not None:
            parents[thread_id] = key  # the oldest wins
    members: dict[int, set[str]] = defaultdict(set)
    for thread_id, key in session.execute(
            select(AlertThreadMemberRow.thread_id, AlertThreadMemberRow.deployment_key)
            .where(AlertThreadMemberRow.left_at.is_(None), AlertThreadMemberRow.thread_id.in_(open_ids))):
        members[thread_id].add(key)
    threads = {}
    for row in session.execute(select(AlertThreadRow.id, AlertThreadRow.deployment_key, AlertThreadRow.channel,
                                      AlertThreadRow.deadline, AlertThreadRow.consequence, AlertThreadRow.stage,
                                      AlertThreadRow.grouped).where(is_open)):
        # A single thread is about its deployment even where no member row says so (written before members were)
        who = members.get(row.id) or (set() if row.grouped else {row.deployment_key})
        threads[row.id] = ThreadState(row.id, row.deployment_key, row.channel, row.deadline, row.consequence,
                                      row.stage, parents.get(row.id), row.grouped, who)
    return threads


def _by_deadline(wanted: Collection[Deadline]) -> Iterator[tuple[list[str], set[date | None]]]:
    """The wanted (key, deadline) pairs in chunks: the chunk's keys and the deadlines they have."""
    for chunk in chunks(wanted):
        yield [key for key, _ in chunk], {deadline for _, deadline in chunk}


def _among(column: Any, values: Sequence[Any]) -> Any:
    """``column IN (...)`` with the values written into the statement: PostgreSQL then hashes the list (a lookup per
    row, not a comparison with each value), which a list of bound parameters does not get."""
    return column.in_(bindparam(f"among_{column.key}", list(values), expanding=True, literal_execute=True))


def _deadline_is(column: Any, deadlines: set[date | None]) -> Any:
    dated = [d for d in deadlines if d is not None]
    clauses = [_among(column, dated)] if dated else []
    if None in deadlines:
        clauses.append(column.is_(None))
    return or_(*clauses)


def sent_steps(session: Session, deadlines: Iterable[Deadline]) -> dict[Deadline, set[str]]:
    """The escalation step keys already told for each of ``deadlines`` (a deployment's key and the deadline it has
    today), alone or in a group: only those rows of ``alert_steps`` are read, one statement per CHUNK deadlines."""
    wanted = set(deadlines)
    found: dict[Deadline, set[str]] = defaultdict(set)
    for keys, dates in _by_deadline(wanted):
        for key, deadline, step in session.execute(
                select(AlertStepRow.deployment_key, AlertStepRow.deadline, AlertStepRow.step)
                .where(_among(AlertStepRow.deployment_key, keys), _deadline_is(AlertStepRow.deadline, dates))):
            if (key, deadline) in wanted:
                found[(key, deadline)].add(step)
    return found


def acks_for(session: Session, deadlines: Iterable[Deadline]) -> dict[Deadline, AckRow]:
    """The newest ack of each of ``deadlines`` that has one, one statement per CHUNK deadlines."""
    wanted = set(deadlines)
    found: dict[Deadline, AckRow] = {}
    for keys, dates in _by_deadline(wanted):
        for row in session.scalars(select(AckRow).where(_among(AckRow.deployment_key, keys),
                                                        _deadline_is(AckRow.deadline, dates)).order_by(AckRow.id)):
            if (row.deployment_key, row.deadline) in wanted:
                found[(row.deployment_key, row.deadline)] = row
    return found


def mark_alarmed(session: Session, alert_ids: Iterable[int], now: datetime) -> None:
    """Remember that these unsent rows were reported as stuck (one statement per CHUNK rows)."""
    for chunk in chunks(alert_ids):
        session.execute(update(AlertRow).where(AlertRow.id.in_(chunk)).values(pending_alarm_at=now)
                        .execution_options(synchronize_session=False))


@dataclass(frozen=True)
class NewThread:
    deployment_key: str  # a grouped thread's: the group's key
    channel: str
    deadline: date | None
    consequence: str
    stage: str | None
    grouped: bool = False
    members: tuple[str, ...] = ()  # default: the deployment itself

    @property
    def member_keys(self) -> tuple[str, ...]:
        return self.members or (self.deployment_key,)


_THREAD_COLUMNS = {"key": "deployment_key"}  # ThreadState names that differ from the column's


@dataclass
class Batch:
    """The writes of one planning pass, held in memory and written by :meth:`flush` in a few statements per CHUNK
    rows: no savepoint and no look-up per message. INSERT ... ON CONFLICT DO NOTHING keeps the guarantees the
    one-by-one writes had: an outbox key is written once, and a thread refused by the one-open-thread index (a
    planner that got there first) is not opened, nor is its first message queued.

    Order: members leave, threads close and change first (so a deployment that moves on may join another thread,
    and a group key freed may be taken again, in the same pass without meeting the unique indexes), then new
    threads with their members, members that join, and the outbox with the steps each message told
    (``alert_steps``)."""

    session: Session
    now: datetime
    _alerts: dict[str, NewAlert] = field(default_factory=dict)
    _threads: dict[str, tuple[NewThread, NewAlert]] = field(default_factory=dict)
    _updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    _joins: list[tuple[int, str]] = field(default_factory=list)
    _leaves: list[tuple[int, str, str]] = field(default_factory=list)

    def enqueue(self, alert: NewAlert) -> None:
        """Queue ``alert`` unless this batch or the outbox already holds its key."""
        self._alerts.setdefault(alert.key, alert)

    def open_thread(self, thread: NewThread, first: NewAlert) -> None:
        """Open ``thread`` with its first message (whose ``thread_id`` is filled in when the thread is written)."""
        self._threads.setdefault(thread.deployment_key, (thread, first))

    def update_thread(self, thread: ThreadState, **changes: Any) -> None:
        """Change an open thread: ``stage``, ``deadline``, ``key``, or close it (``closed_at``, ``close_reason``:
        its members leave with it)."""
        for name, value in changes.items():
            if hasattr(thread, name):
                setattr(thread, name, value)
        if "closed_at" in changes:
            thread.closed = True
        self._updates.setdefault(thread.id, {}).update(
            {_THREAD_COLUMNS.get(name, name): value for name, value in changes.items()})

    def join(self, thread: ThreadState, keys: Iterable[str]) -> None:
        for key in keys:
            thread.members.add(key)
            self._joins.append((thread.id, key))

    def leave(self, thread: ThreadState, keys: Iterable[str], reason: str) -> None:
        for key in keys:
            thread.members.discard(key)
            self._leaves.append((thread.id, key, reason))

    def flush(self) -> list[NewAlert]:
        """Write everything; returns the messages that were added (not already in the outbox)."""
        self._write_leaves()
        self._write_updates()
        alerts = list(self._alerts.values())
        alerts += self._write_threads()
        self._write_members(self._joins)
        added = self._write_alerts(alerts)
        self._alerts, self._threads, self._updates, self._joins, self._leaves = {}, {}, {}, [], []
        return added

    def _write_leaves(self) -> None:
        leaving = (update(AlertThreadMemberRow)
                   .where(AlertThreadMemberRow.thread_id == bindparam("b_thread"),
                          AlertThreadMemberRow.deployment_key == bindparam("b_key"),
                          AlertThreadMemberRow.left_at.is_(None))
                   .values(left_at=self.now, left_reason=bindparam("b_reason"))
                   .execution_options(synchronize_session=False))
        for chunk in chunks(self._leaves):
            self.session.connection().execute(leaving, [{"b_thread": thread_id, "b_key": key, "b_reason": reason}
                                                        for thread_id, key, reason in chunk])
        closing = (update(AlertThreadMemberRow)
                   .where(AlertThreadMemberRow.thread_id == bindparam("b_thread"),
                          AlertThreadMemberRow.left_at.is_(None))
                   .values(left_at=self.now, left_reason=bindparam("b_reason"))
                   .execution_options(synchronize_session=False))
        closed = [(thread_id, changes.get("close_reason")) for thread_id, changes in self._updates.items()
                  if "closed_at" in changes]
        for batch in chunks(closed):
            self.session.connection().execute(closing, [{"b_thread": thread_id, "b_reason": reason}
                                                        for thread_id, reason in batch])

    def _write_threads(self) -> list[NewAlert]:
        if not self._threads:
            return []
        rows = [{"deployment_key": t.deployment_key, "channel": t.channel, "deadline": t.deadline,
                 "consequence": t.consequence, "stage": t.stage, "opened_at": self.now, "grouped": t.grouped}
                for t, _ in self._threads.values()]
        opened: dict[str, int] = dict(self._insert(AlertThreadRow, rows, ("deployment_key", "id")))
        lost = [key for key in self._threads if key not in opened]
        if lost:  # another planner opened them, with their first messages: the next run carries on from there
            log.info("%d thread(s) were opened by another planner: %s", len(lost), ", ".join(lost[:5]))
        self._write_members([(opened[key], member) for key, (thread, _) in self._threads.items() if key in opened
                             for member in thread.member_keys])
        return [_with_thread(first, opened[key]) for key, (_, first) in self._threads.items() if key in opened]

    def _write_members(self, members: list[tuple[int, str]]) -> None:
        if not members:
            return
        rows = [{"thread_id": thread_id, "deployment_key": key, "joined_at": self.now} for thread_id, key in members]
        written = len(self._insert(AlertThreadMemberRow, rows, ("id",)))
        if written < len(rows):  # in another open thread already (a concurrent planner): it stays there
            log.info("%d deployment(s) are in another open thread already", len(rows) - written)

    def _write_alerts(self, alerts: list[NewAlert]) -> list[NewAlert]:
        if not alerts:
            return []
        rows = [{"key": a.key, "kind": a.kind, "channel": a.channel, "message": a.message, "thread_id": a.thread_id,
                 "deployment_key": a.deployment_key, "stage": a.stage, "deadline": a.deadline,
                 "is_parent": a.is_parent, "broadcast": a.broadcast, "status": PENDING, "attempts": 0,
                 "created_at": self.now, "next_attempt_at": self.now} for a in alerts]
        new: dict[str, int] = dict(self._insert(AlertRow, rows, ("key", "id"), conflict=("key",)))
        added = [alert for alert in alerts if alert.key in new]
        steps = [{"deployment_key": key, "deadline": alert.deadline, "step": alert.stage, "alert_id": new[alert.key]}
                 for alert in added if alert.stage is not None for key in alert.told_keys]
        if steps:
            self._insert(AlertStepRow, steps, ("id",), conflict=None)
        return added

    def _write_updates(self) -> None:
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for thread_id, changes in self._updates.items():
            by_columns[tuple(sorted(changes))].append({"id": thread_id, **changes})
        for columns, rows in by_columns.items():
            statement = (update(AlertThreadRow).where(AlertThreadRow.id == bindparam("thread_id"))
                         .values({name: bindparam(f"new_{name}") for name in columns})
                         .execution_options(synchronize_session=False))
            for chunk in chunks(rows):
                self.session.connection().execute(statement, [
                    {"thread_id": row["id"], **{f"new_{name}": row[name] for name in columns}} for row in chunk])

    def _insert(self, entity: Any, rows: list[dict[str, Any]], returning: tuple[str, ...], *,
                conflict: tuple[str, ...] | None = ()) -> list[Any]:
        """INSERT ``rows`` into ``entity``'s table, CHUNK rows per statement, skipping rows a unique index refuses
        (``conflict``: the index's columns; ``()``: any unique index; None: no such rows); ``returning``'s
        columns of the rows written.

        On PostgreSQL each chunk is one parameter, a JSON array the server unpacks (``json_populate_recordset``):
        thousands of bound parameters would cost the driver more to parse than the server to insert. On SQLite,
        SQLAlchemy's insertmanyvalues writes multi-row statements of the same size."""
        table = entity.__table__
        if self.session.get_bind().dialect.name == "postgresql":
            names = ", ".join(rows[0])
            on_conflict = "" if conflict is None else \
                f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING" if conflict else " ON CONFLICT DO NOTHING"
            statement = text(f"INSERT INTO {table.name} ({names}) SELECT {names} FROM "  # our own table and columns
                             f"json_populate_recordset(NULL::{table.name}, CAST(:rows AS json)) WITH ORDINALITY AS r "
                             f"ORDER BY r.ordinality{on_conflict} RETURNING {', '.join(returning)}")
            found: list[Any] = []
            for chunk in chunks(rows):
                rows_json = json.dumps(chunk, default=str, ensure_ascii=False)
                found += self.session.execute(statement, {"rows": rows_json}).all()
            return found
        insert = sqlite.insert(entity)
        if conflict is not None:
            insert = insert.on_conflict_do_nothing(index_elements=list(conflict) or None)
        many = insert.returning(*(table.c[name] for name in returning))
        return list(self.session.connection().execute(many, rows,
                                                      execution_options={"insertmanyvalues_page_size": CHUNK}))


def _with_thread(alert: NewAlert, thread_id: int) -> NewAlert:
    return replace(alert, thread_id=thread_id)


# -- threads and groups, one at a time (ack) ----------------------------------------------------------------------


def thread_members(session: Session, thread_id: int) -> list[str]:
    """The deployment keys of the thread's members that have not left, in the order they joined."""
    return list(session.scalars(select(AlertThreadMemberRow.deployment_key)
                                .where(AlertThreadMemberRow.thread_id == thread_id,
                                       AlertThreadMemberRow.left_at.is_(None)).order_by(AlertThreadMemberRow.id)))


def open_grouped_threads(session: Session) -> list[AlertThreadRow]:
    """Every open grouped thread."""
    return list(session.scalars(select(AlertThreadRow).where(AlertThreadRow.closed_at.is_(None),
                                                             AlertThreadRow.grouped.is_(True))))


def acks_count(session: Session, deployment_keys: Collection[str], deadline: date | None) -> int:
    """How many acks these deployments have had for ``deadline``."""
    wanted = list(deployment_keys)
    total = 0
    for chunk in chunks(wanted):
        total += len(session.scalars(select(AckRow.id).where(AckRow.deployment_key.in_(chunk),
                                                              _deadline_is(AckRow.deadline, {deadline}))).all())
    return total


def every_sent_step(session: Session) -> list[tuple[str, date | None, str]]:
    """(deployment key, deadline, step key) of every escalation step ever told, alone or in a group (the forecast
    starts from all of them; the planner reads only today's, with :func:`sent_steps`)."""
    rows = session.execute(select(AlertStepRow.deployment_key, AlertStepRow.deadline, AlertStepRow.step))
    return [(key, deadline, step) for key, deadline, step in rows]
