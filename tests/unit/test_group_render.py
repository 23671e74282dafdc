"""Grouped alerts: one message about many deployments stays inside Slack's limits however many there are, names every
one in its metadata (and in the plain text as far as Slack's 40,000 characters go), and says so in plain words."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from daemon.notify.groups import GroupKey, group_ref, parse_group_key
from daemon.notify.render import (
    EVENT_ALERT,
    EVENT_RESOLVED,
    HEADER_CHARS,
    MAX_BLOCKS,
    SECTION_CHARS,
    TEXT_CHARS,
    AlertView,
    GroupMember,
    GroupView,
    MessageKind,
    render_group,
    render_group_parent,
)

KEY = GroupKey("#search", "gpt-4o", "2024-05-13", "outage", date(2026, 3, 31))
ABOUT = AlertView(kind=MessageKind.STAGE, alert_key="k", stage="critical", model="gpt-4o", version="2024-05-13",
                  consequence="outage", retirement_date=date(2026, 3, 31), strikes_on=date(2026, 3, 31), days_left=5,
                  replacement_model="gpt-5.1", replacement_version="2025-11-13", update_scope="generational",
                  mentions=("<!subteam^S0TEAM>",))


def members(count: int, name_length: int = 12) -> tuple[GroupMember, ...]:
    return tuple(GroupMember(deployment_id=f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/"
                                           f"accounts/acct/deployments/d{i:05d}", account="acct",
                             deployment=f"d{i:05d}" + "x" * name_length, subscription_id="s", resource_group="rg",
                             location="eastus", sku="Standard") for i in range(count))


def view(count: int, **changes: object) -> GroupView:
    base = GroupView(about=ABOUT, members=members(count), group=KEY.ref, channel=KEY.channel, size=count,
                     status_filter=KEY.status_filter())
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("count", [5, 20, 21, 500, 5000])
def test_limits_hold_and_the_metadata_names_every_deployment(count: int) -> None:
    message = render_group(view(count, members=members(count, name_length=180)))
    assert len(message.blocks) <= MAX_BLOCKS and len(message.text) <= TEXT_CHARS
    assert len(message.blocks[0]["text"]["text"]) <= HEADER_CHARS
    sections = [b["text"]["text"] for b in message.blocks if b["type"] == "section"]
    assert all(len(text) <= SECTION_CHARS for text in sections)
    payload = message.metadata["event_payload"]
    assert payload["deployment_count"] == count == len(set(payload["deployment_ids"]))
    assert "deployment_id" not in payload and payload["group"] == KEY.ref
    listed = sections[1].count("\n• ")
    assert listed <= 20
    if listed < count:
        assert f"…and {count - listed} more: `retirewatch status --channel '#search'" in sections[1]


def test_it_says_what_happens_to_all_of_them_in_plain_words() -> None:
    message = render_group(view(6))
    assert message.text.startswith("<!subteam^S0TEAM> Critical: outage in 5 days: gpt-4o 2024-05-13 on 6 deployments")
    assert "6 deployments in #search run gpt-4o 2024-05-13, which retires on 2026-03-31." in message.text
    assert "In 5 days: these deployments stop answering on 2026-03-31 (requests fail with HTTP 410)." in message.text
    assert all(f"acct/d{i:05d}" in message.text for i in range(6))
    assert message.metadata["event_type"] == EVENT_ALERT


def test_a_stage_told_to_some_members_says_how_many_and_why() -> None:
    message = render_group(view(4, size=6, silenced=2))
    assert "This is told for 4 of the 6 deployments in this group; 2 acknowledged." in message.text


def test_the_parent_has_no_mentions_and_says_it_sums_up_the_thread() -> None:
    message = render_group_parent(view(6))
    assert "<!subteam" not in message.text and "thread summary" in str(message.blocks[-1])
    assert message.metadata["event_payload"]["parent"] is True


@pytest.mark.parametrize(("kind", "resolves", "event", "headline"), [
    (MessageKind.LEFT_GROUP, True, EVENT_RESOLVED, ":outbox_tray: Left the group: gpt-4o 2024-05-13 on 2 deployments"),
    (MessageKind.LEFT_GROUP, False, EVENT_ALERT, ":outbox_tray: Left the group"),
    (MessageKind.JOINED_GROUP, False, EVENT_ALERT, ":inbox_tray: Joined the group"),
    (MessageKind.RESOLVED, True, EVENT_RESOLVED, ":white_check_mark: Resolved: gpt-4o 2024-05-13 on 2 deployments"),
    (MessageKind.DATE_MOVED, False, EVENT_ALERT, ":calendar: Retirement date moved"),
    (MessageKind.ACKNOWLEDGED, False, EVENT_ALERT, ":ok_hand: Acknowledged"),
])
def test_each_group_kind_renders(kind: MessageKind, resolves: bool, event: str, headline: str) -> None:
    leavers = tuple(dataclasses.replace(m, note="now runs gpt-4o 2024-11-20") for m in members(2))
    message = render_group(view(2, about=dataclasses.replace(ABOUT, kind=kind, detail="what happened"),
                                members=leavers, resolves=resolves))
    assert message.blocks[0]["text"]["text"].startswith(headline)
    assert message.metadata["event_type"] == event and message.metadata["event_payload"]["kind"] == kind.value
    assert "what happened" in message.text and "now runs gpt-4o 2024-11-20" in message.text


def test_a_group_key_reads_back_and_its_reference_is_stable() -> None:
    assert parse_group_key(KEY.key) == dataclasses.replace(KEY, model="gpt-4o", version="2024-05-13")
    assert KEY.ref == group_ref(KEY.key) and len(KEY.ref) == 8
    assert parse_group_key("/subscriptions/x/deployments/y") is None
    undated = dataclasses.replace(KEY, deadline=None)
    assert parse_group_key(undated.key) == undated and "--deadline" not in undated.status_filter()
