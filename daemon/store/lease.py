"""The leader lease and the replicas' heartbeats: PostgreSQL (or SQLite, for one process) is the coordination engine.

A lease row with an epoch, not an advisory lock: an advisory lock is held by a connection, and a process that is
stopped (SIGSTOP, a long pause, a partition that keeps the TCP session open) keeps its connection and so its lock
for as long as it is stopped. A lease expires by the database's clock whatever its holder does; taking it adds one
to the epoch, and the holder's scheduling writes carry the epoch (:func:`fence`), so a leader that wakes after its
lease ran out cannot act on the leadership it lost. Times are the database server's (``clock_timestamp()``), so
replicas on hosts with skewed clocks agree on when a lease ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from daemon.store.schema import LeaseRow, ReplicaRow

LEADER = "leader"


@dataclass(frozen=True)
class Leadership:
    holder: str
    epoch: int
    expires_at: datetime


def db_now(session: Session) -> datetime:
    """The database server's time (SQLite: this host's, as only one process uses a SQLite database)."""
    if session.get_bind().dialect.name == "postgresql":
        value = session.scalar(select(func.clock_timestamp()))
        assert value is not None
        return aware(value)
    return datetime.now(UTC)


def register(session: Session, replica_id: str, host: str, pid: int) -> None:
    now = db_now(session)
    session.merge(ReplicaRow(id=replica_id, host=host, pid=pid, started_at=now, heartbeat_at=now, stopped_at=None))


def heartbeat(session: Session, replica_id: str) -> None:
    session.execute(update(ReplicaRow).where(ReplicaRow.id == replica_id)
                    .values(heartbeat_at=db_now(session)).execution_options(synchronize_session=False))


def mark_stopped(session: Session, replica_id: str) -> None:
    session.execute(update(ReplicaRow).where(ReplicaRow.id == replica_id)
                    .values(stopped_at=db_now(session)).execution_options(synchronize_session=False))


def hold(session: Session, replica_id: str, epoch: int | None, lease: timedelta) -> Leadership | None:
    """Renew this replica's leadership (``epoch``: the one it holds), or take the lease if it is free or expired.
    None: another replica leads. A renewal never changes the epoch; a taking always adds one."""
    now = db_now(session)
    _ensure(session)
    if epoch is not None:
        renewed = session.execute(
            update(LeaseRow).where(LeaseRow.name == LEADER, LeaseRow.holder == replica_id, LeaseRow.epoch == epoch,
                                   LeaseRow.expires_at > now)
            .values(expires_at=now + lease).execution_options(synchronize_session=False))
        if getattr(renewed, "rowcount", 0) == 1:
            return Leadership(replica_id, epoch, now + lease)
    taken = session.execute(
        update(LeaseRow).where(LeaseRow.name == LEADER,
                               (LeaseRow.holder.is_(None)) | (LeaseRow.expires_at <= now) |
                               (LeaseRow.expires_at.is_(None)))
        .values(holder=replica_id, epoch=LeaseRow.epoch + 1, acquired_at=now, expires_at=now + lease)
        .execution_options(synchronize_session=False))
    if getattr(taken, "rowcount", 0) != 1:
        return None
    new_epoch = session.scalar(select(LeaseRow.epoch).where(LeaseRow.name == LEADER))
    assert new_epoch is not None
    return Leadership(replica_id, new_epoch, now + lease)


def release(session: Session, replica_id: str, epoch: int) -> None:
    """Give the lease up at a clean shutdown, so another replica takes over at once rather than at expiry."""
    session.execute(update(LeaseRow).where(LeaseRow.name == LEADER, LeaseRow.holder == replica_id,
                                           LeaseRow.epoch == epoch)
                    .values(holder=None, expires_at=db_now(session)).execution_options(synchronize_session=False))


def fence(session: Session, replica_id: str, epoch: int) -> bool:
    """In the transaction of a leader's write: is ``epoch`` still this replica's, unexpired? On PostgreSQL the lease
    row stays share-locked until the transaction ends, so nobody takes the lease between this check and commit."""
    query = select(LeaseRow.holder, LeaseRow.epoch, LeaseRow.expires_at).where(LeaseRow.name == LEADER)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    row = session.execute(query).first()
    if row is None or row.expires_at is None:
        return False
    return bool(row.holder == replica_id and row.epoch == epoch and aware(row.expires_at) > db_now(session))


def leader(session: Session) -> LeaseRow | None:
    return session.get(LeaseRow, LEADER)


def replica_state(row: ReplicaRow, now: datetime, lease: timedelta) -> str:
    """``stopped`` (it said so), ``alive`` (its heartbeat, every third of the lease, is at most ``lease`` old)
    or ``silent``."""
    if row.stopped_at is not None:
        return "stopped"
    return "alive" if now - aware(row.heartbeat_at) <= lease else "silent"


def any_alive(session: Session, lease: timedelta) -> bool:
    now = db_now(session)
    return any(replica_state(row, now, lease) == "alive" for row in replicas(session))


def replicas(session: Session) -> Sequence[ReplicaRow]:
    return session.scalars(select(ReplicaRow).order_by(ReplicaRow.started_at, ReplicaRow.id)).all()


def _ensure(session: Session) -> None:
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert(LeaseRow).values(name=LEADER, holder=None, epoch=0)
                    .on_conflict_do_nothing(index_elements=["name"]))


def aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
