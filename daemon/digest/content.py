"""What each channel's digest says (pure): the facts of the estate cut per channel, grouped and ordered.

A team digest covers the deployments routed to that channel; the overview (to ``slack.default_channel``) covers
every deployment, a line per team, and the deployments nobody owns. Deployments that share a stage, consequence,
model, version and deadline are one group, so 500 deployments on one model read as one line.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from daemon.digest.facts import UPCOMING, Change, ChangeKind, EstateFacts, Health, SourceFailure, Watched
from daemon.lifecycle.usage import UsageSummary, busy_first

STAGE_ORDER = ("overdue", "critical", "urgent", "warning", "notice", UPCOMING)
CONSEQUENCE_ORDER = ("outage", "forced-upgrade", "auto-upgrade")
CHANGE_ORDER = tuple(ChangeKind)


class Scope(StrEnum):
    TEAM = "team"
    OVERVIEW = "overview"


@dataclass(frozen=True)
class StrikeGroup:
    """Deployments that share a stage, consequence, model version and deadline."""

    stage: str
    consequence: str
    strikes_on: date
    days_left: int
    model: str
    replacement: str | None
    names: tuple[str, ...]  # the busiest first
    unacked: tuple[str, ...]  # those of ``names`` inside an alerting stage with no ack
    idle: bool = False  # every one of them had no traffic in [usage] idle_days
    usage: Mapping[str, UsageSummary] = field(default_factory=dict, hash=False)  # name -> its usage, if known


@dataclass(frozen=True)
class StrikeSection:
    stage: str
    consequence: str
    groups: tuple[StrikeGroup, ...]

    @property
    def deployments(self) -> int:
        return sum(len(group.names) for group in self.groups)


@dataclass(frozen=True)
class ChangeGroup:
    kind: ChangeKind
    subject: str
    old: str | None
    new: str | None
    names: tuple[str, ...]


@dataclass(frozen=True)
class TeamLine:
    channel: str
    deployments: int
    stages: tuple[tuple[str, int], ...]  # deployments in the horizon per stage, most urgent first
    changes: int
    unacked: int

    @property
    def in_horizon(self) -> int:
        return sum(count for _, count in self.stages)


@dataclass(frozen=True)
class UnownedGroup:
    account: str
    names: tuple[str, ...]
    in_horizon: int


@dataclass(frozen=True)
class Digest:
    channel: str
    scope: Scope
    week: str
    now: datetime
    horizon_days: int
    deployments: int  # how many deployments it covers
    sections: tuple[StrikeSection, ...]
    changes: tuple[ChangeGroup, ...]
    unacked: tuple[StrikeGroup, ...]
    unowned: tuple[UnownedGroup, ...]
    teams: tuple[TeamLine, ...]
    health: Health
    failures: tuple[SourceFailure, ...]  # the last poll's failures that concern this digest

    @property
    def in_horizon(self) -> int:
        return sum(section.deployments for section in self.sections)

    @property
    def change_count(self) -> int:
        return sum(len(group.names) for group in self.changes)

    @property
    def unacked_count(self) -> int:
        return sum(len(group.unacked) for group in self.unacked)

    @property
    def worth_sending(self) -> bool:
        """A team with nothing in the horizon and no change gets no digest; the overview (the watcher's weekly
        word on itself and on everything) always goes out."""
        return self.scope is Scope.OVERVIEW or bool(self.in_horizon or self.changes)


def _stage_rank(stage: str) -> int:
    return STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)


def _consequence_rank(consequence: str) -> int:
    return CONSEQUENCE_ORDER.index(consequence) if consequence in CONSEQUENCE_ORDER else len(CONSEQUENCE_ORDER)


def strike_groups(watched: Iterable[Watched]) -> list[StrikeGroup]:
    """Group the deployments inside the horizon: the busy before the idle (a migration to plan comes before a
    deletion to make), then soonest deadline first; in a group, the busiest deployment first."""
    buckets: dict[tuple[str, str, date, int, str, str | None, bool], list[Watched]] = defaultdict(list)
    for item in watched:
        if item.in_horizon and item.stage and item.strikes_on is not None and item.days_left is not None:
            idle = item.usage is not None and item.usage.idle
            buckets[(item.stage, item.consequence, item.strikes_on, item.days_left, item.model,
                     item.replacement, idle)].append(item)
    groups = []
    for (stage, consequence, strikes_on, days_left, model, replacement, idle), items in buckets.items():
        items.sort(key=lambda i: (busy_first(i.usage), i.name))
        groups.append(StrikeGroup(stage, consequence, strikes_on, days_left, model, replacement,
                                  tuple(i.name for i in items),
                                  tuple(i.name for i in items if i.alerting and not i.acked), idle,
                                  {i.name: i.usage for i in items if i.usage is not None and i.usage.known}))
    return sorted(groups, key=lambda g: (g.idle, g.strikes_on, _stage_rank(g.stage),
                                         _consequence_rank(g.consequence), g.model, g.replacement or ""))


def strike_sections(groups: Sequence[StrikeGroup]) -> tuple[StrikeSection, ...]:
    """One section per stage and consequence, the most urgent stage first, groups soonest first within."""
    by_section: dict[tuple[str, str], list[StrikeGroup]] = defaultdict(list)
    for group in groups:
        by_section[(group.stage, group.consequence)].append(group)
    soonest = {k: min(g.strikes_on for g in groups) for k, groups in by_section.items()}
    order = sorted(by_section, key=lambda k: (_stage_rank(k[0]), soonest[k], _consequence_rank(k[1])))
    return tuple(StrikeSection(stage, consequence, tuple(by_section[(stage, consequence)]))
                 for stage, consequence in order)


def change_groups(changes: Iterable[Change]) -> tuple[ChangeGroup, ...]:
    buckets: dict[tuple[ChangeKind, str, str | None, str | None], set[str]] = defaultdict(set)
    for change in changes:
        buckets[(change.kind, change.subject, change.old, change.new)].add(change.name)
    groups = [ChangeGroup(kind, subject, old, new, tuple(sorted(names)))
              for (kind, subject, old, new), names in buckets.items()]
    return tuple(sorted(groups, key=lambda g: (CHANGE_ORDER.index(g.kind), g.subject, g.old or "", g.new or "",
                                               g.names)))


def unacked_groups(groups: Iterable[StrikeGroup]) -> tuple[StrikeGroup, ...]:
    return tuple(group for group in groups if group.unacked)


def team_lines(facts: EstateFacts, channels: Sequence[str]) -> tuple[TeamLine, ...]:
    lines = []
    for channel in channels:
        mine = [w for w in facts.watched if w.channel == channel]
        stages = Counter(w.stage for w in mine if w.in_horizon and w.stage)
        lines.append(TeamLine(
            channel=channel, deployments=len(mine),
            stages=tuple(sorted(stages.items(), key=lambda kv: _stage_rank(kv[0]))),
            changes=sum(1 for c in facts.changes if c.channel == channel),
            unacked=sum(1 for w in mine if w.alerting and not w.acked)))
    return tuple(lines)


def unowned_groups(watched: Iterable[Watched]) -> tuple[UnownedGroup, ...]:
    by_account: dict[str, list[Watched]] = defaultdict(list)
    for item in watched:
        if not item.owned:
            by_account[item.name.split("/", 1)[0]].append(item)
    return tuple(UnownedGroup(account, tuple(sorted(i.name.split("/", 1)[-1] for i in items)),
                              sum(1 for i in items if i.in_horizon))
                 for account, items in sorted(by_account.items()))


def team_channels(facts: EstateFacts) -> list[str]:
    """Every channel a deployment (or a change of the past week) routes to, except the overview's channel: the
    deployments routed there (unowned, or owned by the channel the overview goes to) are in the overview."""
    channels = {w.channel for w in facts.watched} | {c.channel for c in facts.changes}
    return sorted(channels - {facts.overview_channel})


def _digest(facts: EstateFacts, channel: str, scope: Scope, week: str, watched: Sequence[Watched],
            changes: Sequence[Change], teams: tuple[TeamLine, ...] = ()) -> Digest:
    groups = strike_groups(watched)
    subscriptions = {w.subscription_id for w in watched}
    failures = facts.health.failures if scope is Scope.OVERVIEW else tuple(
        f for f in facts.health.failures if f.subscription_id is None or f.subscription_id in subscriptions)
    return Digest(
        channel=channel, scope=scope, week=week, now=facts.now, horizon_days=facts.horizon_days,
        deployments=len(watched), sections=strike_sections(groups), changes=change_groups(changes),
        unacked=unacked_groups(groups), unowned=unowned_groups(watched) if scope is Scope.OVERVIEW else (),
        teams=teams, health=facts.health, failures=failures)


def build_digests(facts: EstateFacts, week: str) -> list[Digest]:
    """Every team's digest (worth sending or not), then the overview."""
    channels = team_channels(facts)
    digests = [_digest(facts, channel, Scope.TEAM, week, [w for w in facts.watched if w.channel == channel],
                       [c for c in facts.changes if c.channel == channel]) for channel in channels]
    overview_teams = team_lines(facts, [*channels, facts.overview_channel])
    digests.append(_digest(facts, facts.overview_channel, Scope.OVERVIEW, week, facts.watched, facts.changes,
                           overview_teams))
    return digests
