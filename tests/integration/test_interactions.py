"""The Acknowledge and Snooze buttons over real HTTP: the service (daemon.service.runner.Service, its HTTP server on
a free port, its scheduler delivering the outbox) answers requests signed as Slack signs them, built by the Slack
emulator from the buttons of the messages it holds; SQLite and PostgreSQL. Single alerts, and grouped alerts (the
estate of test_groups: six deployments in one group), whose buttons acknowledge the whole group."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pytest
from azure.identity import ManagedIdentityCredential
from sqlalchemy import select

from daemon.emulators.slack import Message, interaction_body, send_interaction, sign_request
from daemon.notify.render import (
    ACK_ACTION,
    ACTIONS_BLOCK_ID,
    PORTAL_ACTION,
    SNOOZE_ACTION,
    button_value,
    group_button_value,
)
from daemon.notify.slack import SlackClient
from daemon.service.jobs import Work
from daemon.service.runner import Service
from daemon.store.schema import AckRow, AlertRow
from tests.integration import test_groups
from tests.integration.test_notify import TODAY, scenario
from tests.integration.world import World, eventually, make_world, payload

JANE = "jane.doe (Slack U0PRESSER)"


@pytest.fixture
def world(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with make_world(scenario(), database_url, TODAY, service={"listen": "127.0.0.1:0"}) as made:
        monkeypatch.setenv("SLACK_SIGNING_SECRET", made.slack.signing_secret)
        made.step()  # three stage alerts: chat (critical, 5 days), mini (warning, 25 days), tentative (notice)
        yield made


@pytest.fixture
def grouped(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """g0..g5 (gpt-4o, 25 days left: warning) in one grouped alert in #search; mini-a and mini-b one each."""
    with make_world(test_groups.scenario(), database_url, test_groups.TODAY,
                    service={"listen": "127.0.0.1:0"}) as made:
        monkeypatch.setenv("SLACK_SIGNING_SECRET", made.slack.signing_secret)
        made.step()
        yield made


@contextmanager
def serving(world: World, *, may_send: bool = True) -> Iterator[str]:
    """The service as ``retirewatch run`` builds it, on a free port; the interactions URL."""
    service = Service(Work(config=world.config, clock=world.clock, sessions=world.sessions,
                           slack=SlackClient(world.config.slack, token=world.slack.token), may_send=may_send,
                           credential=ManagedIdentityCredential()))
    service.start()
    try:
        assert service.http is not None
        yield f"http://127.0.0.1:{service.http.port}/slack/interactions"
    finally:
        service.shutdown()


def messages_about(world: World, deployment: str) -> list[Message]:
    return [m for m in world.slack.messages() if payload(m).get("deployment_id", "").endswith(f"/{deployment}")]


def first_alert(world: World, deployment: str) -> Message:
    return messages_about(world, deployment)[0]


def ack_rows(world: World) -> list[AckRow]:
    with world.sessions() as session:
        return list(session.scalars(select(AckRow).order_by(AckRow.id)))


def acknowledged_replies(world: World, parent: Message) -> list[Message]:
    return [m for m in world.slack.thread(parent.channel, parent.ts)[1:] if payload(m).get("kind") == "acknowledged"]


def buttons(message: Message) -> list[str]:
    return [e["action_id"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]


def ack_line(message: Message) -> str:
    return str(next(b for b in message.blocks if b.get("block_id") == ACTIONS_BLOCK_ID)["elements"][0]["text"])


def current(world: World, message: Message) -> Message:
    return next(m for m in world.slack.messages() if m.ts == message.ts)


def replaced(world: World, message: Message) -> Message | None:
    now = current(world, message)
    return now if now.edits and not buttons(now) else None


def value(message: Message) -> str:
    [found] = {str(e["value"]) for b in message.blocks if b["type"] == "actions" for e in b["elements"]}
    return found


def names(keys: list[str]) -> list[str]:
    return sorted(key.rsplit("/", 1)[-1] for key in keys)


def press(world: World, message: Message, action_id: str = ACK_ACTION, **user: Any) -> tuple[bytes, dict[str, str]]:
    return world.slack.press(message, action_id, **user)


def test_only_signed_fresh_requests_count_and_pressing_twice_records_one_ack(world: World) -> None:
    parent = first_alert(world, "mini")
    assert buttons(parent) == [ACK_ACTION, SNOOZE_ACTION, PORTAL_ACTION]
    body, headers = press(world, parent)
    bob = press(world, parent, user_id="U0BOB", user_name="bob")  # Bob sees the same buttons, and presses later
    now = int(world.clock.now().timestamp())
    unsigned = {"Content-Type": headers["Content-Type"]}
    refused = {
        "unsigned": (body, unsigned),
        "no timestamp": (body, {k: v for k, v in headers.items() if k != "X-Slack-Request-Timestamp"}),
        "forged: another secret": (body, sign_request(body, "not-the-signing-secret", now)),
        "tampered body": (body.replace(b"jane.doe", b"mallory"), headers),
        "stale: signed 5 min 1 s ago": world.slack.press(parent, ACK_ACTION, timestamp=now - 301),
        "from the future": world.slack.press(parent, ACK_ACTION, timestamp=now + 301),
        "timestamp not a number": (body, {**headers, "X-Slack-Request-Timestamp": "soon"}),
    }
    updates_before = len(world.slack.calls("chat.update"))
    with serving(world) as url:
        for why, (refused_body, refused_headers) in refused.items():
            status, text = send_interaction(url, refused_body, refused_headers)
            assert (status, text) == (401, "invalid or stale Slack signature\n"), why
        assert ack_rows(world) == [], "a refused request changes nothing"

        began = time.monotonic()
        status, text = send_interaction(url, body, headers)
        answered_in = time.monotonic() - began
        assert status == 200 and text.startswith("recorded: acknowledged search/mini"), text
        assert answered_in < 3.0, f"Slack waits 3 s for the answer; it took {answered_in:.2f}s"
        [ack] = ack_rows(world)
        assert (ack.created_by, ack.until, ack.deadline, ack.note) == (JANE, None, TODAY + timedelta(days=25), None)

        [reply] = eventually(lambda: acknowledged_replies(world, parent), "the ack is told in the thread")
        assert reply.thread_ts == parent.ts and not reply.reply_broadcast
        assert f"Acknowledged by {JANE} for this deadline" in reply.text
        edited = eventually(lambda: replaced(world, parent), "chat.update replaces the buttons")
        assert ack_line(edited) == f":ok_hand: Acknowledged by {JANE} for this deadline"
        assert payload(edited)["alert_key"] == payload(parent)["alert_key"], "the metadata is kept"
        assert edited.text == parent.text and len(edited.blocks) == len(parent.blocks)

        # The same request again inside the 5-minute window verifies (Slack's signature cannot tell a replay), and
        # the ack's idempotency covers it: the ack in force is the same, so no row, no reply. So does Bob's press.
        for again_body, again_headers in ((body, headers), bob):
            status, text = send_interaction(url, again_body, again_headers)
            assert status == 200 and text.startswith("already so: search/mini"), text
        time.sleep(1.5)  # the scheduler ticks every second: a second reply would be delivered by now
        assert len(ack_rows(world)) == 1
        assert len(acknowledged_replies(world, parent)) == 1
        with world.sessions() as session:
            assert len(session.scalars(select(AlertRow).where(AlertRow.kind == "acknowledged")).all()) == 1
        assert len(world.slack.calls("chat.update")) - updates_before >= 1
        assert ack_line(current(world, parent)) == f":ok_hand: Acknowledged by {JANE} for this deadline"


def test_snooze_silences_for_seven_days_then_alerts_resume(world: World) -> None:
    world.go_to(TODAY + timedelta(days=5))  # mini: 20 days left, warning already told
    world.step()
    parent = first_alert(world, "mini")
    told = len(messages_about(world, "mini"))
    with serving(world) as url:
        status, text = send_interaction(url, *press(world, parent, SNOOZE_ACTION))
        assert status == 200 and "until 2026-03-13" in text, text
        [ack] = ack_rows(world)
        assert (ack.created_by, ack.until) == (JANE, date(2026, 3, 13))
        edited = eventually(lambda: replaced(world, parent), "the buttons are replaced")
        assert ack_line(edited) == f":ok_hand: Acknowledged by {JANE} until 2026-03-13 (alerts resume that day)"
        eventually(lambda: acknowledged_replies(world, parent), "the snooze is told in the thread")
    world.go_to(TODAY + timedelta(days=11))  # 14 days left: urgent, inside the snooze
    world.step()
    assert len(messages_about(world, "mini")) == told + 1, "only the ack reply: urgent is silenced"
    world.go_to(date(2026, 3, 13))  # the snooze ends: the current stage is told
    world.step()
    last = messages_about(world, "mini")[-1]
    assert payload(last)["kind"] == "stage" and payload(last)["stage"] == "urgent"
    assert buttons(last) == [ACK_ACTION, SNOOZE_ACTION, PORTAL_ACTION]


def test_an_ack_on_the_overdue_alert_stops_the_repeats_an_earlier_ack_let_through(world: World) -> None:
    parent = first_alert(world, "chat")
    with serving(world) as url:
        assert send_interaction(url, *press(world, parent))[0] == 200
        eventually(lambda: replaced(world, parent), "the buttons are replaced")
    world.go_to(TODAY + timedelta(days=5))  # the outage strikes: overdue is unsilenceable, the ack predates it
    world.step()
    overdue = messages_about(world, "chat")[-1]
    assert payload(overdue)["stage"] == "overdue" and buttons(overdue)
    with serving(world) as url:
        again = press(world, overdue, user_id="U0BOB", user_name="bob")
        status, text = send_interaction(url, *press(world, overdue))
        assert status == 200 and text.startswith("recorded:"), "the same ack, but the team is answering overdue"
        edited = eventually(lambda: replaced(world, overdue), "the overdue reply's buttons are replaced")
        assert ack_line(edited) == f":ok_hand: Acknowledged by {JANE} for this deadline"
        status, text = send_interaction(url, *again)
        assert status == 200 and text.startswith("already so:"), text
    assert [a.created_by for a in ack_rows(world)] == [JANE, JANE]
    told = len(messages_about(world, "chat"))
    world.go_to(TODAY + timedelta(days=6))
    world.step()
    assert len(messages_about(world, "chat")) == told, "no overdue repeat after the team answered it"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_presses_that_change_nothing_and_a_service_that_cannot_verify(
        world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    parent = first_alert(world, "mini")
    now = int(world.clock.now().timestamp())

    def signed(payload_: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        body = interaction_body(payload_)
        return body, sign_request(body, world.slack.signing_secret, now)

    moved = world.slack.block_actions(parent, ACK_ACTION)
    moved["actions"][0]["value"] = button_value(payload(parent)["deployment_id"], date(2026, 5, 1))
    gone = world.slack.block_actions(parent, ACK_ACTION)
    gone["actions"][0]["value"] = button_value("/subscriptions/x/deployments/gone", None)
    not_a_press = {**world.slack.block_actions(parent, ACK_ACTION), "type": "view_submission"}
    with serving(world) as url:
        status, text = send_interaction(url, *press(world, parent, PORTAL_ACTION))
        assert (status, text) == (200, "nothing to do: the portal link opens in the browser\n")
        status, text = send_interaction(url, *signed(moved))
        assert status == 200 and "which has moved to 2026-03-26: use the buttons of the latest alert" in text, text
        status, text = send_interaction(url, *signed(gone))
        assert status == 200 and "no deployment" in text, text
        status, text = send_interaction(url, *signed(not_a_press))
        assert status == 400 and "unsupported interaction type 'view_submission'" in text
        status, _ = send_interaction(url, b"", {})
        assert status == 401
        with pytest.raises(Exception, match="405"):
            import urllib.request

            urllib.request.urlopen(url, timeout=5)
    assert ack_rows(world) == [] and not replaced(world, parent)

    with serving(world, may_send=False) as url:  # a rehearsal (--now far from the wall clock) records nothing
        status, text = send_interaction(url, *press(world, parent))
        assert (status, text) == (503, "rehearsal: nothing is recorded\n")
    assert ack_rows(world) == []

    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    caplog.set_level(logging.INFO)
    with serving(world) as url:
        status, text = send_interaction(url, *press(world, parent))
        assert (status, text) == (503, "Slack interactivity is off: SLACK_SIGNING_SECRET is not set\n")
    assert ack_rows(world) == []
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("SLACK_SIGNING_SECRET is not set: POST /slack/interactions answers 503") for m in said)
    assert any("SLACK_SIGNING_SECRET is not set: answered 503" in m for m in said)


# -- grouped alerts: the buttons acknowledge the whole group --------------------------------------------------------

GROUP_DEADLINE = test_groups.TODAY + timedelta(days=25)


def test_a_grouped_alert_is_acknowledged_whole_and_pressing_twice_records_one_ack(grouped: World) -> None:
    parent = test_groups.group_message(grouped)
    ref = payload(parent)["group"]
    assert buttons(parent) == [ACK_ACTION, SNOOZE_ACTION], "no portal link: a group is not one deployment"
    assert value(parent) == group_button_value(ref, GROUP_DEADLINE) == \
        f'{{"group":"{ref}","deadline":"{GROUP_DEADLINE}"}}'
    body, headers = press(grouped, parent)
    bob = press(grouped, parent, user_id="U0BOB", user_name="bob")
    with serving(grouped) as url:
        status, text = send_interaction(url, body, headers)
        assert status == 200 and text.startswith(f"recorded: acknowledged the 6 deployments of group group:{ref}"), \
            text
        acks = ack_rows(grouped)
        assert names([a.deployment_key for a in acks]) == test_groups.GROUP, "every member, as `ack group:REF`"
        assert {(a.created_by, a.until, a.deadline, a.note) for a in acks} == {(JANE, None, GROUP_DEADLINE, None)}

        [reply] = eventually(lambda: acknowledged_replies(grouped, parent), "the ack is told in the group's thread")
        assert reply.thread_ts == parent.ts and names(payload(reply)["deployment_ids"]) == test_groups.GROUP
        assert f"Acknowledged by {JANE} for this deadline: no more alerts for the 6 deployments" in reply.text
        edited = eventually(lambda: replaced(grouped, parent), "chat.update replaces the buttons")
        assert ack_line(edited) == f":ok_hand: Acknowledged by {JANE} for this deadline"
        assert payload(edited)["group"] == ref and edited.text == parent.text

        for again_body, again_headers in ((body, headers), bob):
            status, text = send_interaction(url, again_body, again_headers)
            assert status == 200 and text.startswith("already so: the 6 deployments"), text
        time.sleep(1.5)  # the scheduler ticks every second: a second reply would be delivered by now
        assert len(ack_rows(grouped)) == 6 and len(acknowledged_replies(grouped, parent)) == 1
    grouped.go_to(test_groups.TODAY + timedelta(days=11))  # urgent: silenced for all six
    grouped.step()
    assert len(test_groups.in_thread(grouped, parent)) == 1


def test_snoozing_a_group_silences_every_member_for_seven_days(grouped: World) -> None:
    parent = test_groups.group_message(grouped)
    snooze = press(grouped, parent, SNOOZE_ACTION)
    with serving(grouped) as url:
        status, text = send_interaction(url, *snooze)
        assert status == 200 and "until 2026-03-08" in text, text
        acks = ack_rows(grouped)
        assert len(acks) == 6 and {(a.created_by, a.until) for a in acks} == {(JANE, date(2026, 3, 8))}
        edited = eventually(lambda: replaced(grouped, parent), "the buttons are replaced")
        assert ack_line(edited) == f":ok_hand: Acknowledged by {JANE} until 2026-03-08 (alerts resume that day)"
        eventually(lambda: acknowledged_replies(grouped, parent), "the snooze is told in the thread")
    grouped.go_to(test_groups.TODAY + timedelta(days=11))  # 14 days left: urgent, after the snooze
    grouped.step()
    last = test_groups.in_thread(grouped, parent)[-1]
    assert (payload(last)["kind"], payload(last)["stage"], payload(last)["deployment_count"]) == ("stage", "urgent", 6)
    assert buttons(last) == [ACK_ACTION, SNOOZE_ACTION], "the group's stage replies carry the buttons too"
    assert value(last) == group_button_value(payload(parent)["group"], GROUP_DEADLINE)


def test_an_ack_on_a_groups_overdue_alert_stops_the_repeats_an_earlier_ack_let_through(grouped: World) -> None:
    parent = test_groups.group_message(grouped)
    with serving(grouped) as url:
        assert send_interaction(url, *press(grouped, parent))[0] == 200
        eventually(lambda: replaced(grouped, parent), "the buttons are replaced")
    grouped.go_to(GROUP_DEADLINE)  # the deadline strikes: overdue is unsilenceable, the ack predates it
    grouped.step()
    overdue = test_groups.in_thread(grouped, parent)[-1]
    assert (payload(overdue)["kind"], payload(overdue)["stage"]) == ("stage", "overdue") and buttons(overdue), \
        [(payload(m).get("kind"), payload(m).get("stage"), buttons(m)) for m in test_groups.in_thread(grouped, parent)]
    with serving(grouped) as url:
        again = press(grouped, overdue, user_id="U0BOB", user_name="bob")  # Bob sees the same buttons
        status, text = send_interaction(url, *press(grouped, overdue))
        assert status == 200 and text.startswith("recorded:"), "the same ack, but the team is answering overdue"
        eventually(lambda: replaced(grouped, overdue), "the overdue reply's buttons are replaced")
        status, text = send_interaction(url, *again)
        assert status == 200 and text.startswith("already so:"), text
    assert len(ack_rows(grouped)) == 12, "six members, acknowledged twice"
    told = len(test_groups.in_thread(grouped, parent))
    grouped.go_to(GROUP_DEADLINE + timedelta(days=1))
    grouped.step()
    assert len(test_groups.in_thread(grouped, parent)) == told, "no overdue repeat after the team answered it"


def test_a_press_on_a_group_that_resolved_or_never_was_changes_nothing(grouped: World) -> None:
    parent = test_groups.group_message(grouped)
    ref = payload(parent)["group"]
    shown = grouped.slack.block_actions(parent, ACK_ACTION)  # the buttons as Slack still shows them
    unknown = grouped.slack.block_actions(parent, ACK_ACTION)
    unknown["actions"][0]["value"] = group_button_value("00000000", GROUP_DEADLINE)
    test_groups.upgrade(grouped, *test_groups.GROUP)
    grouped.go_to(test_groups.TODAY + timedelta(days=1))
    grouped.step()  # every member upgraded: the group resolves (its first message keeps its buttons, as single ones)
    assert payload(test_groups.in_thread(grouped, parent)[-1])["kind"] == "resolved"
    now = int(grouped.clock.now().timestamp())

    def signed(payload_: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        body = interaction_body(payload_)
        return body, sign_request(body, grouped.slack.signing_secret, now)

    edits = len(grouped.slack.calls("chat.update"))
    with serving(grouped) as url:
        status, text = send_interaction(url, *signed(shown))
        assert status == 200 and text.startswith(f"nothing recorded: no open group group:{ref}"), text
        status, text = send_interaction(url, *signed(unknown))
        assert status == 200 and text.startswith("nothing recorded: no open group group:00000000"), text
        time.sleep(1.5)
    assert ack_rows(grouped) == [] and acknowledged_replies(grouped, parent) == []
    assert len(grouped.slack.calls("chat.update")) == edits, "the message is left as it is"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_group_button_whose_deadline_moved_changes_nothing(grouped: World) -> None:
    parent = test_groups.group_message(grouped)
    moved = grouped.slack.block_actions(parent, ACK_ACTION)
    moved["actions"][0]["value"] = group_button_value(payload(parent)["group"], date(2026, 5, 1))
    body = interaction_body(moved)
    with serving(grouped) as url:
        status, text = send_interaction(url, body, sign_request(body, grouped.slack.signing_secret,
                                                                int(grouped.clock.now().timestamp())))
        assert status == 200 and "which has moved to 2026-03-26: use the buttons of the latest alert" in text, text
    assert ack_rows(grouped) == []
