"""The digest's pure parts: the week, stages, grouping, who gets one, and Slack's limits on extreme estates."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from daemon.config import ConfigError, parse_config
from daemon.digest.content import Scope, build_digests
from daemon.digest.facts import UPCOMING, Change, ChangeKind, EstateFacts, Health, SourceFailure, Watched, stage_of
from daemon.digest.render import BLOCK_TEXT_BUDGET, render_digest
from daemon.digest.week import digest_key, digest_timezone, iso_week
from daemon.lifecycle.escalation import EscalationPolicy

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
TODAY = NOW.date()


def watched(name: str, channel: str = "#search", *, days: int | None = 10, stage: str | None = "urgent",
            consequence: str = "outage", model: str = "gpt-4o 2024-05-13", acked: bool = False,
            owned: bool = True) -> Watched:
    return Watched(key=f"/k/{name}", name=name, subscription_id="sub", model=model, channel=channel, owned=owned,
                   consequence=consequence, strikes_on=TODAY + timedelta(days=days) if days is not None else None,
                   days_left=days, stage=stage, replacement="gpt-5.1 2025-11-13", acked=acked)


def facts(items: list[Watched], changes: list[Change] | None = None,
          failures: tuple[SourceFailure, ...] = ()) -> EstateFacts:
    return EstateFacts(now=NOW, today=TODAY, horizon_days=90, overview_channel="#ml-alerts", watched=tuple(items),
                       changes=tuple(changes or ()),
                       health=Health(NOW - timedelta(hours=3), 7, NOW - timedelta(hours=3), "ok", failures))


def by_channel(items: list[Watched], changes: list[Change] | None = None) -> dict[str, Any]:
    return {d.channel: d for d in build_digests(facts(items, changes), "2026-W48")}


def block_text(blocks: list[dict[str, Any]]) -> int:
    total = 0
    for block in blocks:
        total += len(block.get("text", {}).get("text", ""))
        total += sum(len(e.get("text", "")) for e in block.get("elements", []))
    return total


def test_iso_week_in_the_schedule_zone() -> None:
    assert iso_week(NOW, UTC) == "2026-W48"
    assert iso_week(datetime(2027, 1, 1, 12, tzinfo=UTC), UTC) == "2026-W53"  # 2026 has 53 ISO weeks
    sunday_night = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)
    assert iso_week(sunday_night, UTC) == "2026-W48"
    berlin = digest_timezone(SimpleNamespace(schedule=SimpleNamespace(timezone="Europe/Berlin")))
    assert iso_week(sunday_night, berlin) == "2026-W49", "already Monday in Berlin"
    assert str(digest_timezone(parse_config({}, "<t>"))) == "UTC", "until [schedule] timezone exists"
    assert digest_key("#search", "2026-W48") == "digest:#search:2026-W48"


def test_horizon_days_is_validated() -> None:
    assert parse_config({}, "<t>").digest.horizon_days == 90
    assert parse_config({"digest": {"horizon_days": 30}}, "<t>").digest.horizon_days == 30
    for bad in (0, -5, "soon", 5000):
        with pytest.raises(ConfigError, match=r"digest\.horizon_days"):
            parse_config({"digest": {"horizon_days": bad}}, "<t>")
    with pytest.raises(ConfigError, match=r"digest\.every: unknown key"):
        parse_config({"digest": {"every": "week"}}, "<t>")


def test_stage_inside_and_beyond_the_horizon() -> None:
    policy = EscalationPolicy()
    assert stage_of(policy, "outage", None, 5, TODAY, 90) == "critical"
    assert stage_of(policy, "outage", None, -2, TODAY, 90) == "overdue"
    assert stage_of(policy, "outage", None, 90, TODAY, 90) == "notice"
    assert stage_of(policy, "outage", None, 91, TODAY, 120) == UPCOMING, "inside the horizon, before notice"
    assert stage_of(policy, "outage", None, 91, TODAY, 90) is None
    assert stage_of(policy, "none", None, 5, TODAY, 90) is None
    assert stage_of(policy, "outage", None, None, TODAY, 90) is None


def test_a_team_with_nothing_in_the_horizon_and_no_change_gets_nothing() -> None:
    quiet = watched("ops/safe", "#ml-ops", days=None, stage=None, consequence="none")
    digests = by_channel([watched("search/chat"), quiet])
    assert digests["#search"].worth_sending and not digests["#ml-ops"].worth_sending
    assert digests["#ml-alerts"].scope is Scope.OVERVIEW and digests["#ml-alerts"].worth_sending
    removed = Change(ChangeKind.REMOVED, "/k/x", "ops/old", "#ml-ops", True, "gpt-4o 2024-05-13", "2024-05-13",
                     None, NOW)
    assert by_channel([watched("search/chat"), quiet], [removed])["#ml-ops"].worth_sending, "a change is news"


def test_unowned_deployments_are_only_in_the_overview() -> None:
    digests = by_channel([watched("search/chat"), watched("lab/x", "#ml-alerts", owned=False)])
    assert set(digests) == {"#search", "#ml-alerts"}, "the default channel gets the overview, not a team digest"
    overview = render_digest(digests["#ml-alerts"], "k").text
    assert "Nobody owns 1 deployment" in overview and "lab: 1 deployment, 1 within 90 days: x" in overview
    assert "Nobody owns" not in render_digest(digests["#search"], "k").text


def test_groups_by_model_version_and_deadline_and_counts_acks() -> None:
    items = [watched(f"search/d{i}", acked=i < 2) for i in range(5)] + [watched("search/late", days=60,
                                                                                 stage="notice")]
    digest = by_channel(items)["#search"]
    assert [(s.stage, s.deployments) for s in digest.sections] == [("urgent", 5), ("notice", 1)]
    assert digest.unacked_count == 4
    text = render_digest(digest, "k").text
    assert "2026-12-05 (in 10 days): gpt-4o 2024-05-13 (move to gpt-5.1 2025-11-13) · 5 deployments: " in text
    assert "· 3 not acknowledged" in text


def test_metadata() -> None:
    digest = by_channel([watched("search/chat")])["#search"]
    meta = render_digest(digest, "digest:#search:2026-W48").metadata
    assert meta["event_type"] == "model_retirement_digest"
    assert {k: meta["event_payload"][k] for k in ("week", "channel_scope", "deployments", "alert_key")} == {
        "week": "2026-W48", "channel_scope": "team", "deployments": 1, "alert_key": "digest:#search:2026-W48"}


@pytest.mark.parametrize("teams", [1, 120])
def test_slack_limits_hold_for_an_extreme_estate(teams: int) -> None:
    """4,000 deployments, 1,300 distinct groups, long names, many changes and failures: still one valid message."""
    stages = ["overdue", "critical", "urgent", "warning", "notice", UPCOMING]
    consequences = ["outage", "forced-upgrade", "auto-upgrade"]
    long = "x" * 180
    items = [watched(f"acct-{i % 40}-{long}/dep-{i}-{long}", f"#team-{i % teams}", days=i % 95 - 3,
                     stage=stages[i % 6], consequence=consequences[i % 3], model=f"model-{i % 1300} v{i % 7}",
                     owned=i % 11 != 0) for i in range(4000)]
    changes = [Change(ChangeKind(list(ChangeKind)[i % 5]), f"/k/{i}", f"acct/dep-{i}-{long}", f"#team-{i % teams}",
                      True, f"model-{i} v1", "2026-01-01", "2027-01-01", NOW) for i in range(600)]
    failures = tuple(SourceFailure(f"sub-{i}", f"/subscriptions/sub-{i}", "list-accounts", 403, "E" * 5000)
                     for i in range(30))
    for digest in build_digests(replace(facts(items, changes), health=Health(None, None, NOW, "failed", failures)),
                                "2026-W48"):
        message = render_digest(digest, f"digest:{digest.channel}:2026-W48")
        assert len(message.blocks) <= 50
        assert block_text(message.blocks) <= BLOCK_TEXT_BUDGET < 12_000
        for block in message.blocks:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= 3000
            if block["type"] == "header":
                assert len(block["text"]["text"]) <= 150
            if block["type"] == "context":
                assert len(block["elements"]) <= 10
        assert len(message.text) < 40_000
        if digest.scope is Scope.OVERVIEW:
            assert "more groups" in str(message.blocks) and "`retirewatch status --format csv`" in message.text
            assert "no successful poll yet" in message.text and "read nothing" in message.text
