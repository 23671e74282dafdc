"""Daily traffic per deployment: written after each subscription of a poll, read back as a :class:`UsageIndex`.

Inside the days an account's read covered, the answer is the whole truth: a deployment (or a day) it did not
mention had no traffic, so the stored rows of those days are replaced by the answer's. Days before a read are kept as
stored (daily figures are final once the day is over) up to :data:`KEEP_DAYS`, Azure Monitor's own retention.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session, sessionmaker

from daemon.lifecycle.usage import UsageIndex, no_usage
from daemon.records import AccountUsage, Failure
from daemon.store.bulk import insert_many
from daemon.store.inventory import arm_key
from daemon.store.schema import Base, DeploymentUsageRow, UsageReadRow

KEEP_DAYS = 93
USAGE_TABLE = Base.metadata.tables[DeploymentUsageRow.__tablename__]


def deployment_key(account_id: str, deployment: str) -> str:
    return arm_key(f"{account_id.rstrip('/')}/deployments/{deployment}")


class UsageStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def last_reads(self) -> dict[str, date]:
        """Account key -> the day of its last successful read."""
        with self._sessions() as session:
            return {row.account_key: row.covered_to
                    for row in session.scalars(select(UsageReadRow).where(UsageReadRow.covered_to.is_not(None)))
                    if row.covered_to is not None}

    def record(self, now: datetime, read: Mapping[str, AccountUsage], failures: Iterable[Failure],
               operation: str) -> None:
        """Store one subscription's reads (``read``: account id -> usage) and its failed reads (the ``failures``
        of ``operation``), in one transaction."""
        failed = [f for f in failures if f.operation == operation]
        if not read and not failed:
            return
        with self._sessions.begin() as session:
            for usage in read.values():
                _store_account(session, now, usage)
            for failure in failed:
                row = _read_row(session, arm_key(failure.target))
                row.last_failed_at, row.last_error = now, f"{failure.status_code or '-'} {failure.error}"[:2000]


def _read_row(session: Session, account_key: str) -> UsageReadRow:
    row = session.get(UsageReadRow, account_key)
    if row is None:
        row = UsageReadRow(account_key=account_key)
        session.add(row)
    return row


def _store_account(session: Session, now: datetime, usage: AccountUsage) -> None:
    """Replace the account's figures of the days the read covered (one DELETE, one multi-row INSERT: an answer
    holds deployments x days rows, too many for the ORM's unit of work), drop what is older than KEEP_DAYS."""
    account = arm_key(usage.account_id)
    session.execute(delete(DeploymentUsageRow).where(
        DeploymentUsageRow.account_key == account,
        or_(DeploymentUsageRow.day.between(usage.first_day, usage.last_day),
            DeploymentUsageRow.day < usage.last_day - timedelta(days=KEEP_DAYS))))
    rows = [{"deployment_key": deployment_key(usage.account_id, item.deployment), "day": item.day,
             "account_key": account, "requests": item.requests, "tokens": item.tokens, "read_at": now}
            for item in usage.days]
    insert_many(session.connection(), USAGE_TABLE, rows)
    read = _read_row(session, account)
    contiguous = read.covered_from is not None and read.covered_to is not None and \
        usage.first_day <= read.covered_to + timedelta(days=1)
    read.covered_from = min(read.covered_from, usage.first_day) if contiguous and read.covered_from else \
        usage.first_day
    read.covered_to, read.last_ok_at = usage.last_day, now


def usage_index(session: Session, today: date, *, idle_days: int, every_days: int | None,
                enabled: bool = True) -> UsageIndex:
    """Every deployment's usage as of ``today``. An account's usage is known when its last read succeeded and is
    recent (within ``every_days``, or a day when every poll reads); otherwise it is unknown, never zero."""
    if not enabled:
        return no_usage(today, idle_days)
    fresh_since = today - timedelta(days=every_days or 1)
    coverage: dict[str, date] = {}
    for row in session.scalars(select(UsageReadRow)):
        failed_since = row.last_failed_at is not None and (row.last_ok_at is None or
                                                           _utc(row.last_failed_at) >= _utc(row.last_ok_at))
        if row.covered_from is None or row.covered_to is None or row.covered_to < fresh_since or failed_since:
            continue
        coverage[row.account_key] = row.covered_from
    first = today - timedelta(days=max(idle_days, 30) - 1)
    requests: dict[str, dict[date, int]] = defaultdict(dict)
    for key, day, count, account in session.execute(
            select(DeploymentUsageRow.deployment_key, DeploymentUsageRow.day, DeploymentUsageRow.requests,
                   DeploymentUsageRow.account_key)
            .where(DeploymentUsageRow.day >= first, DeploymentUsageRow.day <= today)):
        if account in coverage:
            requests[key][day] = count
    return UsageIndex(today, idle_days, coverage, requests)


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
