"""Routing: which Slack channel owns a deployment, and whom to mention at each stage (pure).

Precedence, first that applies:

1. the account tag named ``slack.channel_tag`` (e.g. ``retirewatch-channel = "#ml-platform"``) names the
   channel directly, if ``slack.allowed_channels`` (globs; absent: any) allows it; a tag it does not allow is
   ignored (the rules below apply) and recorded in :attr:`Router.refused_tags` for one operational alert.
   Mentions come from the first ``[[routes]]`` entry that matches, and only when the tag names that route's
   own channel (a route's mentions are never sent to a channel the route did not name);
2. the first ``[[routes]]`` entry whose every given matcher matches (fnmatch globs, case-insensitive, since
   Azure names and tag keys are case-insensitive); a ``tags`` matcher needs every listed key present with a
   value matching its glob; a route with no matcher at all matches everything;
3. ``slack.default_channel``, with ``owned=False`` so the digest can list deployments that have no owner.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from types import MappingProxyType

from daemon.config import RouteConfig, RouteMatch, SlackConfig

DEFAULT_ROUTE = "default"
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")


def normalize_channel(channel: str) -> str:
    """``ml-platform`` -> ``#ml-platform``; ids (``C0123ABCD``, ``G...``) untouched; names lower-cased.

    Slack channel names are always lower case, so ``#ML-Platform`` in a tag can only mean ``#ml-platform``.
    """
    name = channel.strip()
    if _CHANNEL_ID.match(name):
        return name
    bare = name.lstrip("#").strip()
    return "#" + bare.lower() if bare else ""


@dataclass(frozen=True)
class RouteTarget:
    """Where a deployment's alerts go. ``route`` is the route's name, ``tag:<key>`` or ``default``."""

    channel: str
    mentions: Mapping[str, tuple[str, ...]] = field(hash=False)
    route: str
    owned: bool

    def mentions_for(self, stage: str) -> tuple[str, ...]:
        return self.mentions.get(stage, ())


def _glob(value: str, pattern: str) -> bool:
    return fnmatchcase(value.casefold(), pattern.casefold())


def _tags_match(wanted: Mapping[str, str], tags: Mapping[str, str]) -> bool:
    folded = {key.casefold(): value for key, value in tags.items()}
    return all(
        key.casefold() in folded and _glob(folded[key.casefold()], glob) for key, glob in wanted.items()
    )


def route_matches(match: RouteMatch, *, subscription_id: str, resource_group: str, account: str,
                  deployment: str, tags: Mapping[str, str]) -> bool:
    """Every matcher the route gives must match; matchers it leaves out match anything."""
    pairs = (
        (match.subscription, subscription_id),
        (match.resource_group, resource_group),
        (match.account, account),
        (match.deployment, deployment),
    )
    if any(pattern is not None and not _glob(value, pattern) for pattern, value in pairs):
        return False
    return _tags_match(match.tags, tags)


def channel_allowed(channel: str, allowed: Sequence[str] | None) -> bool:
    """Whether ``channel`` (normalized) matches one of the ``allowed`` globs (``None``: everything is allowed)."""
    if allowed is None:
        return True
    for glob in allowed:
        pattern = glob.strip()
        if _CHANNEL_ID.match(pattern):
            if channel == pattern:
                return True
        elif fnmatchcase(channel, "#" + pattern.lstrip("#").lower()):
            return True
    return False


class Router:
    """Built once from the config; :meth:`route` is cheap and depends only on its arguments. The one thing it
    remembers is which account tags it refused (``refused_tags``: (account, channel) pairs), so the caller can
    report them."""

    def __init__(self, routes: Sequence[RouteConfig], slack: SlackConfig) -> None:
        self._routes = tuple(routes)
        self._channel_tag = slack.channel_tag.casefold()
        self._default = normalize_channel(slack.default_channel)
        self._allowed = slack.allowed_channels
        self.refused_tags: set[tuple[str, str]] = set()

    def route(self, *, subscription_id: str, resource_group: str, account: str, deployment: str,
              tags: Mapping[str, str]) -> RouteTarget:
        matched = self._first_match(subscription_id=subscription_id, resource_group=resource_group,
                                    account=account, deployment=deployment, tags=tags)
        tagged = self._tag_channel(tags)
        if tagged is not None and not channel_allowed(tagged[1], self._allowed):
            self.refused_tags.add((account, tagged[1]))
            tagged = None
        if tagged is not None:
            key, channel = tagged
            own = matched is not None and normalize_channel(matched[1].channel) == channel
            mentions = matched[1].mentions if matched is not None and own else {}
            return RouteTarget(channel, MappingProxyType(dict(mentions)), f"tag:{key}", True)
        if matched is not None:
            name, config = matched
            return RouteTarget(normalize_channel(config.channel), MappingProxyType(dict(config.mentions)),
                               name, True)
        return RouteTarget(self._default, MappingProxyType({}), DEFAULT_ROUTE, False)

    def _tag_channel(self, tags: Mapping[str, str]) -> tuple[str, str] | None:
        """(the tag key as written on the account, the channel) when the ownership tag names a channel."""
        for key, value in tags.items():
            if key.casefold() == self._channel_tag and normalize_channel(value):
                return key, normalize_channel(value)
        return None

    def _first_match(self, *, subscription_id: str, resource_group: str, account: str, deployment: str,
                     tags: Mapping[str, str]) -> tuple[str, RouteConfig] | None:
        for index, config in enumerate(self._routes):
            if route_matches(config.match, subscription_id=subscription_id, resource_group=resource_group,
                             account=account, deployment=deployment, tags=tags):
                return (config.name or f"routes[{index}]"), config
        return None
