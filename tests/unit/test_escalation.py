"""Escalation policy: one row per rule (thresholds, overrides, dedup, overdue repeats, silencing)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from daemon.config import EscalationConfig, StageThresholds, policy_from_config
from daemon.lifecycle.escalation import (
    DEFAULT_THRESHOLDS,
    Decision,
    EscalationPolicy,
    Reason,
    Stage,
    Step,
    Thresholds,
    current_step,
    decide,
    step_today,
)

TODAY = date(2026, 3, 1)
DEFAULT = policy_from_config(EscalationConfig())


def keys(policy: EscalationPolicy, consequence: str = "outage", scope: str | None = None) -> list[str]:
    return [step.key for step in policy.steps_for(consequence, scope)]


def run(policy: EscalationPolicy, **kwargs: object) -> Decision:
    arguments: dict[str, object] = {"consequence": "outage", "scope": None, "today": TODAY, **kwargs}
    return decide(policy, **arguments)  # type: ignore[arg-type]


def walk(policy: EscalationPolicy, first_days_left: int, days: int, *, consequence: str = "outage",
         scope: str | None = None) -> list[tuple[int, str, Reason]]:
    """Poll once a day from ``first_days_left`` for ``days`` days, recording every alert that is due."""
    sent: set[str] = set()
    last_overdue: date | None = None
    alerts = []
    for offset in range(days):
        today = TODAY + timedelta(days=offset)
        days_left = first_days_left - offset
        decision = decide(policy, consequence=consequence, scope=scope, days_left=days_left, today=today,
                          sent_keys=frozenset(sent), last_overdue=last_overdue)
        if decision.due:
            assert decision.step is not None
            sent.add(decision.step.key)
            alerts.append((days_left, decision.step.key, decision.reason))
            if decision.step.stage is Stage.OVERDUE:
                last_overdue = today
    return alerts


def test_stage_rank_and_printable_values() -> None:
    assert [stage.rank for stage in Stage] == [0, 1, 2, 3, 4]
    assert f"{Stage.CRITICAL}" == "critical" and f"{Reason.FIRST_ALERT}" == "first_alert"


@pytest.mark.parametrize(
    ("step", "key"),
    [
        (Step(Stage.NOTICE, 90), "notice"),
        (Step(Stage.WARNING, 30), "warning"),
        (Step(Stage.URGENT, 14), "urgent"),
        (Step(Stage.CRITICAL, 7), "critical@7"),
        (Step(Stage.CRITICAL, 1), "critical@1"),
        (Step(Stage.OVERDUE, None, date(2026, 4, 2)), "overdue@2026-04-02"),
        (Step(Stage.OVERDUE, None), "overdue"),
    ],
)
def test_step_keys(step: Step, key: str) -> None:
    assert step.key == key


def test_default_steps() -> None:
    assert EscalationPolicy().base == DEFAULT_THRESHOLDS
    assert keys(DEFAULT) == ["notice", "warning", "urgent", "critical@7", "critical@1", "overdue"]
    assert [s.days for s in DEFAULT.steps_for("outage", None)] == [90, 30, 14, 7, 1, None]


@pytest.mark.parametrize(
    ("days_left", "expected"),
    [
        (200, None), (91, None), (90, "notice"), (31, "notice"), (30, "warning"), (15, "warning"),
        (14, "urgent"), (8, "urgent"), (7, "critical@7"), (2, "critical@7"), (1, "critical@1"),
        (0, "overdue@2026-03-01"), (-1, "overdue@2026-03-01"), (-40, "overdue@2026-03-01"),
    ],
)
def test_current_step_by_days_left(days_left: int, expected: str | None) -> None:
    step = current_step(DEFAULT.steps_for("outage", None), days_left, TODAY)
    assert (step.key if step else None) == expected


@pytest.mark.parametrize(
    ("kwargs", "reason", "key"),
    [
        ({"consequence": "none", "days_left": 3}, Reason.NO_CONSEQUENCE, None),
        ({"days_left": None}, Reason.NO_DEADLINE, None),
        ({"days_left": 91}, Reason.NOT_YET, None),
        ({"days_left": 400}, Reason.NOT_YET, None),
        ({"days_left": 90}, Reason.FIRST_ALERT, "notice"),
        # Late first appearance: one alert for the stage it is in, never the earlier ones.
        ({"days_left": 5}, Reason.FIRST_ALERT, "critical@7"),
        ({"days_left": -3}, Reason.FIRST_ALERT, "overdue@2026-03-01"),
        ({"days_left": 29, "sent_keys": frozenset({"notice"})}, Reason.ESCALATED, "warning"),
        ({"days_left": 29, "sent_keys": frozenset({"notice", "warning"})}, Reason.ALREADY_SENT, "warning"),
        # Same deadline, days left went up (thresholds changed, rehearsal): never step back down.
        ({"days_left": 60, "sent_keys": frozenset({"critical@7"})}, Reason.LATER_STEP_SENT, "notice"),
        ({"days_left": 5, "sent_keys": frozenset({"critical@1"})}, Reason.LATER_STEP_SENT, "critical@7"),
        ({"days_left": 5, "sent_keys": frozenset({"overdue@2026-02-01"})}, Reason.LATER_STEP_SENT,
         "critical@7"),
        # Keys this module did not make are ignored.
        ({"days_left": 5, "sent_keys": frozenset({"digest", "critical@x"})}, Reason.FIRST_ALERT,
         "critical@7"),
    ],
)
def test_decide(kwargs: dict[str, object], reason: Reason, key: str | None) -> None:
    decision = run(DEFAULT, **kwargs)
    assert decision.reason is reason
    assert (decision.step.key if decision.step else None) == key
    assert decision.due == (reason in {Reason.FIRST_ALERT, Reason.ESCALATED, Reason.OVERDUE_REPEAT})


def test_each_stage_once_critical_twice_overdue_daily() -> None:
    alerts = walk(DEFAULT, 120, 124)
    assert [(d, k) for d, k, _ in alerts] == [
        (90, "notice"), (30, "warning"), (14, "urgent"), (7, "critical@7"), (1, "critical@1"),
        (0, "overdue@2026-06-29"), (-1, "overdue@2026-06-30"), (-2, "overdue@2026-07-01"),
        (-3, "overdue@2026-07-02"),
    ]  # the retirement day itself is overdue: Azure acts at 00:00 UTC on the listed day
    reasons = [Reason.FIRST_ALERT] + [Reason.ESCALATED] * 5 + [Reason.OVERDUE_REPEAT] * 3
    assert [r for _, _, r in alerts] == reasons


def test_late_first_appearance_then_continues() -> None:
    alerts = walk(DEFAULT, 10, 12)
    assert [(d, k) for d, k, _ in alerts] == [(10, "urgent"), (7, "critical@7"), (1, "critical@1"),
                                              (0, "overdue@2026-03-11"), (-1, "overdue@2026-03-12")]


def test_overdue_repeat_every_three_days() -> None:
    policy = policy_from_config(EscalationConfig(overdue_repeat_days=3))
    alerts = walk(policy, 1, 9)
    assert [k for _, k, _ in alerts] == ["critical@1", "overdue@2026-03-02", "overdue@2026-03-05",
                                         "overdue@2026-03-08"]


@pytest.mark.parametrize(
    ("last_overdue", "sent", "reason"),
    [
        (date(2026, 2, 28), frozenset(), Reason.OVERDUE_REPEAT),
        (date(2026, 2, 27), frozenset(), Reason.OVERDUE_REPEAT),
        (date(2026, 3, 1), frozenset(), Reason.REPEAT_NOT_DUE),
        (None, frozenset({"overdue@2026-03-01"}), Reason.ALREADY_SENT),
        (None, frozenset({"overdue@2026-02-28"}), Reason.OVERDUE_REPEAT),
        (None, frozenset({"critical@1"}), Reason.ESCALATED),
    ],
)
def test_overdue_repeat_daily(last_overdue: date | None, sent: frozenset[str], reason: Reason) -> None:
    assert run(DEFAULT, days_left=-2, last_overdue=last_overdue, sent_keys=sent).reason is reason


def test_overdue_repeat_interval_uses_latest_of_sent_keys_and_last_overdue() -> None:
    policy = policy_from_config(EscalationConfig(overdue_repeat_days=3))
    sent = frozenset({"overdue@2026-02-27"})
    decision = run(policy, days_left=-5, sent_keys=sent, last_overdue=date(2026, 2, 20))
    assert decision.reason is Reason.REPEAT_NOT_DUE
    decision = run(policy, days_left=-5, sent_keys=frozenset({"overdue@2026-02-26"}))
    assert decision.reason is Reason.OVERDUE_REPEAT


def config(**sections: dict[str, StageThresholds]) -> EscalationPolicy:
    return policy_from_config(EscalationConfig(**sections))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("policy", "consequence", "scope", "expected"),
    [
        # By consequence: outages get told earlier.
        (config(consequence={"outage": StageThresholds(notice=180, critical=(10, 3, 1))}), "outage", None,
         [("notice", 180), ("warning", 30), ("urgent", 14), ("critical@10", 10), ("critical@3", 3),
          ("critical@1", 1)]),
        # ... and other consequences keep the defaults.
        (config(consequence={"outage": StageThresholds(notice=180)}), "auto-upgrade", None,
         [("notice", 90), ("warning", 30), ("urgent", 14), ("critical@7", 7), ("critical@1", 1)]),
        # By scope: a minor update may start later than the base.
        (config(scope={"minor-version": StageThresholds(notice=45)}), "auto-upgrade", "minor-version",
         [("notice", 45), ("warning", 30), ("urgent", 14), ("critical@7", 7), ("critical@1", 1)]),
        # Both name a stage: the larger number of days (the earlier alert) wins; critical lists merge.
        (config(consequence={"outage": StageThresholds(notice=120, warning=45, critical=(7,))},
                scope={"generational": StageThresholds(notice=150, warning=40, critical=(3,))}),
         "outage", "generational",
         [("notice", 150), ("warning", 45), ("urgent", 14), ("critical@7", 7), ("critical@3", 3)]),
        # Non-monotonic: a later stage never starts before an earlier one (clamped to the previous threshold).
        (config(scope={"major-version": StageThresholds(warning=120)}), "outage", "major-version",
         [("notice", 90), ("warning", 90), ("urgent", 14), ("critical@7", 7), ("critical@1", 1)]),
        (config(consequence={"outage": StageThresholds(urgent=5)}), "outage", None,
         [("notice", 90), ("warning", 30), ("urgent", 5), ("critical@5", 5), ("critical@1", 1)]),
        (config(consequence={"outage": StageThresholds(urgent=5, critical=(7, 6))}), "outage", None,
         [("notice", 90), ("warning", 30), ("urgent", 5), ("critical@5", 5)]),
        # An empty critical list removes the stage.
        (config(consequence={"auto-upgrade": StageThresholds(critical=())}), "auto-upgrade", None,
         [("notice", 90), ("warning", 30), ("urgent", 14)]),
    ],
)
def test_overrides(policy: EscalationPolicy, consequence: str, scope: str | None,
                   expected: list[tuple[str, int]]) -> None:
    steps = policy.steps_for(consequence, scope)
    assert [(s.key, s.days) for s in steps[:-1]] == expected
    assert steps[-1].stage is Stage.OVERDUE


def test_non_monotonic_thresholds_behave() -> None:
    policy = config(scope={"major-version": StageThresholds(warning=120)})
    alerts = walk(policy, 130, 120, scope="major-version")
    assert [(d, k) for d, k, _ in alerts][:2] == [(90, "warning"), (14, "urgent")]


@pytest.mark.parametrize(
    ("kwargs", "days_left", "reason"),
    [
        ({"acked": True}, 5, Reason.SILENCED),
        ({"acked": True}, 60, Reason.SILENCED),
        ({"acked": True, "ack_until": date(2026, 3, 2)}, 5, Reason.SILENCED),
        ({"ack_until": date(2026, 3, 2)}, 5, Reason.SILENCED),
        ({"acked": True, "ack_until": date(2026, 3, 1)}, 5, Reason.FIRST_ALERT),  # resumes on the day itself
        ({"acked": True, "ack_until": date(2026, 2, 1)}, 5, Reason.FIRST_ALERT),
        ({"acked": True}, -1, Reason.FIRST_ALERT),  # overdue is unsilenceable by default
        ({"acked": True, "ack_until": date(2027, 1, 1)}, -1, Reason.FIRST_ALERT),
        ({"acked": False}, 5, Reason.FIRST_ALERT),
        # Already sent wins over silenced: the reason says what would have happened anyway.
        ({"acked": True, "sent_keys": frozenset({"critical@7"})}, 5, Reason.ALREADY_SENT),
    ],
)
def test_silencing(kwargs: dict[str, object], days_left: int, reason: Reason) -> None:
    assert run(DEFAULT, days_left=days_left, **kwargs).reason is reason


@pytest.mark.parametrize(
    ("acked_on", "days_left", "reason"),
    [
        (date(2026, 2, 20), -1, Reason.FIRST_ALERT),  # acked before the deadline: overdue breaks through
        (date(2026, 3, 1), -1, Reason.SILENCED),  # acked on the first overdue day: that is the team answering
        (date(2026, 3, 5), -6, Reason.SILENCED),  # acked while overdue: its repeats stop
        (date(2026, 2, 20), 5, Reason.SILENCED),  # a silenceable stage stays silenced whenever acked
    ],
)
def test_an_ack_given_during_an_unsilenceable_stage_silences_it(acked_on: date, days_left: int,
                                                                reason: Reason) -> None:
    assert run(DEFAULT, days_left=days_left, acked=True, acked_on=acked_on).reason is reason


def test_unsilenceable_is_configurable() -> None:
    loud = policy_from_config(EscalationConfig(unsilenceable=("critical", "overdue")))
    quiet = policy_from_config(EscalationConfig(unsilenceable=()))
    assert run(loud, days_left=3, acked=True).reason is Reason.FIRST_ALERT
    assert run(loud, days_left=10, acked=True).reason is Reason.SILENCED
    assert run(quiet, days_left=-1, acked=True).reason is Reason.SILENCED


def test_ack_expiry_gives_one_alert_for_the_current_stage() -> None:
    # Acked through warning, urgent and critical@7: when the ack ends at 3 days left, one alert (critical@7).
    sent = frozenset({"notice"})
    for days_left in (30, 14, 7, 4):
        today = TODAY + timedelta(days=30 - days_left)
        decision = run(DEFAULT, days_left=days_left, today=today, sent_keys=sent, ack_until=date(2026, 3, 28))
        assert decision.reason is Reason.SILENCED
    decision = run(DEFAULT, days_left=3, today=date(2026, 3, 28), sent_keys=sent, ack_until=date(2026, 3, 28))
    assert decision.reason is Reason.ESCALATED and decision.step == Step(Stage.CRITICAL, 7)


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="overdue_repeat_days"):
        EscalationPolicy(overdue_repeat_days=0)
    assert EscalationPolicy(base=Thresholds(notice=60, warning=None, urgent=10, critical=())).steps_for(
        "outage", None) == (Step(Stage.NOTICE, 60), Step(Stage.URGENT, 10), Step(Stage.OVERDUE, None))


@pytest.mark.parametrize(
    ("consequence", "days_left", "struck", "pending", "key"),
    [
        ("outage", None, True, False, "overdue@2026-03-01"),  # retired without a date
        ("outage", None, False, True, "notice"),  # announced, date pending
        ("outage", None, False, False, None),
        ("none", None, True, False, None),
        ("outage", 0, True, False, "overdue@2026-03-01"),
        ("outage", 29, False, False, "warning"),
        ("outage", 91, False, False, None),
    ],
)
def test_step_today_is_the_stage_alerts_digest_and_metrics_read(consequence: str, days_left: int | None,
                                                                 struck: bool, pending: bool, key: str | None) -> None:
    step = step_today(DEFAULT, consequence=consequence, scope=None, days_left=days_left, today=TODAY,
                      struck=struck, date_pending=pending)
    assert (step.key if step else None) == key
    decision = decide(DEFAULT, consequence=consequence, scope=None, days_left=days_left, today=TODAY,
                      struck=struck, date_pending=pending)
    assert decision.step == step
