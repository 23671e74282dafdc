"""Deliver the outbox: claim -> (look for an uncertain earlier attempt) -> send -> record.

A row is claimed with a lease before it is sent and recorded after, so a crash either leaves the row claimable
again (nothing lost) or, if Slack had accepted the message, lets the next attempt find it by its metadata in the
channel (nothing repeated). Waiting for a 429's ``Retry-After`` or a backoff is a column (``next_attempt_at``),
never a sleeping thread; only the polite per-channel pacing sleeps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy.orm import Session, sessionmaker

from daemon.clock import Clock
from daemon.notify.slack import SlackClient, SlackMessage, SlackResult, Verdict, api_error, backoff_seconds
from daemon.store import alerts
from daemon.store.schema import AlertRow, AlertThreadRow

log = logging.getLogger(__name__)
PARENT_UPDATE = "parent_update"
OperationalHook = Callable[[Session, AlertRow, str], None]


@dataclass
class DeliveryReport:
    sent: int = 0
    recovered: int = 0  # found already posted after an uncertain attempt: recorded, not re-sent
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    # Set when Slack refused the app itself (revoked token, missing scope): the run stopped there and every
    # message is still pending, with no attempt counted.
    unavailable: str | None = None


@dataclass(frozen=True)
class _NoTarget:
    """A message that has nowhere to go, and why."""

    reason: str


class _RunClock:
    """The injected clock, flowing with real time during one run (so a rehearsal at ``--now`` can still wait)."""

    def __init__(self, clock: Clock) -> None:
        self._base, self._start = clock.now(), time.monotonic()

    def now(self) -> datetime:
        return self._base + timedelta(seconds=time.monotonic() - self._start)


class Deliverer:
    def __init__(self, sessions: sessionmaker[Session], slack: SlackClient, clock: Clock, *,
                 messages_per_second: float = 1.0, max_attempts: int = 8,
                 lease: timedelta = timedelta(minutes=5), on_permanent_failure: OperationalHook | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._sessions, self._slack, self._clock = sessions, slack, clock
        self._interval = 1.0 / messages_per_second
        self._max_attempts, self._lease = max_attempts, lease
        self._on_permanent_failure = on_permanent_failure
        self._sleep = sleep
        self._last_post: dict[str, float] = {}

    def run(self, *, wait_seconds: float = 0.0, should_stop: Callable[[], bool] | None = None) -> DeliveryReport:
        """Send everything due; keep going while something becomes due within ``wait_seconds``. ``should_stop`` is
        asked between messages (the service shutting down): what is left stays in the outbox."""
        report, clock = DeliveryReport(), _RunClock(self._clock)
        deadline = time.monotonic() + wait_seconds
        while True:
            with self._sessions() as session:
                ids = alerts.due_ids(session, clock.now())
            for alert_id in ids:
                if should_stop is not None and should_stop():
                    return report
                self._deliver_one(alert_id, clock, report)
                if report.unavailable is not None:
                    return report
            if ids:
                continue
            wait = self._seconds_until_next_due(clock)
            if wait is None or time.monotonic() + wait > deadline:
                return report
            self._sleep(max(wait, 0.05))

    def _seconds_until_next_due(self, clock: _RunClock) -> float | None:
        with self._sessions() as session:
            upcoming = alerts.next_due_at(session)
        if upcoming is None:
            return None
        return (_aware(upcoming) - clock.now()).total_seconds()

    # -- one row -------------------------------------------------------------------------------------------------

    def _deliver_one(self, alert_id: int, clock: _RunClock, report: DeliveryReport) -> None:
        with self._sessions.begin() as session:
            claimed = alerts.claim(session, alert_id, clock.now(), self._lease)
            if claimed is None:
                return
            row, uncertain_since = claimed
            thread = alerts.find_thread(session, row.thread_id) if row.thread_id else None
            target = self._target(session, row, thread)
        if target is None:
            self._postpone(alert_id, clock, "waiting for the thread's first message")
            return
        if isinstance(target, _NoTarget):
            self._give_up(alert_id, target.reason)
            return
        channel, thread_ts = target
        result = None
        if uncertain_since is not None and row.kind != PARENT_UPDATE:
            result = self._look_for_earlier_send(row, channel, thread_ts, _aware(uncertain_since))
            if result is not None and result.verdict is Verdict.SENT:
                report.recovered += 1
        if result is None:
            result = self._send(row, channel, thread_ts)
            if result.verdict is Verdict.SENT:
                report.sent += 1
        self._record(alert_id, result, clock, report)

    def _target(self, session: Session, row: AlertRow,
                thread: AlertThreadRow | None) -> tuple[str, str | None] | _NoTarget | None:
        """(channel, thread_ts) to post to; None while the thread's first message is still on its way (pending or
        sending: it ends sent or failed within ``max_attempts``). Never waits on a first message that will not come:
        without one (it failed, or the thread has none), a reply goes to the channel and an edit has nothing to
        edit."""
        if row.is_parent or thread is None:
            return (thread.channel_id if thread and thread.channel_id else row.channel), None
        if thread.parent_ts and thread.channel_id:
            return thread.channel_id, thread.parent_ts
        parent = alerts.first_message(session, thread.id)
        if parent is not None and parent.status in (alerts.PENDING, alerts.SENDING):
            return None
        if parent is not None and parent.status == alerts.SENT and parent.ts and parent.channel_id:
            return parent.channel_id, parent.ts
        if row.kind == PARENT_UPDATE:
            return _NoTarget("nothing to edit: the thread's first message was never posted")
        return row.channel, None

    def _look_for_earlier_send(self, row: AlertRow, channel: str, thread_ts: str | None,
                               since: datetime) -> SlackResult | None:
        try:
            channel_id = channel if not channel.startswith("#") else self._slack.channel_id(channel)
        except SlackApiError as exc:
            return api_error(exc)
        except (SlackClientError, OSError) as exc:
            return SlackResult(Verdict.RETRY, error=f"{type(exc).__name__}: {exc}")
        if channel_id is None:
            return None  # the channel does not exist: nothing can have been posted there
        found = self._slack.find_own_message(channel_id, row.key, since=since, thread_ts=thread_ts)
        if found is not None and found.verdict is Verdict.SENT:
            log.info("alert %s was already posted (ts %s): recorded, not sent again", row.key, found.ts)
        return found

    def _send(self, row: AlertRow, channel: str, thread_ts: str | None) -> SlackResult:
        message = SlackMessage(text=row.message["text"], blocks=row.message.get("blocks") or [],
                               metadata=row.message.get("metadata") or {})
        self._pace(channel)
        if row.kind == PARENT_UPDATE:
            assert thread_ts is not None
            return self._slack.update(channel, thread_ts, message)
        return self._slack.post(channel, message, thread_ts=thread_ts, broadcast=row.broadcast)

    def _pace(self, channel: str) -> None:
        last = self._last_post.get(channel)
        if last is not None:
            wait = self._interval - (time.monotonic() - last)
            if wait > 0:
                self._sleep(wait)
        self._last_post[channel] = time.monotonic()

    # -- recording -----------------------------------------------------------------------------------------------

    def _record(self, alert_id: int, result: SlackResult, clock: _RunClock, report: DeliveryReport) -> None:
        with self._sessions.begin() as session:
            row = alerts.get_alert(session, alert_id)
            now = clock.now()
            row.lease_until = None
            if result.verdict is Verdict.UNAVAILABLE:  # the app, not this message: hold everything, burn nothing
                # next_attempt_at stays as it was: the message is as due at the next run as it was at this one
                # (moving it to this run's clock would skip it at a next run whose --now is the same instant).
                row.status, row.last_error = alerts.PENDING, result.error
                row.attempts = max(0, row.attempts - 1)
                if not result.uncertain:
                    row.attempt_started_at = None
                report.unavailable = result.error or "unavailable"
                return
            if result.verdict is Verdict.SENT:
                row.status, row.sent_at, row.last_error, row.attempt_started_at = alerts.SENT, now, None, None
                row.channel_id = result.channel_id or row.channel_id
                row.ts = result.ts
                if row.is_parent and row.thread_id:
                    thread = alerts.get_thread(session, row.thread_id)
                    thread.channel_id, thread.parent_ts = row.channel_id, row.ts
                return
            row.last_error = result.error
            if result.verdict is Verdict.RETRY and row.attempts < self._max_attempts:
                delay = result.retry_after if result.retry_after is not None else backoff_seconds(row.attempts)
                row.status, row.next_attempt_at = alerts.PENDING, now + timedelta(seconds=delay)
                if not result.uncertain:
                    row.attempt_started_at = None
                report.retried += 1
                return
            if result.verdict is Verdict.RETRY:
                row.last_error = f"gave up after {row.attempts} attempts: {result.error}"
            row.status = alerts.FAILED
            report.failed += 1
            report.errors.append(f"{row.key}: {row.last_error}")
            if self._on_permanent_failure is not None:
                self._on_permanent_failure(session, row, row.last_error or "failed")

    def _give_up(self, alert_id: int, reason: str) -> None:
        """Mark failed what can never be sent. Not counted as a failure of its own: the first message's failure,
        which caused it, already was."""
        with self._sessions.begin() as session:
            row = alerts.get_alert(session, alert_id)
            row.status, row.lease_until, row.attempt_started_at, row.last_error = alerts.FAILED, None, None, reason
            log.warning("alert %s marked failed: %s", row.key, reason)

    def _postpone(self, alert_id: int, clock: _RunClock, reason: str) -> None:
        with self._sessions.begin() as session:
            row = alerts.get_alert(session, alert_id)
            row.status, row.lease_until, row.attempt_started_at = alerts.PENDING, None, None
            row.attempts = max(0, row.attempts - 1)
            row.next_attempt_at = clock.now() + timedelta(seconds=30)
            row.last_error = reason


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)
