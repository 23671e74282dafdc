"""A digest as a Slack message: Block Kit, a plain-text fallback that says it all, and message metadata (pure).

Slack's limits hold by construction, whatever the estate: one section per part (stage and consequence, changes,
acks, teams, nobody's, the watcher), each at most :data:`LINES_PER_SECTION` lines and :data:`SECTION_BUDGET`
characters, all blocks together under :data:`BLOCK_TEXT_BUDGET` characters (Slack refuses a message at about
12,000); what does not fit ends its section with "and N more" and the command that lists everything. The
``text`` fallback lists every group and every deployment, cut under Slack's 40,000 characters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from daemon.digest.content import ChangeGroup, Digest, Scope, StrikeGroup, StrikeSection, TeamLine, UnownedGroup
from daemon.digest.facts import UPCOMING, ChangeKind, SourceFailure
from daemon.lifecycle import lifecycle_words
from daemon.lifecycle.usage import usage_sentence, usage_words
from daemon.notify.render import (
    HEADER_CHARS,
    MAX_BLOCKS,
    SECTION_CHARS,
    TEXT_CHARS,
    RenderedMessage,
    _clip,
    _esc,
    in_days,
)

EVENT_DIGEST = "model_retirement_digest"
BLOCK_TEXT_BUDGET = 9_000
SECTION_BUDGET = 2_800
LINES_PER_SECTION = 8
FIRST_LINES = 2
NAMES_IN_BLOCKS = 3
TEXT_BUDGET = TEXT_CHARS - 1_000
CSV_HINT = "`retirewatch status --format csv`"
OVERFLOW_RESERVE = 160  # room kept in a section for its "and N more" line

_STAGE = {"overdue": (":red_circle:", "Overdue"), "critical": (":rotating_light:", "Critical"),
          "urgent": (":large_orange_circle:", "Urgent"), "warning": (":warning:", "Warning"),
          "notice": (":information_source:", "Notice"), UPCOMING: (":calendar:", "Later")}
_CONSEQUENCE = {"outage": "outage", "forced-upgrade": "forced upgrade", "auto-upgrade": "auto-upgrade"}
_CHANGE = {ChangeKind.UPGRADED: "Upgraded (model version changed)", ChangeKind.DATE_MOVED: "Date moved",
           ChangeKind.LIFECYCLE: "Lifecycle changed", ChangeKind.ADDED: "Added", ChangeKind.REMOVED: "Removed"}


@dataclass(frozen=True)
class Line:
    short: str  # for the blocks: a few names, "+N more"
    full: str  # for the text: every name
    weight: int = 1  # deployments it stands for


@dataclass(frozen=True)
class Part:
    """One section of the message: a bold title in the blocks, a plain title in the text, its lines."""

    title: str
    lines: tuple[Line, ...]
    overflow: Callable[[Sequence[Line]], str]
    icon: str = ""  # an emoji code before the title in the blocks
    note: str = ""  # after the title, not bold: what to do about it


# -- words ------------------------------------------------------------------------------------------------------


def plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word if count == 1 else (words or word + 's')}"


def _names(names: Sequence[str], limit: int | None) -> str:
    shown = names if limit is None else names[:limit]
    text = ", ".join(_esc(name) for name in shown)
    return text + (f", +{len(names) - len(shown)} more" if len(names) > len(shown) else "")


def _ago(now: datetime, then: datetime) -> str:
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 3600:
        return plural(seconds // 60, "minute") + " ago"
    if seconds < 2 * 86400:
        return plural(seconds // 3600, "hour") + " ago"
    return plural(seconds // 86400, "day") + " ago"


def _when(group: StrikeGroup) -> str:
    return f"{group.strikes_on.isoformat()} ({in_days(group.days_left)})"


def _what(group: StrikeGroup) -> str:
    model = _esc(group.model)
    if not group.replacement:
        return model
    if group.consequence == "outage":
        return f"{model} (move to {_esc(group.replacement)})"
    return f"{model} → {_esc(group.replacement)}"


def _stage_title(stage: str, consequence: str) -> str:
    word = _STAGE.get(stage, ("", stage.capitalize()))[1]
    return f"{word} · {_CONSEQUENCE.get(consequence, consequence)}"


def _stage_counts(stages: Sequence[tuple[str, int]]) -> str:
    return ", ".join(f"{count} {_STAGE.get(stage, ('', stage))[1].lower()}" for stage, count in stages)


def _more(noun: str, hint: str) -> Callable[[Sequence[Line]], str]:
    def overflow(hidden: Sequence[Line]) -> str:
        deployments = sum(line.weight for line in hidden)
        return f"…and {len(hidden)} more {plural(len(hidden), noun).split(' ', 1)[1]} " \
               f"({plural(deployments, 'deployment')}){hint}"
    return overflow


# -- parts ------------------------------------------------------------------------------------------------------


def _strike_line(group: StrikeGroup) -> Line:
    count = plural(len(group.names), "deployment")
    head = f"• {_when(group)}: {_what(group)} · {count}: "
    unacked = f" · {len(group.unacked)} not acknowledged" if group.unacked else ""
    idle = ""  # an idle group's deployments share one sentence ("no traffic in 30 days: delete it ..."), said once
    if group.idle and group.usage:
        idle = f" · {_esc(usage_sentence(next(iter(group.usage.values()))) or '')}"
    say = usage_sentence if len(group.names) == 1 else usage_words  # many names: "8.4K req/7d" each
    names = [name if group.idle or name not in group.usage else f"{name} ({say(group.usage[name])})"
             for name in group.names]
    return Line(head + _names(names, NAMES_IN_BLOCKS) + idle + unacked, head + _names(names, None) + idle + unacked,
                len(group.names))


def _strike_part(section: StrikeSection) -> Part:
    title = _stage_title(section.stage, section.consequence)
    icon = _STAGE.get(section.stage, (":calendar:", ""))[0]
    return Part(f"{title} ({plural(section.deployments, 'deployment')})",
                tuple(_strike_line(g) for g in section.groups), _more("group", f": {CSV_HINT}"), icon)


def _change_line(group: ChangeGroup) -> Line:
    subject = _esc(group.subject)
    old, new = _esc(group.old or ""), _esc(group.new or "")
    if group.kind is ChangeKind.UPGRADED:
        what = f"{old} → {new}"
    elif group.kind is ChangeKind.DATE_MOVED:
        what = (f"{subject}: retirement date announced, {new}" if not group.old else
                f"{subject}: retirement date withdrawn (was {old})" if not group.new else
                f"{subject} from {old} to {new}")
    elif group.kind is ChangeKind.LIFECYCLE:  # plain words: "retiring", never Azure's "Deprecating"
        before, after = lifecycle_words(group.old), lifecycle_words(group.new)
        what = f"{subject}: {_esc(before or 'unknown')} → {_esc(after or 'unknown')}"
    else:
        what = subject
    head = f"• {_CHANGE[group.kind]}: {what} · {plural(len(group.names), 'deployment')}: "
    return Line(head + _names(group.names, NAMES_IN_BLOCKS), head + _names(group.names, None), len(group.names))


def _unacked_line(group: StrikeGroup) -> Line:
    stage = _stage_title(group.stage, group.consequence).lower()
    head = f"• {_when(group)}, {stage}: {_esc(group.model)}: "
    return Line(head + _names(group.unacked, NAMES_IN_BLOCKS), head + _names(group.unacked, None),
                len(group.unacked))


def _team_line(team: TeamLine, overview_channel: str, horizon_days: int) -> Line:
    label = _esc(team.channel) + (" (default channel: deployments no route claims)"
                                  if team.channel == overview_channel else "")
    parts = [plural(team.deployments, "deployment")]
    if team.in_horizon:
        parts.append(f"{team.in_horizon} within {horizon_days} days ({_stage_counts(team.stages)})")
    else:
        parts.append(f"nothing within {horizon_days} days")
    if team.changes:
        parts.append(plural(team.changes, "change"))
    if team.unacked:
        parts.append(f"{team.unacked} not acknowledged")
    text = f"• {label}: " + " · ".join(parts)
    return Line(text, text, team.deployments)


def _unowned_line(group: UnownedGroup, horizon_days: int) -> Line:
    within = f", {group.in_horizon} within {horizon_days} days" if group.in_horizon else ""
    head = f"• {_esc(group.account)}: {plural(len(group.names), 'deployment')}{within}: "
    return Line(head + _names(group.names, NAMES_IN_BLOCKS), head + _names(group.names, None), len(group.names))


def _failure_line(failure: SourceFailure) -> Line:
    sub = failure.subscription_id
    where = f"subscription {sub}: " if sub and sub.casefold() not in failure.target.casefold() else ""
    text = (f"• {_esc(where)}{_esc(failure.operation)} {_esc(failure.target)}: {failure.status_code or '-'} "
            f"{_esc(_clip(failure.error, 300))}")
    return Line(text, text)


def health_sentence(digest: Digest) -> str:
    health = digest.health
    if health.last_success_at is None:
        said = "no successful poll yet: run `retirewatch poll`"
    else:
        said = (f"last successful poll {health.last_success_at:%Y-%m-%d %H:%M} UTC "
                f"({_ago(digest.now, health.last_success_at)}, poll {health.last_success_id})")
    if health.last_poll_status == "failed" and health.last_poll_at is not None:
        said += f"; the last poll ({health.last_poll_at:%Y-%m-%d %H:%M} UTC) read nothing"
    if digest.failures:
        said += (f"; {plural(len(digest.failures), 'source')} could not be read at the last poll "
                 "(their last known state is used)")
    return f"Watcher: {said}."


def parts(digest: Digest) -> list[Part]:
    found: list[Part] = [_strike_part(section) for section in digest.sections]
    if digest.changes:
        found.append(Part("What changed in the past 7 days", tuple(_change_line(g) for g in digest.changes),
                          _more("change", "")))
    if digest.unacked:
        found.append(Part(f"Not acknowledged ({plural(digest.unacked_count, 'deployment')})",
                          tuple(_unacked_line(g) for g in digest.unacked), _more("group", f": {CSV_HINT}"),
                          note="`retirewatch ack ACCOUNT/DEPLOYMENT` silences one"))
    if digest.scope is Scope.OVERVIEW and digest.teams:
        found.append(Part(f"Teams ({len(digest.teams)})", tuple(
            _team_line(t, digest.channel, digest.horizon_days) for t in digest.teams), _more("team", "")))
    if digest.unowned:
        count = sum(len(g.names) for g in digest.unowned)
        found.append(Part(f"Nobody owns {plural(count, 'deployment')}",
                          tuple(_unowned_line(g, digest.horizon_days) for g in digest.unowned),
                          _more("account", f": {CSV_HINT}"), note="a `[[routes]]` entry or a channel tag claims them"))
    if digest.failures:
        found.append(Part(f"Sources the last poll could not read ({len(digest.failures)})",
                          tuple(_failure_line(f) for f in digest.failures), _more("source", "")))
    return found


def headline(digest: Digest) -> str:
    about = "overview of every deployment" if digest.scope is Scope.OVERVIEW else digest.channel
    return f"Retirement digest {digest.week} · {about}"


def summary(digest: Digest) -> str:
    where = "across every team" if digest.scope is Scope.OVERVIEW else f"in {_esc(digest.channel)}"
    days = digest.horizon_days
    if digest.in_horizon:
        stages = [(s, sum(sec.deployments for sec in digest.sections if sec.stage == s))
                  for s in dict.fromkeys(sec.stage for sec in digest.sections)]
        said = [f"*{digest.in_horizon} of {plural(digest.deployments, 'deployment')}* {where} "
                f"strike within {days} days ({_stage_counts(stages)})"]
    else:
        said = [f"Nothing among {plural(digest.deployments, 'deployment')} {where} strikes within {days} days"]
    said.append(f"*{plural(digest.change_count, 'change')}* in the past 7 days" if digest.changes
                else "no change in the past 7 days")
    if digest.unacked_count:
        said.append(f"*{digest.unacked_count}* not acknowledged")
    idle = sum(len(group.names) for section in digest.sections for group in section.groups if group.idle)
    if idle:
        said.append(f"*{idle}* idle (no traffic: delete instead of migrating)")
    if digest.unowned:
        said.append(f"*{sum(len(g.names) for g in digest.unowned)}* nobody owns")
    return " · ".join(said) + "."


# -- the message ------------------------------------------------------------------------------------------------


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, SECTION_CHARS)}}


def _title(part: Part) -> str:
    icon = f"{part.icon} " if part.icon else ""
    note = f" — {part.note}" if part.note else ""
    return f"{icon}*{part.title}*{note}"


def _fit(found: Sequence[Part], budget: int) -> list[str]:
    """Each part's block text: its title and as many lines as the section and the shared budget allow.

    Every part first gets up to :data:`FIRST_LINES` lines (so the acks and the teams are not starved by a long
    list of notices), then the budget left is filled in order, the most urgent part first."""
    left = budget - sum(len(_title(part)) + 1 + OVERFLOW_RESERVE for part in found)
    sizes = [len(_title(part)) for part in found]
    shown = [0] * len(found)

    def grow(limit: int) -> None:
        nonlocal left
        for i, part in enumerate(found):
            while shown[i] < min(limit, len(part.lines)):
                cost = len(part.lines[shown[i]].short) + 1
                if cost > left or sizes[i] + cost + OVERFLOW_RESERVE > SECTION_BUDGET:
                    break
                sizes[i], left, shown[i] = sizes[i] + cost, left - cost, shown[i] + 1

    grow(FIRST_LINES)
    grow(LINES_PER_SECTION)
    left += sum(OVERFLOW_RESERVE for i, part in enumerate(found) if shown[i] == len(part.lines))  # not needed
    grow(LINES_PER_SECTION)
    texts = []
    for i, part in enumerate(found):
        lines = [_title(part), *(line.short for line in part.lines[:shown[i]])]
        hidden = part.lines[shown[i]:]
        if hidden:
            lines.append(_clip(part.overflow(hidden), OVERFLOW_RESERVE))
        texts.append("\n".join(lines))
    return texts


def _text(digest: Digest, found: Sequence[Part], key: str) -> str:
    lines = [_esc(headline(digest)), summary(digest).replace("*", "")]
    for part in found:
        lines += ["", part.title + (f" — {part.note}" if part.note else "")]
        lines += [line.full for line in part.lines]
    body = "\n".join(lines)
    tail = f"\n\n{_esc(health_sentence(digest))}\nretirewatch weekly digest, key {_esc(key)}"
    if len(body) + len(tail) > TEXT_BUDGET:  # cut the lists, never the watcher's health
        cut = body[:TEXT_BUDGET - len(tail) - 100].rsplit("\n", 1)[0]
        body = f"{cut}\n…cut here; every deployment: {CSV_HINT}"
    return body + tail


def metadata(digest: Digest, key: str) -> dict[str, Any]:
    payload: dict[str, str | int] = {
        "week": digest.week, "channel_scope": digest.scope.value, "deployments": digest.deployments,
        "channel": digest.channel, "alert_key": key, "horizon_days": digest.horizon_days,
        "in_horizon": digest.in_horizon, "changes": digest.change_count, "unacknowledged": digest.unacked_count,
    }
    if digest.scope is Scope.OVERVIEW:
        payload["unowned"] = sum(len(g.names) for g in digest.unowned)
    return {"event_type": EVENT_DIGEST, "event_payload": payload}


def render_digest(digest: Digest, key: str) -> RenderedMessage:
    found = parts(digest)
    header = _clip(f":calendar: {headline(digest)}", HEADER_CHARS)
    intro, health = summary(digest), _esc(health_sentence(digest))
    context = f"retirewatch · weekly digest · key {_esc(_clip(key, 200))}"
    budget = BLOCK_TEXT_BUDGET - len(header) - len(intro) - len(health) - len(context)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}}, _section(intro)]
    blocks += [_section(text) for text in _fit(found, budget)]
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(health, 3000)},
                                                   {"type": "mrkdwn", "text": context}]})
    if len(blocks) > MAX_BLOCKS:  # cannot happen with the parts above; kept as the last guard
        blocks = [*blocks[:MAX_BLOCKS - 2], _section(f"…more in the plain text and in {CSV_HINT}"), blocks[-1]]
    return RenderedMessage(_text(digest, found, key), blocks, metadata(digest, key))
