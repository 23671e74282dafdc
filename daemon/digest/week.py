"""The digest's week: an ISO week ("2026-W12") read in the schedule's time zone."""

from __future__ import annotations

from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo


def digest_timezone(config: object) -> tzinfo:
    """``[schedule] timezone`` once the config has that section (an IANA name or a tzinfo); UTC until then."""
    zone = getattr(getattr(config, "schedule", None), "timezone", None) or "UTC"
    return zone if isinstance(zone, tzinfo) else ZoneInfo(str(zone))


def iso_week(now: datetime, zone: tzinfo) -> str:
    year, week, _ = now.astimezone(zone).isocalendar()
    return f"{year}-W{week:02d}"


def digest_key(channel: str, week: str) -> str:
    """The outbox key: one digest per channel per week, whoever runs it and however often."""
    return f"digest:{channel}:{week}"
