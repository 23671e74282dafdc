"""The forecast's walk, pure: literal snapshots in, items out. (End to end, and against the real notify:
tests/integration/test_forecast.py.)"""

from __future__ import annotations

from datetime import date, timedelta
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.config import EscalationConfig, parse_config, policy_from_config
from daemon.forecast.plan import Forecast, _forget_old_repeats, forecast
from daemon.forecast.render import to_table
from daemon.lifecycle.escalation import decide
from daemon.notify.routing import Router
from daemon.records import Account, CatalogModel, Deployment
from daemon.store.forecast import AckState, Snapshot, ThreadState

TODAY = date(2026, 3, 1)
POLICY = policy_from_config(EscalationConfig())
CONFIG = parse_config({"slack": {"default_channel": "#ml-platform"},
                       "routes": [{"channel": "#search", "match": {"tags": {"team": "search"}}}]}, "<test>")
ACCOUNT_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/search"
ACCOUNT = Account(id=ACCOUNT_ID, subscription_id="s", resource_group="rg", name="search", kind="OpenAI",
                  location="eastus", tags={"team": "search"})
CHAT = Deployment(id=f"{ACCOUNT_ID}/deployments/chat", account_id=ACCOUNT_ID, subscription_id="s",
                  resource_group="rg", account_name="search", location="eastus", name="chat", model_format="OpenAI",
                  model_name="gpt-4o", model_version="2024-05-13", sku_name="Standard",
                  upgrade_option="NoAutoUpgrade", provisioning_state="Succeeded")
KEY = CHAT.id.casefold()


def gpt4o(retires: date | None) -> CatalogModel:
    return CatalogModel(scope="location:eastus", format="OpenAI", name="gpt-4o", version="2024-05-13",
                        lifecycle_status="GenerallyAvailable", inference_retirement=retires,
                        deprecation_status="Planned")


def snapshot(retires: date | None, *, thread: ThreadState | None = None, sent: frozenset[str] = frozenset(),
             ack: AckState | None = None) -> Snapshot:
    return Snapshot(
        deployments=(CHAT,), accounts=MappingProxyType({ACCOUNT_ID.casefold(): ACCOUNT}),
        catalog=(gpt4o(retires),), sent={(KEY, retires): sent} if sent else {},
        acks={(KEY, retires): ack} if ack else {}, threads={KEY: thread} if thread else {},
        fine_tune_keys=frozenset())


def run(snap: Snapshot, days: int = 30) -> Forecast:
    return forecast(snap, policy=POLICY, router=Router(CONFIG.routes, CONFIG.slack), overrides=None, start=TODAY,
                    days=days)


def steps(result: Forecast) -> list[tuple[int, str, str | None, str]]:
    return [((i.day - TODAY).days, i.kind, i.step, i.channel) for i in result.items]


def test_a_thread_about_another_deadline_hears_that_the_date_moved_in_its_own_channel() -> None:
    """The route now says #search, but the open thread lives in #old-team: replies go where the thread is."""
    retires = TODAY + timedelta(days=20)
    thread = ThreadState(deadline=TODAY + timedelta(days=60), channel="#old-team", stage="notice",
                         consequence="outage")
    assert steps(run(snapshot(retires, thread=thread))) == [
        (0, "date_moved", "warning", "#old-team"), (6, "stage", "urgent", "#old-team"),
        (13, "stage", "critical@7", "#old-team"), (19, "stage", "critical@1", "#old-team"),
        (20, "stage", f"overdue@{retires}", "#old-team"), *[
            (n, "stage", f"overdue@{TODAY + timedelta(days=n)}", "#old-team") for n in range(21, 30)]]
    deadline = run(snapshot(retires, thread=thread)).deadlines
    assert [(d.strikes_on, d.channel) for d in deadline] == [(retires, "#old-team")]


def test_a_silenced_date_move_is_still_told_without_counting_as_the_stage() -> None:
    retires = TODAY + timedelta(days=20)
    thread = ThreadState(deadline=TODAY + timedelta(days=60), channel="#search", stage="notice", consequence="outage")
    quiet = snapshot(retires, thread=thread, ack=AckState(until=TODAY + timedelta(days=10), given_on=TODAY))
    assert steps(run(quiet, days=14))[:2] == [(0, "date_moved", None, "#search"), (10, "stage", "urgent", "#search")]


def test_an_open_thread_with_nothing_left_to_say_is_resolved_on_the_first_day() -> None:
    thread = ThreadState(deadline=TODAY + timedelta(days=5), channel="#search", stage="critical",
                         consequence="forced-upgrade")
    result = run(snapshot(None, thread=thread))
    assert [(i.day, i.kind, i.stage, i.consequence, i.deadline) for i in result.items] == [
        (TODAY, "resolved", "critical", "forced-upgrade", TODAY + timedelta(days=5))]
    assert result.deadlines == ()


def test_steps_already_sent_are_not_foretold_and_the_window_is_the_days_asked() -> None:
    retires = TODAY + timedelta(days=10)
    result = run(snapshot(retires, sent=frozenset({"urgent"})), days=4)
    assert steps(result) == [(3, "stage", "critical@7", "#search")]
    assert (result.start, result.end) == (TODAY, TODAY + timedelta(days=3))
    assert [d.strikes_on for d in result.deadlines] == [retires], "after the window, but alerted about in it"
    told = run(snapshot(retires, sent=frozenset({"urgent", "critical@7"})), days=4)
    assert told.items == told.deadlines == (), "nothing in the window is about it"
    with pytest.raises(ValueError, match="at least one day"):
        run(snapshot(retires), days=0)


DAY = st.integers(min_value=-40, max_value=40)


@given(days_left=st.integers(min_value=-30, max_value=100), stages=st.sets(
    st.sampled_from(["notice", "warning", "urgent", "critical@7", "critical@1"])), repeats=st.sets(DAY, max_size=12),
    repeat_every=st.integers(min_value=1, max_value=5), acked=st.booleans(), ack_until=st.none() | DAY,
    acked_on=st.none() | DAY)
def test_forgetting_old_overdue_repeats_never_changes_a_decision(
        days_left: int, stages: set[str], repeats: set[int], repeat_every: int, acked: bool, ack_until: int | None,
        acked_on: int | None) -> None:
    """The walk keeps only the latest overdue repeat before today (and any from today on): ``decide`` answers the
    same with all of them."""
    policy = policy_from_config(EscalationConfig(overdue_repeat_days=repeat_every))
    keys = stages | {f"overdue@{TODAY + timedelta(days=n)}" for n in repeats}
    kept = set(keys)
    _forget_old_repeats(kept, TODAY)
    assert kept <= keys and len([k for k in kept if k < f"overdue@{TODAY}" and k.startswith("overdue@")]) <= 1
    common = {"consequence": "outage", "scope": None, "days_left": days_left, "today": TODAY, "acked": acked,
              "ack_until": TODAY + timedelta(days=ack_until) if ack_until is not None else None,
              "acked_on": TODAY + timedelta(days=acked_on) if acked_on is not None else None}
    assert decide(policy, sent_keys=frozenset(kept), **common) == \
        decide(policy, sent_keys=frozenset(keys), **common)  # type: ignore[arg-type]


def test_the_table_says_when_there_is_nothing_to_forecast() -> None:
    assert to_table(Forecast(TODAY, 90, (), ())) == "No deployments are known: run `retirewatch poll` first."
    quiet = run(snapshot(TODAY + timedelta(days=200)))
    assert to_table(quiet) == "Nothing will be sent from 2026-03-01 to 2026-03-30 (30 days), if nothing changes."
