"""When each job is due: pure functions of the service clock's ``now`` and what the database remembers.

The scheduler only ticks; these functions decide. They take every instant as an argument, so ``--now`` moves the
whole schedule and the tests can ask "is the digest due at 08:59:59 on the Sunday clocks change?" directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
EPSILON = timedelta(microseconds=1)
MAX_SLOTS_SCANNED = 20_000  # a week of a once-a-minute crontab, twice over


def parse_duration(text: str) -> timedelta:
    """``"30s"``, ``"15m"``, ``"6h"``, ``"1d"``: a positive whole number and one unit."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError("not a duration like \"30s\", \"15m\", \"6h\" or \"1d\"")
    value = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not an IANA time zone name (e.g. \"Europe/Berlin\")") from None


def digest_trigger(crontab: str, timezone: str = "UTC") -> Any:
    """The digest's crontab line (minute hour day month day-of-week), read in ``timezone``."""
    try:
        return CronTrigger.from_crontab(crontab, timezone=zone(timezone))
    except ValueError as exc:
        raise ValueError(f"not a crontab line (minute hour day month day-of-week): {exc}") from None


def next_fire(trigger: Any, after: datetime) -> datetime | None:
    """The first slot strictly after ``after``. A slot in the hour that repeats when clocks go back is one slot,
    not two (APScheduler's cron gives both 01:30 EDT and 01:30 EST)."""
    fire: datetime | None = trigger.get_next_fire_time(after, after)
    if fire is not None and same_wall_time(fire, after, trigger.timezone):
        fire = trigger.get_next_fire_time(fire, fire)
    return fire


def same_wall_time(a: datetime, b: datetime, tz: Any) -> bool:
    return a.astimezone(tz).replace(tzinfo=None) == b.astimezone(tz).replace(tzinfo=None)


def first_fire_from(trigger: Any, start: datetime) -> datetime | None:
    """The first slot at or after ``start``."""
    fire: datetime | None = trigger.get_next_fire_time(None, start)
    return fire


# -- poll and deliver ------------------------------------------------------------------------------------------


def poll_due(now: datetime, last_success: datetime | None, last_attempt: datetime | None,
             every: timedelta) -> bool:
    """Due when the last successful poll (or, in this process, the last attempt) started ``every`` ago or more;
    at once when there is none."""
    anchors = [t for t in (last_success, last_attempt) if t is not None]
    return not anchors or now >= max(anchors) + every


def interval_due(now: datetime, last_run: datetime | None, every: timedelta) -> bool:
    return last_run is None or now >= last_run + every


# -- digest ----------------------------------------------------------------------------------------------------


def week_start(now: datetime, tz: ZoneInfo) -> datetime:
    """Monday 00:00 of ``now``'s ISO week, in ``tz``."""
    local = now.astimezone(tz)
    monday = local.date() - timedelta(days=local.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=tz)


def iso_week(now: datetime, tz: ZoneInfo) -> str:
    year, week, _ = now.astimezone(tz).isocalendar()
    return f"{year}-W{week:02d}"


@dataclass(frozen=True)
class DigestDue:
    slot: datetime  # the slot to run now: the latest one that has come, in the current week
    skipped: int  # earlier slots of this week that passed unclaimed and are folded into this one


def digest_due(now: datetime, claimed: datetime | None, trigger: Any, tz: ZoneInfo) -> DigestDue | None:
    """The digest slot to run at ``now``, if any: the latest slot of the current week (in ``tz``) that has come
    and is later than the last claimed one. Slots missed while the service was down are run once, for the
    current week; slots of earlier weeks are gone."""
    start = week_start(now, tz)
    if claimed is not None and claimed >= start:
        start = claimed + EPSILON
    latest, count = None, 0
    fire = first_fire_from(trigger, start)
    if fire is not None and claimed is not None and same_wall_time(fire, claimed, tz):
        fire = next_fire(trigger, fire)
    while fire is not None and fire <= now and count < MAX_SLOTS_SCANNED:
        latest, count = fire, count + 1
        fire = next_fire(trigger, fire)
    if latest is None:
        return None
    return DigestDue(slot=latest, skipped=count - 1)


# -- health ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str


def readiness(now: datetime, last_success: datetime | None, stale_after: timedelta,
              database_error: str | None = None) -> Readiness:
    if database_error is not None:
        return Readiness(False, f"database does not answer: {database_error}")
    if last_success is None:
        return Readiness(False, "no successful poll yet")
    age = now - last_success
    if age > stale_after:
        return Readiness(False, f"last successful poll {_age(age)} ago ({last_success:%Y-%m-%d %H:%M:%S} UTC), "
                                f"older than stale_after {format_duration(stale_after)}")
    return Readiness(True, f"last successful poll {_age(age)} ago")


def is_stale(now: datetime, last_success: datetime | None, watching_since: datetime,
             stale_after: timedelta) -> bool:
    """The watcher has not polled successfully for longer than ``stale_after`` (counted from when this service
    started, if later: being down is not failing to poll)."""
    anchor = watching_since if last_success is None else max(last_success, watching_since)
    return now - anchor > stale_after


def _age(age: timedelta) -> str:
    seconds = max(0, int(age.total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d"
