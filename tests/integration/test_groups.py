"""Grouped alerts end to end, through the real WebClient against the Slack emulator, on SQLite and PostgreSQL.

Six deployments routed to #search run gpt-4o 2024-05-13 (25 days left: warning): with ``slack.group_min`` 5 they
are one message and one thread. Two gpt-4o-mini deployments beside them stay below the minimum and go out one
each."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from daemon.cli import main
from daemon.emulators.slack import Message
from daemon.store.schema import AlertStepRow, AlertThreadMemberRow, AlertThreadRow
from tests.integration.world import (
    SUB,
    World,
    account_entry,
    at,
    catalog_entry,
    deployment_entry,
    estate,
    make_world,
    payload,
)

TODAY = date(2026, 3, 1)
GROUP = [f"g{i}" for i in range(6)]


def scenario(group: int = 6, *, extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    deployments = [deployment_entry(f"g{i}", "gpt-4o", "2024-05-13") for i in range(group)]
    deployments += [deployment_entry("mini-a", "gpt-4o-mini", "2024-07-18"),
                    deployment_entry("mini-b", "gpt-4o-mini", "2024-07-18")]
    return estate([account_entry("search", {"team": "search"}, deployments + (extra or []))], [
        catalog_entry("gpt-4o", "2024-05-13", TODAY + timedelta(days=25)),
        catalog_entry("gpt-4o", "2024-11-20", None, default=True),
        catalog_entry("gpt-4o-mini", "2024-07-18", TODAY + timedelta(days=25)),
    ])


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with make_world(scenario(), database_url, TODAY) as made:
        made.poll()
        yield made


def arm_id(name: str, account: str = "search") -> str:
    return (f"/subscriptions/{SUB}/resourceGroups/rg-{account}/providers/Microsoft.CognitiveServices/accounts/"
            f"{account}/deployments/{name}")


def names(ids: list[str]) -> list[str]:
    return sorted(i.rsplit("/", 1)[-1] for i in ids)


def group_message(world: World) -> Message:
    parents = [m for m in world.slack.messages("#search") if "deployment_ids" in payload(m) and not m.thread_ts]
    assert len(parents) == 1, [payload(m) for m in parents]
    return parents[0]


def in_thread(world: World, parent: Message) -> list[Message]:
    return [m for m in world.slack.messages("#search") if m.thread_ts == parent.ts]


def upgrade(world: World, *which: str) -> None:
    with world.arm.update() as live:
        for deployment in live["subscriptions"][0]["accounts"][0]["deployments"]:
            if deployment["name"] in which:
                deployment["properties"]["model"]["version"] = "2024-11-20"


def test_a_group_posts_once_naming_every_deployment_and_a_second_run_adds_nothing(world: World) -> None:
    report = world.notify()
    assert report.plan.queued["stage"] == 3 and report.plan.groups_opened == 1
    parent = group_message(world)
    meta = parent.metadata or {}
    assert meta["event_type"] == "model_retirement_alert"
    p = meta["event_payload"]
    assert names(p["deployment_ids"]) == GROUP and p["deployment_count"] == 6 and "deployment_id" not in p
    assert p["deployment_ids"][0].startswith("/subscriptions/") and p["parent"] is True
    assert (p["deadline"], p["stage"], p["consequence"]) == ((TODAY + timedelta(days=25)).isoformat(), "warning",
                                                             "outage")
    assert (p["model"], p["version"]) == ("gpt-4o", "2024-05-13")
    assert parent.text.startswith("Warning: outage in 25 days: gpt-4o 2024-05-13 on 6 deployments")
    assert all(f"search/g{i} (" in parent.text for i in range(6)), "the plain text names every deployment"
    assert f"retirewatch ack group:{p['group']}" in str(parent.blocks)
    singles = [payload(m) for m in world.slack.messages("#search") if "deployment_id" in payload(m)]
    assert names([s["deployment_id"] for s in singles]) == ["mini-a", "mini-b"], "below group_min: one each"
    assert all("deployment_ids" not in s for s in singles)

    again = world.notify()
    assert sum(again.plan.queued.values()) == 0 and again.delivery is not None and again.delivery.sent == 0
    assert len(world.slack.messages()) == 3
    with world.sessions() as session:
        members = session.scalars(select(AlertThreadMemberRow.deployment_key)
                                  .where(AlertThreadMemberRow.left_at.is_(None))).all()
        told = Counter((row.deployment_key, row.step) for row in session.scalars(select(AlertStepRow)))
    assert len(members) == len(set(members)) == 8, "every deployment in exactly one open thread"
    assert len(told) == 8 and set(told.values()) == {1}, "each deployment told its step once"


def test_the_group_escalates_in_its_thread_once_per_step(world: World) -> None:
    world.notify()
    world.go_to(TODAY + timedelta(days=11))  # 14 days left: urgent
    world.step()
    parent = group_message(world)
    replies = [payload(m) for m in in_thread(world, parent)]
    assert [(r["kind"], r["stage"], r["deployment_count"]) for r in replies] == [("stage", "urgent", 6)]
    assert payload(parent)["stage"] == "urgent" and parent.edits, "the first message shows the stage now"
    assert "deployment_id" not in payload(parent)
    world.step()
    assert len(in_thread(world, parent)) == 1


def test_a_member_upgraded_leaves_and_the_last_one_resolves_the_group(world: World) -> None:
    world.notify()
    upgrade(world, "g0")
    world.go_to(TODAY + timedelta(days=1))
    world.step()
    parent = group_message(world)
    replies = in_thread(world, parent)
    kinds = [payload(m)["kind"] for m in replies]
    assert kinds == ["version_changed", "left_group"], kinds
    left = replies[1]
    assert (left.metadata or {})["event_type"] == "model_retirement_resolved", "its risk is over"
    assert names(payload(left)["deployment_ids"]) == ["g0"] and payload(left)["group_size"] == 5
    assert "search/g0" in left.text and "5 remain" in left.text
    assert names(payload(parent)["deployment_ids"]) == GROUP[1:], "the first message lists who is left"

    upgrade(world, *GROUP[1:])
    world.go_to(TODAY + timedelta(days=2))
    world.step()
    last = in_thread(world, parent)[-1]
    assert (last.metadata or {})["event_type"] == "model_retirement_resolved"
    assert payload(last)["kind"] == "resolved" and names(payload(last)["deployment_ids"]) == GROUP[1:]
    assert [payload(m)["kind"] for m in in_thread(world, parent)].count("left_group") == 1
    with world.sessions() as session:
        group = session.scalars(select(AlertThreadRow).where(AlertThreadRow.grouped.is_(True))).one()
        assert group.closed_at is not None
    before = len(world.slack.messages())
    world.step()
    assert len(world.slack.messages()) == before, "resolved once"


def test_a_member_deleted_leaves_and_the_group_goes_on(world: World) -> None:
    world.notify()
    with world.arm.update() as live:
        deployments = live["subscriptions"][0]["accounts"][0]["deployments"]
        deployments[:] = [d for d in deployments if d["name"] != "g5"]
    world.go_to(TODAY + timedelta(days=11))
    world.step()
    parent = group_message(world)
    replies = [payload(m) for m in in_thread(world, parent)]
    assert [(r["kind"], r.get("deployment_count")) for r in replies] == [("left_group", 1), ("stage", 5)]
    assert "deleted" in in_thread(world, parent)[0].text


def _cli(world: World, tmp_path: Path) -> list[str]:
    slack = world.config.slack
    path = tmp_path / "retirewatch.toml"
    path.write_text(
        f'[database]\nurl = "{world.config.database.url}"\n'
        f'[slack]\napi_url = "{slack.api_url}"\nca_bundle = "{slack.ca_bundle}"\ndefault_channel = "#ml-platform"\n'
        '[[routes]]\nchannel = "#search"\nmatch = { tags = { team = "search" } }\n'
        '[testing]\nallow_time_travel = true\n')
    return ["--config", str(path), "--now", world.clock.now().isoformat()]


def test_an_ack_of_the_group_silences_every_member_and_is_told_once(world: World, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    world.notify()
    parent = group_message(world)
    ref = payload(parent)["group"]
    assert main(["ack", "group:nope", *_cli(world, tmp_path)]) == 2
    assert "no open group group:nope" in capsys.readouterr().err
    assert main(["ack", f"group:{ref}", "--note", "moving in sprint 9", *_cli(world, tmp_path)]) == 0
    assert "acknowledged the 6 deployments of group" in capsys.readouterr().out
    assert main(["ack", f"group:{ref}", "--note", "moving in sprint 9", *_cli(world, tmp_path)]) == 0
    assert "nothing changed" in capsys.readouterr().out
    world.notify()
    acked = in_thread(world, parent)
    assert [payload(m)["kind"] for m in acked] == ["acknowledged"]
    assert names(payload(acked[0])["deployment_ids"]) == GROUP and "moving in sprint 9" in acked[0].text
    world.go_to(TODAY + timedelta(days=11))  # urgent: silenced for all six
    world.step()
    assert len(in_thread(world, parent)) == 1
    assert main(["status", "--format", "json", *_cli(world, tmp_path)]) == 0


def test_an_ack_of_one_member_silences_it_alone(world: World, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    world.notify()
    parent = group_message(world)
    assert main(["ack", "search/g2", *_cli(world, tmp_path)]) == 0
    assert "acknowledged search/g2" in capsys.readouterr().out
    world.notify()
    acked = in_thread(world, parent)
    assert len(acked) == 1 and payload(acked[0])["kind"] == "acknowledged"
    assert payload(acked[0])["deployment_id"] == arm_id("g2"), "the member's own ack names it"
    assert f"group:{payload(parent)['group']}" in acked[0].text
    world.go_to(TODAY + timedelta(days=11))
    world.step()
    urgent = in_thread(world, parent)[-1]
    assert payload(urgent)["stage"] == "urgent"
    assert names(payload(urgent)["deployment_ids"]) == [g for g in GROUP if g != "g2"]
    assert payload(urgent)["group_size"] == 6 and "1 acknowledged" in urgent.text


def test_a_date_that_moves_for_every_member_moves_the_group(world: World) -> None:
    world.notify()
    with world.arm.update() as live:
        live["locationModels"]["eastus"][0]["model"]["deprecation"]["inference"] = \
            f"{TODAY + timedelta(days=10)}T00:00:00Z"
    world.go_to(TODAY + timedelta(days=1))
    world.step()
    parent = group_message(world)
    moved = [payload(m) for m in in_thread(world, parent)]
    assert [(m["kind"], m["deadline"], m["deployment_count"]) for m in moved] == [
        ("date_moved", (TODAY + timedelta(days=10)).isoformat(), 6)]
    assert payload(parent)["deadline"] == (TODAY + timedelta(days=10)).isoformat()
    world.step()
    assert len(in_thread(world, parent)) == 1, "the move counted as the new deadline's urgent alert"


def test_a_new_deployment_joins_the_open_group(world: World) -> None:
    world.notify()
    with world.arm.update() as live:
        live["subscriptions"][0]["accounts"][0]["deployments"].append(
            deployment_entry("g-new", "gpt-4o", "2024-05-13"))
    world.go_to(TODAY + timedelta(days=1))
    world.step()
    parent = group_message(world)
    joined = in_thread(world, parent)
    assert [payload(m)["kind"] for m in joined] == ["joined_group"]
    assert names(payload(joined[0])["deployment_ids"]) == ["g-new"] and payload(joined[0])["group_size"] == 7
    assert payload(parent)["deployment_count"] == 7


def test_below_group_min_every_deployment_goes_out_alone(database_url: str) -> None:
    with make_world(scenario(4), database_url, TODAY) as world:
        world.poll()
        world.notify()
        told = [payload(m) for m in world.slack.messages("#search")]
        assert len(told) == 6 and all("deployment_id" in p and "deployment_ids" not in p for p in told)


def test_a_large_group_is_summarised_in_the_blocks_and_listed_by_status(
        database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with make_world(scenario(60), database_url, TODAY) as world:
        world.poll()
        world.notify()
        parent = group_message(world)
        p = payload(parent)
        assert p["deployment_count"] == 60 and len(set(p["deployment_ids"])) == 60
        listed = parent.blocks[2]["text"]["text"]
        assert listed.count("\n• ") + listed.startswith("• ") <= 20 and "…and 40 more" in listed
        assert "retirewatch status --channel '#search' --model 'gpt-4o' --version '2024-05-13'" in listed
        assert all(f"search/g{i} (" in parent.text for i in range(60))
        filters = ["--channel", "#search", "--model", "GPT-4o", "--version", "2024-05-13", "--deadline",
                   (TODAY + timedelta(days=25)).isoformat()]
        capsys.readouterr()
        assert main(["status", "--format", "csv", *filters, *_cli(world, tmp_path)]) == 0
        rows = capsys.readouterr().out.strip().splitlines()[1:]
        assert len(rows) == 60 and all(",gpt-4o,2024-05-13," in row for row in rows)
        assert main(["status", "--format", "csv", "--channel", "#elsewhere", *_cli(world, tmp_path)]) == 0
        assert len(capsys.readouterr().out.strip().splitlines()) == 1, "the header only"
        assert at(TODAY) == world.clock.now()


def test_members_that_move_on_still_at_risk_leave_and_are_alerted_afresh(world: World) -> None:
    world.notify()
    with world.arm.update() as live:  # two of them let Azure upgrade them: another consequence, the same day
        for deployment in live["subscriptions"][0]["accounts"][0]["deployments"]:
            if deployment["name"] in ("g4", "g5"):
                deployment["properties"]["versionUpgradeOption"] = "OnceCurrentVersionExpired"
    world.go_to(TODAY + timedelta(days=1))
    world.step()
    parent = group_message(world)
    left = in_thread(world, parent)
    assert [payload(m)["kind"] for m in left] == ["left_group"]
    assert (left[0].metadata or {})["event_type"] == "model_retirement_alert", "still at risk: not resolved"
    assert names(payload(left[0])["deployment_ids"]) == ["g4", "g5"]
    assert "Azure now upgrades it at the deadline (forced upgrade)" in left[0].text
    assert payload(parent)["deployment_count"] == 4
    world.go_to(TODAY + timedelta(days=11))  # the next stage: the group tells its four, the two are told alone
    world.step()
    assert [(payload(m)["kind"], payload(m).get("deployment_count")) for m in in_thread(world, parent)] == [
        ("left_group", 2), ("stage", 4)]
    alone = [payload(m) for m in world.slack.messages("#search")
             if payload(m).get("deployment_id", "").rsplit("/", 1)[-1] in ("g4", "g5")]
    assert sorted((p["kind"], p["stage"], p["consequence"], p["parent"]) for p in alone) == [
        ("stage", "urgent", "forced-upgrade", True)] * 2, "each in a thread of its own (below group_min)"


@pytest.mark.parametrize(("value", "problem"), [(1, "greater than or equal to 2"), ("five", "valid integer")])
def test_group_min_must_be_two_or_more(value: object, problem: str) -> None:
    from daemon.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=f"slack.group_min: .*{problem}"):
        parse_config({"slack": {"group_min": value}}, "retirewatch.toml")
    assert parse_config({}, "<defaults>").slack.group_min == 5
