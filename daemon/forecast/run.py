"""``retirewatch forecast`` and ``/calendar/{channel}.ics``: read the store (read only), forecast, render.

The policy, the router and the scope overrides are built from the config exactly as ``notify`` builds them
(daemon/notify/run.py), so the forecast asks the same questions of the same answers."""

from __future__ import annotations

from datetime import UTC

from sqlalchemy.orm import Session, sessionmaker

from daemon.clock import Clock, today
from daemon.config import Config, curated_dates, policy_from_config
from daemon.forecast.ics import to_ics
from daemon.forecast.plan import Forecast, forecast
from daemon.lifecycle import parse_scope_overrides
from daemon.notify.routing import Router, normalize_channel
from daemon.notify.usage_policy import UsagePolicy
from daemon.store import forecast as store

DEFAULT_DAYS = 90
MAX_DAYS = 3660


def build_forecast(config: Config, clock: Clock, sessions: sessionmaker[Session], *, days: int = DEFAULT_DAYS,
                   channel: str | None = None) -> Forecast:
    """The forecast from today (the clock's day, UTC) for ``days`` days; only ``channel``'s when given."""
    start = today(clock)
    with sessions() as session:
        snapshot = store.snapshot(session)
        usage = UsagePolicy.load(session, config, start)  # as of today: "had nothing changed"
        session.rollback()  # nothing was written; end the read transaction at once
    result = forecast(snapshot, policy=policy_from_config(config.escalation),
                      router=Router(config.routes, config.slack), overrides=parse_scope_overrides(config.update_scopes),
                      start=start, days=days, dates=curated_dates(config), policy_of=usage.policy)
    return result.for_channel(channel) if channel is not None else result


def known_channels(config: Config, result: Forecast) -> frozenset[str]:
    """The channels alerts can go to: the routes', the default one and every channel a deployment routes to now."""
    named = {normalize_channel(route.channel) for route in config.routes}
    named.add(normalize_channel(config.slack.default_channel))
    return frozenset(named | result.channels)


def channel_calendar(config: Config, clock: Clock, sessions: sessionmaker[Session], channel: str,
                     days: int = DEFAULT_DAYS) -> bytes | None:
    """``channel``'s feed (``search``, ``#search`` or an id), or None when no alert can go to that channel."""
    wanted = normalize_channel(channel)
    everything = build_forecast(config, clock, sessions, days=days)
    if not wanted or wanted not in known_channels(config, everything):
        return None
    return to_ics(everything.for_channel(wanted), clock.now().astimezone(UTC), wanted)
