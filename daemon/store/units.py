"""A poll shared by replicas: one unit per subscription, taken by whichever replica is free.

The leader creates the poll and its units in one transaction (fenced by its epoch). Every replica claims units
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two replicas never wait on or take the same unit), renews its claims
while it works, and records a unit in the same transaction that checks its claim token is still the current one:
a replica that froze past its claim finds the token moved on and records nothing. The replica that completes the
last unit finishes the poll (compare-and-set on its status).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from daemon.records import Subscription
from daemon.store.schema import PollRow, PollUnitRow

PENDING, CLAIMED, DONE = "pending", "claimed", "done"
RUNNING = "running"
COUNTS = ("accounts", "deployments", "catalog_models", "events", "requests", "failures")


@dataclass(frozen=True)
class Claim:
    unit_id: int
    poll_id: int
    token: int
    subscription: Subscription


def running_shared_poll(session: Session) -> PollRow | None:
    """The shared poll still in progress, if any (one at a time: the leader starts the next once it finished)."""
    return session.scalars(select(PollRow).where(PollRow.status == RUNNING, PollRow.leader_epoch.is_not(None))
                           .order_by(PollRow.id.desc()).limit(1)).first()


def create(session: Session, poll_id: int, subscriptions: Iterable[Subscription]) -> int:
    rows = [PollUnitRow(poll_id=poll_id, subscription_id=s.subscription_id, display_name=s.display_name,
                        state=s.state, status=PENDING, claim_token=0) for s in subscriptions]
    session.add_all(rows)
    return len(rows)


def claim(session: Session, replica_id: str, now: datetime, lease: timedelta, limit: int) -> list[Claim]:
    """Take up to ``limit`` units of running polls that nobody holds (pending, or claimed by a replica whose claim
    ran out). Each taking adds one to the unit's claim token."""
    query = (select(PollUnitRow.id).join(PollRow, PollRow.id == PollUnitRow.poll_id)
             .where(PollRow.status == RUNNING,
                    (PollUnitRow.status == PENDING) |
                    ((PollUnitRow.status == CLAIMED) & (PollUnitRow.claimed_until < now)))
             .order_by(PollUnitRow.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=PollUnitRow)
    ids = list(session.scalars(query))
    claims = []
    for unit_id in ids:
        taken = session.execute(
            update(PollUnitRow).where(PollUnitRow.id == unit_id,
                                      (PollUnitRow.status == PENDING) |
                                      ((PollUnitRow.status == CLAIMED) & (PollUnitRow.claimed_until < now)))
            .values(status=CLAIMED, claimed_by=replica_id, claim_token=PollUnitRow.claim_token + 1,
                    claimed_until=now + lease)
            .execution_options(synchronize_session=False))
        if getattr(taken, "rowcount", 0) != 1:
            continue
        row = session.get_one(PollUnitRow, unit_id, populate_existing=True)
        claims.append(Claim(row.id, row.poll_id, row.claim_token,
                            Subscription(subscription_id=row.subscription_id, display_name=row.display_name,
                                         state=row.state)))
    return claims


def renew(session: Session, claims: Sequence[Claim], now: datetime, lease: timedelta) -> int:
    """Extend the claims this replica still holds; returns how many it still holds."""
    held = 0
    for c in claims:
        result = session.execute(
            update(PollUnitRow).where(PollUnitRow.id == c.unit_id, PollUnitRow.claim_token == c.token,
                                      PollUnitRow.status == CLAIMED)
            .values(claimed_until=now + lease).execution_options(synchronize_session=False))
        held += getattr(result, "rowcount", 0)
    return held


def release(session: Session, claims: Sequence[Claim], now: datetime) -> None:
    """Give claims back at a clean stop, so another replica takes them at once."""
    for c in claims:
        session.execute(update(PollUnitRow).where(PollUnitRow.id == c.unit_id, PollUnitRow.claim_token == c.token,
                                                  PollUnitRow.status == CLAIMED)
                        .values(status=PENDING, claimed_by=None, claimed_until=now)
                        .execution_options(synchronize_session=False))


def still_held(session: Session, c: Claim) -> bool:
    """In the transaction that records the unit: is the claim still this replica's? Locks the unit's row until the
    transaction ends, so nobody takes it between this check and the commit."""
    query = select(PollUnitRow.claim_token, PollUnitRow.status).where(PollUnitRow.id == c.unit_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = session.execute(query).first()
    return row is not None and row.claim_token == c.token and row.status == CLAIMED


def complete(session: Session, c: Claim, now: datetime, result: Mapping[str, Any]) -> None:
    """The unit is done; ``result``: its :data:`COUNTS` and the ``catalog_scopes`` it listed (JSON)."""
    session.execute(update(PollUnitRow).where(PollUnitRow.id == c.unit_id, PollUnitRow.claim_token == c.token)
                    .values(status=DONE, finished_at=now, claimed_until=None, result=dict(result))
                    .execution_options(synchronize_session=False))


def finish_if_complete(session: Session, poll_id: int, now: datetime, status_if_clean: str = "ok") -> PollRow | None:
    """When every unit of the poll is done: the poll's totals, and its status moved from running (once: the one
    caller whose compare-and-set wins gets the row, the others None)."""
    left = session.scalar(select(func.count()).select_from(PollUnitRow)
                          .where(PollUnitRow.poll_id == poll_id, PollUnitRow.status != DONE))
    if left:
        return None
    results = session.scalars(select(PollUnitRow.result).where(PollUnitRow.poll_id == poll_id)).all()
    totals = {name: sum(int((r or {}).get(name, 0)) for r in results) for name in COUNTS}
    poll = session.get_one(PollRow, poll_id)
    status = status_if_clean if not totals["failures"] and not poll.failures else "partial"
    won = session.execute(update(PollRow).where(PollRow.id == poll_id, PollRow.status == RUNNING)
                          .values(status=status, finished_at=now, subscriptions=len(results),
                                  accounts=totals["accounts"], deployments=totals["deployments"],
                                  catalog_models=totals["catalog_models"],
                                  events=PollRow.events + totals["events"],
                                  requests=PollRow.requests + totals["requests"],
                                  failures=PollRow.failures + totals["failures"])
                          .execution_options(synchronize_session=False))
    if getattr(won, "rowcount", 0) != 1:
        return None
    return session.get_one(PollRow, poll_id, populate_existing=True)


def seen(session: Session, poll_id: int) -> tuple[set[str], set[str] | None]:
    """What a finished shared poll saw, for marking the rest missed: its units' subscriptions, and the catalog
    scopes their results list (``catalog_scopes``; None when a unit recorded by an older version lists none)."""
    subscriptions: set[str] = set()
    scopes: set[str] | None = set()
    for subscription_id, result in session.execute(select(PollUnitRow.subscription_id, PollUnitRow.result)
                                                   .where(PollUnitRow.poll_id == poll_id)):
        subscriptions.add(subscription_id)
        listed = (result or {}).get("catalog_scopes")
        if scopes is not None and isinstance(listed, list):
            scopes.update(str(scope) for scope in listed)
        else:
            scopes = None
    return subscriptions, scopes


@dataclass(frozen=True)
class UnitsInFlight:
    poll_id: int
    started_at: datetime
    leader_epoch: int | None
    pending: int
    claimed: Sequence[tuple[str, str | None, datetime | None]]  # subscription, replica, claimed until
    done: int


def in_flight(session: Session) -> list[UnitsInFlight]:
    """Per running shared poll: how many units wait, which are being worked on and by whom, how many are done."""
    found = []
    for poll in session.scalars(select(PollRow).where(PollRow.status == RUNNING, PollRow.leader_epoch.is_not(None))
                                .order_by(PollRow.id)):
        units = session.scalars(select(PollUnitRow).where(PollUnitRow.poll_id == poll.id)
                                .order_by(PollUnitRow.id)).all()
        found.append(UnitsInFlight(
            poll.id, poll.started_at, poll.leader_epoch,
            pending=sum(1 for u in units if u.status == PENDING),
            claimed=[(u.subscription_id, u.claimed_by, u.claimed_until) for u in units if u.status == CLAIMED],
            done=sum(1 for u in units if u.status == DONE)))
    return found


def as_json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def claimable(session: Session, now: datetime) -> bool:
    """Is there a unit of a running poll that nobody holds? (A replica looks before it starts working.)"""
    return session.scalar(
        select(PollUnitRow.id).join(PollRow, PollRow.id == PollUnitRow.poll_id)
        .where(PollRow.status == RUNNING,
               (PollUnitRow.status == PENDING) | ((PollUnitRow.status == CLAIMED) & (PollUnitRow.claimed_until < now)))
        .limit(1)) is not None
