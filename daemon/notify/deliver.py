"""Deliver the outbox: claim -> (look for an uncertain earlier attempt) -> send -> record.

A row is claimed with a lease before it is sent and recorded after, so a crash either leaves the row claimable
again (nothing lost) or, if Slack had accepted the message, lets the next attempt find it by its metadata in the
channel (nothing repeated). Waiting for a backoff is a column (``next_attempt_at``), never a sleeping thread.

Slack paces ``chat.postMessage`` per channel (about one message a second each), so channels are delivered in
parallel: one lane (a worker thread with its own database sessions) per channel that has messages due, at most
``max_parallel_channels`` at once. A lane sends its channel's messages oldest first, at most ``messages_per_second``
(counted from Slack's answer to the previous one, so the next request cannot reach Slack early); a thread's replies
are in the same channel as its first message and queued after it, so they follow it. A 429 pauses the lane until the
message falls due again (its ``Retry-After``), then that message goes first again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy.orm import Session, sessionmaker

from daemon.clock import Clock
from daemon.notify.routing import normalize_channel
from daemon.notify.slack import SlackClient, SlackMessage, SlackResult, Verdict, api_error, backoff_seconds
from daemon.store import alerts
from daemon.store.schema import AlertRow, AlertThreadRow

log = logging.getLogger(__name__)
PARENT_UPDATE = "parent_update"
OperationalHook = Callable[[Session, AlertRow, str], None]
DEFAULT_PARALLEL_CHANNELS = 20  # slack.max_parallel_channels
LANE_BATCH = 50  # ids a lane reads at once (it reads again after a batch, or after a 429)
POLL_SECONDS = 0.5  # how often the run looks for channels newly due, and asks should_stop


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

    def add(self, other: DeliveryReport) -> None:
        """Add one lane's counts to the run's."""
        self.sent, self.recovered = self.sent + other.sent, self.recovered + other.recovered
        self.retried, self.failed = self.retried + other.retried, self.failed + other.failed
        self.errors.extend(other.errors)
        self.unavailable = self.unavailable or other.unavailable


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


class _Run:
    """What the lanes of one run share: the clock, the stop signal, the report (added to under a lock), and the
    channels Slack rate-limited (lane -> monotonic time its ``Retry-After`` ends)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = _RunClock(clock)
        self.stop = threading.Event()
        # Set at Slack's first answer that is not about the app itself: until then one lane probes alone, so a
        # revoked token costs one call per run, not one per channel.
        self.answered = threading.Event()
        # Set by a lane that ends or that got the first answer: the run looks at its lanes again at once.
        self.wake = threading.Event()
        self.report = DeliveryReport()
        self._blocked: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, report: DeliveryReport) -> None:
        with self._lock:
            self.report.add(report)

    def block(self, lane: str, seconds: float) -> None:
        with self._lock:
            self._blocked[lane] = time.monotonic() + seconds

    def blocked_for(self, lane: str) -> float:
        """Seconds until the lane may send again after a 429 (0: it may now)."""
        with self._lock:
            return max(0.0, self._blocked.get(lane, 0.0) - time.monotonic())


def lanes_of(channels: Sequence[str]) -> dict[str, list[str]]:
    """Channels as queued, grouped by the Slack channel they name (``#Team`` and ``team`` are one), in order."""
    lanes: dict[str, list[str]] = {}
    for channel in channels:
        lanes.setdefault(normalize_channel(channel) or channel, []).append(channel)
    return lanes


class Deliverer:
    def __init__(self, sessions: sessionmaker[Session], slack: SlackClient, clock: Clock, *,
                 messages_per_second: float = 1.0, max_parallel_channels: int = DEFAULT_PARALLEL_CHANNELS,
                 max_attempts: int = 8, lease: timedelta = timedelta(minutes=5),
                 on_permanent_failure: OperationalHook | None = None) -> None:
        self._sessions, self._slack, self._clock = sessions, slack, clock
        self._interval = 1.0 / messages_per_second
        self._max_lanes = max(1, max_parallel_channels)
        self._max_attempts, self._lease = max_attempts, lease
        self._on_permanent_failure = on_permanent_failure
        self._last_post: dict[str, float] = {}  # lane -> when Slack answered its last send (monotonic)

    def run(self, *, wait_seconds: float = 0.0, should_stop: Callable[[], bool] | None = None) -> DeliveryReport:
        """Send everything due, channels in parallel; keep going while something becomes due within
        ``wait_seconds``. ``should_stop`` is asked every ``POLL_SECONDS`` (the service shutting down): each lane
        ends after the message it is sending, and what is left stays in the outbox."""
        run = _Run(self._clock)
        deadline = time.monotonic() + wait_seconds
        lanes: dict[str, Future[None]] = {}
        pool = ThreadPoolExecutor(max_workers=self._max_lanes, thread_name_prefix="deliver")
        try:
            while True:
                run.wake.clear()
                if should_stop is not None and should_stop():
                    run.stop.set()
                for lane, future in list(lanes.items()):
                    if future.done():
                        del lanes[lane]
                        future.result()  # a lane's exception (the database went away) ends the run
                if run.stop.is_set():
                    break
                self._start_lanes(pool, lanes, run)
                if lanes:
                    run.wake.wait(POLL_SECONDS)
                    continue
                seconds = self._seconds_until_next_due(run)
                if seconds is None or time.monotonic() + seconds > deadline:
                    break
                time.sleep(min(max(seconds, 0.05), POLL_SECONDS))
        finally:
            run.stop.set()
            pool.shutdown(wait=True)
        for future in lanes.values():
            future.result()
        return run.report

    def _start_lanes(self, pool: ThreadPoolExecutor, lanes: dict[str, Future[None]], run: _Run) -> None:
        most = self._max_lanes if run.answered.is_set() else 1
        if len(lanes) >= most:
            return
        with self._sessions() as session:
            channels = alerts.due_channels(session, run.clock.now())
        for lane, queued_as in lanes_of(channels).items():
            if len(lanes) >= most:
                return
            if lane not in lanes and not run.blocked_for(lane):
                lanes[lane] = pool.submit(self._lane, lane, queued_as, run)

    def _lane(self, lane: str, queued_as: list[str], run: _Run) -> None:
        """Deliver one channel's due messages, oldest first, paced; return when none is due (or on stop)."""
        report = DeliveryReport()
        try:
            while not run.stop.is_set():
                with self._sessions() as session:
                    ids = alerts.due_ids_in(session, queued_as, run.clock.now(), limit=LANE_BATCH)
                if not ids:
                    return
                for alert_id in ids:
                    self._pace(lane, run.stop)
                    if run.stop.is_set():
                        return
                    result = self._deliver_one(alert_id, lane, run.clock, report)
                    if result is None:
                        continue
                    if result.verdict is Verdict.UNAVAILABLE:  # the app itself: every lane stops
                        run.stop.set()
                        return
                    if not run.answered.is_set():
                        run.answered.set()
                        run.wake.set()
                    if result.verdict is Verdict.RETRY and result.retry_after is not None:
                        # Rate limited: the channel waits until the message is due again (the run starts the lane
                        # again then, if it is still running), and that message goes first.
                        run.block(lane, result.retry_after)
                        return
        finally:
            run.add(report)
            run.wake.set()

    def _pace(self, lane: str, stop: threading.Event) -> None:
        last = self._last_post.get(lane)
        if last is not None:
            wait_for = self._interval - (time.monotonic() - last)
            if wait_for > 0:
                stop.wait(wait_for)

    def _seconds_until_next_due(self, run: _Run) -> float | None:
        """Until a channel has a message it may send (due, and not rate-limited); None: nothing is pending."""
        with self._sessions() as session:
            upcoming = alerts.next_due_by_channel(session)
        now, soonest = run.clock.now(), None
        for lane, queued_as in lanes_of(list(upcoming)).items():
            due = min(_aware(upcoming[channel]) for channel in queued_as)
            seconds = max((due - now).total_seconds(), run.blocked_for(lane))
            soonest = seconds if soonest is None else min(soonest, seconds)
        return soonest

    # -- one row -------------------------------------------------------------------------------------------------

    def _deliver_one(self, alert_id: int, lane: str, clock: _RunClock, report: DeliveryReport) -> SlackResult | None:
        """Claim, send (or find an uncertain earlier send), record. Returns Slack's answer (None: Slack was not
        asked: another process has the row, or it waits for its thread's first message, or cannot be sent)."""
        with self._sessions.begin() as session:
            claimed = alerts.claim(session, alert_id, clock.now(), self._lease)
            if claimed is None:
                return None
            row, uncertain_since = claimed
            thread = alerts.find_thread(session, row.thread_id) if row.thread_id else None
            target = self._target(session, row, thread)
        if target is None:
            self._postpone(alert_id, clock, "waiting for the thread's first message")
            return None
        if isinstance(target, _NoTarget):
            self._give_up(alert_id, target.reason)
            return None
        channel, thread_ts = target
        result = None
        if uncertain_since is not None and row.kind != PARENT_UPDATE:
            result = self._look_for_earlier_send(row, channel, thread_ts, _aware(uncertain_since))
            if result is not None and result.verdict is Verdict.SENT:
                report.recovered += 1
        if result is None:
            result = self._send(row, channel, thread_ts, lane)
            if result.verdict is Verdict.SENT:
                report.sent += 1
        self._record(alert_id, result, clock, report)
        return result

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

    def _send(self, row: AlertRow, channel: str, thread_ts: str | None, lane: str) -> SlackResult:
        """One call to Slack; the lane's pace counts from its answer (the lane waited before the claim)."""
        message = SlackMessage(text=row.message["text"], blocks=row.message.get("blocks") or [],
                               metadata=row.message.get("metadata") or {})
        try:
            if row.kind == PARENT_UPDATE:
                assert thread_ts is not None
                return self._slack.update(channel, thread_ts, message)
            return self._slack.post(channel, message, thread_ts=thread_ts, broadcast=row.broadcast)
        finally:
            self._last_post[lane] = time.monotonic()

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
