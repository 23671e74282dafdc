"""``retirewatch notify``: evaluate, queue what is due (one transaction), deliver (separately, retryable)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daemon.clock import Clock
from daemon.config import Config
from daemon.lifecycle import parse_scope_overrides
from daemon.lifecycle.escalation import policy_from_config
from daemon.notify.deliver import Deliverer, DeliveryReport
from daemon.notify.ops import DeliveryFailureReporter, report_poll_failures
from daemon.notify.plan import Planner, PlanReport
from daemon.notify.routing import Router
from daemon.notify.slack import SlackClient
from daemon.store import queries
from daemon.store.schema import AlertRow


@dataclass
class NotifyReport:
    plan: PlanReport
    delivery: DeliveryReport | None = None
    previews: list[tuple[str, str]] = field(default_factory=list)  # (channel, text) in a dry run


def ops_channel(config: Config) -> str:
    return config.slack.fallback_channel or config.slack.default_channel


def plan_due(session: Session, config: Config, clock: Clock) -> PlanReport:
    planner = Planner(config, policy_from_config(config.escalation), Router(config.routes, config.slack),
                      parse_scope_overrides(config.update_scopes))
    now = clock.now()
    report = planner.plan(session, now)
    last = queries.last_poll(session)
    if last is not None and report_poll_failures(session, ops_channel(config), now, last.id, last.failures):
        report.count("operational")
    return report


def deliver_outbox(config: Config, clock: Clock, sessions: sessionmaker[Session], slack: SlackClient, *,
                   wait_seconds: float = 0.0, should_stop: Callable[[], bool] | None = None) -> DeliveryReport:
    """Deliver what the outbox holds (the service's retry pass, and the second half of ``notify``)."""
    deliverer = Deliverer(sessions, slack, clock, messages_per_second=config.slack.messages_per_second,
                          max_attempts=config.slack.max_attempts,
                          on_permanent_failure=DeliveryFailureReporter(ops_channel(config), clock.now()))
    return deliverer.run(wait_seconds=wait_seconds, should_stop=should_stop)


def run_notify(config: Config, clock: Clock, sessions: sessionmaker[Session], slack: SlackClient | None, *,
               dry_run: bool = False, wait_seconds: float = 30.0,
               should_stop: Callable[[], bool] | None = None) -> NotifyReport:
    if dry_run:
        with sessions() as session:
            first_new = (session.scalar(select(AlertRow.id).order_by(AlertRow.id.desc()).limit(1)) or 0) + 1
            report = NotifyReport(plan=plan_due(session, config, clock))
            rows = session.scalars(select(AlertRow).where(AlertRow.id >= first_new).order_by(AlertRow.id)).all()
            report.previews = [(row.channel, str(row.message.get("text", ""))) for row in rows
                               if row.kind != "parent_update"]
            session.rollback()
        return report
    with sessions.begin() as session:
        report = NotifyReport(plan=plan_due(session, config, clock))
    if slack is None:
        return report
    report.delivery = deliver_outbox(config, clock, sessions, slack, wait_seconds=wait_seconds,
                                     should_stop=should_stop)
    return report
