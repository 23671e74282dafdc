"""``retirewatch notify``: evaluate, queue what is due (one transaction), deliver (separately, retryable).

A run whose clock is far from the wall clock is a rehearsal (daemon/rehearsal.py): it acts as ``--dry-run`` unless
the config allows time travel, so no rehearsal posts a real alert or uses up the one the real day will need."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from daemon.clock import Clock, SystemClock
from daemon.config import Config, policy_from_config
from daemon.lifecycle import parse_scope_overrides
from daemon.notify.deliver import Deliverer, DeliveryReport
from daemon.notify.ops import DeliveryFailureReporter, report_poll_failures, report_refused_tags
from daemon.notify.plan import Planner, PlanReport
from daemon.notify.routing import Router
from daemon.notify.slack import SlackClient
from daemon.rehearsal import rehearsal_verdict
from daemon.store import alerts, queries


@dataclass
class NotifyReport:
    plan: PlanReport
    delivery: DeliveryReport | None = None
    previews: list[tuple[str, str]] = field(default_factory=list)  # (channel, text) in a dry run
    rehearsal: str = ""  # why this run acted as --dry-run though it was not asked to (empty: it was not)
    refused_tags: int = 0  # account tags naming a channel outside slack.allowed_channels (ignored)


def ops_channel(config: Config) -> str:
    return config.slack.fallback_channel or config.slack.default_channel


def delivery_lease(config: Config) -> timedelta:
    """How long one delivery attempt holds its message: a replica that dies mid-send delays it this long."""
    return timedelta(seconds=config.service.lease_seconds)


def plan_due(session: Session, config: Config, clock: Clock) -> PlanReport:
    return _plan(session, config, clock).plan


def _plan(session: Session, config: Config, clock: Clock) -> NotifyReport:
    router = Router(config.routes, config.slack)
    planner = Planner(config, policy_from_config(config.escalation), router,
                      parse_scope_overrides(config.update_scopes))
    now = clock.now()
    report = NotifyReport(plan=planner.plan(session, now), refused_tags=len(router.refused_tags))
    last = queries.last_poll(session)
    if last is not None and report_poll_failures(session, ops_channel(config), now, last.id, last.failures):
        report.plan.count("operational")
    if report_refused_tags(session, ops_channel(config), now, router.refused_tags):
        report.plan.count("operational")
    return report


def deliver_outbox(config: Config, clock: Clock, sessions: sessionmaker[Session], slack: SlackClient, *,
                   wait_seconds: float = 0.0, should_stop: Callable[[], bool] | None = None) -> DeliveryReport:
    """Deliver what the outbox holds (the service's retry pass, and the second half of ``notify``)."""
    deliverer = Deliverer(sessions, slack, clock, messages_per_second=config.slack.messages_per_second,
                          max_parallel_channels=config.slack.max_parallel_channels,
                          max_attempts=config.slack.max_attempts, lease=delivery_lease(config),
                          on_permanent_failure=DeliveryFailureReporter(ops_channel(config), clock.now()))
    return deliverer.run(wait_seconds=wait_seconds, should_stop=should_stop)


def run_notify(config: Config, clock: Clock, sessions: sessionmaker[Session], slack: SlackClient | None, *,
               dry_run: bool = False, wait_seconds: float = 30.0, wall_clock: Clock | None = None,
               should_stop: Callable[[], bool] | None = None) -> NotifyReport:
    """Plan, then deliver with ``slack`` (``None``: queue only). ``wall_clock`` (default: the system clock) is
    what ``clock`` is compared with to tell a rehearsal; ``should_stop`` ends delivery between messages."""
    verdict = rehearsal_verdict(clock.now(), (wall_clock or SystemClock()).now(),
                                config.testing.allow_time_travel)
    if dry_run or not verdict.may_send:
        with sessions() as session:
            first_new = (alerts.last_alert_id(session) or 0) + 1
            report = _plan(session, config, clock)
            rows = alerts.alerts_from(session, first_new)
            report.previews = [(row.channel, str(row.message.get("text", ""))) for row in rows
                               if row.kind != "parent_update"]
            report.rehearsal = "" if dry_run else verdict.reason
            session.rollback()
        return report
    with sessions.begin() as session:
        report = _plan(session, config, clock)
    if slack is None:
        return report
    report.delivery = deliver_outbox(config, clock, sessions, slack, wait_seconds=wait_seconds,
                                     should_stop=should_stop)
    return report
