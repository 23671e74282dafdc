"""Read the stored inventory back as plain records for the pure core."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from daemon.records import Account, CatalogModel, Deployment, SkuRetirement
from daemon.store.inventory import seen_until
from daemon.store.schema import AccountRow, CatalogModelRow, DeploymentRow, EventRow, PollFailureRow, PollRow


def deployment_from_row(row: DeploymentRow) -> Deployment:
    return Deployment(
        id=row.arm_id, account_id=row.account_key, subscription_id=row.subscription_id,
        resource_group=row.resource_group, account_name=row.account_name, location=row.location, name=row.name,
        model_format=row.model_format, model_name=row.model_name, model_version=row.model_version,
        model_publisher=row.model_publisher, model_source=row.model_source, sku_name=row.sku_name,
        sku_capacity=row.sku_capacity, upgrade_option=row.upgrade_option, provisioning_state=row.provisioning_state,
    )


def catalog_from_row(row: CatalogModelRow) -> CatalogModel:
    return CatalogModel(
        scope=row.scope, format=row.format, name=row.name, version=row.version, publisher=row.publisher,
        kinds=tuple(row.kinds or ()), is_default_version=row.is_default_version,
        lifecycle_status=row.lifecycle_status, inference_retirement=row.inference_retirement,
        fine_tune_retirement=row.fine_tune_retirement, deprecation_status=row.deprecation_status,
        sku_retirements=tuple(
            SkuRetirement(sku_name=item["sku"], retirement_date=date.fromisoformat(item["date"]) if item["date"]
                          else None)
            for item in row.sku_retirements or ()
        ),
        replacement_model=row.replacement_model, replacement_version=row.replacement_version,
        auto_upgrade_start=row.auto_upgrade_start, upgrade_lead_days=row.upgrade_lead_days,
        base_format=row.base_format, base_name=row.base_name, base_version=row.base_version,
    )


_DEPLOYMENT_COLUMNS = (  # labelled as the record's fields
    DeploymentRow.arm_id.label("id"), DeploymentRow.account_key.label("account_id"), DeploymentRow.subscription_id,
    DeploymentRow.resource_group,
    DeploymentRow.account_name, DeploymentRow.location, DeploymentRow.name, DeploymentRow.model_format,
    DeploymentRow.model_name, DeploymentRow.model_version, DeploymentRow.model_publisher, DeploymentRow.model_source,
    DeploymentRow.sku_name, DeploymentRow.sku_capacity, DeploymentRow.upgrade_option, DeploymentRow.provisioning_state,
)


assert [column.name for column in _DEPLOYMENT_COLUMNS] == [f.name for f in fields(Deployment)], "in field order"


def current_deployments(session: Session) -> Iterator[Deployment]:
    """Every deployment the last polls saw and that is not gone; account scopes use the account's key. Read as
    plain columns (no ORM objects: 100,000 of them cost more to build than to fetch)."""
    rows = session.execute(select(*_DEPLOYMENT_COLUMNS).where(DeploymentRow.removed_at.is_(None))
                           .order_by(DeploymentRow.key).execution_options(yield_per=2000))
    for row in rows:
        yield Deployment(*row)


def last_complete_poll_started(session: Session) -> datetime | None:
    """When the latest poll that went through every subscription it listed (``ok`` or ``partial``) started."""
    started = session.scalar(select(PollRow.started_at).where(PollRow.status.in_(("ok", "partial")))
                             .order_by(PollRow.id.desc()).limit(1))
    return started.replace(tzinfo=UTC) if started is not None and started.tzinfo is None else started


def deployments_last_seen(session: Session, keys: Iterable[str] | None = None) -> dict[str, datetime]:
    """When each deployment (by key; all of them when ``keys`` is None) was last seen by a poll.

    A poll writes nothing for what it finds unchanged (``store.schema``: "Last seen"): a deployment was seen
    whenever its account's deployments were listed, which every complete poll since the account's ``last_seen``
    did unless the account is marked missed or removed; its own ``last_seen`` counts when it is later (written when
    it changed, or was listed in a partly readable account) and alone once it is removed."""
    last_complete = last_complete_poll_started(session)
    query = select(DeploymentRow.key, DeploymentRow.last_seen, DeploymentRow.removed_at, AccountRow.last_seen,
                   AccountRow.missed_since, AccountRow.removed_at).join(
        AccountRow, AccountRow.key == DeploymentRow.account_key)
    if keys is not None:
        query = query.where(DeploymentRow.key.in_([key.casefold() for key in keys]))
    seen: dict[str, datetime] = {}
    for key, own, removed_at, account_seen, account_missed, account_removed in session.execute(query):
        own = _utc(own)
        if removed_at is not None:
            seen[key] = own
            continue
        account = seen_until(account_seen, account_missed, account_removed, last_complete)
        seen[key] = max(own, account) if account is not None else own
    return seen


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def deployment_by_key(session: Session, key: str) -> Deployment | None:
    """The stored deployment ``key``, gone or not (None: never stored)."""
    row = session.get(DeploymentRow, key)
    return deployment_from_row(row) if row is not None else None


def deployments_by_keys(session: Session, keys: Iterable[str]) -> dict[str, Deployment]:
    """The stored deployments among ``keys``, gone or not, by key (one statement per 500 keys)."""
    found: dict[str, Deployment] = {}
    wanted = sorted(set(keys))
    for start in range(0, len(wanted), 500):
        for row in session.scalars(select(DeploymentRow).where(DeploymentRow.key.in_(wanted[start:start + 500]))):
            found[row.key] = deployment_from_row(row)
    return found


def current_deployment_rows_by_key(session: Session, key: str) -> Sequence[DeploymentRow]:
    """The current (not gone) deployment whose key is ``key`` (its ARM id, casefolded)."""
    return session.scalars(select(DeploymentRow).where(DeploymentRow.removed_at.is_(None))
                           .where(DeploymentRow.key == key.casefold())).all()


def current_deployment_rows_named(session: Session, name: str, account: str | None = None) -> Sequence[DeploymentRow]:
    """Current (not gone) deployments called ``name`` (in ``account`` when given), ignoring case."""
    matches: list[ColumnElement[bool]] = []
    if account is not None:
        matches.append(func.lower(DeploymentRow.account_name) == account.casefold())
    matches.append(func.lower(DeploymentRow.name) == name.casefold())
    return session.scalars(select(DeploymentRow).where(DeploymentRow.removed_at.is_(None)).where(*matches)).all()


def catalog(session: Session) -> Iterator[CatalogModel]:
    for row in session.scalars(select(CatalogModelRow).execution_options(yield_per=2000)):
        yield catalog_from_row(row)


def accounts_by_key(session: Session) -> dict[str, Account]:
    return {
        row.key: Account(id=row.arm_id, subscription_id=row.subscription_id, resource_group=row.resource_group,
                         name=row.name, kind=row.kind, location=row.location, tags=dict(row.tags or {}))
        for row in session.scalars(select(AccountRow))
    }


@dataclass(frozen=True)
class PollSummary:
    id: int
    started_at: datetime
    finished_at: datetime | None
    status: str
    failures: Sequence[PollFailureRow]


def last_poll(session: Session) -> PollSummary | None:
    poll = session.scalars(select(PollRow).order_by(PollRow.id.desc()).limit(1)).first()
    if poll is None:
        return None
    failures = session.scalars(select(PollFailureRow).where(PollFailureRow.poll_id == poll.id)).all()
    return PollSummary(poll.id, poll.started_at, poll.finished_at, poll.status, failures)


def events_since(session: Session, after_id: int = 0) -> Sequence[EventRow]:
    return session.scalars(select(EventRow).where(EventRow.id > after_id).order_by(EventRow.id)).all()


def deployment_events_after(session: Session, after_id: int, kinds: Iterable[str]) -> Sequence[EventRow]:
    """Deployment events of ``kinds`` recorded after event ``after_id``, oldest first."""
    return session.scalars(select(EventRow).where(EventRow.id > after_id, EventRow.subject_type == "deployment",
                                                  EventRow.kind.in_(list(kinds)))
                           .order_by(EventRow.id)).all()


def last_event_id(session: Session) -> int | None:
    """The newest event's id (None: no event recorded yet)."""
    return session.scalar(select(EventRow.id).order_by(EventRow.id.desc()).limit(1))


def first_poll_id(session: Session) -> int | None:
    """The oldest poll's id (None: never polled)."""
    return session.scalar(select(func.min(PollRow.id)))


def last_finished_poll(session: Session, now: datetime, statuses: Sequence[str] = ()) -> PollRow | None:
    """The newest poll started by ``now`` that finished (with one of ``statuses``, when given)."""
    query = select(PollRow).where(PollRow.finished_at.is_not(None), PollRow.started_at <= now)
    if statuses:
        query = query.where(PollRow.status.in_(statuses))
    return session.scalars(query.order_by(PollRow.id.desc()).limit(1)).first()


def poll_failures(session: Session, poll_id: int) -> Sequence[PollFailureRow]:
    """What poll ``poll_id`` could not read, in the order it met the failures."""
    return session.scalars(select(PollFailureRow).where(PollFailureRow.poll_id == poll_id)
                           .order_by(PollFailureRow.id)).all()
