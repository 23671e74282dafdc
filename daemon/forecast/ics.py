"""The forecast's deadlines as an iCalendar feed (RFC 5545): one all-day event per strike day.

One event per (channel, strike day, model, version, consequence), listing its deployments: the day a team's
deployments of one model stop answering or get upgraded is one thing in their calendar, however many deployments
it concerns. The UID is a hash of those five, so a calendar that re-imports (or re-fetches) the feed updates the
event instead of adding a second one; the event changes (a deployment added, an ack) keep the UID.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from icalendar import Calendar, Event, vDuration

from daemon.forecast.plan import Deadline, Forecast, deadlines_by_event

PRODID = "-//retirewatch//model retirement forecast//EN"
UID_DOMAIN = "retirewatch"
REFRESH = timedelta(hours=6)  # how often a subscribed calendar should fetch the feed again
_TITLE = {"outage": "Outage", "forced-upgrade": "Forced upgrade", "auto-upgrade": "Auto-upgrade"}


def event_uid(channel: str, strikes_on: date, model: str, version: str, consequence: str) -> str:
    """Stable across runs and processes: a hash of what the event is about, never of when it was made."""
    basis = "|".join((channel, strikes_on.isoformat(), model.casefold(), version.casefold(), consequence))
    return f"{hashlib.sha256(basis.encode()).hexdigest()[:32]}@{UID_DOMAIN}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _replacement(deadline: Deadline) -> str | None:
    parts = [p for p in (deadline.replacement_model, deadline.replacement_version) if p]
    return " ".join(parts) if parts else None


def summary(deadlines: Sequence[Deadline]) -> str:
    first = deadlines[0]
    manual = first.consequence == "outage" and all(d.manual_migration for d in deadlines)
    title = _TITLE.get(first.consequence, first.consequence) + (" (manual migration)" if manual else "")
    model = f"{first.model or '?'} {first.version or '?'}"
    replacements = {_replacement(d) for d in deadlines} - {None}
    moves = f" → {replacements.pop()}" if len(replacements) == 1 and first.consequence != "outage" else ""
    return f"{title}: {model}{moves} ({_plural(len(deadlines), 'deployment')})"


def description(deadlines: Sequence[Deadline]) -> str:
    first = deadlines[0]
    model, day = f"{first.model or '?'} {first.version or '?'}", first.strikes_on.isoformat()
    retires = (f"; the model retires on {first.retirement_date}"
               if first.retirement_date and first.retirement_date != first.strikes_on else "")
    count = _plural(len(deadlines), "deployment")
    if first.consequence == "outage":
        verb = "stops" if len(deadlines) == 1 else "stop"
        what = f"On {day} {count} of {model} {verb} answering (requests fail with HTTP 410){retires}."
    elif first.consequence == "forced-upgrade":
        what = f"On {day} Azure upgrades {count} of {model} to the replacement (untested change){retires}."
    elif first.consequence == "auto-upgrade":
        what = f"From {day} Azure auto-upgrades {count} of {model} to the replacement (untested change){retires}."
    else:
        what = f"On {day}: {first.consequence} for {count} of {model}{retires}."
    lines = [what]
    if any(d.date_status == "tentative" for d in deadlines):
        lines.append("Microsoft marks this date as tentative: it may still move.")
    lines += ["", "Deployments:"]
    for d in sorted(deadlines, key=lambda d: d.name):
        moves = "moves to" if d.consequence != "outage" else "replacement:"
        notes = [f"{moves} {_replacement(d)}" if _replacement(d) else "no replacement named"]
        if d.update_scope:
            notes.append(f"{d.update_scope} update")
        if d.manual_migration:
            notes.append("Azure will not move it: migrate by hand")
        if d.silenced:
            notes.append("acknowledged: alerts silenced")
        lines.append(f"- {d.name} ({'; '.join(notes)})")
    lines += ["", f"Alerts go to {first.channel}. `retirewatch ack ACCOUNT/DEPLOYMENT` silences a deployment's "
              "alerts for this deadline; `retirewatch forecast` lists every alert to come."]
    return "\n".join(lines)


def to_ics(forecast: Forecast, stamp: datetime, channel: str | None = None) -> bytes:
    """The feed: ``stamp`` (the injected clock's now, UTC) is every event's DTSTAMP, so the same forecast at the
    same instant gives the same bytes."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    name = f"Model retirements: {channel}" if channel else "Model retirements"
    calendar.add("x-wr-calname", name)
    calendar.add("x-wr-caldesc", f"Azure model deployments retiring or upgraded, from retirewatch's forecast of "
                                 f"{forecast.start} to {forecast.end}")
    calendar.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vDuration(REFRESH))
    for (where, strikes_on, model, version, consequence), group in sorted(
            deadlines_by_event(forecast.deadlines).items()):
        event = Event()
        event.add("uid", event_uid(where, strikes_on, model, version, consequence))
        event.add("dtstamp", stamp)
        event.add("dtstart", strikes_on)
        event.add("dtend", strikes_on + timedelta(days=1))
        event.add("summary", summary(group))
        event.add("description", description(group))
        event.add("categories", [consequence])
        tentative = any(d.date_status == "tentative" for d in group)
        event.add("status", "TENTATIVE" if tentative else "CONFIRMED")
        event.add("transp", "TRANSPARENT")
        calendar.add_component(event)
    feed: bytes = calendar.to_ical()
    return feed
