"""The only place that reads the wall clock. Everything else receives a :class:`Clock`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FixedClock:
    """A clock that says what it is told: ``--now`` and tests use it. ``advance`` moves it (time-travel tests)."""

    instant: datetime

    def now(self) -> datetime:
        return self.instant

    def set(self, instant: datetime) -> None:
        self.instant = instant


class OffsetClock:
    """A clock that starts at ``start`` and runs on at real speed: ``retirewatch run --now`` acts on it, so the
    service's schedule follows the instant it was given. Measured on the monotonic clock, so a wall-clock step
    (NTP) does not move it."""

    def __init__(self, start: datetime, monotonic: Callable[[], float] = time.monotonic) -> None:
        if start.tzinfo is None:
            raise ValueError("OffsetClock needs an aware start instant")
        self._start, self._monotonic = start.astimezone(UTC), monotonic
        self._origin = monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._monotonic() - self._origin)


def parse_instant(text: str) -> datetime:
    """Parse ``--now``: an ISO-8601 date or date-time; naive values are taken as UTC."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO-8601 date or date-time: {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def today(clock: Clock) -> date:
    return clock.now().astimezone(UTC).date()
