"""The escalation policy: which alert, if any, a deployment's deadline calls for today.

Pure: data and a date in, a :class:`Decision` out (a step and a printable :class:`Reason`); no I/O, no clock.

A deadline walks through *steps*, earliest first: ``notice``, ``warning``, ``urgent``, one ``critical``
step per configured day (``critical@7``, ``critical@1``), then ``overdue`` once the consequence has struck,
repeated every ``overdue_repeat_days`` (each repeat keyed by its day, ``overdue@2026-04-02``). Each step is
told once per deadline.

Contract with the caller (the notify stage):

- ``sent_keys`` are the step keys already sent (or claimed in the outbox) **for the current deadline** of
  this deployment. When the deadline date changes (the date moved, the consequence changed), the caller
  starts a new, empty set: the new deadline is a new conversation, and its first alert is for whatever stage
  it is in.
- ``last_overdue`` is the day the last ``overdue`` alert went out for this deadline (``None`` if never).
  Keys of the form ``overdue@YYYY-MM-DD`` in ``sent_keys`` count too; the later of the two is used.
- Only the *current* step is ever due: a deployment that first appears (or whose date is first announced)
  inside a late stage gets one alert for that stage, never a burst of the earlier ones.
- Within one deadline, a step that sorts before a step already sent is never due (``later_step_sent``): if
  ``days_left`` goes up while the deadline stays the same (the thresholds, the consequence or the scope
  changed, or a rehearsal with ``--now`` went back in time), nobody is told "warning" after "critical".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from types import MappingProxyType

NO_CONSEQUENCE = frozenset({"none", ""})


class Stage(StrEnum):
    """How loud an alert is; declaration order is escalation order (see :attr:`rank`)."""

    NOTICE = "notice"
    WARNING = "warning"
    URGENT = "urgent"
    CRITICAL = "critical"
    OVERDUE = "overdue"

    @property
    def rank(self) -> int:
        """0 for notice up to 4 for overdue: a higher rank is later and louder."""
        return list(Stage).index(self)


@dataclass(frozen=True)
class Step:
    """One alert along a deadline: a stage and the days-left threshold at which it starts.

    ``days`` is ``None`` for ``overdue``; ``on`` is the day of an overdue repeat (set by :func:`decide`).
    """

    stage: Stage
    days: int | None
    on: date | None = None

    @property
    def key(self) -> str:
        """The dedup key: ``notice``, ``warning``, ``urgent``, ``critical@7``, ``overdue@2026-04-02``."""
        if self.stage is Stage.CRITICAL:
            return f"critical@{self.days}"
        if self.stage is Stage.OVERDUE:
            return f"overdue@{self.on.isoformat()}" if self.on is not None else "overdue"
        return self.stage.value

    @property
    def order(self) -> tuple[int, int]:
        """Position along the escalation: by stage rank, then the step with fewer days left is later."""
        return (self.stage.rank, -(self.days or 0))


@dataclass(frozen=True)
class Thresholds:
    """Days before the consequence strikes at which each stage starts; ``None``: not set / not overridden."""

    notice: int | None = None
    warning: int | None = None
    urgent: int | None = None
    critical: tuple[int, ...] | None = None


DEFAULT_THRESHOLDS = Thresholds(notice=90, warning=30, urgent=14, critical=(7, 1))


def _empty() -> Mapping[str, Thresholds]:
    return MappingProxyType({})


@dataclass(frozen=True)
class EscalationPolicy:
    """Base thresholds, overrides by consequence and by scope, the overdue repeat, what cannot be muted.

    An override replaces the base value of the stages it names (earlier or later). Where the consequence
    override and the scope override both name a stage, the larger number of days (the earlier alert) wins;
    for ``critical`` the two lists are merged (every day either names).
    """

    base: Thresholds = DEFAULT_THRESHOLDS
    by_consequence: Mapping[str, Thresholds] = field(default_factory=_empty, hash=False)
    by_scope: Mapping[str, Thresholds] = field(default_factory=_empty, hash=False)
    overdue_repeat_days: int = 1
    unsilenceable: frozenset[Stage] = frozenset({Stage.OVERDUE})

    def __post_init__(self) -> None:
        if self.overdue_repeat_days < 1:
            raise ValueError("overdue_repeat_days must be at least 1")

    def thresholds_for(self, consequence: str, scope: str | None) -> Thresholds:
        overrides = [self.by_consequence.get(consequence), self.by_scope.get(scope) if scope else None]
        return _merge(self.base, [o for o in overrides if o is not None])

    def steps_for(self, consequence: str, scope: str | None) -> tuple[Step, ...]:
        """The steps for this consequence and scope, earliest first, ending with ``overdue``.

        Steps keep stage order whatever the numbers say: each step's threshold is ``min(its days, the
        previous step's threshold)``. So ``warning = 120`` with ``notice = 90`` gives a warning at 90
        days, and notice (now at the same threshold) is passed over: at any days-left the latest step
        entered is the current one. Two critical days pulled onto the same threshold become one step.
        """
        merged = self.thresholds_for(consequence, scope)
        wanted: list[tuple[Stage, int | None]] = [
            (Stage.NOTICE, merged.notice),
            (Stage.WARNING, merged.warning),
            (Stage.URGENT, merged.urgent),
        ]
        wanted += [(Stage.CRITICAL, days) for days in sorted(set(merged.critical or ()), reverse=True)]
        steps: list[Step] = []
        ceiling: int | None = None
        for stage, days in wanted:
            if days is None:
                continue
            step = Step(stage, days if ceiling is None else min(days, ceiling))
            if steps and steps[-1].key == step.key:
                continue
            steps.append(step)
            ceiling = step.days
        steps.append(Step(Stage.OVERDUE, None))
        return tuple(steps)


def _pick(base: int | None, overrides: Iterable[int | None]) -> int | None:
    given = [value for value in overrides if value is not None]
    return max(given) if given else base


def _merge(base: Thresholds, overrides: list[Thresholds]) -> Thresholds:
    critical_lists = [o.critical for o in overrides if o.critical is not None]
    critical = tuple(sorted({d for days in critical_lists for d in days}, reverse=True))
    return Thresholds(
        notice=_pick(base.notice, (o.notice for o in overrides)),
        warning=_pick(base.warning, (o.warning for o in overrides)),
        urgent=_pick(base.urgent, (o.urgent for o in overrides)),
        critical=critical if critical_lists else base.critical,
    )


class Reason(StrEnum):
    """Why a step is or is not due; the first three mean "send"."""

    FIRST_ALERT = "first_alert"
    ESCALATED = "escalated"
    OVERDUE_REPEAT = "overdue_repeat"
    ALREADY_SENT = "already_sent"
    LATER_STEP_SENT = "later_step_sent"
    REPEAT_NOT_DUE = "repeat_not_due"
    NOT_YET = "not_yet"
    NO_CONSEQUENCE = "no_consequence"
    NO_DEADLINE = "no_deadline"
    NOT_ESCALATED = "not_escalated"  # Azure reports the deployment Failed, Deleting or Canceled
    SILENCED = "silenced"


DUE_REASONS = frozenset({Reason.FIRST_ALERT, Reason.ESCALATED, Reason.OVERDUE_REPEAT})


@dataclass(frozen=True)
class Decision:
    """``step`` is the current step (``None`` before the first threshold or without a deadline).

    Send it iff :attr:`due`; ``reason`` says why (or why not) in a word logs and messages can print.
    """

    step: Step | None
    reason: Reason

    @property
    def due(self) -> bool:
        return self.reason in DUE_REASONS

    @property
    def stage(self) -> Stage | None:
        return self.step.stage if self.step is not None else None


def current_step(steps: tuple[Step, ...], days_left: int, today: date) -> Step | None:
    """The latest step entered: ``overdue`` (dated today) from the day the consequence strikes (``days_left <= 0``:
    Azure acts at 00:00 UTC on the listed day), else the last step whose threshold is ``>= days_left``; ``None``
    when no threshold is reached yet."""
    if days_left <= 0:
        return next((Step(s.stage, s.days, today) for s in steps if s.stage is Stage.OVERDUE), None)
    entered = [s for s in steps if s.days is not None and s.days >= days_left]
    return entered[-1] if entered else None


def step_today(policy: EscalationPolicy, *, consequence: str, scope: str | None, days_left: int | None,
               today: date, struck: bool = False, date_pending: bool = False) -> Step | None:
    """The step a deadline is in today, whether or not it is due: ``overdue`` for one that struck without a date
    (the catalog calls the model retired), ``notice`` for a retirement announced without a date, else by days
    left (:func:`current_step`); ``None`` with nothing scheduled, no deadline, or before the first threshold.
    Alerts, the digest and the metrics all read the stage here."""
    if consequence in NO_CONSEQUENCE:
        return None
    if days_left is None:
        if struck:
            return Step(Stage.OVERDUE, None, today)
        return Step(Stage.NOTICE, None) if date_pending else None
    return current_step(policy.steps_for(consequence, scope), days_left, today)


_KEY = re.compile(r"^(notice|warning|urgent|critical|overdue)(?:@(.+))?$")


def _parse_key(key: str) -> Step | None:
    """The step a sent key names, or ``None`` for a key this module did not make."""
    match = _KEY.match(key)
    if match is None:
        return None
    stage, suffix = Stage(match.group(1)), match.group(2)
    try:
        if stage is Stage.CRITICAL:
            return Step(stage, int(suffix)) if suffix is not None else None
        if stage is Stage.OVERDUE:
            return Step(stage, None, date.fromisoformat(suffix) if suffix is not None else None)
    except ValueError:
        return None
    return Step(stage, None) if suffix is None else None


def _last_overdue(sent: list[Step], last_overdue: date | None) -> date | None:
    days = [s.on for s in sent if s.stage is Stage.OVERDUE and s.on is not None]
    if last_overdue is not None:
        days.append(last_overdue)
    return max(days, default=None)


def is_silenced(
    stage: Stage, policy: EscalationPolicy, today: date, *, acked: bool, ack_until: date | None,
    acked_on: date | None = None, stage_began: date | None = None, stage_began_unknown: bool = False,
) -> bool:
    """An ack mutes alerts indefinitely when ``acked`` without a date, else while ``today < ack_until`` (alerts
    resume on ``ack_until`` itself). An unsilenceable stage breaks through an ack given *before* it began (the
    deadline passed while the team was silenced); an ack given once that stage was under way is the team
    acknowledging it, and mutes its repeats too."""
    active = today < ack_until if ack_until is not None else acked
    if not active:
        return False
    if stage in policy.unsilenceable:
        if stage_began_unknown:  # retired with no date: any ack is the team answering
            return acked_on is not None
        return acked_on is not None and stage_began is not None and acked_on >= stage_began
    return True


def stage_began(step: Step, days_left: int, today: date) -> date:
    """The day the deadline entered ``step``: the day it struck for overdue, else when the days left reached the
    step's threshold."""
    strikes_on = today + timedelta(days=days_left)
    if step.stage is Stage.OVERDUE or step.days is None:
        return strikes_on
    return strikes_on - timedelta(days=step.days)


def decide(
    policy: EscalationPolicy,
    *,
    consequence: str,
    scope: str | None,
    days_left: int | None,
    today: date,
    sent_keys: frozenset[str] = frozenset(),
    last_overdue: date | None = None,
    acked: bool = False,
    ack_until: date | None = None,
    acked_on: date | None = None,
    struck: bool = False,
    date_pending: bool = False,
    escalate: bool = True,
) -> Decision:
    """Decide whether the current step of one deadline is due today (the contract: module docstring).

    Without a date, a deadline that has already struck (the catalog calls the model retired) is overdue, and a
    retirement announced without a date gets one ``notice``.

    The chain, in order: no consequence -> not escalated -> no deadline -> not yet -> already sent / later step
    sent / repeat not due -> silenced -> due (first alert, escalated, overdue repeat).
    """
    if consequence in NO_CONSEQUENCE:
        return Decision(None, Reason.NO_CONSEQUENCE)
    if not escalate:
        return Decision(None, Reason.NOT_ESCALATED)
    undated = days_left is None
    if undated and not (struck or date_pending):
        return Decision(None, Reason.NO_DEADLINE)
    step = step_today(policy, consequence=consequence, scope=scope, days_left=days_left, today=today,
                      struck=struck, date_pending=date_pending)
    if step is None:
        return Decision(None, Reason.NOT_YET)
    sent = [s for s in (_parse_key(k) for k in sent_keys) if s is not None]
    last = _last_overdue(sent, last_overdue)
    if step.key in sent_keys:
        return Decision(step, Reason.ALREADY_SENT)
    if step.stage is Stage.OVERDUE:
        if last is not None and today < last + timedelta(days=policy.overdue_repeat_days):
            return Decision(step, Reason.REPEAT_NOT_DUE)
    elif any(s.order >= step.order for s in sent):
        return Decision(step, Reason.LATER_STEP_SENT)
    began = stage_began(step, days_left, today) if days_left is not None else None
    if is_silenced(step.stage, policy, today, acked=acked, ack_until=ack_until, acked_on=acked_on,
                   stage_began=began, stage_began_unknown=undated):
        return Decision(step, Reason.SILENCED)
    if step.stage is Stage.OVERDUE and last is not None:
        return Decision(step, Reason.OVERDUE_REPEAT)
    return Decision(step, Reason.ESCALATED if sent else Reason.FIRST_ALERT)
