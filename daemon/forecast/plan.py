"""What notify will send, day by day, if nothing changes (pure: a snapshot of the store and a date in, items out).

The forecast does not re-derive the policy. For every day of the window it asks the very functions ``notify`` asks
(``assess`` for the deployment on that day, the router, ``escalation.decide``) with the state ``notify`` would have
by then: what the outbox already holds, plus every alert forecast on an earlier day, as if each had been sent. It
takes the same turns as the planner (daemon/notify/plan.py, ``Planner._plan_one`` and ``_fine_tune_ends``):

1. nothing is in a stage any more but a thread is open -> the thread is resolved;
2. nothing is in a stage -> nothing;
3. a thread is open about another deadline -> "date moved" in that thread (it counts as the new deadline's alert
   for its current stage when that stage is due);
4. the current step is not due (already sent, a later step sent, an overdue repeat not due, silenced) -> nothing;
5. else the stage alert: a new thread in the routed channel, or a reply in the open thread's channel.

Then the one "fine-tuning ends" message of a fine-tuned deployment, from the first notice threshold on.

"Nothing changes" means: the inventory and the catalog stay as the last poll read them, nobody acks, and
``notify`` runs at least once a day. Changes a poll recorded but ``notify`` has not told yet are not forecast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from daemon.lifecycle import Assessment, CatalogIndex, CuratedDates, ScopeOverrides, assess
from daemon.lifecycle.escalation import EscalationPolicy, Stage, decide
from daemon.notify.render import MessageKind
from daemon.notify.routing import Router, normalize_channel
from daemon.records import Deployment
from daemon.store.forecast import Snapshot, ThreadState, deployment_key

OVERDUE_PREFIX = f"{Stage.OVERDUE.value}@"  # an overdue repeat's step key: overdue@2026-04-02
STAGE, DATE_MOVED, RESOLVED, FINE_TUNE_ENDS = (MessageKind.STAGE.value, MessageKind.DATE_MOVED.value,
                                               MessageKind.RESOLVED.value, MessageKind.FINE_TUNE_ENDS.value)


@dataclass(frozen=True)
class ForecastItem:
    """One message ``notify`` will send. ``stage`` is the escalation stage (for ``resolved``: the thread's last
    stage; ``None`` for ``fine_tune_ends``); ``step`` the step key when the message counts as a stage alert
    (``critical@7``, ``overdue@2026-04-02``); ``deadline`` the day the consequence strikes (for ``resolved``: the
    deadline the thread was about), as the message's metadata says it; ``fine_tune_ends`` the last day to train on
    the model (``fine_tune_ends`` messages only)."""

    day: date  # "date" in JSON
    kind: str  # stage | date_moved | resolved | fine_tune_ends
    deployment_key: str
    deployment_id: str
    account: str
    deployment: str
    channel: str
    stage: str | None
    step: str | None
    consequence: str
    deadline: date | None
    days_left: int | None
    model: str | None
    version: str | None
    replacement_model: str | None
    replacement_version: str | None
    update_scope: str | None
    fine_tune_ends: date | None = None

    @property
    def name(self) -> str:
        """ACCOUNT/DEPLOYMENT, what ``retirewatch ack`` takes."""
        return f"{self.account}/{self.deployment}"


@dataclass(frozen=True)
class Deadline:
    """One deployment's deadline (a strike day) inside the window or alerted about in it, as the calendar shows it.
    ``silenced``: an ack holds for it on the window's first day."""

    deployment_key: str
    deployment_id: str
    account: str
    deployment: str
    channel: str
    consequence: str
    strikes_on: date
    model: str | None
    version: str | None
    retirement_date: date | None
    date_status: str | None  # confirmed | tentative | unconfirmed
    replacement_model: str | None
    replacement_version: str | None
    update_scope: str | None
    manual_migration: bool
    silenced: bool

    @property
    def name(self) -> str:
        return f"{self.account}/{self.deployment}"


@dataclass(frozen=True)
class Forecast:
    start: date
    days: int
    items: tuple[ForecastItem, ...]
    deadlines: tuple[Deadline, ...]
    channels: frozenset[str] = field(default_factory=frozenset)  # every channel anything routes to

    @property
    def end(self) -> date:
        """The last day of the window."""
        return self.start + timedelta(days=self.days - 1)

    def for_channel(self, channel: str) -> Forecast:
        wanted = normalize_channel(channel)
        return Forecast(self.start, self.days, tuple(i for i in self.items if i.channel == wanted),
                        tuple(d for d in self.deadlines if d.channel == wanted), self.channels)


@dataclass
class _Thread:
    deadline: date | None
    channel: str
    stage: str | None
    consequence: str


def window(start: date, days: int) -> Iterator[date]:
    for offset in range(days):
        yield start + timedelta(days=offset)


def forecast(snapshot: Snapshot, *, policy: EscalationPolicy, router: Router, overrides: ScopeOverrides | None,
             start: date, days: int, dates: CuratedDates | None = None,
             policy_of: Callable[[Deployment, EscalationPolicy], EscalationPolicy] | None = None) -> Forecast:
    """Every message ``notify`` would send from ``start`` for ``days`` days (``start`` included), in order, and
    every deadline that strikes in the window or is alerted about in it. ``dates``: the curated retirement dates
    notify also reads; ``policy_of``: the policy a deployment follows (an idle one its own, as notify decides)."""
    if days < 1:
        raise ValueError("the forecast needs a window of at least one day")
    index = CatalogIndex(snapshot.catalog, dates)
    end = start + timedelta(days=days - 1)
    items: list[ForecastItem] = []
    deadlines: dict[tuple[str, date], Deadline] = {}
    channels: set[str] = set()
    for deployment in snapshot.deployments:
        key = deployment_key(deployment)
        account = snapshot.accounts.get(deployment.account_id.casefold())
        target = router.route(subscription_id=deployment.subscription_id, resource_group=deployment.resource_group,
                              account=deployment.account_name, deployment=deployment.name,
                              tags=account.tags if account else {})
        channels.add(target.channel)
        own = policy_of(deployment, policy) if policy_of is not None else policy
        walk = _Walk(snapshot, own, key, deployment, target.channel, snapshot.threads.get(key))
        for day in window(start, days):
            assessment = assess(deployment, index, day, overrides)
            told = walk.day(day, assessment)
            items.extend(told)
            strikes = assessment.strikes_on
            alerted = [i.channel for i in told if i.kind in (STAGE, DATE_MOVED)]
            if strikes is not None and (alerted or start <= strikes <= end):
                known = deadlines.get((key, strikes))
                if known is None or (alerted and known.channel != alerted[0]):
                    deadlines[(key, strikes)] = walk.deadline(assessment, start, alerted[0] if alerted else None)
    items.sort(key=lambda i: (i.day, i.channel, i.deadline or date.min, i.name, i.kind))
    ordered = sorted(deadlines.values(), key=lambda d: (d.strikes_on, d.channel, d.name))
    return Forecast(start, days, tuple(items), tuple(ordered), frozenset(channels))


class _Walk:
    """One deployment through the window: the thread, the sent steps and the acks ``notify`` would see each day."""

    def __init__(self, snapshot: Snapshot, policy: EscalationPolicy, key: str, deployment: Deployment,
                 routed: str, thread: ThreadState | None) -> None:
        self._snapshot, self._policy, self._key, self._deployment = snapshot, policy, key, deployment
        self._routed = routed
        self._thread = (_Thread(thread.deadline, thread.channel, thread.stage, thread.consequence) if thread is not None
                        else None)
        self._sent: dict[date | None, set[str]] = {}
        self._fine_tune_told = False

    def _sent_for(self, deadline: date | None, day: date) -> set[str]:
        if deadline not in self._sent:
            self._sent[deadline] = set(self._snapshot.sent.get((self._key, deadline), frozenset()))
        sent = self._sent[deadline]
        _forget_old_repeats(sent, day)
        return sent

    def day(self, day: date, assessment: Assessment) -> list[ForecastItem]:
        """What ``notify`` sends about this deployment on ``day`` (the planner's order: the stage, then fine-tuning)."""
        return [*self._stage(day, assessment), *self._fine_tune_ends(day, assessment)]

    def _stage(self, day: date, assessment: Assessment) -> list[ForecastItem]:
        deadline = assessment.strikes_on
        scope = assessment.update_scope.value if assessment.update_scope else None
        sent = self._sent_for(deadline, day)
        ack = self._snapshot.acks.get((self._key, deadline))
        decision = decide(self._policy, consequence=assessment.consequence.value, scope=scope,
                          days_left=assessment.days_left, today=day, sent_keys=frozenset(sent),
                          struck=assessment.struck, date_pending=assessment.date_pending,
                          escalate=assessment.escalate, acked=ack is not None,
                          ack_until=ack.until if ack else None, acked_on=ack.given_on if ack else None)
        thread = self._thread
        if thread is not None and decision.step is None:
            self._thread = None
            return [self._item(day, RESOLVED, assessment, thread.channel, thread.stage, None, closes=thread)]
        if decision.step is None:
            return []
        step, stage = decision.step, decision.step.stage.value
        if thread is not None and thread.deadline != deadline:
            if decision.due:
                sent.add(step.key)
            thread.deadline, thread.stage = deadline, stage
            return [self._item(day, DATE_MOVED, assessment, thread.channel, stage,
                               step.key if decision.due else None)]
        if not decision.due:
            return []
        sent.add(step.key)
        if thread is None:
            self._thread = _Thread(deadline, self._routed, stage, assessment.consequence.value)
            return [self._item(day, STAGE, assessment, self._routed, stage, step.key)]
        thread.stage = stage
        return [self._item(day, STAGE, assessment, thread.channel, stage, step.key)]

    def _fine_tune_ends(self, day: date, assessment: Assessment) -> list[ForecastItem]:
        ends = assessment.fine_tune_retirement
        if self._fine_tune_told or not assessment.fine_tuned or ends is None or not assessment.escalate:
            return []
        if (ends - day).days > (self._policy.base.notice or 90):
            return []
        self._fine_tune_told = True
        if f"{self._key}|fine-tune-ends|{ends}" in self._snapshot.fine_tune_keys:
            return []
        return [replace(self._item(day, FINE_TUNE_ENDS, assessment, self._routed, None, None),
                        fine_tune_ends=ends)]

    def _item(self, day: date, kind: str, assessment: Assessment, channel: str, stage: str | None,
              step: str | None, *, closes: _Thread | None = None) -> ForecastItem:
        """An item about ``assessment``'s deadline, or (``closes``) about the deadline of the thread it closes."""
        d = self._deployment
        return ForecastItem(
            day=day, kind=kind, deployment_key=self._key, deployment_id=d.id, account=d.account_name,
            deployment=d.name, channel=channel, stage=stage, step=step,
            consequence=closes.consequence if closes else assessment.consequence.value,
            deadline=closes.deadline if closes else assessment.strikes_on,
            days_left=None if closes else assessment.days_left,
            model=d.model_name, version=d.model_version, replacement_model=assessment.replacement_model,
            replacement_version=assessment.replacement_version,
            update_scope=assessment.update_scope.value if assessment.update_scope else None)

    def deadline(self, assessment: Assessment, start: date, channel: str | None) -> Deadline:
        """``assessment``'s deadline as the calendar shows it, in ``channel`` (default: where its alerts would go)."""
        strikes_on = assessment.strikes_on
        assert strikes_on is not None
        ack = self._snapshot.acks.get((self._key, strikes_on))
        thread = self._thread
        where = channel or (thread.channel if thread is not None and thread.deadline == strikes_on else self._routed)
        d = self._deployment
        return Deadline(
            deployment_key=self._key, deployment_id=d.id, account=d.account_name, deployment=d.name,
            channel=where, consequence=assessment.consequence.value, strikes_on=strikes_on, model=d.model_name,
            version=d.model_version, retirement_date=assessment.retirement_date,
            date_status=assessment.date_status.value if assessment.date_status else None,
            replacement_model=assessment.replacement_model, replacement_version=assessment.replacement_version,
            update_scope=assessment.update_scope.value if assessment.update_scope else None,
            manual_migration=assessment.manual_migration,
            silenced=ack is not None and (ack.until is None or start < ack.until))


def deadlines_by_event(deadlines: Iterable[Deadline]) -> Mapping[tuple[str, date, str, str, str], list[Deadline]]:
    """Deadlines grouped the way the calendar shows them: one event per channel, strike day, model, version and
    consequence."""
    grouped: dict[tuple[str, date, str, str, str], list[Deadline]] = {}
    for d in deadlines:
        grouped.setdefault((d.channel, d.strikes_on, d.model or "?", d.version or "?", d.consequence), []).append(d)
    return grouped


def _forget_old_repeats(sent: set[str], day: date) -> None:
    """Drop the ``overdue@DAY`` keys before ``day`` but the latest: ``decide`` reads only the latest repeat and
    whether today's is among them, so its answers do not change, and a deadline overdue for months does not make
    every later day's decision read every repeat again."""
    repeats = sorted(key for key in sent if key.startswith(OVERDUE_PREFIX))  # ISO days sort as dates
    today = OVERDUE_PREFIX + day.isoformat()
    old = [key for key in repeats[:-1] if key < today]
    sent.difference_update(old)
