"""The digest's own reads: the week's deployment events and the deployments they name."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.records import Deployment
from daemon.store.queries import deployment_from_row
from daemon.store.schema import DeploymentRow, EventRow


def deployment_events_between(session: Session, kinds: Iterable[str], after: datetime,
                              until: datetime) -> Sequence[EventRow]:
    """Deployment events of ``kinds`` that occurred after ``after`` and by ``until``, oldest first."""
    return session.scalars(select(EventRow).where(
        EventRow.subject_type == "deployment", EventRow.kind.in_(list(kinds)),
        EventRow.occurred_at > after, EventRow.occurred_at <= until).order_by(EventRow.id)).all()


def deployments_among(session: Session, keys: Collection[str]) -> dict[str, Deployment]:
    """The stored deployments (gone or not) whose key is in ``keys``, by key."""
    return {row.key: deployment_from_row(row) for row in session.scalars(select(DeploymentRow)) if row.key in keys}
