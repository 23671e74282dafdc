"""Usage, wired to the rest: which accounts a poll reads (``[usage]``), storing what it read, and the usage index
that ``status``, the alerts and the digest read."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.orm import Session, sessionmaker

from daemon.collect.usage import USAGE_OPERATION, WINDOW_DAYS, UsagePlan
from daemon.config import Config, UsageConfig
from daemon.lifecycle.usage import UsageIndex
from daemon.records import SubscriptionInventory
from daemon.store.usage import UsageStore, usage_index


class UsageRound:
    """Usage's part of one poll: :attr:`plan` for the collector (None: usage is not read), :meth:`record` after
    each subscription is stored."""

    def __init__(self, plan: UsagePlan | None, store: UsageStore | None) -> None:
        self.plan, self._store = plan, store

    @classmethod
    def start(cls, config: UsageConfig, now: datetime, sessions: sessionmaker[Session]) -> UsageRound:
        """Call it holding the poll lock: the last reads decide which accounts are due."""
        if not config.enabled:
            return cls(None, None)
        store = UsageStore(sessions)
        return cls(UsagePlan(now, max(WINDOW_DAYS, config.idle_days), config.every_days, store.last_reads()), store)

    def record(self, now: datetime, inventory: SubscriptionInventory) -> None:
        if self._store is not None:
            self._store.record(now, inventory.usage, inventory.failures, USAGE_OPERATION)


def index(session: Session, config: Config, today: date) -> UsageIndex:
    """Every deployment's usage as of ``today``, as ``[usage]`` says to read it."""
    return usage_index(session, today, idle_days=config.usage.idle_days, every_days=config.usage.every_days,
                       enabled=config.usage.enabled)
