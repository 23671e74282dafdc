"""Decide which messages fall due and write them to the outbox, in one transaction with the thread state.

For each deployment, top to bottom: assess (pure) -> route -> resolved? -> deadline moved? -> escalation step due?
-> silenced? -> queue. Changes the poll recorded (version changed, lifecycle changed, deployment deleted) become
replies in the deployment's open thread. The outbox keys make a second run, or a second replica, a no-op;
planners take turns (``alerts.claim_planning``), and the database allows one open thread per deployment.

**Grouped alerts** (as Alertmanager's ``group_by``). Deployments that would each open a thread in one pass, routed to
one channel and sharing model, version, consequence, deadline and stage, open one grouped thread when there are at
least ``slack.group_min`` of them: one message listing them all, its metadata carrying ``deployment_ids`` and
``deployment_count``. How this sits with "one open thread per deployment": every thread has *members*
(``alert_thread_members``), a single thread its deployment, a grouped one several, and the database allows each
deployment one open membership, whatever the thread. A group thread is keyed by its group
(``group|channel|model|version|consequence|deadline``), unique among open threads like a deployment's key, so a
group has one open thread. Each pass, per group thread:

- a member whose risk is gone (upgraded, deleted, no consequence) or that no longer shares the group's channel,
  model, version or consequence *leaves*: one reply names who left and why; the last one leaving *resolves* the
  group (the thread closes). A member that left but is still at risk is planned afresh, like any deployment
  without a thread (a thread of its own, or another group);
- the deadline moved for every member alike: one "date moved" reply, and the thread follows the new date (as a
  single thread does); moved for some only: those leave, and are planned afresh under their new date;
- a step due for members is one reply naming them (a member acknowledged on its own is silenced, not named);
- deployments without a thread that share an open group's key *join* it (one reply naming them) instead of
  opening threads of their own, however few.

What each message told whom is kept per deployment (``alert_steps``: deployment, deadline, step), so a member is
never told a step twice, alone or in a group, and an ack of one member (or of all: ``retirewatch ack group:REF``)
silences exactly the deadlines it names. Deployments that already have a thread of their own keep it: groups form
only from deployments opening a thread.

The cost does not grow with the number of messages in statements: the planner reads the open threads with their
members, and the steps already told and the acks of today's deadlines only (one statement per 500 of them), decides
in memory, and writes the outbox, the steps told, new threads and members, and thread changes through one
:class:`alerts.Batch` (a few multi-row statements per 500 rows, no savepoint or look-up per message).

Anything queued that is still unsent after ``slack.pending_alarm_minutes`` is reported once as an operational
problem: a message stuck in the outbox must not go unnoticed.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from daemon.config import Config, curated_dates
from daemon.lifecycle import Assessment, CatalogIndex, ScopeOverrides, assess, lifecycle_words
from daemon.lifecycle.escalation import Decision, EscalationPolicy, Reason, Stage, Step, decide, step_today
from daemon.notify import conflicts, ops
from daemon.notify.groups import GroupKey, parse_group_key
from daemon.notify.render import (
    AlertView,
    GroupMember,
    GroupView,
    MessageKind,
    in_days,
    render_alert,
    render_group,
    render_group_parent,
    render_parent,
)
from daemon.notify.routing import Router, RouteTarget
from daemon.notify.usage_policy import UsagePolicy
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
DELETED = "the deployment was deleted"


@dataclass
class PlanReport:
    queued: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    unowned: set[str] = field(default_factory=set)
    at_risk: int = 0
    groups_opened: int = 0  # grouped threads opened by this pass

    def count(self, kind: str) -> None:
        self.queued[kind] += 1


@dataclass(frozen=True)
class _Sent:
    """What was already told for one deployment's deadline."""

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


@dataclass
class _Entry:
    """One current deployment as this pass sees it."""

    key: str
    deployment: Deployment
    assessment: Assessment
    target: RouteTarget
    decision: Decision

    @property
    def deadline(self) -> date | None:
        return self.assessment.strikes_on

    @property
    def group(self) -> GroupKey:
        return GroupKey(self.target.channel, self.deployment.model_name or "", self.deployment.model_version or "",
                        self.assessment.consequence.value, self.assessment.strikes_on)

    def member(self, note: str | None = None) -> GroupMember:
        d = self.deployment
        return GroupMember(deployment_id=d.id, account=d.account_name, deployment=d.name,
                           subscription_id=d.subscription_id, resource_group=d.resource_group, location=d.location,
                           sku=d.sku_name, note=note)


@dataclass(frozen=True)
class _Leaver:
    key: str
    entry: _Entry | None  # None: deleted
    reason: str
    resolved: bool  # its risk is over (not merely moved on)


@dataclass
class _Pass:
    """One planning pass: its clock, its writes and what it has read."""

    batch: Batch
    now: datetime
    report: PlanReport
    entries: dict[str, _Entry]
    threads: dict[int, ThreadState]
    stored: dict[str, Deployment]  # deployments that are gone, as last stored (for their names)
    _by_key: dict[str, ThreadState] = field(default_factory=dict)  # open threads (and groups opened by this pass)

    def __post_init__(self) -> None:
        self._by_key = {thread.key: thread for thread in self.threads.values()}

    def open_group(self, key: str) -> ThreadState | None:
        """The open grouped thread with this key, that new members can join (not one this pass is opening)."""
        thread = self._by_key.get(key)
        return thread if thread is not None and thread.grouped and not thread.closed and thread.id > 0 else None

    def key_in_use(self, key: str) -> bool:
        thread = self._by_key.get(key)
        return thread is not None and not thread.closed

    def rekey(self, thread: ThreadState, key: str) -> None:
        self._by_key.pop(thread.key, None)
        self._by_key[key] = thread


class Planner:
    def __init__(self, config: Config, policy: EscalationPolicy, router: Router,
                 overrides: ScopeOverrides | None) -> None:
        self._config, self._router, self._overrides = config, router, overrides
        self._policy: EscalationPolicy = _StepsWorkedOutOnce.of(policy)
        self._portal = config.slack.portal_url
        self._group_min = config.slack.group_min

    def plan(self, session: Session, now: datetime) -> PlanReport:
        today, report = now.date(), PlanReport()
        alerts.claim_planning(session)  # first: a concurrent planner waits here, then reads what this one wrote
        batch = Batch(session, now)
        self._report_stale_pending(session, now, report)
        accounts = queries.accounts_by_key(session)
        index = CatalogIndex(queries.catalog(session), curated_dates(self._config))
        self._usage = UsagePolicy.load(session, self._config, today)
        threads = alerts.open_threads(session)
        thread_of = {member: thread for thread in threads.values() for member in thread.members}
        assessed = [(arm_key(d.id), d, assess(d, index, today, self._overrides))
                    for d in queries.current_deployments(session)]
        # Only a deadline that is in a step today can be due: only theirs are looked up.
        stepped = [(key, a.strikes_on) for key, d, a in assessed if self._step_today(d, a, today) is not None]
        sent = _sent_by_deadline(alerts.sent_steps(session, stepped))
        acks = alerts.acks_for(session, stepped)
        entries: dict[str, _Entry] = {}
        for key, deployment, assessment in assessed:
            target = self._route(deployment, accounts.get(arm_key(deployment.account_id)))
            decision = self._decide(key, deployment, assessment, today, sent, acks)
            entries[key] = _Entry(key, deployment, assessment, target, decision)
            if decision.step is not None:
                report.at_risk += 1
                if not target.owned:
                    report.unowned.add(key)
        gone = [key for key in thread_of if key not in entries]
        run = _Pass(batch, now, report, entries, threads, queries.deployments_by_keys(session, gone))
        self._report_changes(session, batch, thread_of, entries)
        conflicts.report_date_conflicts(session, self._config, now, [(d, a) for _, d, a in assessed], report.count)
        loose = [entry for key, entry in entries.items() if key not in thread_of and entry.decision.due]
        for thread in list(threads.values()):
            if thread.grouped:
                loose += self._plan_group(run, thread)
            elif thread.key in entries:
                self._plan_single(run, entries[thread.key], thread)
            else:
                self._resolve(batch, now, thread, run.stored.get(thread.key), None, DELETED)
        self._open(run, loose)
        for entry in entries.values():
            self._fine_tune_ends(batch, now, entry)
        for alert in batch.flush():
            report.count(alert.kind)
        return report

    def _policy_of(self, deployment: Deployment) -> EscalationPolicy:
        return self._usage.policy(deployment, self._policy)  # an idle one follows [escalation.usage.idle]

    def _step_today(self, deployment: Deployment, assessment: Assessment, today: date) -> Step | None:
        if not assessment.escalate:
            return None
        return step_today(self._policy_of(deployment), consequence=assessment.consequence.value,
                          scope=assessment.update_scope.value if assessment.update_scope else None,
                          days_left=assessment.days_left, today=today, struck=assessment.struck,
                          date_pending=assessment.date_pending)

    def _decide(self, key: str, deployment: Deployment, assessment: Assessment, today: date,
                sent: Mapping[tuple[str, date | None], _Sent],
                acks: Mapping[tuple[str, date | None], AckRow]) -> Decision:
        deadline = assessment.strikes_on
        already = sent.get((key, deadline), NOTHING_SENT)
        ack = acks.get((key, deadline))
        return decide(self._policy_of(deployment), consequence=assessment.consequence.value,
                      scope=assessment.update_scope.value if assessment.update_scope else None,
                      days_left=assessment.days_left, today=today, sent_keys=already.keys,
                      struck=assessment.struck, date_pending=assessment.date_pending,
                      escalate=assessment.escalate, last_overdue=already.last_overdue, acked=ack is not None,
                      ack_until=ack.until if ack else None, acked_on=ack.created_at.date() if ack else None)

    # -- a deployment's own thread --------------------------------------------------------------------------------

    def _plan_single(self, run: _Pass, entry: _Entry, thread: ThreadState) -> None:
        decision, batch = entry.decision, run.batch
        if decision.step is None:
            self._resolve(batch, run.now, thread, entry.deployment, entry.assessment, _why_resolved(entry.assessment))
            return
        view = self._view(MessageKind.STAGE, entry.deployment, entry.assessment, entry.target,
                          decision.step.stage.value, f"{entry.key}|{entry.deadline}|{decision.step.key}")
        if thread.deadline != entry.deadline:
            self._deadline_moved(batch, thread, view, decision.step.key, decision.due)
            return
        if not decision.due:
            return
        self._reply(batch, thread, view, MessageKind.STAGE.value, view.alert_key, decision.step.key, entry.deadline,
                    decision.step.stage in LOUD_STAGES)
        self._update_parent(batch, thread, view, decision.step.key)

    def _open_thread(self, batch: Batch, entry: _Entry) -> None:
        step = entry.decision.step
        assert step is not None
        view = self._view(MessageKind.STAGE, entry.deployment, entry.assessment, entry.target, step.stage.value,
                          f"{entry.key}|{entry.deadline}|{step.key}")
        message = render_alert(view, self._portal)  # the full alert, mentions included: it opens the thread
        message.metadata["event_payload"]["parent"] = True
        batch.open_thread(
            alerts.NewThread(deployment_key=entry.key, channel=entry.target.channel, deadline=entry.deadline,
                             consequence=entry.assessment.consequence.value, stage=view.stage),
            alerts.NewAlert(key=view.alert_key, kind=MessageKind.STAGE.value, channel=entry.target.channel,
                            message=message.as_json(), deployment_key=entry.key, stage=step.key,
                            deadline=entry.deadline, is_parent=True))

    # -- opening threads: alone, as a new group, or joining an open one -------------------------------------------

    def _open(self, run: _Pass, loose: Sequence[_Entry]) -> None:
        """Deployments with a step due and no thread: they join the open group they share a key with, open a group
        together when at least ``group_min`` share key and step, else each opens its own thread."""
        together: dict[tuple[str, str], list[_Entry]] = defaultdict(list)
        for entry in loose:
            assert entry.decision.step is not None
            together[(entry.group.key, entry.decision.step.key)].append(entry)
        for (group_key, _step), entries in together.items():
            group = run.open_group(group_key)
            if group is not None:
                self._join(run, group, entries)
            elif len(entries) >= self._group_min and not run.key_in_use(group_key):
                self._open_group(run, entries)
            else:
                for entry in entries:
                    self._open_thread(run.batch, entry)

    def _open_group(self, run: _Pass, entries: list[_Entry]) -> None:
        step, group = entries[0].decision.step, entries[0].group
        assert step is not None
        keys = tuple(entry.key for entry in entries)
        view = self._group_view(MessageKind.STAGE, group, entries, f"{group.key}|{step.key}|{_digest(keys)}",
                                stage=step.stage.value, size=len(entries))
        message = render_group(view)  # mentions included: it opens the thread
        message.metadata["event_payload"]["parent"] = True
        run.batch.open_thread(
            alerts.NewThread(deployment_key=group.key, channel=group.channel, deadline=group.deadline,
                             consequence=group.consequence, stage=step.stage.value, grouped=True, members=keys),
            alerts.NewAlert(key=view.about.alert_key, kind=MessageKind.STAGE.value, channel=group.channel,
                            message=message.as_json(), deployment_key=group.key, stage=step.key,
                            deadline=group.deadline, is_parent=True, told=keys))
        run.report.groups_opened += 1
        # Reserve the key: no second group with it in this pass (it has no id until the batch writes it).
        run.rekey(ThreadState(0, "", group.channel, group.deadline, group.consequence, step.stage.value, None, True,
                              set(keys)), group.key)

    def _join(self, run: _Pass, thread: ThreadState, entries: list[_Entry]) -> None:
        step = entries[0].decision.step
        assert step is not None
        keys = tuple(entry.key for entry in entries)
        size = len(thread.members) + len(keys)
        count = f"{len(keys)} deployment{'s' if len(keys) != 1 else ''}"
        view = self._group_view(MessageKind.JOINED_GROUP, entries[0].group, entries,
                                f"{thread.key}|joined|{thread.id}|{_digest(keys)}", stage=step.stage.value,
                                size=size, detail=f"{count} joined this group: it has {size} now.")
        run.batch.enqueue(alerts.NewAlert(
            key=view.about.alert_key, kind=MessageKind.JOINED_GROUP.value, channel=thread.channel,
            message=render_group(view).as_json(), thread_id=thread.id, deployment_key=thread.key, stage=step.key,
            deadline=thread.deadline, broadcast=step.stage in LOUD_STAGES, told=keys))
        run.batch.join(thread, keys)
        self._group_parent(run, thread)

    # -- a grouped thread -----------------------------------------------------------------------------------------

    def _plan_group(self, run: _Pass, thread: ThreadState) -> list[_Entry]:
        """Members leave, the date moves, steps fall due; returns the members that left still at risk and due
        (planned afresh by :meth:`_open`)."""
        shared, shared_key = parse_group_key(thread.key), thread.key
        staying: list[_Entry] = []
        leaving: list[_Leaver] = []
        moved: dict[date | None, list[_Entry]] = defaultdict(list)
        for key in sorted(thread.members):
            entry = run.entries.get(key)
            if entry is None:
                leaving.append(_Leaver(key, None, DELETED, True))
            elif entry.decision.step is None:
                leaving.append(_Leaver(key, entry, _why_resolved(entry.assessment), True))
            elif shared is not None and (why := _moved_on(entry, shared)):
                leaving.append(_Leaver(key, entry, why, False))
            elif entry.deadline != thread.deadline:
                moved[entry.deadline].append(entry)
            else:
                staying.append(entry)
        told_now: set[str] = set()
        if len(moved) == 1 and not staying:
            new_deadline, members = next(iter(moved.items()))
            if not run.key_in_use(replace(members[0].group, deadline=new_deadline).key):
                staying = members
                moved = {}
                told_now = self._group_date_moved(run, thread, members)
        for new_deadline, members in moved.items():
            why = f"its date moved from {thread.deadline or 'no date'} to {new_deadline or 'no date'}"
            leaving += [_Leaver(entry.key, entry, why, False) for entry in members]
        if leaving:
            self._members_left(run, thread, leaving, staying)
        if thread.closed:
            return [lv.entry for lv in leaving if lv.entry is not None and not lv.resolved and lv.entry.decision.due]
        due: dict[str, list[_Entry]] = defaultdict(list)
        for entry in staying:
            if entry.decision.due and entry.key not in told_now:
                assert entry.decision.step is not None
                due[entry.decision.step.key].append(entry)
        silenced = sum(entry.decision.reason is Reason.SILENCED for entry in staying)
        for told in sorted(due.values(), key=lambda entries: _order(entries[0])):
            self._group_stage(run, thread, told, len(staying), silenced)
        if leaving or due or thread.key != shared_key:
            self._group_parent(run, thread)
        return [lv.entry for lv in leaving if lv.entry is not None and not lv.resolved and lv.entry.decision.due]

    def _group_stage(self, run: _Pass, thread: ThreadState, told: list[_Entry], size: int, silenced: int) -> None:
        step = told[0].decision.step
        assert step is not None
        keys = tuple(entry.key for entry in told)
        view = self._group_view(MessageKind.STAGE, told[0].group, told,
                                f"{thread.key}|{step.key}|{thread.id}|{_digest(keys)}", stage=step.stage.value,
                                size=size, silenced=silenced)
        run.batch.enqueue(alerts.NewAlert(
            key=view.about.alert_key, kind=MessageKind.STAGE.value, channel=thread.channel,
            message=render_group(view).as_json(), thread_id=thread.id, deployment_key=thread.key, stage=step.key,
            deadline=thread.deadline, broadcast=step.stage in LOUD_STAGES, told=keys))
        run.batch.update_thread(thread, stage=step.stage.value)

    def _group_date_moved(self, run: _Pass, thread: ThreadState, members: list[_Entry]) -> set[str]:
        """Every member's deadline moved to the same day: the thread follows it. The message counts as the new
        deadline's alert for the stage it is in, for the members it is due for."""
        old, new, group = thread.deadline, members[0].deadline, members[0].group
        due = [entry for entry in members if entry.decision.due]
        step = (due or members)[0].decision.step
        assert step is not None
        told = tuple(entry.key for entry in due if entry.decision.step == step)
        view = self._group_view(MessageKind.DATE_MOVED, group, members,
                                f"{thread.key}|{new}|moved-from-{old}|{thread.id}", stage=step.stage.value,
                                size=len(members), detail=f"moved from {old or 'no date'} to {new or 'no date'}")
        run.batch.enqueue(alerts.NewAlert(
            key=view.about.alert_key, kind=MessageKind.DATE_MOVED.value, channel=thread.channel,
            message=render_group(view).as_json(), thread_id=thread.id, deployment_key=thread.key,
            stage=step.key if told else None, deadline=new, broadcast=step.stage in LOUD_STAGES, told=told))
        run.rekey(thread, group.key)
        run.batch.update_thread(thread, deadline=new, key=group.key, stage=step.stage.value)
        return set(told)

    def _members_left(self, run: _Pass, thread: ThreadState, leaving: list[_Leaver], staying: list[_Entry]) -> None:
        keys = tuple(leaver.key for leaver in leaving)
        for leaver in leaving:
            run.batch.leave(thread, [leaver.key], leaver.reason)
        members = [self._leaver_member(run, leaver) for leaver in leaving]
        shared = parse_group_key(thread.key)
        about = staying[0] if staying else next((lv.entry for lv in leaving if lv.entry is not None), None)
        resolved = all(leaver.resolved for leaver in leaving)
        if not staying:  # the last ones: the group resolves (or closes, when some are still at risk elsewhere)
            kind = MessageKind.RESOLVED if resolved else MessageKind.LEFT_GROUP
            detail = ("Every deployment has left this group: nothing left to do here." if resolved else
                      "Every deployment has left this group, which is closed; those still at risk are alerted "
                      "afresh.")
            view = self._group_view(kind, about.group if about else shared, [], f"{thread.key}|resolved|{thread.id}",
                                    stage=thread.stage, size=0, members=members, entry=about, resolves=resolved,
                                    detail=detail)
            run.batch.update_thread(thread, closed_at=run.now, close_reason="every deployment left the group")
        else:
            count = f"{len(keys)} deployment{'s' if len(keys) != 1 else ''}"
            view = self._group_view(MessageKind.LEFT_GROUP, staying[0].group, [],
                                    f"{thread.key}|left|{thread.id}|{_digest(keys)}", stage=thread.stage,
                                    size=len(staying), members=members, entry=about, resolves=resolved,
                                    detail=f"{count} left this group; {len(staying)} remain.")
            kind = MessageKind.LEFT_GROUP
        run.batch.enqueue(alerts.NewAlert(
            key=view.about.alert_key, kind=kind.value, channel=thread.channel, message=render_group(view).as_json(),
            thread_id=thread.id, deployment_key=thread.key, deadline=thread.deadline))

    def _leaver_member(self, run: _Pass, leaver: _Leaver) -> GroupMember:
        if leaver.entry is not None:
            d = leaver.entry.deployment
            runs = f"now runs {d.model_name} {d.model_version}: " if leaver.resolved and d.model_name else ""
            return leaver.entry.member(runs + leaver.reason)
        stored = run.stored.get(leaver.key)
        if stored is not None:
            return GroupMember(deployment_id=stored.id, account=stored.account_name, deployment=stored.name,
                               subscription_id=stored.subscription_id, resource_group=stored.resource_group,
                               location=stored.location, sku=stored.sku_name, note=leaver.reason)
        return GroupMember(deployment_id=leaver.key, account="?", deployment=leaver.key.rsplit("/", 1)[-1],
                           note=leaver.reason)

    def _group_parent(self, run: _Pass, thread: ThreadState) -> None:
        """Edit the group's first message to show its members and stage now (once per state: keyed by it)."""
        staying = [run.entries[key] for key in sorted(thread.members) if key in run.entries]
        if thread.closed or not staying:
            return
        keys = tuple(entry.key for entry in staying)
        view = self._group_view(MessageKind.STAGE, staying[0].group, staying, thread.parent_key or thread.key,
                                stage=thread.stage, size=len(staying))
        run.batch.enqueue(alerts.NewAlert(
            key=f"{thread.id}|parent|{thread.deadline}|{thread.stage}|{len(keys)}-{_digest(keys)}",
            kind="parent_update", channel=thread.channel, message=render_group_parent(view).as_json(),
            thread_id=thread.id, deployment_key=thread.key))

    def _group_view(self, kind: MessageKind, group: GroupKey | None, entries: Sequence[_Entry], alert_key: str, *,
                    stage: str | None, size: int, silenced: int = 0, detail: str | None = None,
                    members: Sequence[GroupMember] | None = None, entry: _Entry | None = None,
                    resolves: bool = False) -> GroupView:
        """A message about ``entries`` (or ``members``, with ``entry`` saying what they share)."""
        first = entry or (entries[0] if entries else None)
        if first is not None:
            mentions: dict[str, None] = {}
            for each in entries:
                mentions.update(dict.fromkeys(each.target.mentions_for(stage or "")))
            about = replace(self._view(kind, first.deployment, first.assessment, first.target, stage, alert_key),
                            mentions=tuple(mentions), detail=detail)
            if len({each.deployment.sku_name for each in entries}) > 1:
                about = replace(about, sku=None)
        else:
            about = AlertView(kind=kind, alert_key=alert_key, stage=stage, model=group.model if group else None,
                              version=group.version if group else None,
                              consequence=group.consequence if group else "none",
                              strikes_on=group.deadline if group else None, detail=detail)
        shared = group or (first.group if first else GroupKey("", "", "", "none", None))
        return GroupView(about=about, members=tuple(members if members is not None else
                                                    [each.member() for each in entries]),
                         group=shared.ref, channel=shared.channel, size=size,
                         status_filter=shared.status_filter(), resolves=resolves, silenced=silenced)

    # -- single-thread messages -----------------------------------------------------------------------------------

    def _reply(self, batch: Batch, thread: ThreadState, view: AlertView, kind: str, alert_key: str,
               step_key: str | None, deadline: date | None, broadcast: bool, *,
               deployment_key: str | None = None) -> None:
        """A reply about one deployment: in its own thread, or in the group's it is a member of."""
        message = render_alert(replace(view, alert_key=alert_key), self._portal)
        batch.enqueue(alerts.NewAlert(
            key=alert_key, kind=kind, channel=thread.channel, message=message.as_json(), thread_id=thread.id,
            deployment_key=deployment_key or thread.key, stage=step_key, deadline=deadline, broadcast=broadcast))

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

    def _fine_tune_ends(self, batch: Batch, now: datetime, entry: _Entry) -> None:
        """``deprecation.fineTune`` is the last day to train on the model: told once to a fine-tuned deployment's
        team, from the first alert threshold on. The deployed fine-tune keeps answering until its own retirement."""
        key, deployment, assessment, target = entry.key, entry.deployment, entry.assessment, entry.target
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

    def _report_changes(self, session: Session, batch: Batch, thread_of: Mapping[str, ThreadState],
                        entries: Mapping[str, _Entry]) -> None:
        after = alerts.cursor(session, EVENT_CURSOR)
        events = queries.deployment_events_after(session, after, CHANGE_EVENTS)
        grouped: dict[tuple[str, int | None, MessageKind], list[EventRow]] = defaultdict(list)
        for event in events:  # one message per deployment, poll and kind of change
            grouped[(event.subject_key, event.poll_id, CHANGE_EVENTS[event.kind])].append(event)
        for (subject, _poll, kind), changes in grouped.items():
            thread, entry = thread_of.get(subject), entries.get(subject)
            if thread is None or entry is None:
                continue
            view = self._view(kind, entry.deployment, entry.assessment, entry.target, thread.stage,
                              f"{subject}|event|{changes[0].id}")
            detail = "; ".join(_change_words(e) for e in changes)
            view = replace(view, detail=detail)
            self._reply(batch, thread, view, view.kind.value, view.alert_key, None, thread.deadline, False,
                        deployment_key=subject)
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
        return self._usage.view(AlertView(
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
            date_model=assessment.date_model, replacement_refused=assessment.replacement_refused), deployment)


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


def _digest(keys: Sequence[str]) -> str:
    """Short and stable for a set of deployment keys: part of the key of a message that names them."""
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:12]


def _moved_on(entry: _Entry, shared: GroupKey) -> str | None:
    """Why a member no longer belongs to its group though still at risk (None: it does)."""
    mine = entry.group
    if mine.channel != shared.channel:
        return f"its alerts now go to {mine.channel}"
    if (mine.model.casefold(), mine.version.casefold()) != (shared.model.casefold(), shared.version.casefold()):
        return f"it now runs {mine.model} {mine.version}".rstrip()
    if mine.consequence != shared.consequence:
        return _CONSEQUENCE_NOW.get(mine.consequence, f"what happens at the deadline is now: {mine.consequence}")
    return None


_CONSEQUENCE_NOW = {"outage": "it now stops answering at the deadline (outage)",
                    "forced-upgrade": "Azure now upgrades it at the deadline (forced upgrade)",
                    "auto-upgrade": "Azure now upgrades it when the new default is set (auto-upgrade)"}


def _order(entry: _Entry) -> tuple[int, int]:
    return entry.decision.step.order if entry.decision.step is not None else (0, 0)
