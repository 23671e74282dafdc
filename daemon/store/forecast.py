"""The forecast's reads: the inventory, and what the outbox, the threads and the acks already hold, as plain values.

Read only: nothing here writes, claims or locks (the forecast may run beside ``notify`` at any time).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.records import Account, CatalogModel, Deployment
from daemon.store import alerts, queries
from daemon.store.inventory import arm_key
from daemon.store.schema import AlertRow

FINE_TUNE_ENDS_KIND = "fine_tune_ends"


@dataclass(frozen=True)
class AckState:
    """The newest ack of one deployment's deadline: silences until ``until`` (``None``: until the deadline
    changes); ``given_on`` is the day it was given (an unsilenceable stage that began later breaks through)."""

    until: date | None
    given_on: date


@dataclass(frozen=True)
class ThreadState:
    """A deployment's open alert thread: the deadline it is about, the channel it lives in, its current stage,
    the consequence it was opened for."""

    deadline: date | None
    channel: str
    stage: str | None
    consequence: str


@dataclass(frozen=True)
class Snapshot:
    """Everything the forecast starts from. ``sent`` maps (deployment key, deadline) to the escalation step keys
    already queued or sent for that deadline (``notice``, ``critical@7``, ``overdue@2026-04-02``);
    ``fine_tune_keys`` are the outbox keys of the fine-tuning-ends messages already queued."""

    deployments: tuple[Deployment, ...]
    accounts: Mapping[str, Account]
    catalog: tuple[CatalogModel, ...]
    sent: Mapping[tuple[str, date | None], frozenset[str]]
    acks: Mapping[tuple[str, date | None], AckState]
    threads: Mapping[str, ThreadState]
    fine_tune_keys: frozenset[str]


def snapshot(session: Session) -> Snapshot:
    """Read everything the forecast needs, in one session (one consistent view on PostgreSQL's default isolation
    per statement; the forecast is advice, never a decision)."""
    sent: dict[tuple[str, date | None], set[str]] = defaultdict(set)
    for deployment_key, deadline, step in alerts.every_sent_step(session):
        sent[(deployment_key, deadline)].add(step)
    acks = {key: AckState(row.until, row.created_at.date()) for key, row in alerts.latest_acks(session).items()}
    threads = {member: ThreadState(row.deadline, row.channel, row.stage, row.consequence)
               for row in alerts.open_threads(session).values() for member in row.members}
    deployments = tuple(queries.current_deployments(session))
    return Snapshot(
        deployments=deployments, accounts=queries.accounts_by_key(session), catalog=tuple(queries.catalog(session)),
        sent={key: frozenset(steps) for key, steps in sent.items()}, acks=acks, threads=threads,
        fine_tune_keys=frozenset(session.scalars(select(AlertRow.key).where(AlertRow.kind == FINE_TUNE_ENDS_KIND))))


def deployment_key(deployment: Deployment) -> str:
    """The key the outbox, the threads and the acks use for a deployment."""
    return arm_key(deployment.id)
