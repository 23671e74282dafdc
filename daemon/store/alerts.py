"""The outbox, the threads and the acks: how alerts are written, claimed, and recorded.

Claiming is a conditional UPDATE (``WHERE id = ? AND status/lease allow it``) that only one process can win, so
several replicas can deliver from one database without sending anything twice. Planning is claimed too: each
planner first takes the ``notify-plan`` row (INSERT ... ON CONFLICT, then an UPDATE that holds the row lock, or on
SQLite the write lock, until it commits), so planners run one after the other and each sees what the previous one
wrote. The database still refuses a second open thread for a deployment; a planner that loses that race re-reads
the winner's thread instead of leaving one of its own without a first message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from daemon.store.schema import AckRow, AlertRow, AlertThreadRow, CursorRow

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


def open_threads(session: Session) -> dict[str, AlertThreadRow]:
    rows = session.scalars(select(AlertThreadRow).where(AlertThreadRow.closed_at.is_(None)))
    return {row.deployment_key: row for row in rows}


def open_thread(session: Session, thread: AlertThreadRow) -> tuple[AlertThreadRow, bool]:
    """Insert ``thread`` as its deployment's open thread; (the open thread, True when it is ``thread``).

    When another planner opened one first (the unique index over open threads refuses a second), the winner's row
    is returned instead and ``thread`` is not kept: a thread row without its first message would strand every
    reply queued into it."""
    for _ in range(3):
        try:
            with session.begin_nested():
                session.add(thread)
                session.flush()
            return thread, True
        except IntegrityError:  # the savepoint's rollback took ``thread`` out of the session again
            winner = open_thread_of(session, thread.deployment_key)
            if winner is not None:
                return winner, False
            # The winner closed it in between: try again.
    raise RuntimeError(f"could not open a thread for {thread.deployment_key}: the database keeps refusing it")


def open_thread_of(session: Session, deployment_key: str) -> AlertThreadRow | None:
    """The deployment's open thread, if it has one."""
    return session.scalars(select(AlertThreadRow).where(AlertThreadRow.deployment_key == deployment_key,
                                                        AlertThreadRow.closed_at.is_(None))).first()


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


def parent_key(session: Session, thread_id: int) -> str | None:
    """The key of a parent row (the thread's first message) of ``thread_id``."""
    return session.scalar(select(AlertRow.key).where(AlertRow.thread_id == thread_id, AlertRow.is_parent.is_(True)))


def staged_alerts(session: Session) -> list[tuple[str | None, date | None, str | None]]:
    """(deployment key, deadline, escalation step key) of every queued alert that carries a step."""
    rows = session.execute(select(AlertRow.deployment_key, AlertRow.deadline, AlertRow.stage)
                           .where(AlertRow.stage.is_not(None), AlertRow.deployment_key.is_not(None)))
    return [(row.deployment_key, row.deadline, row.stage) for row in rows]


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
