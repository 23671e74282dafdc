"""What the digest knows about the estate on one day: every current deployment with its consequence, deadline,
escalation stage, owner and ack; the changes of the past week; the watcher's health.

:func:`gather` reads the store (through daemon/store, never SQL of its own); :func:`watch` and :func:`changes_from`
are pure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from sqlalchemy.orm import Session

from daemon.config import Config, curated_dates, idle_policy_from_config, policy_from_config
from daemon.lifecycle import CatalogIndex, ScopeOverrides, assess, parse_scope_overrides
from daemon.lifecycle.escalation import EscalationPolicy, step_today
from daemon.lifecycle.usage import UsageIndex, UsageSummary, policy_for
from daemon.notify.routing import Router, RouteTarget, normalize_channel
from daemon.records import Account, Deployment
from daemon.store import alerts, queries
from daemon.store import digest as store
from daemon.store.inventory import arm_key
from daemon.store.schema import AckRow, EventRow
from daemon.usage import index as usage_index

CHANGE_WINDOW = timedelta(days=7)
UPCOMING = "upcoming"  # inside the digest's horizon, not yet inside the first alerting threshold
SUCCESSFUL_POLLS = ("ok", "partial")  # a poll that read the estate, even if some subscriptions failed


class ChangeKind(StrEnum):
    """The changes of the past week the digest reports, in the order it reports them."""

    UPGRADED = "upgraded"  # the model version changed (often: Azure upgraded it)
    DATE_MOVED = "date_moved"
    LIFECYCLE = "lifecycle"  # e.g. GenerallyAvailable -> Deprecating (shown as "retiring"): a new deprecation
    ADDED = "added"
    REMOVED = "removed"


_EVENT_KINDS: Mapping[str, ChangeKind] = {
    "model_version_changed": ChangeKind.UPGRADED,
    "model_changed": ChangeKind.UPGRADED,
    "retirement_date_changed": ChangeKind.DATE_MOVED,
    "lifecycle_status_changed": ChangeKind.LIFECYCLE,
    "deployment_added": ChangeKind.ADDED,
    "deployment_removed": ChangeKind.REMOVED,
}


@dataclass(frozen=True)
class Watched:
    """One current deployment as the digest sees it."""

    key: str
    name: str  # ACCOUNT/DEPLOYMENT, what `retirewatch ack` takes
    subscription_id: str
    model: str  # "gpt-4o 2024-05-13"
    channel: str
    owned: bool
    consequence: str  # outage | forced-upgrade | auto-upgrade | none
    strikes_on: date | None
    days_left: int | None
    stage: str | None  # notice .. overdue, UPCOMING inside the horizon only, None beyond it or without a deadline
    replacement: str | None
    acked: bool
    usage: UsageSummary | None = None  # how much it is used (None: not read)

    @property
    def in_horizon(self) -> bool:
        return self.stage is not None

    @property
    def alerting(self) -> bool:
        """Inside an escalation stage: the team has been (or is being) alerted about this deadline."""
        return self.stage is not None and self.stage != UPCOMING


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    key: str
    name: str
    channel: str
    owned: bool
    subject: str  # the model (and version) the change is about
    old: str | None
    new: str | None
    occurred_at: datetime


@dataclass(frozen=True)
class SourceFailure:
    subscription_id: str | None
    target: str
    operation: str
    status_code: int | None
    error: str


@dataclass(frozen=True)
class Health:
    last_success_at: datetime | None
    last_success_id: int | None
    last_poll_at: datetime | None
    last_poll_status: str | None
    failures: tuple[SourceFailure, ...]  # of the last finished poll


@dataclass(frozen=True)
class EstateFacts:
    now: datetime
    today: date
    horizon_days: int
    overview_channel: str
    watched: tuple[Watched, ...]
    changes: tuple[Change, ...]
    health: Health


# -- pure -----------------------------------------------------------------------------------------------------------


def model_label(name: str | None, version: str | None) -> str:
    return " ".join(part for part in (name, version) if part) or "unknown model"


def display_name(account: str, deployment: str) -> str:
    return f"{account}/{deployment}"


def stage_of(policy: EscalationPolicy, consequence: str, scope: str | None, days_left: int | None,
             today: date, horizon_days: int) -> str | None:
    """The escalation stage the deadline is in today; UPCOMING inside the horizon before the first threshold;
    None beyond the horizon, without a deadline, or with nothing scheduled."""
    if consequence == "none" or days_left is None:
        return None
    step = step_today(policy, consequence=consequence, scope=scope, days_left=days_left, today=today)
    if step is not None:
        return step.stage.value
    return UPCOMING if days_left <= horizon_days else None


def _ack_active(ack: AckRow | None, today: date) -> bool:
    """As the escalation reads an ack: without ``until`` it holds until the deadline changes (the ack is keyed by
    the deadline), with ``until`` it holds before that day."""
    return ack is not None and (ack.until is None or today < ack.until)


def watch(deployments: Iterable[Deployment], accounts: Mapping[str, Account], catalog: CatalogIndex,
          router: Router, policy: EscalationPolicy, acks: Mapping[tuple[str, date | None], AckRow], today: date,
          horizon_days: int, overrides: ScopeOverrides | None = None, usage: UsageIndex | None = None,
          idle_policy: EscalationPolicy | None = None) -> list[Watched]:
    """Every deployment as the digest sees it; with ``usage``, an idle one's stage follows ``idle_policy``."""
    watched = []
    for deployment in deployments:
        key = arm_key(deployment.id)
        summary = usage.of(deployment) if usage is not None else None
        assessment = assess(deployment, catalog, today, overrides)
        target = route(router, deployment, accounts.get(arm_key(deployment.account_id)))
        consequence = assessment.consequence.value
        scope = assessment.update_scope.value if assessment.update_scope else None
        replacement = (model_label(assessment.replacement_model, assessment.replacement_version)
                       if assessment.replacement_model else None)
        watched.append(Watched(
            key=key, name=display_name(deployment.account_name, deployment.name),
            subscription_id=deployment.subscription_id,
            model=model_label(deployment.model_name, deployment.model_version), channel=target.channel,
            owned=target.owned, consequence=consequence, strikes_on=assessment.strikes_on,
            days_left=assessment.days_left,
            stage=stage_of(policy_for(summary, policy, idle_policy or policy), consequence, scope,
                           assessment.days_left, today, horizon_days),
            replacement=replacement, acked=_ack_active(acks.get((key, assessment.strikes_on)), today),
            usage=summary))
    return watched


def route(router: Router, deployment: Deployment, account: Account | None) -> RouteTarget:
    return router.route(subscription_id=deployment.subscription_id, resource_group=deployment.resource_group,
                        account=deployment.account_name, deployment=deployment.name,
                        tags=account.tags if account else {})


def changes_from(events: Sequence[EventRow], deployments: Mapping[str, Deployment],
                 accounts: Mapping[str, Account], router: Router, baseline_poll: int | None) -> list[Change]:
    """One change per deployment, poll and kind (a model and its version changing together is one upgrade; the
    retirement date that comes with the new version is part of the upgrade, not a date that moved).

    The first poll's ``deployment_added`` events are the baseline (everything is new to a watcher that just
    started), not news."""
    grouped: dict[tuple[str, int | None, ChangeKind], list[EventRow]] = defaultdict(list)
    for event in events:
        kind = _EVENT_KINDS.get(event.kind)
        if kind is None or (kind is ChangeKind.ADDED and event.poll_id == baseline_poll):
            continue
        grouped[(event.subject_key, event.poll_id, kind)].append(event)
    changes = []
    for (key, poll, kind), rows in grouped.items():
        deployment = deployments.get(key)
        if deployment is None or (kind is ChangeKind.DATE_MOVED and (key, poll, ChangeKind.UPGRADED) in grouped):
            continue  # a deployment that now runs another version has that version's date: not a date that moved
        target = route(router, deployment, accounts.get(arm_key(deployment.account_id)))
        subject = model_label(deployment.model_name, deployment.model_version)
        old, new = rows[0].old_value, rows[-1].new_value
        if kind is ChangeKind.UPGRADED:
            fields = {row.field: (row.old_value, row.new_value) for row in rows}
            name_old = fields.get("model_name", (deployment.model_name, None))[0]
            version_old = fields.get("model_version", (deployment.model_version, None))[0]
            old, new, subject = model_label(name_old, version_old), subject, ""
        elif kind is ChangeKind.REMOVED:
            subject = model_label(deployment.model_name, rows[0].old_value or deployment.model_version)
        changes.append(Change(kind=kind, key=key, name=display_name(deployment.account_name, deployment.name),
                              channel=target.channel, owned=target.owned, subject=subject, old=old, new=new,
                              occurred_at=_aware(rows[0].occurred_at)))
    return changes


# -- the store ------------------------------------------------------------------------------------------------------


def gather(session: Session, config: Config, now: datetime) -> EstateFacts:
    today = now.astimezone(UTC).date()
    router = Router(config.routes, config.slack)
    overrides = parse_scope_overrides(config.update_scopes)
    accounts = queries.accounts_by_key(session)
    watched = watch(queries.current_deployments(session), accounts,
                    CatalogIndex(queries.catalog(session), curated_dates(config)), router,
                    policy_from_config(config.escalation), alerts.latest_acks(session), today,
                    config.digest.horizon_days, overrides, usage_index(session, config, today),
                    idle_policy_from_config(config.escalation))
    events = store.deployment_events_between(session, _EVENT_KINDS, now - CHANGE_WINDOW, now)
    known = store.deployments_among(session, {event.subject_key for event in events})
    baseline = queries.first_poll_id(session)
    return EstateFacts(now=now, today=today, horizon_days=config.digest.horizon_days,
                       overview_channel=normalize_channel(config.slack.default_channel), watched=tuple(watched),
                       changes=tuple(changes_from(events, known, accounts, router, baseline)),
                       health=health(session, now))


def health(session: Session, now: datetime) -> Health:
    last = queries.last_finished_poll(session, now)
    good = queries.last_finished_poll(session, now, SUCCESSFUL_POLLS)
    failures: tuple[SourceFailure, ...] = ()
    if last is not None:
        failures = tuple(SourceFailure(f.subscription_id, f.target, f.operation, f.status_code, f.error)
                         for f in queries.poll_failures(session, last.id))
    return Health(last_success_at=_aware(good.finished_at) if good and good.finished_at else None,
                  last_success_id=good.id if good else None,
                  last_poll_at=_aware(last.finished_at) if last and last.finished_at else None,
                  last_poll_status=last.status if last else None, failures=failures)


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
