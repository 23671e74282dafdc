"""What the service reads and claims: the last successful poll, schedule slots (a compare-and-set on ``cursors``),
and the counts the metrics endpoint shows. Everything here is read from the database at the moment it is asked,
so every process that serves metrics says the same thing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from daemon.store import alerts
from daemon.store.schema import AlertRow, CursorRow, PollFailureRow, PollRow

SUCCESS_CANDIDATES = ("ok", "partial")
NOTHING_READ_OPERATIONS = ("list-accounts",)  # a subscription whose accounts could not be listed was not read


@dataclass(frozen=True)
class PollTimes:
    id: int
    started_at: datetime
    finished_at: datetime
    status: str


def ping(session: Session) -> None:
    """Raises when the database does not answer."""
    session.execute(text("SELECT 1"))


def read_something(subscriptions: int, unread_subscriptions: int, status: str) -> bool:
    """Pure: a poll counts as successful when it read the estate, even if some subscriptions refused (403,
    throttled); a poll that read nothing does not."""
    if status == "ok":
        return True
    return status == "partial" and unread_subscriptions < subscriptions


def last_successful_poll(session: Session, look_back: int = 50) -> PollTimes | None:
    polls = session.scalars(select(PollRow).where(PollRow.status.in_(SUCCESS_CANDIDATES),
                                                  PollRow.finished_at.is_not(None))
                            .order_by(PollRow.id.desc()).limit(look_back)).all()
    for poll in polls:
        unread = 0
        if poll.status != "ok":
            unread = session.scalar(
                select(func.count(func.distinct(PollFailureRow.subscription_id)))
                .where(PollFailureRow.poll_id == poll.id,
                       PollFailureRow.operation.in_(NOTHING_READ_OPERATIONS))) or 0
        if read_something(poll.subscriptions, unread, poll.status):
            assert poll.finished_at is not None
            return PollTimes(poll.id, _aware(poll.started_at), _aware(poll.finished_at), poll.status)
    return None


def last_finished_poll(session: Session) -> PollTimes | None:
    poll = session.scalars(select(PollRow).where(PollRow.finished_at.is_not(None))
                           .order_by(PollRow.id.desc()).limit(1)).first()
    if poll is None or poll.finished_at is None:
        return None
    return PollTimes(poll.id, _aware(poll.started_at), _aware(poll.finished_at), poll.status)


# -- schedule slots: compare-and-set -----------------------------------------------------------------------------


def slot_value(instant: datetime) -> int:
    """A slot as whole minutes since the epoch (fits the ``cursors`` integer column for millennia)."""
    return int(instant.timestamp() // 60)


def slot_instant(value: int) -> datetime:
    return datetime.fromtimestamp(value * 60, UTC)


def claimed_slot(session: Session, name: str) -> datetime | None:
    value = session.scalar(select(CursorRow.value).where(CursorRow.name == name))
    return None if value is None else slot_instant(value)


def claim_slot(session: Session, name: str, slot: datetime) -> bool:
    """Move the cursor ``name`` forward to ``slot`` if it is behind it: True for the one caller (process, replica)
    that moved it; False when that slot (or a later one) was already claimed."""
    value = slot_value(slot)
    result = session.execute(update(CursorRow).where(CursorRow.name == name, CursorRow.value < value)
                             .values(value=value).execution_options(synchronize_session=False))
    if getattr(result, "rowcount", 0) == 1:
        return True
    if session.scalar(select(CursorRow.value).where(CursorRow.name == name)) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(CursorRow(name=name, value=value))
            session.flush()
    except IntegrityError:
        return False
    return True


# -- counts for /metrics ---------------------------------------------------------------------------------------


def alert_counts(session: Session) -> Counter[tuple[str, str]]:
    """(status, kind) -> rows. Rows are never deleted, so sent and failed counts only grow."""
    counts: Counter[tuple[str, str]] = Counter()
    for status, kind, count in session.execute(
            select(AlertRow.status, AlertRow.kind, func.count()).group_by(AlertRow.status, AlertRow.kind)):
        counts[(status, kind)] = count
    return counts


def outbox_pending(counts: Counter[tuple[str, str]]) -> int:
    return sum(n for (status, _kind), n in counts.items() if status in (alerts.PENDING, alerts.SENDING))


def poll_failure_counts(session: Session) -> Sequence[tuple[str, int]]:
    """Every source a poll could not read, by operation (list-subscriptions, list-accounts, ...)."""
    rows = session.execute(select(PollFailureRow.operation, func.count()).group_by(PollFailureRow.operation))
    return [(operation, count) for operation, count in rows]


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def sending_count(session: Session) -> int:
    """Outbox rows a replica holds for a delivery attempt right now."""
    return session.scalar(select(func.count()).select_from(AlertRow).where(AlertRow.status == "sending")) or 0
