"""Time travel: poll + notify once a day for 211 simulated days over an estate whose dates move and whose
deployments are upgraded, deleted and added late. Asserts the exact messages per deployment and channel: each
stage once and in order, threads right, resolutions sent, the parent edited, nothing twice."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from daemon.notify.ack import acknowledge
from tests.integration.world import (
    account_entry,
    catalog_entry,
    days,
    deployment_entry,
    estate,
    make_world,
    payload,
)

T0 = date(2026, 1, 1)


def d(n: int) -> date:
    return T0 + timedelta(days=n)


CATALOG = [
    catalog_entry("gpt-4o", "2024-05-13", d(150)),
    catalog_entry("gpt-5.1", "2025-11-13", None, default=True),
    catalog_entry("gpt-4o-mini", "2024-07-18", d(100)),
    catalog_entry("gpt-4.1-mini", "2025-04-14", None, default=True),
    catalog_entry("o1", "2024-12-17", d(120), replacementConfig={
        "targetModelName": "o3", "targetModelVersion": "2025-04-16", "autoUpgradeStartDate": f"{d(50)}T00:00:00Z"}),
    catalog_entry("o3", "2025-04-16", None, default=True),
    catalog_entry("dall-e-3", "3.0", d(105)),
]


def scenario() -> dict[str, Any]:
    return estate([
        account_entry("search", {"team": "search"}, [
            deployment_entry("steady", "gpt-4o", "2024-05-13"),
            deployment_entry("auto", "o1", "2024-12-17", option="OnceNewDefaultVersionAvailable")]),
        account_entry("platform", {}, [deployment_entry("moving", "gpt-4o-mini", "2024-07-18")]),
    ], [dict(entry) for entry in CATALOG])


def _model(world_estate: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e["model"] for e in world_estate["locationModels"]["eastus"] if e["model"]["name"] == name)


def _account(world_estate: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in world_estate["subscriptions"][0]["accounts"] if a["name"] == name)


def change_the_world(estate_: dict[str, Any], day: int) -> None:
    """What happens in Azure on each day (before that day's poll)."""
    platform, search = _account(estate_, "platform"), _account(estate_, "search")
    if day == 40:
        _model(estate_, "gpt-4o-mini")["deprecation"]["inference"] = f"{d(200)}T00:00:00Z"
    if day == 150:
        _model(estate_, "gpt-4o-mini")["deprecation"]["inference"] = f"{d(170)}T00:00:00Z"
    if day == 165:
        platform["deployments"][0]["properties"]["model"].update(name="gpt-4.1-mini", version="2025-04-14")
    if day == 53:
        search["deployments"][1]["properties"]["model"].update(name="o3", version="2025-04-16")
    if day == 100:
        platform["deployments"].append(deployment_entry("late", "dall-e-3", "3.0"))
    if day == 110:
        platform["deployments"] = [x for x in platform["deployments"] if x["name"] != "late"]
    if day == 155:
        search["deployments"] = [x for x in search["deployments"] if x["name"] != "steady"]


def describe(p: dict[str, Any]) -> str:
    kind = p["kind"]
    if kind == "stage":
        return p["alert_key"].rsplit("|", 1)[-1]
    if kind == "date_moved":
        return f"date_moved:{p['stage']}"
    return kind


def test_two_hundred_days(database_url: str) -> None:
    with make_world(scenario(), database_url, T0) as world:
        for offset, day in enumerate(days(T0, d(210))):
            world.go_to(day)
            with world.arm.update() as estate_:
                change_the_world(estate_, offset)
            world.step()
            if offset == 37:
                with world.sessions.begin() as session:
                    acknowledge(session, world.config, world.clock.now(), "search/auto", until=d(45),
                                note="migrating to o3 this sprint")
                world.notify()
            if offset == 107:  # acknowledging an overdue deployment stops its repeats
                with world.sessions.begin() as session:
                    acknowledge(session, world.config, world.clock.now(), "platform/late", until=None, note=None)
                world.notify()

        messages = world.slack.messages()
        sequences: dict[str, list[str]] = defaultdict(list)
        for message in messages:
            p = payload(message)
            sequences[p["deployment_id"].rsplit("/", 1)[-1]].append(describe(p))

        assert sequences["steady"] == ["notice", "warning", "urgent", "critical@7", "critical@1",
                                       f"overdue@{d(150)}", f"overdue@{d(151)}", f"overdue@{d(152)}",
                                       f"overdue@{d(153)}", f"overdue@{d(154)}", "resolved"]
        # The auto-upgrade window opens on day 50 (told that day); from day 51, still on o1, its deadline is the
        # retirement on day 120 (a forced upgrade, 69 days out: notice), until Azure upgrades it on day 53.
        assert sequences["auto"] == ["notice", "warning", "urgent", "acknowledged", "critical@7", "critical@1",
                                     f"overdue@{d(50)}", "date_moved:notice", "version_changed", "resolved"]
        assert sequences["moving"] == ["notice", "resolved",  # the date moved beyond the horizon: risk gone
                                       "notice", "date_moved:warning", "urgent", "critical@7",
                                       "version_changed", "resolved"]
        assert sequences["late"] == ["critical@7", "critical@1", f"overdue@{d(105)}", f"overdue@{d(106)}",
                                     f"overdue@{d(107)}", "acknowledged", "resolved"]

        keys = [payload(m)["alert_key"] for m in messages]
        assert len(keys) == len(set(keys)), "a message was sent twice"
        check_channels_and_threads(world.slack.messages("#search"), {"steady", "auto"})
        check_channels_and_threads(world.slack.messages("#ml-platform"), {"moving", "late"})
        assert world.slack.messages("#retirewatch-ops") == []


def check_channels_and_threads(messages: list[Any], deployments: set[str]) -> None:
    assert {payload(m)["deployment_id"].rsplit("/", 1)[-1] for m in messages} == deployments
    parents = {m.ts: m for m in messages if m.thread_ts is None}
    for message in messages:
        p = payload(message)
        if message.thread_ts is None:
            assert p["parent"] is True
            continue
        parent = parents[message.thread_ts]
        assert payload(parent)["deployment_id"] == p["deployment_id"], "reply in another deployment's thread"
        loud = p["kind"] == "stage" and p["stage"] in ("critical", "overdue")
        assert message.reply_broadcast is loud, (p["alert_key"], message.reply_broadcast)
    for parent in parents.values():
        replies = [m for m in messages if m.thread_ts == parent.ts]
        if replies and any(payload(r)["kind"] == "stage" for r in replies):
            assert parent.edits, "the first message is edited to show the current stage"
        last_stage = [payload(r)["stage"] for r in replies if payload(r)["kind"] in ("stage", "date_moved")]
        if last_stage:
            assert payload(parent)["stage"] == last_stage[-1]
