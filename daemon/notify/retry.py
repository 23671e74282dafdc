"""``retirewatch alerts retry``: put failed messages back in the outbox (one by key or id, or every failed one).

A requeued message keeps the record of its last attempt, so if that attempt may have reached Slack the deliverer
looks for it in the channel before posting again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from daemon.store import alerts


class RetryError(Exception):
    """The key names no message, or one that has not failed."""


def requeue(session: Session, now: datetime, key: str | None) -> int:
    """Failed -> pending, due now, attempts back to zero; returns how many. ``key`` None: every failed one."""
    if key is None:
        rows = alerts.failed_alerts(session)
    else:
        rows = alerts.alerts_named(session, key)
        if not rows:
            raise RetryError(f"no alert {key!r} (see `retirewatch alerts`: the first column is the id)")
        not_failed = [row for row in rows if row.status != alerts.FAILED]
        if not_failed:
            raise RetryError(f"alert {key!r} is {not_failed[0].status}, not failed: nothing to retry")
    for row in rows:
        row.status, row.attempts, row.next_attempt_at, row.lease_until = alerts.PENDING, 0, now, None
        row.last_error = f"requeued by hand; it had failed: {row.last_error or 'unknown error'}"
    return len(rows)
