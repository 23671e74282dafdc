"""The weekly retirement digest (placeholder: the real digest replaces this module)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from daemon.clock import Clock
from daemon.config import Config
from daemon.notify.slack import SlackClient


def run_digest(config: Config, clock: Clock, sessions: sessionmaker[Session], slack: SlackClient | None, *,
               dry_run: bool = False, channel: str | None = None) -> object:
    """Queue and deliver this week's digest per channel. Placeholder: does nothing yet."""
    return None
