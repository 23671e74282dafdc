"""The buttons of stage alerts, without a network: what render puts on them, how a block_actions payload is read,
what each press asks for, and how the buttons are replaced."""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from datetime import date
from typing import Any

import pytest

from daemon.config import signing_secret
from daemon.emulators.slack import _block_problem, interaction_body, sign_request
from daemon.notify.interactions import (
    InteractionError,
    Press,
    Target,
    Verb,
    acknowledged_line,
    decide,
    parse_press,
    parse_value,
    who,
    without_buttons,
)
from daemon.notify.render import (
    ACK_ACTION,
    ACTIONS_BLOCK_ID,
    PORTAL_ACTION,
    SNOOZE_ACTION,
    AlertView,
    GroupMember,
    GroupView,
    MessageKind,
    button_value,
    group_button_value,
    render_alert,
    render_group,
    render_group_parent,
    render_parent,
)

PORTAL = "https://portal.azure.com"
ARM_ID = ("/subscriptions/00000000-0000-0000-0000-00000000aaaa/resourceGroups/rg-chat/providers/"
          "Microsoft.CognitiveServices/accounts/oai-chat/deployments/chat-prod")
STAGE = AlertView(kind=MessageKind.STAGE, alert_key=f"{ARM_ID.casefold()}|2026-03-31|critical@7", stage="critical",
                  deployment_id=ARM_ID, account="oai-chat", deployment="chat-prod", model="gpt-4o",
                  version="2024-05-13", consequence="outage", strikes_on=date(2026, 3, 31), days_left=5)
TODAY = date(2026, 3, 26)
REF = "3f2a9c1e"
GROUP = GroupView(about=dataclasses.replace(STAGE, deployment_id="", deployment="", account=""),
                  members=tuple(GroupMember(deployment_id=f"{ARM_ID}-{i}", account="oai-chat", deployment=f"chat-{i}")
                                for i in range(5)),
                  group=REF, channel="#search", size=5, status_filter="retirewatch status --channel '#search'")


def actions(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for b in blocks if b["type"] == "actions"]


def payload(action_id: str = ACK_ACTION, value: str | None = None, **changes: Any) -> dict[str, Any]:
    """A block_actions payload shaped as Slack documents it."""
    action: dict[str, Any] = {"action_id": action_id, "block_id": ACTIONS_BLOCK_ID, "type": "button",
                              "text": {"type": "plain_text", "text": "Acknowledge"}, "action_ts": "1774500000.1"}
    if value is not None:
        action["value"] = value
    body = {"type": "block_actions", "user": {"id": "U0JANE", "username": "jane.doe", "name": "jane.doe",
                                              "team_id": "T0"},
            "api_app_id": "A0", "container": {"type": "message", "message_ts": "1774500000.000100",
                                              "channel_id": "C0SEARCH", "is_ephemeral": False},
            "channel": {"id": "C0SEARCH", "name": "search"}, "team": {"id": "T0", "domain": "x"},
            "message": {"ts": "1774500000.000100", "text": "..."}, "actions": [action],
            "response_url": "https://hooks.slack.com/actions/T0/1/x", "trigger_id": "1.2.3"}
    body.update(changes)
    return body


def test_stage_alerts_carry_acknowledge_snooze_and_the_portal_link() -> None:
    for message in (render_alert(STAGE, PORTAL), render_parent(STAGE, PORTAL)):
        [block] = actions(message.blocks)
        assert block["block_id"] == ACTIONS_BLOCK_ID
        ack, snooze, portal = block["elements"]
        assert (ack["action_id"], snooze["action_id"], portal["action_id"]) == (ACK_ACTION, SNOOZE_ACTION,
                                                                                 PORTAL_ACTION)
        assert ack["text"]["text"] == "Acknowledge" and snooze["text"]["text"] == "Snooze 7 days"
        assert "chat-prod" in ack["confirm"]["text"]["text"], "acknowledging asks first, naming the deployment"
        assert parse_value(ack["value"]) == parse_value(snooze["value"]) == Target(ARM_ID, date(2026, 3, 31))
        assert portal["url"] == f"{PORTAL}/#resource{ARM_ID}/overview" and "value" not in portal
        assert _block_problem(message.blocks) is None, "within Slack's limits"


@pytest.mark.parametrize("kind", [k for k in MessageKind if k is not MessageKind.STAGE])
def test_other_messages_carry_no_buttons(kind: MessageKind) -> None:
    assert actions(render_alert(dataclasses.replace(STAGE, kind=kind), PORTAL).blocks) == []
    other = dataclasses.replace(GROUP, about=dataclasses.replace(GROUP.about, kind=kind))
    assert actions(render_group(other).blocks) == []


def test_group_stage_alerts_carry_acknowledge_and_snooze_for_the_whole_group() -> None:
    for message in (render_group(GROUP), render_group_parent(GROUP)):
        [block] = actions(message.blocks)
        assert block["block_id"] == ACTIONS_BLOCK_ID
        ack, snooze = block["elements"]  # no portal link: a group is not one deployment
        assert (ack["action_id"], snooze["action_id"]) == (ACK_ACTION, SNOOZE_ACTION)
        assert ack["value"] == snooze["value"] == group_button_value(REF, date(2026, 3, 31))
        assert json.loads(ack["value"]) == {"group": REF, "deadline": "2026-03-31"}
        assert "every deployment in this group" in ack["confirm"]["text"]["text"]
        assert parse_value(ack["value"]) == Target("", date(2026, 3, 31), group=REF)
        assert message.blocks[-1]["type"] == "context", "the buttons come before the context, as on single alerts"
        assert _block_problem(message.blocks) is None


def test_an_undated_deadline_and_an_oversized_id() -> None:
    undated = render_alert(dataclasses.replace(STAGE, strikes_on=None, days_left=None, struck=True), PORTAL)
    assert parse_value(actions(undated.blocks)[0]["elements"][0]["value"]) == Target(ARM_ID, None)
    huge = dataclasses.replace(STAGE, deployment_id="/" + "x" * 2100)
    assert actions(render_alert(huge, PORTAL).blocks) == [], "no button whose value Slack would refuse"
    assert json.loads(button_value(ARM_ID, None)) == {"deployment": ARM_ID, "deadline": None}


def test_parse_press_reads_who_pressed_what_where() -> None:
    value = button_value(ARM_ID, date(2026, 3, 31))
    press = parse_press(interaction_body(payload(SNOOZE_ACTION, value)))
    assert press == Press(action_id=SNOOZE_ACTION, value=value, user_id="U0JANE", user_name="jane.doe",
                          channel_id="C0SEARCH", message_ts="1774500000.000100")
    assert who(press) == "jane.doe (Slack U0JANE)"
    bare = payload(ACK_ACTION, value, container={}, user={"id": "U0BOB"})
    press = parse_press(interaction_body(bare))
    assert (press.user_name, press.channel_id, press.message_ts) == ("U0BOB", "C0SEARCH", None)


@pytest.mark.parametrize(("body", "problem"), [
    (b"", "not a Slack interaction"),
    (b"\xff\xfe", "not a Slack interaction"),
    (b"payload=%7Bnot+json", "not a Slack interaction"),
    (b"other=1", "not a Slack interaction"),
    (urllib.parse.urlencode({"payload": "[1]"}).encode(), "not an object"),
    (interaction_body(payload(type="view_submission")), "unsupported interaction type 'view_submission'"),
    (interaction_body(payload(actions=[])), "without an action"),
    (interaction_body(payload(user={"name": "nobody"})), "without a user"),
])
def test_what_is_not_a_button_press_is_refused(body: bytes, problem: str) -> None:
    with pytest.raises(InteractionError, match=problem):
        parse_press(body)


def test_each_button_decides() -> None:
    value = button_value(ARM_ID, date(2026, 3, 31))
    press = parse_press(interaction_body(payload(ACK_ACTION, value)))
    ack = decide(press, TODAY)
    assert (ack.verb, ack.target, ack.until) == (Verb.ACK, Target(ARM_ID, date(2026, 3, 31)), None)
    snooze = decide(dataclasses.replace(press, action_id=SNOOZE_ACTION), TODAY)
    assert (snooze.verb, snooze.until) == (Verb.ACK, date(2026, 4, 2)), "today + 7: alerts resume that day"
    assert decide(dataclasses.replace(press, action_id=PORTAL_ACTION, value=None), TODAY).verb is Verb.IGNORE
    assert decide(dataclasses.replace(press, action_id="somebody_elses"), TODAY).verb is Verb.IGNORE
    group = decide(dataclasses.replace(press, action_id=SNOOZE_ACTION, value=group_button_value(REF, None)), TODAY)
    assert (group.verb, group.target, group.until) == (Verb.ACK, Target("", None, group=REF), date(2026, 4, 2))


@pytest.mark.parametrize("value", [None, "", "not json", "[]", '{"deadline": "2026-03-31"}',
                                   '{"deployment": "chat-prod"}', f'{{"deployment": "{ARM_ID}", "deadline": "soon"}}',
                                   '{"group": 12}', '{"group": ""}', '{"group": "3f2a9c1e", "deadline": "soon"}',
                                   f'{{"group": "3f2a9c1e", "deployment": "{ARM_ID}", "deadline": null}}'])
def test_a_button_value_that_names_no_deadline_is_refused(value: str | None) -> None:
    press = parse_press(interaction_body(payload(ACK_ACTION, value)))
    with pytest.raises(InteractionError):
        decide(press, TODAY)


def test_the_buttons_are_replaced_by_who_acknowledged_and_until_when() -> None:
    blocks = render_alert(STAGE, PORTAL).blocks
    line = acknowledged_line("<jane> & co (Slack U0JANE)", date(2026, 4, 2))
    replaced = without_buttons(blocks, line)
    assert actions(replaced) == [] and len(replaced) == len(blocks)
    [context] = [b for b in replaced if b.get("block_id") == ACTIONS_BLOCK_ID]
    assert context["type"] == "context"
    assert context["elements"][0]["text"] == (":ok_hand: Acknowledged by &lt;jane&gt; &amp; co (Slack U0JANE) "
                                              "until 2026-04-02 (alerts resume that day)")
    assert [b for b in replaced if b.get("block_id") != ACTIONS_BLOCK_ID] == \
        [b for b in blocks if b.get("block_id") != ACTIONS_BLOCK_ID]
    assert acknowledged_line("bob (Slack U0BOB)", None).endswith("for this deadline")
    assert _block_problem(replaced) is None


def test_the_signing_secret_comes_from_the_environment() -> None:
    assert signing_secret({"SLACK_SIGNING_SECRET": " s3cret \n"}) == "s3cret"
    assert signing_secret({"SLACK_SIGNING_SECRET": "  "}) is None and signing_secret({}) is None


def test_the_emulator_signs_as_slack_does() -> None:
    from slack_sdk.signature import SignatureVerifier

    class At:
        def now(self) -> float:
            return 1_774_500_000.0

    body = interaction_body(payload(ACK_ACTION, "x"))
    headers = sign_request(body, "s3cret", 1_774_500_000)
    assert SignatureVerifier("s3cret", At()).is_valid_request(body, headers)
    assert not SignatureVerifier("other", At()).is_valid_request(body, headers)
    assert not SignatureVerifier("s3cret", At()).is_valid_request(body + b"&x=1", headers)
