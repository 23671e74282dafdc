"""Prometheus metrics: the estate and the outbox read from the database at scrape time (so every process serving
/metrics agrees), and this process's own job counters."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from daemon.clock import Clock
from daemon.config import Config, curated_dates, policy_from_config
from daemon.lifecycle import CatalogIndex, assess, parse_scope_overrides
from daemon.lifecycle.escalation import step_today
from daemon.store import queries, watch

log = logging.getLogger(__name__)
DEPLOYMENT_LABELS = ("subscription", "account", "deployment", "model", "version", "consequence")


class JobMetrics:
    """Counters for this process's scheduled jobs."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter("retirewatch_job_runs", "Scheduled job runs by outcome (ok, error).",
                            ("job", "outcome"), registry=registry)
        self.missed = Counter("retirewatch_job_missed", "Scheduled runs missed (service down, or the scheduler "
                              "too late) and folded into one late run.", ("job",), registry=registry)
        for job in ("poll", "deliver", "digest"):
            self.runs.labels(job, "ok")
            self.runs.labels(job, "error")
            self.missed.labels(job)


class DatabaseCollector(Collector):
    """Reads the database on every scrape."""

    def __init__(self, config: Config, clock: Clock, sessions: sessionmaker[Session]) -> None:
        self._config, self._clock, self._sessions = config, clock, sessions
        self._policy = policy_from_config(config.escalation)
        self._overrides = parse_scope_overrides(config.update_scopes)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # collected lazily: registering must not query the database

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("retirewatch_database_up", "1 when the database answered this scrape.")
        try:
            with self._sessions() as session:
                metrics = list(self._read(session))
        except Exception as exc:  # an unreachable database is a reading, not a failed scrape
            log.warning("metrics: database did not answer: %s", str(exc).splitlines()[0] if str(exc) else exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from metrics

    def _read(self, session: Session) -> Iterator[Metric]:
        today = self._clock.now().astimezone(UTC).date()
        last = watch.last_successful_poll(session)
        last_ts = GaugeMetricFamily("retirewatch_last_successful_poll_timestamp_seconds",
                                    "When the last poll that read the estate finished (Unix time).")
        if last is not None:
            last_ts.add_metric([], last.finished_at.timestamp())
        yield last_ts
        finished = watch.last_finished_poll(session)
        duration = GaugeMetricFamily("retirewatch_poll_duration_seconds", "How long the last finished poll took.")
        if finished is not None:
            duration.add_metric([], max(0.0, (finished.finished_at - finished.started_at).total_seconds()))
        yield duration
        failures = CounterMetricFamily("retirewatch_poll_failures", "Sources (subscription listings, accounts, "
                                       "deployments, catalogs) a poll could not read, by operation.",
                                       labels=("operation",))
        for operation, count in watch.poll_failure_counts(session):
            failures.add_metric([operation], count)
        yield failures

        counts = watch.alert_counts(session)
        sent = CounterMetricFamily("retirewatch_alerts_sent", "Slack messages delivered, by kind.", labels=("kind",))
        failed = CounterMetricFamily("retirewatch_alerts_failed", "Slack messages given up on, by kind.",
                                     labels=("kind",))
        for (status, kind), count in sorted(counts.items()):
            if status == "sent":
                sent.add_metric([kind], count)
            elif status == "failed":
                failed.add_metric([kind], count)
        yield sent
        yield failed
        yield GaugeMetricFamily("retirewatch_outbox_pending", "Messages waiting in the outbox (pending or being "
                                "sent).", value=watch.outbox_pending(counts))
        yield from self._deployments(session, today)

    def _deployments(self, session: Session, today: date) -> Iterator[Metric]:
        by_stage = GaugeMetricFamily("retirewatch_deployments", "Deployments by what happens at retirement and the "
                                     "escalation stage they are in (none: no alert yet).",
                                     labels=("consequence", "stage"))
        days_left = GaugeMetricFamily("retirewatch_deployment_days_left", "Days until the deployment's retirement "
                                      "consequence strikes (negative: overdue).", labels=DEPLOYMENT_LABELS)
        deadline = GaugeMetricFamily("retirewatch_deployment_deadline_timestamp_seconds", "When the deployment's "
                                     "retirement consequence strikes (Unix time, 00:00 UTC).",
                                     labels=DEPLOYMENT_LABELS)
        index = CatalogIndex(queries.catalog(session), curated_dates(self._config))
        tally: dict[tuple[str, str], int] = {}
        for deployment in queries.current_deployments(session):
            assessment = assess(deployment, index, today, self._overrides)
            consequence = assessment.consequence.value
            scope = assessment.update_scope.value if assessment.update_scope else None
            step = step_today(self._policy, consequence=consequence, scope=scope, days_left=assessment.days_left,
                              today=today, struck=assessment.struck, date_pending=assessment.date_pending)
            stage = step.stage.value if step is not None else "none"
            tally[(consequence, stage)] = tally.get((consequence, stage), 0) + 1
            if assessment.strikes_on is None or assessment.days_left is None:
                continue
            labels = [deployment.subscription_id, deployment.account_name, deployment.name,
                      deployment.model_name or "", deployment.model_version or "", consequence]
            days_left.add_metric(labels, assessment.days_left)
            strikes = assessment.strikes_on
            deadline.add_metric(labels, datetime(strikes.year, strikes.month, strikes.day, tzinfo=UTC).timestamp())
        for (consequence, stage), count in sorted(tally.items()):
            by_stage.add_metric([consequence, stage], count)
        yield by_stage
        yield days_left
        yield deadline


def build_registry(config: Config, clock: Clock, sessions: sessionmaker[Session]) -> tuple[CollectorRegistry,
                                                                                          JobMetrics]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(config, clock, sessions))
    return registry, JobMetrics(registry)
