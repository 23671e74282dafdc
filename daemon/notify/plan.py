"""Decide which messages fall due and write them to the outbox, in one transaction with the thread state.

For each deployment, top to bottom: assess (pure) -> route -> resolved? -> deadline moved? -> escalation step due?
-> silenced? -> queue. Changes the poll recorded (version changed, lifecycle changed, deployment deleted) become
replies in the deployment's open thread. The outbox keys make a second run, or a second replica, a no-op;
planners take turns (``alerts.claim_planning``), and the database allows one open thread per deployment.

The cost does not grow with the number of messages in statements: the planner reads the open threads, and the steps
already told and the acks of today's deadlines only (one statement per 500 of them), decides in memory, and writes
the outbox, the new threads and the thread changes through one :class:`alerts.Batch` (a few multi-row statements
per 500 rows, no savepoint or look-up per message).

Anything queued that is still unsent after ``slack.pending_alarm_minutes`` is reported once as an operational
problem: a message stuck in the outbox must not go unnoticed.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from daemon.config import Config
from daemon.lifecycle import Assessment, CatalogIndex, ScopeOverrides, assess, lifecycle_words
from daemon.lifecycle.escalation import EscalationPolicy, Stage, Step, decide, step_today
from daemon.notify import ops
from daemon.notify.render import AlertView, MessageKind, in_days, render_alert, render_parent
from daemon.notify.routing import Router, RouteTarget
from daemon.records import Account, Deployment
from daemon.store import alerts, queries
from daemon.store.alerts import Batch, ThreadState
from daemon.store.inventory import arm_key
from daemon.store.schema import AckRow, EventRow

log = logging.getLogger(__name__)
EVENT_CURSOR = "notify-events"
LOUD_STAGES = frozenset({Stage.CRITICAL, Stage.OVERDUE})  # their replies go to the channel too
CHANGE_EVENTS: Mapping[str, MessageKind] = {
    "model_version_changed": MessageKind.VERSION_CHANGED,
    "model_changed": MessageKind.VERSION_CHANGED,
    "lifecycle_status_changed": MessageKind.LIFECYCLE_CHANGED,
}


@dataclass
class PlanReport:
    queued: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    unowned: set[str] = field(default_factory=set)
    at_risk: int = 0

    def count(self, kind: str) -> None:
        self.queued[kind] += 1


@dataclass(frozen=True)
class _Sent:
    """What the outbox already holds for one deployment's deadline."""

    keys: frozenset[str]
    last_overdue: date | None


NOTHING_SENT = _Sent(frozenset(), None)


class _StepsWorkedOutOnce(EscalationPolicy):
    """The escalation policy, each (consequence, scope)'s steps worked out once, not once per deployment."""

    @classmethod
    def of(cls, policy: EscalationPolicy) -> EscalationPolicy:
        return cls(**{f.name: getattr(policy, f.name) for f in fields(policy)})

    def steps_for(self, consequence: str, scope: str | None) -> tuple[Step, ...]:
        memo: dict[tuple[str, str | None], tuple[Step, ...]] = self.__dict__.setdefault("_memo", {})
        key = (consequence, scope)
        if key not in memo:
            memo[key] = super().steps_for(consequence, scope)
        return memo[key]


class Planner:
    def __init__(self, config: Config, policy: EscalationPolicy, router: Router,
                 overrides: ScopeOverrides | None) -> None:
        self._config, self._router, self._overrides = config, router, overrides
        self._policy: EscalationPolicy = _StepsWorkedOutOnce.of(policy)
        self._portal = config.slack.portal_url

    def plan(self, session: Session, now: datetime) -> PlanReport:
        today, report = now.date(), PlanReport()
        alerts.claim_planning(session)  # first: a concurrent planner waits here, then reads what this one wrote
        batch = Batch(session, now)
        self._report_stale_pending(session, now, report)
        accounts = queries.accounts_by_key(session)
        index = CatalogIndex(queries.catalog(session))
        threads = alerts.open_threads(session)
        current: dict[str, tuple[Deployment, Assessment]] = {}
        for deployment in queries.current_deployments(session):
            current[arm_key(deployment.id)] = (deployment, assess(deployment, index, today, self._overrides))
        # Only a deadline that is in a step today can be due: only theirs are looked up.
        stepped = [(key, assessment.strikes_on) for key, (_, assessment) in current.items()
                   if self._step_today(assessment, today) is not None]
        sent = _sent_by_deadline(alerts.sent_steps(session, stepped))
        acks = alerts.acks_for(session, stepped)
        self._report_changes(session, batch, threads, current, accounts)
        for key, (deployment, assessment) in current.items():
            account = accounts.get(arm_key(deployment.account_id))
            target = self._route(deployment, account)
            self._plan_one(batch, now, key, deployment, assessment, target, threads, sent, acks, report)
            self._fine_tune_ends(batch, now, key, deployment, assessment, target)
        gone = [thread for key, thread in threads.items() if key not in current]
        stored = queries.deployments_by_keys(session, [thread.key for thread in gone])
        for thread in gone:
            self._resolve(batch, now, thread, stored.get(thread.key), None, "the deployment was deleted")
        for alert in batch.flush():
            report.count(alert.kind)
        return report

    def _step_today(self, assessment: Assessment, today: date) -> Step | None:
        if not assessment.escalate:
            return None
        return step_today(self._policy, consequence=assessment.consequence.value,
                          scope=assessment.update_scope.value if assessment.update_scope else None,
                          days_left=assessment.days_left, today=today, struck=assessment.struck,
                          date_pending=assessment.date_pending)

    # -- one deployment ------------------------------------------------------------------------------------------

    def _plan_one(self, batch: Batch, now: datetime, key: str, deployment: Deployment,
                  assessment: Assessment, target: RouteTarget, threads: Mapping[str, ThreadState],
                  sent: Mapping[tuple[str, date | None], _Sent], acks: Mapping[tuple[str, date | None], AckRow],
                  report: PlanReport) -> None:
        today = now.date()
        deadline = assessment.strikes_on
        thread = threads.get(key)
        scope = assessment.update_scope.value if assessment.update_scope else None
        already = sent.get((key, deadline), NOTHING_SENT)
        ack = acks.get((key, deadline))
        decision = decide(self._policy, consequence=assessment.consequence.value, scope=scope,
                          days_left=assessment.days_left, today=today, sent_keys=already.keys,
                          struck=assessment.struck, date_pending=assessment.date_pending,
                          escalate=assessment.escalate,
                          last_overdue=already.last_overdue, acked=ack is not None,
                          ack_until=ack.until if ack else None,
                          acked_on=ack.created_at.date() if ack else None)
        if thread is not None and decision.step is None:
            self._resolve(batch, now, thread, deployment, assessment, _why_resolved(assessment))
            return
        if decision.step is None:
            return
        report.at_risk += 1
        if not target.owned:
            report.unowned.add(key)
        view = self._view(MessageKind.STAGE, deployment, assessment, target, decision.step.stage.value,
                          f"{key}|{deadline}|{decision.step.key}")
        if thread is not None and thread.deadline != deadline:
            self._deadline_moved(batch, thread, view, decision.step.key, decision.due)
            return
        if not decision.due:
            return
        if thread is None:
            self._open_thread(batch, key, target, assessment, view, decision.step.key)
            return
        broadcast = decision.step.stage in LOUD_STAGES
        self._reply(batch, thread, view, MessageKind.STAGE.value, view.alert_key, decision.step.key, deadline,
                    broadcast)
        self._update_parent(batch, thread, view, decision.step.key)

    def _open_thread(self, batch: Batch, key: str, target: RouteTarget, assessment: Assessment, view: AlertView,
                     step_key: str) -> None:
        message = render_alert(view, self._portal)  # the full alert, mentions included: it opens the thread
        message.metadata["event_payload"]["parent"] = True
        batch.open_thread(
            alerts.NewThread(deployment_key=key, channel=target.channel, deadline=assessment.strikes_on,
                             consequence=assessment.consequence.value, stage=view.stage),
            alerts.NewAlert(key=view.alert_key, kind=MessageKind.STAGE.value, channel=target.channel,
                            message=message.as_json(), deployment_key=key, stage=step_key,
                            deadline=assessment.strikes_on, is_parent=True))

    def _reply(self, batch: Batch, thread: ThreadState, view: AlertView, kind: str, alert_key: str,
               step_key: str | None, deadline: date | None, broadcast: bool) -> None:
        message = render_alert(replace(view, alert_key=alert_key), self._portal)
        batch.enqueue(alerts.NewAlert(
            key=alert_key, kind=kind, channel=thread.channel, message=message.as_json(), thread_id=thread.id,
            deployment_key=thread.key, stage=step_key, deadline=deadline, broadcast=broadcast))

    def _update_parent(self, batch: Batch, thread: ThreadState, view: AlertView, step_key: str) -> None:
        batch.update_thread(thread, stage=view.stage)
        message = render_parent(replace(view, alert_key=thread.parent_key or view.alert_key), self._portal)
        batch.enqueue(alerts.NewAlert(
            key=f"{thread.id}|parent|{thread.deadline}|{step_key}", kind="parent_update", channel=thread.channel,
            message=message.as_json(), thread_id=thread.id, deployment_key=thread.key))

    def _deadline_moved(self, batch: Batch, thread: ThreadState, view: AlertView, step_key: str,
                        due: bool) -> None:
        """The date the consequence strikes moved: say so in the thread. The message counts as the new deadline's
        alert for its current stage, so the team is not told twice."""
        old, new = thread.deadline, view.strikes_on
        detail = f"moved from {old or 'no date'} to {new or 'no date'}"
        moved = replace(view, kind=MessageKind.DATE_MOVED, detail=detail)
        key = f"{thread.key}|{new}|moved-from-{old}|{thread.id}"
        self._reply(batch, thread, moved, MessageKind.DATE_MOVED.value, key, step_key if due else None, new,
                    view.stage in {s.value for s in LOUD_STAGES})
        batch.update_thread(thread, deadline=new)
        self._update_parent(batch, thread, view, step_key)

    def _resolve(self, batch: Batch, now: datetime, thread: ThreadState, deployment: Deployment | None,
                 assessment: Assessment | None, why: str) -> None:
        view = AlertView(
            kind=MessageKind.RESOLVED, stage=thread.stage, deployment_id=deployment.id if deployment else
            thread.key, subscription_id=deployment.subscription_id if deployment else "",
            resource_group=deployment.resource_group if deployment else "",
            account=deployment.account_name if deployment else "", deployment=deployment.name if deployment else
            thread.key.rsplit("/", 1)[-1], location=deployment.location if deployment else "",
            model=deployment.model_name if deployment else None, version=deployment.model_version if deployment
            else None, sku=deployment.sku_name if deployment else None,
            upgrade_option=deployment.upgrade_option if deployment else None, consequence=thread.consequence,
            retirement_date=assessment.retirement_date if assessment else None, strikes_on=thread.deadline,
            days_left=None, date_source=None, date_status=None, replacement_model=None, replacement_version=None,
            update_scope=None, manual_migration=False, mentions=(), detail=why,
            alert_key=f"{thread.key}|resolved|{thread.id}")
        self._reply(batch, thread, view, MessageKind.RESOLVED.value, view.alert_key, None, thread.deadline, False)
        batch.update_thread(thread, closed_at=now, close_reason=why)

    # -- the outbox itself ----------------------------------------------------------------------------------------

    def _report_stale_pending(self, session: Session, now: datetime, report: PlanReport) -> None:
        minutes = self._config.slack.pending_alarm_minutes
        stale = alerts.stale_pending(session, now - timedelta(minutes=minutes), exclude_kinds=(ops.OPERATIONAL,))
        if not stale:
            return
        lines = [f"{row.key} ({row.kind} to {row.channel}): {row.status} since {row.created_at:%Y-%m-%d %H:%M} UTC, "
                 f"{row.attempts} attempt(s); {row.last_error or 'not tried yet'}" for row in stale]
        lines.append("see `retirewatch alerts --status pending`; each stuck alert is reported once")
        problem = "pending|" + hashlib.sha256(",".join(str(row.id) for row in stale).encode()).hexdigest()[:16]
        channel = self._config.slack.fallback_channel or self._config.slack.default_channel
        if ops.raise_operational(session, channel, now, problem,
                                 f"{len(stale)} alert(s) still unsent after {minutes} minutes", lines):
            report.count(ops.OPERATIONAL)
        alerts.mark_alarmed(session, [row.id for row in stale], now)
        log.warning("%d alert(s) still unsent after %d minutes: reported as an operational problem",
                    len(stale), minutes)

    def _fine_tune_ends(self, batch: Batch, now: datetime, key: str, deployment: Deployment,
                        assessment: Assessment, target: RouteTarget) -> None:
        """``deprecation.fineTune`` is the last day to train on the model: told once to a fine-tuned deployment's
        team, from the first alert threshold on. The deployed fine-tune keeps answering until its own retirement."""
        ends = assessment.fine_tune_retirement
        if not assessment.fine_tuned or ends is None or not assessment.escalate:
            return
        days_left = (ends - now.date()).days
        if days_left > (self._policy.base.notice or 90):
            return
        when = f"ended on {ends}" if days_left < 0 else f"ends on {ends} ({in_days(days_left)})"
        retires = assessment.retirement_date.isoformat() if assessment.retirement_date else "no date announced"
        detail = (f"Training new fine-tunes on {assessment.date_model or deployment.model_name} {when}. The "
                  f"deployed fine-tune keeps answering until its retirement ({retires}); retrain on the "
                  "replacement before then if you will need to.")
        view = replace(self._view(MessageKind.FINE_TUNE_ENDS, deployment, assessment, target, None,
                                  f"{key}|fine-tune-ends|{ends}"), detail=detail)
        batch.enqueue(alerts.NewAlert(
            key=view.alert_key, kind=MessageKind.FINE_TUNE_ENDS.value, channel=target.channel,
            message=render_alert(view, self._portal).as_json(), deployment_key=key, deadline=ends))

    # -- changes the poll recorded -------------------------------------------------------------------------------

    def _report_changes(self, session: Session, batch: Batch, threads: Mapping[str, ThreadState],
                        current: Mapping[str, tuple[Deployment, Assessment]], accounts: Mapping[str, Account]) -> None:
        after = alerts.cursor(session, EVENT_CURSOR)
        events = queries.deployment_events_after(session, after, CHANGE_EVENTS)
        grouped: dict[tuple[str, int | None, MessageKind], list[EventRow]] = defaultdict(list)
        for event in events:  # one message per deployment, poll and kind of change
            grouped[(event.subject_key, event.poll_id, CHANGE_EVENTS[event.kind])].append(event)
        for (subject, _poll, kind), changes in grouped.items():
            thread, entry = threads.get(subject), current.get(subject)
            if thread is None or entry is None:
                continue
            deployment, assessment = entry
            target = self._route(deployment, accounts.get(arm_key(deployment.account_id)))
            view = self._view(kind, deployment, assessment, target, thread.stage, f"{subject}|event|{changes[0].id}")
            detail = "; ".join(_change_words(e) for e in changes)
            view = replace(view, detail=detail)
            self._reply(batch, thread, view, view.kind.value, view.alert_key, None, thread.deadline, False)
        last = queries.last_event_id(session)
        if last is not None and last != after:
            alerts.set_cursor(session, EVENT_CURSOR, last)

    # -- helpers -------------------------------------------------------------------------------------------------

    def _route(self, deployment: Deployment, account: Account | None) -> RouteTarget:
        return self._router.route(subscription_id=deployment.subscription_id,
                                  resource_group=deployment.resource_group, account=deployment.account_name,
                                  deployment=deployment.name, tags=account.tags if account else {})

    def _view(self, kind: MessageKind, deployment: Deployment, assessment: Assessment, target: RouteTarget,
              stage: str | None, alert_key: str) -> AlertView:
        return AlertView(
            kind=kind, stage=stage, deployment_id=deployment.id, subscription_id=deployment.subscription_id,
            resource_group=deployment.resource_group, account=deployment.account_name, deployment=deployment.name,
            location=deployment.location, model=deployment.model_name, version=deployment.model_version,
            sku=deployment.sku_name, upgrade_option=deployment.upgrade_option,
            consequence=assessment.consequence.value, retirement_date=assessment.retirement_date,
            strikes_on=assessment.strikes_on, days_left=assessment.days_left,
            date_source=assessment.date_source.value if assessment.date_source else None,
            date_status=assessment.date_status.value if assessment.date_status else None,
            replacement_model=assessment.replacement_model, replacement_version=assessment.replacement_version,
            update_scope=assessment.update_scope.value if assessment.update_scope else None,
            manual_migration=assessment.manual_migration, mentions=tuple(target.mentions.get(stage or "", ())),
            detail=None, alert_key=alert_key, manual_reason=assessment.manual_reason,
            lifecycle=assessment.lifecycle, struck=assessment.struck, date_pending=assessment.date_pending,
            date_model=assessment.date_model, replacement_refused=assessment.replacement_refused)


def _change_words(event: EventRow) -> str:
    """One recorded change in words; lifecycle words as a person reads them (never "Deprecating")."""
    old, new = event.old_value, event.new_value
    if event.field == "lifecycle_status":
        return f"lifecycle: {lifecycle_words(old) or 'none'} -> {lifecycle_words(new) or 'none'}"
    return f"{event.field}: {old or 'none'} -> {new or 'none'}"


def _why_resolved(assessment: Assessment) -> str:
    if assessment.consequence.value == "none":
        return "no retirement is scheduled for what this deployment runs now"
    return (f"the deadline moved to {assessment.strikes_on}, beyond the alerting horizon"
            if assessment.strikes_on else "no deadline any more")


def _sent_by_deadline(keys: Mapping[tuple[str, date | None], set[str]]) -> dict[tuple[str, date | None], _Sent]:
    result = {}
    for key, steps in keys.items():
        overdue = [date.fromisoformat(s.split("@", 1)[1]) for s in steps if s.startswith("overdue@")]
        result[key] = _Sent(frozenset(steps), max(overdue, default=None))
    return result

