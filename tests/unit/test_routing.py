"""Routing: the ownership tag, then the first matching route, then the default channel (unowned)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict

import pytest

from daemon.config import RouteConfig, RouteMatch, SlackConfig
from daemon.notify.routing import Router, normalize_channel

SUB = "00000000-0000-0000-0000-00000000aaaa"
OTHER_SUB = "11111111-0000-0000-0000-00000000bbbb"

ROUTES = (
    RouteConfig(name="search-prod", channel="search-oncall",
                match=RouteMatch(subscription=SUB, resource_group="rg-search-*", deployment="*-prod"),
                mentions={"critical": ("<!subteam^S0SEARCH>",), "overdue": ("<!here>",)}),
    RouteConfig(name="by-team-tag", channel="#ml-platform",
                match=RouteMatch(tags={"team": "ml-*", "env": "prod"}),
                mentions={"urgent": ("<@U0MLLEAD>",)}),
    RouteConfig(channel="C0FINANCE1", match=RouteMatch(account="finance-*")),
    RouteConfig(name="other-subscription", channel="#sandbox", match=RouteMatch(subscription=OTHER_SUB)),
)
SLACK = SlackConfig(default_channel="retirewatch")
ROUTER = Router(ROUTES, SLACK)


class Where(TypedDict):
    subscription_id: str
    resource_group: str
    account: str
    deployment: str
    tags: Mapping[str, str]


def where(subscription_id: str = SUB, resource_group: str = "rg-misc", account: str = "acct",
          deployment: str = "chat", tags: Mapping[str, str] | None = None) -> Where:
    return {"subscription_id": subscription_id, "resource_group": resource_group, "account": account,
            "deployment": deployment, "tags": tags or {}}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ml-platform", "#ml-platform"),
        ("#ml-platform", "#ml-platform"),
        ("  #ML-Platform ", "#ml-platform"),
        ("C0123ABCD", "C0123ABCD"),
        ("G0123ABCD", "G0123ABCD"),
        ("", ""),
        ("#", ""),
    ],
)
def test_normalize_channel(raw: str, expected: str) -> None:
    assert normalize_channel(raw) == expected


@pytest.mark.parametrize(
    ("kwargs", "channel", "route", "owned", "critical_mentions"),
    [
        # Nothing matches: the default channel, not owned.
        (where(), "#retirewatch", "default", False, ()),
        # A route whose every matcher matches (globs, case-insensitive).
        (where(resource_group="RG-Search-EU", deployment="Chat-PROD"), "#search-oncall", "search-prod", True,
         ("<!subteam^S0SEARCH>",)),
        # One matcher fails -> the route does not match.
        (where(resource_group="rg-search-eu", deployment="chat-dev"), "#retirewatch", "default", False, ()),
        (where(subscription_id=OTHER_SUB, resource_group="rg-search-eu", deployment="chat-prod"), "#sandbox",
         "other-subscription", True, ()),
        # Tags: every listed key present (keys case-insensitive), values matching the glob.
        (where(tags={"Team": "ml-research", "env": "PROD"}), "#ml-platform", "by-team-tag", True, ()),
        (where(tags={"team": "ml-research"}), "#retirewatch", "default", False, ()),
        (where(tags={"team": "web", "env": "prod"}), "#retirewatch", "default", False, ()),
        # Unnamed route: named by its position; channel ids untouched.
        (where(account="finance-eastus"), "C0FINANCE1", "routes[2]", True, ()),
        # First match wins.
        (where(resource_group="rg-search-eu", deployment="x-prod", tags={"team": "ml", "env": "prod"}),
         "#search-oncall", "search-prod", True, ("<!subteam^S0SEARCH>",)),
        # The ownership tag names the channel directly; a matching route's mentions stay in the route's own
        # channel: a tag naming another channel drops them, a tag naming the route's channel keeps them.
        (where(tags={"retirewatch-channel": "Data-Science"}), "#data-science", "tag:retirewatch-channel",
         True, ()),
        (where(resource_group="rg-search-eu", deployment="chat-prod", tags={"Retirewatch-Channel": "#ds"}),
         "#ds", "tag:Retirewatch-Channel", True, ()),
        (where(resource_group="rg-search-eu", deployment="chat-prod", tags={"retirewatch-channel": "#Search-Oncall"}),
         "#search-oncall", "tag:retirewatch-channel", True, ("<!subteam^S0SEARCH>",)),
        # An empty tag value does not count.
        (where(tags={"retirewatch-channel": "  "}), "#retirewatch", "default", False, ()),
    ],
)
def test_route(kwargs: Where, channel: str, route: str, owned: bool,
               critical_mentions: tuple[str, ...]) -> None:
    target = ROUTER.route(**kwargs)
    assert (target.channel, target.route, target.owned) == (channel, route, owned)
    assert target.mentions_for("critical") == critical_mentions
    assert target.mentions_for("notice") == ()


def test_route_mentions_by_stage() -> None:
    target = ROUTER.route(**where(resource_group="rg-search-1", deployment="a-prod"))
    assert dict(target.mentions) == {"critical": ("<!subteam^S0SEARCH>",), "overdue": ("<!here>",)}


def test_catch_all_route_and_custom_tag_name() -> None:
    slack = SlackConfig(channel_tag="owner-channel")
    router = Router((RouteConfig(name="everything", channel="ops"),), slack)
    assert router.route(**where()).route == "everything"
    tagged = router.route(**where(tags={"owner-channel": "C0OWNER12"}))
    assert (tagged.channel, tagged.route, tagged.owned) == ("C0OWNER12", "tag:owner-channel", True)


def test_no_routes_default_channel() -> None:
    target = Router((), SlackConfig()).route(**where())
    assert (target.channel, target.route, target.owned, dict(target.mentions)) == (
        "#retirewatch", "default", False, {})


ALLOWED = SlackConfig(default_channel="retirewatch", allowed_channels=("#team-*", "ml-platform", "C0OWNED12"))


@pytest.mark.parametrize(
    ("tag", "channel", "route"),
    [
        ("#team-search", "#team-search", "tag:retirewatch-channel"),
        ("Team-Search", "#team-search", "tag:retirewatch-channel"),
        ("#ml-platform", "#ml-platform", "tag:retirewatch-channel"),
        ("C0OWNED12", "C0OWNED12", "tag:retirewatch-channel"),
        # Outside the allowed globs: ignored, the routes and the default channel apply.
        ("#general", "#retirewatch", "default"),
        ("#ml-platform-private", "#retirewatch", "default"),
        ("C0OTHER99", "#retirewatch", "default"),
    ],
)
def test_allowed_channels_limit_what_a_tag_may_name(tag: str, channel: str, route: str) -> None:
    router = Router(ROUTES, ALLOWED)
    target = router.route(**where(account="acct-1", tags={"retirewatch-channel": tag}))
    assert (target.channel, target.route) == (channel, route)
    assert router.refused_tags == (set() if route != "default" else {("acct-1", normalize_channel(tag))})


def test_a_refused_tag_falls_through_to_the_matching_route_with_its_mentions() -> None:
    router = Router(ROUTES, ALLOWED)
    target = router.route(**where(resource_group="rg-search-eu", deployment="chat-prod",
                                  tags={"retirewatch-channel": "#everyone"}))
    assert (target.channel, target.route) == ("#search-oncall", "search-prod")
    assert target.mentions_for("critical") == ("<!subteam^S0SEARCH>",)
    assert router.refused_tags == {("acct", "#everyone")}


def test_without_allowed_channels_any_tag_is_taken() -> None:
    router = Router(ROUTES, SlackConfig(default_channel="retirewatch"))
    assert router.route(**where(tags={"retirewatch-channel": "#anything"})).channel == "#anything"
    assert router.refused_tags == set()
