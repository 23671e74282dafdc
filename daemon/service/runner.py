"""``retirewatch run``: one in-memory APScheduler that only ticks.

Every second the ``tick`` job asks the pure functions in :mod:`daemon.service.schedule` what is due at the service
clock's ``now`` (so ``--now`` moves the whole schedule) and hands each due job to the scheduler as a one-off run
with its own id (``poll``, ``deliver``, ``digest``): ``coalesce``, ``max_instances=1`` and a real
``misfire_grace_time``. What must survive a restart is in our own tables (the polls, the outbox's keys, the digest
slot claimed with a compare-and-set), never in an APScheduler job store.

Several replicas may share one PostgreSQL database: each renews the leader lease (:mod:`daemon.store.lease`)
every third of ``[service] lease_seconds``; only the leader decides *when* (the poll, the digest), and its
scheduling writes carry its epoch. Every replica delivers from the outbox.

SIGTERM and SIGINT: no new work; the running jobs stop at their next unit boundary (a subscription, a message);
the process exits 0 within ``shutdown_grace_seconds``.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import SQLAlchemyError

from daemon.config import ConfigError, signing_secret
from daemon.notify.interactions import InteractionHandler
from daemon.service import schedule
from daemon.service.http import INTERACTIONS_PATH, HealthServer, SlackInteractions, health_app
from daemon.service.jobs import Work
from daemon.service.metrics import build_registry
from daemon.store import lease, units, watch
from daemon.store.database import DatabaseError
from daemon.store.database import first_line as database_first_line

log = logging.getLogger("retirewatch.service")
TICK_SECONDS = 1
MISFIRE_GRACE = timedelta(seconds=60)  # a run this late (service down, scheduler starved) counts as missed
DIGEST_RETRY = timedelta(minutes=5)


class Service:
    def __init__(self, work: Work) -> None:
        self.work = work
        config = work.config.schedule
        self.tz = schedule.zone(config.timezone)
        self.trigger = schedule.digest_trigger(config.digest, config.timezone)
        self.poll_every, self.deliver_every = config.poll_every, config.deliver_every
        self.stop = threading.Event()
        self.registry, self.metrics = build_registry(work.config, work.clock, work.sessions)
        self._lock = threading.Lock()
        # Held while a job is checked against ``stop`` and handed to the scheduler: shutdown() takes it once ``stop``
        # is set, after which no job can be added. Never taken inside the scheduler's locks or by its listeners.
        self._adding = threading.Lock()
        self._running: set[str] = set()  # dispatched (a second dispatch waits until it is done)
        self._started: set[str] = set()  # running on a worker thread now
        self.abandoned: list[str] = []  # jobs still running when shutdown() gave up waiting for them
        self.started_at = work.clock.now()
        self._last_success: datetime | None = None  # when the last good poll started (from the polls table)
        self._last_poll_attempt: datetime | None = None  # in this process
        self._last_deliver: datetime | None = None
        self._digest_claimed: datetime | None = None
        self._digest_retry_at: datetime | None = None
        self.http: HealthServer | None = None
        self.replica_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.lease = timedelta(seconds=work.config.service.lease_seconds)
        self.leadership: lease.Leadership | None = None
        self._next_lease_check = 0.0  # time.monotonic() of the next renewal
        self.scheduler = BackgroundScheduler(
            timezone=UTC, jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(max_workers=4)},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": int(MISFIRE_GRACE.total_seconds())})
        self.scheduler.add_listener(self._on_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)

    # -- deciding --------------------------------------------------------------------------------------------------

    def due(self, now: datetime, *, units_waiting: bool = False) -> list[tuple[str, Any]]:
        """What to start at ``now``: pure decisions over what this process knows."""
        wanted: list[tuple[str, Any]] = []
        leads = self.leadership is not None  # only the leader decides when to poll and to send the digest
        if leads and schedule.poll_due(now, self._last_success, self._last_poll_attempt, self.poll_every):
            wanted.append(("poll", None))
        elif units_waiting and "poll" not in self._running:
            wanted.append(("units", None))  # a poll another replica started: take a share of it
        # The poll's notify pass delivers too: one deliverer at a time keeps the per-channel pacing.
        busy = {"poll", "units"} & (self._running | {job for job, _ in wanted})
        if not busy and schedule.interval_due(now, self._last_deliver, self.deliver_every):
            wanted.append(("deliver", None))
        if leads and (self._digest_retry_at is None or now >= self._digest_retry_at):
            digest = schedule.digest_due(now, self._digest_claimed, self.trigger, self.tz)
            if digest is not None:
                wanted.append(("digest", digest))
        return wanted

    def tick(self) -> None:
        if self.stop.is_set():
            return
        self.keep_lease()
        now = self.work.clock.now()
        for job_id, argument in self.due(now, units_waiting=self._units_waiting()):
            self._dispatch(job_id, argument, now)

    def keep_lease(self, *, force: bool = False) -> None:
        """Every third of the lease: say this replica is alive, renew the leadership or take a free lease."""
        if not force and time.monotonic() < self._next_lease_check:
            return
        self._next_lease_check = time.monotonic() + self.lease.total_seconds() / 3
        held = self.leadership
        try:
            with self.work.sessions.begin() as session:
                lease.heartbeat(session, self.replica_id)
                self.leadership = lease.hold(session, self.replica_id, held.epoch if held else None, self.lease)
        except Exception as exc:  # the database is away: a leader that cannot renew must not go on deciding
            self.leadership = None
            log.warning("cannot renew the leader lease: %s", database_first_line(exc),
                        extra={"event": "lease_error"})
        if self.leadership is not None and (held is None or held.epoch != self.leadership.epoch):
            log.info("this replica (%s) leads, epoch %s", self.replica_id, self.leadership.epoch,
                     extra={"event": "leader", "epoch": self.leadership.epoch, "replica": self.replica_id})
            self._last_success = self.work.last_success_started()  # what the previous leader did
            self._digest_claimed = self.work.claimed_digest_slot()
        elif self.leadership is None and held is not None:
            log.warning("this replica (%s) no longer leads (epoch %s ended)", self.replica_id, held.epoch,
                        extra={"event": "follower", "epoch": held.epoch, "replica": self.replica_id})

    def _units_waiting(self) -> bool:
        if self._running & {"poll", "units"}:
            return False
        try:
            with self.work.sessions() as session:
                return units.claimable(session, lease.db_now(session))
        except Exception:  # the database is away: the jobs say so when they run
            return False

    def fence(self, session: Any) -> bool:
        held = self.leadership
        return held is not None and lease.fence(session, self.replica_id, held.epoch)

    def _dispatch(self, job_id: str, argument: Any, now: datetime) -> None:
        with self._adding:
            with self._lock:
                if job_id in self._running or self.stop.is_set():
                    return
                self._running.add(job_id)
            self._note_missed(job_id, argument, now)
            try:
                self.scheduler.add_job(self._run, args=(job_id, argument), id=job_id, name=job_id,
                                       replace_existing=True, coalesce=True, max_instances=1,
                                       misfire_grace_time=int(MISFIRE_GRACE.total_seconds()))
            except Exception:
                self._done(job_id)
                raise

    def _note_missed(self, job_id: str, argument: Any, now: datetime) -> None:
        if job_id == "digest":
            late = now - argument.slot
            if late > MISFIRE_GRACE or argument.skipped:
                self.metrics.missed.labels("digest").inc(1 + argument.skipped)
                log.warning("digest slot %s missed by %s (service down?): running it once now, for %s",
                            argument.slot.isoformat(), _round(late), schedule.iso_week(now, self.tz),
                            extra={"event": "missed", "job": "digest"})
        elif job_id == "poll" and self._last_success is not None and self._last_poll_attempt is None:
            late = now - (self._last_success + self.poll_every)
            if late > MISFIRE_GRACE:
                self.metrics.missed.labels("poll").inc()
                log.warning("poll was due %s ago (service down?): polling now", _round(late),
                            extra={"event": "missed", "job": "poll"})

    # -- running ---------------------------------------------------------------------------------------------------

    def _run(self, job_id: str, argument: Any) -> None:
        started = self.work.clock.now()
        with self._lock:
            self._started.add(job_id)
        try:
            if job_id == "poll":
                self._last_poll_attempt = started
                held = self.leadership
                try:
                    if held is not None:
                        self.work.start_shared_poll(held.epoch, self.fence)
                    self.work.work_units(self.replica_id, self.lease, self.started_at, self.stop.is_set)
                finally:
                    self._last_success = self.work.last_success_started()
            elif job_id == "units":
                self.work.work_units(self.replica_id, self.lease, self.started_at, self.stop.is_set)
            elif job_id == "deliver":
                self._last_deliver = started
                self.work.deliver(self.started_at, self.stop.is_set)
            elif job_id == "digest":
                try:
                    self.work.digest(argument, self.stop.is_set, fence=self.fence)
                except Exception:
                    self._digest_retry_at = started + DIGEST_RETRY
                    raise
                self._digest_claimed, self._digest_retry_at = argument.slot, None
            self.metrics.runs.labels(job_id, "ok").inc()
        except Exception as exc:
            self.metrics.runs.labels(job_id, "error").inc()
            log.error("job %s failed: %s: %s", job_id, type(exc).__name__, str(exc).splitlines()[0] if str(exc)
                      else "", extra={"event": "job_error", "job": job_id})
            log.debug("job %s failed", job_id, exc_info=True)
        finally:
            self._done(job_id)

    def _done(self, job_id: str) -> None:
        with self._lock:
            self._running.discard(job_id)
            self._started.discard(job_id)

    def _on_event(self, event: JobExecutionEvent) -> None:
        job_id = str(event.job_id)
        if event.code == EVENT_JOB_ERROR:
            self.metrics.runs.labels(job_id, "error").inc()
            log.error("job %s failed: %s", job_id, event.exception, extra={"event": "job_error", "job": job_id})
            return
        if event.code == EVENT_JOB_MISSED:
            self.metrics.missed.labels(job_id).inc()
            log.warning("job %s missed its run time %s: tried again at the next tick", job_id,
                        event.scheduled_run_time, extra={"event": "missed", "job": job_id})
        self._done(job_id)  # missed or refused: it never ran, so it is not running

    # -- lifecycle ---------------------------------------------------------------------------------------------------

    def start_state(self) -> None:
        """What the database remembers: the last good poll, the last digest slot claimed."""
        try:
            self._last_success = self.work.last_success_started()
            self._digest_claimed = self.work.claimed_digest_slot()
            with self.work.sessions.begin() as session:
                lease.register(session, self.replica_id, socket.gethostname(), os.getpid())
        except SQLAlchemyError as exc:
            raise DatabaseError(f"cannot read the service's state: {str(exc).splitlines()[0]}") from None

    def calendar(self, channel: str, days: int) -> bytes | None:
        """``/calendar/{channel}.ics``: the channel's forecast as an iCalendar feed (None: no alert goes there)."""
        from daemon.forecast.run import channel_calendar

        return channel_calendar(self.work.config, self.work.clock, self.work.sessions, channel, days)

    def start(self) -> None:
        self.start_state()
        next_digest = schedule.next_fire(self.trigger, self.started_at)
        log.info("service clock starts at %s; poll every %s, deliver every %s, digest %r in %s (next %s)%s",
                 self.started_at.isoformat(), schedule.format_duration(self.poll_every),
                 schedule.format_duration(self.deliver_every), self.work.config.schedule.digest, self.tz.key,
                 next_digest.isoformat() if next_digest else "never",
                 "" if self.work.may_send else "; rehearsal: nothing is sent", extra={"event": "start"})
        address = self.work.config.service.address
        if address is not None:
            try:
                self.http = HealthServer(address[0], address[1], health_app(self.readiness, self.registry,
                                                                            self._interactions(), self.calendar))
            except OSError as exc:
                raise ConfigError(f"{self.work.config.source}: service.listen: cannot listen on "
                                  f"{self.work.config.service.listen}: {exc.strerror or exc}") from None
            self.http.start()
            log.info("listening on http://%s:%s (/healthz, /readyz, /metrics, %s)", address[0], self.http.port,
                     INTERACTIONS_PATH, extra={"event": "listening", "port": self.http.port})
            if signing_secret() is None:
                log.warning("SLACK_SIGNING_SECRET is not set: POST %s answers 503, so the Acknowledge and Snooze "
                            "buttons of the alerts do nothing", INTERACTIONS_PATH, extra={"event": "interactions_off"})
        self.keep_lease(force=True)
        self.scheduler.add_job(self.tick, IntervalTrigger(seconds=TICK_SECONDS, timezone=UTC), id="tick",
                               name="tick", coalesce=True, max_instances=1, misfire_grace_time=TICK_SECONDS * 5)
        self.scheduler.start()
        self.tick()  # what is due at start (a stale inventory, the outbox, a missed digest) starts at once

    def _interactions(self) -> SlackInteractions:
        work = self.work
        handler = InteractionHandler(work.config, work.clock, work.sessions, work.slack, may_send=work.may_send,
                                     deliver_soon=self.deliver_soon)
        return SlackInteractions(signing_secret(), work.clock, handler)

    def deliver_soon(self) -> None:
        """Deliver the outbox at the next tick (a button's thread reply is waiting), not a minute from now."""
        self._last_deliver = None

    def readiness(self) -> schedule.Readiness:
        try:
            with self.work.sessions() as session:
                watch.ping(session)
                last = watch.last_successful_poll(session)
        except Exception as exc:
            return schedule.readiness(self.work.clock.now(), None, self.work.stale_after,
                                      database_error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return schedule.readiness(self.work.clock.now(), last.finished_at if last else None, self.work.stale_after)

    def request_stop(self, reason: str) -> None:
        if not self.stop.is_set():
            log.info("%s: taking no new work", reason, extra={"event": "stopping"})
        self.stop.set()

    def shutdown(self) -> int:
        """Stop ticking, give the running jobs ``shutdown_grace_seconds`` to finish their current unit. A job that
        was dispatched but never started (the scheduler stopped first) is not waited for: it never will start. Jobs
        still running after the grace are listed in :attr:`abandoned`; the process owner decides what to do
        (:meth:`run_until_signalled` exits without joining them). Never ends the process itself."""
        self.stop.set()
        grace = self.work.config.service.shutdown_grace_seconds
        self._stop_scheduler()
        deadline = time.monotonic() + max(0.5, grace - 1.0)
        with self._lock:
            running = sorted(self._started)
        if running:
            log.info("waiting up to %.0fs for %s to finish", grace, ", ".join(running), extra={"event": "draining"})
        while time.monotonic() < deadline:
            with self._lock:
                if not self._started:
                    break
            time.sleep(0.05)
        if self.http is not None:
            self.http.stop()
        self._leave()
        with self._lock:
            self.abandoned = sorted(self._started)
        if self.abandoned:
            log.warning("%s still running after %.0fs: exiting anyway (the outbox and the leases make this safe)",
                        ", ".join(self.abandoned), grace, extra={"event": "stopped"})
        else:
            log.info("stopped", extra={"event": "stopped"})
        return 0

    def _stop_scheduler(self) -> None:
        """Shut the scheduler down with no job left to start. APScheduler 3's ``shutdown()`` marks the scheduler
        stopped and shuts its executor down without waiting for the pass over the due jobs its thread may be in:
        a job that pass found due (a ``deliver`` dispatched by the last tick) is submitted to the closed executor
        ("Error submitting job", logged with a traceback) and, being a one-shot job, its removal raises
        ``JobLookupError`` and kills the scheduler thread with another. So: no more jobs are added (``stop`` is
        set; an addition in progress finishes), processing pauses, a pass in progress is waited out
        (``remove_all_jobs`` takes the job stores' lock that every pass holds), every job is removed, and only then
        is the scheduler shut down."""
        with self._adding:
            pass
        if self.scheduler.running:  # started and not shut down yet (a paused scheduler is running)
            self.scheduler.pause()
            self.scheduler.remove_all_jobs()
            self.scheduler.shutdown(wait=False)

    def _leave(self) -> None:
        """Give the lease up (another replica takes over at once, not at expiry) and say this replica stopped."""
        held, self.leadership = self.leadership, None
        try:
            with self.work.sessions.begin() as session:
                if held is not None:
                    lease.release(session, self.replica_id, held.epoch)
                lease.mark_stopped(session, self.replica_id)
        except Exception as exc:
            log.warning("could not give the leader lease up: %s (it expires by itself)", database_first_line(exc))

    def run_until_signalled(self) -> int:
        """Start, wait for SIGTERM or SIGINT (a second one exits at once), shut down; the exit code."""
        signals = 0

        def handler(signum: int, _frame: FrameType | None) -> None:
            nonlocal signals
            signals += 1
            if signals > 1:
                os._exit(130)
            self.request_stop(signal.Signals(signum).name)

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            while not self.stop.wait(0.5):
                pass
            code = self.shutdown()
            if self.abandoned:
                logging.shutdown()
                os._exit(code)  # worker threads would otherwise be joined at exit, past the grace period
            return code
        finally:
            for sig, old in previous.items():
                signal.signal(sig, _restorable(old))


def _restorable(handler: Any) -> Callable[..., Any] | int:
    return handler if handler is not None else signal.SIG_DFL


def _round(delta: timedelta) -> str:
    return str(timedelta(seconds=int(delta.total_seconds())))
