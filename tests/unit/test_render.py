"""Slack rendering: every kind renders, says it in plain words, carries metadata, fits Slack's limits."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import date
from typing import Any

import pytest

from daemon.notify.render import (
    EVENT_ALERT,
    EVENT_OPERATIONAL,
    EVENT_RESOLVED,
    AlertView,
    MessageKind,
    RenderedMessage,
    in_days,
    render_alert,
    render_parent,
)

PORTAL = "https://portal.azure.com"
ARM_ID = ("/subscriptions/00000000-0000-0000-0000-00000000aaaa/resourceGroups/rg-chat/providers/"
          "Microsoft.CognitiveServices/accounts/oai-chat/deployments/chat-prod")
OUTAGE = AlertView(
    kind=MessageKind.STAGE, alert_key=f"{ARM_ID}|2026-03-31|critical@7", stage="critical",
    deployment_id=ARM_ID, subscription_id="00000000-0000-0000-0000-00000000aaaa", resource_group="rg-chat",
    account="oai-chat", deployment="chat-prod", location="swedencentral", model="gpt-4o",
    version="2024-05-13", sku="Standard", upgrade_option="NoAutoUpgrade", consequence="outage",
    retirement_date=date(2026, 3, 31), strikes_on=date(2026, 3, 31), days_left=5, date_source="sku",
    date_status="confirmed",
    replacement_model="gpt-5.1", replacement_version="2025-11-13", update_scope="generational",
    mentions=("<!subteam^S0TEAM>",),
)
FORCED = dataclasses.replace(OUTAGE, upgrade_option="OnceCurrentVersionExpired", consequence="forced-upgrade",
                             strikes_on=date(2026, 3, 21), days_left=20, stage="warning",
                             date_source="inference", date_status="tentative")
AUTO = dataclasses.replace(OUTAGE, upgrade_option="OnceNewDefaultVersionAvailable",
                           consequence="auto-upgrade", strikes_on=date(2026, 3, 9), days_left=40,
                           stage="notice", update_scope="minor-version")
PROVISIONED = dataclasses.replace(OUTAGE, sku="GlobalProvisionedManaged",
                                  upgrade_option="OnceNewDefaultVersionAvailable", manual_migration=True,
                                  manual_reason="provisioned deployments are never upgraded by Azure: migrate in "
                                                "place or side by side")
OVERDUE = dataclasses.replace(OUTAGE, stage="overdue", days_left=-3, struck=True, alert_key="k|overdue@2026-04-03")


def block_text(message: RenderedMessage) -> str:
    return json.dumps(message.blocks)


def all_block_chars(message: RenderedMessage) -> int:
    total = 0
    for block in message.blocks:
        texts = [block.get("text", {}), *block.get("fields", []), *block.get("elements", [])]
        total += sum(len(t.get("text", "")) for t in texts)
    return total


@pytest.mark.parametrize(
    ("view", "sentences"),
    [
        (OUTAGE, ["Critical: outage in 5 days: gpt-4o 2024-05-13 on chat-prod",
                  "this deployment stops answering on 2026-03-31 (requests fail with HTTP 410)",
                  "Replacement: gpt-5.1 2025-11-13, a generational update",
                  "Date source: the per-SKU retirement date for Standard (confirmed by Microsoft)"]),
        (FORCED, ["Warning: forced upgrade in 20 days",
                  "Azure will upgrade it to gpt-5.1 2025-11-13 on 2026-03-21 (untested change)",
                  "The change comes earlier, on 2026-03-21",
                  "Tentative date: this is the model's retirement date, which Microsoft marks as tentative"]),
        (AUTO, ["Notice: auto-upgrade in 40 days",
                "Azure will auto-upgrade it to gpt-5.1 2025-11-13 from 2026-03-09 (untested change)",
                "a minor version update"]),
        (PROVISIONED, ["Provisioned deployments are never upgraded by Azure: migrate in place or side by side.",
                       "SKU GlobalProvisionedManaged"]),
        (OVERDUE, ["Overdue: outage since 2026-03-31",
                   "3 days ago: this deployment stopped answering on 2026-03-31"]),
        (dataclasses.replace(AUTO, replacement_model=None, update_scope=None, date_source=None,
                             date_status=None),
         ["Azure will auto-upgrade it to the replacement Azure chooses (not announced yet)"]),
        (dataclasses.replace(OUTAGE, days_left=1), ["Tomorrow: this deployment stops answering"]),
        (dataclasses.replace(OUTAGE, days_left=0, struck=True, stage="overdue"),
         ["Overdue: outage since 2026-03-31", "Today: this deployment stopped answering on 2026-03-31"]),
        (dataclasses.replace(OUTAGE, retirement_date=None, strikes_on=None, days_left=None, date_pending=True,
                             lifecycle="legacy: retirement coming", stage="notice", date_source=None,
                             date_status=None),
         ["Notice: outage date pending", "is legacy: retirement coming: retirement announced, date not set yet",
          "Date pending: this deployment stops answering on the retirement date, once Microsoft sets it"]),
        (dataclasses.replace(OUTAGE, retirement_date=None, strikes_on=None, days_left=None, struck=True,
                             lifecycle="retired", stage="overdue", date_source=None, date_status=None),
         ["Overdue: outage already", "which Microsoft has retired",
          "this deployment no longer answers: Microsoft has retired the model (requests fail with HTTP 410)"]),
        (dataclasses.replace(OUTAGE, lifecycle="retired"),  # a date still ahead, and the catalog says retired
         ["which retires on 2026-03-31. Microsoft's catalog already lists the model as retired."]),
    ],
)
def test_stage_alert_says_it_in_plain_words(view: AlertView, sentences: list[str]) -> None:
    message = render_alert(view, PORTAL)
    for sentence in sentences:
        assert sentence in message.text
        assert sentence in block_text(message)
    assert message.text.startswith("<!subteam^S0TEAM> ")
    assert message.blocks[1]["text"]["text"].startswith("<!subteam^S0TEAM> ")
    assert "Where: deployment chat-prod in account oai-chat, resource group rg-chat" in message.text
    assert f"Azure portal: {PORTAL}/#resource{ARM_ID}/overview" in message.text
    link = f"<{PORTAL}/#resource{ARM_ID}/overview|Open the deployment in the Azure portal>"
    assert link in block_text(message)


@pytest.mark.parametrize(
    ("kind", "detail", "headline", "event"),
    [
        (MessageKind.STAGE, None, ":rotating_light: Critical: outage in 5 days", EVENT_ALERT),
        (MessageKind.DATE_MOVED, "Retirement date moved from 2026-03-31 to 2026-10-01.",
         ":calendar: Retirement date moved: gpt-4o 2024-05-13 on chat-prod", EVENT_ALERT),
        (MessageKind.VERSION_CHANGED, "Version changed from 2024-05-13 to 2024-11-20.",
         ":arrows_counterclockwise: Version changed", EVENT_ALERT),
        (MessageKind.LIFECYCLE_CHANGED, "Lifecycle changed from GenerallyAvailable to Deprecating.",
         ":label: Lifecycle changed", EVENT_ALERT),
        (MessageKind.ACKNOWLEDGED, "Acknowledged by <@U0ALICE> until 2026-03-20: migration planned.",
         ":ok_hand: Acknowledged", EVENT_ALERT),
        (MessageKind.RESOLVED, "Resolved: the deployment now runs gpt-5.1 2025-11-13.",
         ":white_check_mark: Resolved", EVENT_RESOLVED),
        (MessageKind.OPERATIONAL, "Channel #search-oncall does not exist (channel_not_found).",
         ":gear: retirewatch", EVENT_OPERATIONAL),
    ],
)
def test_each_kind_renders(kind: MessageKind, detail: str | None, headline: str, event: str) -> None:
    message = render_alert(dataclasses.replace(OUTAGE, kind=kind, detail=detail), PORTAL)
    assert message.blocks[0]["type"] == "header"
    assert message.blocks[0]["text"]["text"].startswith(headline)
    if detail:
        escaped = detail.replace("<", "&lt;").replace(">", "&gt;")
        assert escaped in message.text and escaped in message.blocks[1]["text"]["text"]
    assert message.metadata["event_type"] == event
    assert message.metadata["event_payload"]["kind"] == kind.value


def test_operational_without_a_deployment() -> None:
    view = AlertView(kind=MessageKind.OPERATIONAL, alert_key="op|azure|2026-03-01", problem="poll|abc",
                     first_seen="2026-03-01T06:00:00+00:00",
                     detail="Subscription 1111 answered 403 for three polls.\n• read subscriptions: 403 Forbidden")
    message = render_alert(view, PORTAL)
    header = message.blocks[0]["text"]["text"]
    assert header == ":gear: retirewatch: Subscription 1111 answered 403 for three polls."
    assert message.text.count("Subscription 1111 answered 403") == 1, "the detail is stated once"
    assert message.blocks[1]["text"]["text"].count("403 Forbidden") == 1
    assert "Subscription 1111" not in message.blocks[1]["text"]["text"], "the title is the header, not the body"
    assert "Azure portal" not in message.text
    assert message.metadata == {"event_type": EVENT_OPERATIONAL, "event_payload": {
        "problem": "poll|abc", "first_seen": "2026-03-01T06:00:00+00:00", "alert_key": "op|azure|2026-03-01",
        "kind": "operational"}}


def test_metadata_payload() -> None:
    payload = render_alert(OUTAGE, PORTAL).metadata["event_payload"]
    assert payload["deployment_id"] == ARM_ID
    assert payload["deadline"] == "2026-03-31"
    assert payload["stage"] == "critical"
    assert payload["consequence"] == "outage"
    assert payload["alert_key"] == OUTAGE.alert_key
    assert payload["kind"] == "stage"
    assert payload["days_left"] == 5
    assert all(isinstance(value, str | int | bool) for value in payload.values())
    assert render_alert(dataclasses.replace(OUTAGE, strikes_on=None, days_left=None),
                        PORTAL).metadata["event_payload"]["deadline"] == ""


def test_parent_shows_the_current_stage_without_mentions() -> None:
    view = dataclasses.replace(OUTAGE, kind=MessageKind.DATE_MOVED, detail="moved", stage="urgent",
                               days_left=12)
    parent = render_parent(view, PORTAL)
    assert parent.blocks[0]["text"]["text"].startswith(":large_orange_circle: Urgent: outage in 12 days")
    assert "<!subteam" not in parent.text and "<!subteam" not in block_text(parent)
    assert "moved" not in parent.blocks[1]["text"]["text"]
    assert parent.metadata["event_payload"]["parent"] is True
    assert "thread summary" in block_text(parent)
    resolved_view = dataclasses.replace(OUTAGE, kind=MessageKind.RESOLVED, detail="Upgraded.")
    resolved = render_parent(resolved_view, PORTAL)
    assert resolved.blocks[0]["text"]["text"].startswith(":white_check_mark: Resolved")
    assert "Upgraded." in resolved.text
    assert resolved.metadata["event_type"] == EVENT_RESOLVED


@pytest.mark.parametrize("render", [render_alert, render_parent])
def test_limits_hold_for_very_long_names(render: Any) -> None:
    long = "x" * 5000
    view = dataclasses.replace(OUTAGE, deployment=long, account=long, resource_group=long, model=long,
                               version=long, sku=long, replacement_model=long, location=long,
                               upgrade_option=long, detail="d & <b> " * 2000, alert_key=long,
                               mentions=tuple(f"<@U{i:08d}>" for i in range(300)),
                               kind=MessageKind.DATE_MOVED, deployment_id="/subscriptions/" + long)
    message: RenderedMessage = render(view, PORTAL)
    assert len(message.blocks) <= 50
    assert len(message.blocks[0]["text"]["text"]) <= 150
    for block in message.blocks:
        if block["type"] == "section":
            assert len(block.get("text", {}).get("text", "")) <= 3000
            assert len(block.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
        if block["type"] == "context":
            assert len(block["elements"]) <= 10
    assert all_block_chars(message) < 12_000
    assert len(message.text) <= 40_000
    for block in message.blocks:  # a cut never leaves half an entity or half a <link>
        for text in [block.get("text", {}).get("text", ""), *(f["text"] for f in block.get("fields", []))]:
            assert not re.search(r"(&[a-z#0-9]*|<[^>]*)…", text)
    if render is render_alert:
        assert message.blocks[1]["text"]["text"].endswith("…")


def test_text_is_escaped_but_mentions_are_not() -> None:
    view = dataclasses.replace(OUTAGE, deployment="a<b>&c", mentions=("<!here>",))
    message = render_alert(view, PORTAL)
    assert message.text.startswith("<!here> ")
    assert "a&lt;b&gt;&amp;c" in message.text and "a<b>" not in message.text


@pytest.mark.parametrize(("days", "words"), [(None, "no date announced"), (0, "today"), (1, "tomorrow"),
                                             (23, "in 23 days"), (-1, "1 day ago"), (-4, "4 days ago")])
def test_in_days(days: int | None, words: str) -> None:
    assert in_days(days) == words


def test_resolved_for_a_deleted_deployment() -> None:
    view = AlertView(kind=MessageKind.RESOLVED, alert_key="k|resolved|7", stage="urgent",
                     deployment_id=ARM_ID, deployment="chat-prod", consequence="outage",
                     strikes_on=date(2026, 3, 31), detail="the deployment was deleted")
    for message in (render_alert(view, PORTAL), render_parent(view, PORTAL)):
        assert message.blocks[0]["text"]["text"] == ":white_check_mark: Resolved: chat-prod"
        assert "the deployment was deleted" in message.text
        assert "None" not in message.text and "None" not in block_text(message)
        assert message.metadata["event_type"] == EVENT_RESOLVED
        assert message.metadata["event_payload"]["deadline"] == "2026-03-31"


def test_resolved_after_an_upgrade_says_what_it_runs_now() -> None:
    view = dataclasses.replace(OUTAGE, kind=MessageKind.RESOLVED, model="gpt-5.1", version="2025-11-13",
                               detail="no retirement is scheduled for what this deployment runs now")
    message = render_alert(view, PORTAL)
    assert "Deployment chat-prod now runs gpt-5.1 2025-11-13." in message.text
    assert "stops answering" not in message.text
