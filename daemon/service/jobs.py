"""The work the service schedules, as plain functions of an injected clock: each calls what the CLI commands
call (``poll``, ``notify``, the outbox delivery, the digest). Nothing here knows APScheduler."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from azure.core.credentials import TokenCredential
from sqlalchemy.orm import Session, sessionmaker

from daemon import digest
from daemon.clock import Clock
from daemon.config import Config
from daemon.notify.deliver import DeliveryReport
from daemon.notify.ops import OPERATIONAL, operational_message
from daemon.notify.run import NotifyReport, deliver_outbox, ops_channel, run_notify
from daemon.notify.slack import SlackClient
from daemon.poll import PollReport, run_poll
from daemon.service import schedule, shared_poll
from daemon.store import alerts, watch

log = logging.getLogger("retirewatch.service")
DIGEST_SLOT = "schedule:digest"
STALE, RECOVERED = "ops|stale|", "ops|recovered|"
StopFlag = Callable[[], bool]
Fence = Callable[[Session], bool]  # in a transaction: does this replica still lead?


def never() -> bool:
    return False


@dataclass
class Work:
    config: Config
    clock: Clock
    sessions: sessionmaker[Session]
    slack: SlackClient | None
    may_send: bool  # False in a rehearsal (--now far from the wall clock): everything acts as --dry-run
    credential: TokenCredential | None = None

    @property
    def stale_after(self) -> timedelta:
        return self.config.service.stale_after or 2 * self.config.schedule.poll_every

    # -- poll, then notify ----------------------------------------------------------------------------------------

    def poll(self, watching_since: datetime, should_stop: StopFlag = never) -> tuple[PollReport, NotifyReport | None]:
        report = run_poll(self.config, self.clock, self.sessions, credential=self.credential,
                          should_stop=should_stop)
        log.info("poll %s: %s subscriptions, %s accounts, %s deployments, %s changes, %s failures in %.1fs%s",
                 report.poll_id, report.subscriptions, report.accounts, report.deployments, report.events,
                 len(report.failures), report.seconds, " (stopped: shutting down)" if report.stopped else "",
                 extra={"event": "poll", "poll_id": report.poll_id, "failures": len(report.failures)})
        for failure in report.failures[:20]:
            log.warning("poll %s could not read %s %s: %s %s", report.poll_id, failure.operation, failure.target,
                        failure.status_code or "-", failure.error, extra={"event": "poll_failure"})
        if should_stop():
            return report, None
        self.watch(watching_since)
        return report, self.notify(should_stop)

    # -- the shared poll (several replicas) --------------------------------------------------------------------

    def start_shared_poll(self, epoch: int, fence: Fence) -> int | None:
        """The leader's part of a poll: its units, one per subscription (None: one still runs, or not leader)."""
        poll_id = shared_poll.start(self.config, self.clock, self.sessions, self.credential, epoch, fence)
        if poll_id is not None:
            log.info("poll %s started (leader epoch %s)", poll_id, epoch,
                     extra={"event": "poll_started", "poll_id": poll_id, "epoch": epoch})
        return poll_id

    def work_units(self, replica_id: str, lease: timedelta, watching_since: datetime,
                   should_stop: StopFlag = never) -> shared_poll.UnitsReport:
        """Take and record poll units until none is left; for each poll this replica completed, notify."""
        report = shared_poll.work(self.config, self.clock, self.sessions, self.credential, replica_id, lease,
                                  should_stop)
        if report.recorded or report.lost:
            log.info("recorded %s subscription(s)%s", report.recorded,
                     f"; {report.lost} taken over by another replica" if report.lost else "",
                     extra={"event": "units", "recorded": report.recorded, "lost": report.lost})
        for poll in report.finished:
            log.info("poll %s: %s subscriptions, %s accounts, %s deployments, %s changes, %s failures (%s)",
                     poll.id, poll.subscriptions, poll.accounts, poll.deployments, poll.events, poll.failures,
                     poll.status, extra={"event": "poll", "poll_id": poll.id, "failures": poll.failures})
            if should_stop():
                break
            self.watch(watching_since)
            self.notify(should_stop)
        return report

    def notify(self, should_stop: StopFlag = never) -> NotifyReport:
        notified = run_notify(self.config, self.clock, self.sessions, self.slack if self.may_send else None,
                              dry_run=not self.may_send, wait_seconds=0, should_stop=should_stop)
        log.info("notify: %s deployments in an alerting stage, queued %s%s", notified.plan.at_risk,
                 dict(notified.plan.queued) or "nothing new", _delivered(notified.delivery),
                 extra={"event": "notify", "queued": sum(notified.plan.queued.values())})
        return notified

    # -- the outbox's retry pass ---------------------------------------------------------------------------------

    def deliver(self, watching_since: datetime, should_stop: StopFlag = never) -> DeliveryReport | None:
        self.watch(watching_since)
        if not self.may_send or self.slack is None:
            return None
        report = deliver_outbox(self.config, self.clock, self.sessions, self.slack, should_stop=should_stop)
        if report.sent or report.recovered or report.failed or report.retried:
            log.info("deliver:%s", _delivered(report), extra={"event": "deliver", "sent": report.sent,
                                                               "failed": report.failed})
        for error in report.errors:
            log.warning("deliver: gave up on %s", error, extra={"event": "delivery_failed"})
        return report

    # -- watching the watcher ------------------------------------------------------------------------------------

    def watch(self, watching_since: datetime) -> str | None:
        """One operational message when the last good poll is older than ``stale_after``, one when a poll
        succeeds again. Kept in the outbox (keyed by the last good poll), so restarts and replicas say it once."""
        if not self.may_send:
            return None
        now, channel = self.clock.now(), ops_channel(self.config)
        with self.sessions.begin() as session:
            last = watch.last_successful_poll(session)
            episode = f"poll-{last.id}" if last is not None else "never"
            if schedule.is_stale(now, last.finished_at if last else None, watching_since, self.stale_after):
                since = f"since {last.finished_at:%Y-%m-%d %H:%M} UTC" if last else "ever"
                title = f"retirewatch has not polled Azure successfully {since}"
                lines = [f"older than stale_after ({schedule.format_duration(self.stale_after)}): alerts and the "
                         "digest rest on the last known inventory",
                         "/readyz answers 503 until a poll succeeds; `retirewatch poll` shows what fails"]
                if _enqueue(session, channel, now, STALE + episode, title, lines):
                    log.warning("%s: told %s", title, channel, extra={"event": "stale"})
                    return "stale"
                return None
            told = alerts.existing_keys(session, [STALE])
            for key in sorted(told):
                told_episode = key[len(STALE):]
                if told_episode == episode or last is None:
                    continue  # still the same episode: no good poll since it was told
                title = f"retirewatch polls Azure again (poll {last.id}, {last.finished_at:%Y-%m-%d %H:%M} UTC)"
                if _enqueue(session, channel, now, RECOVERED + told_episode, title,
                            ["the inventory is current again; /readyz answers 200"]):
                    log.info("%s: told %s", title, channel, extra={"event": "recovered"})
                    return "recovered"
        return None

    # -- the weekly digest ---------------------------------------------------------------------------------------

    def digest(self, due: schedule.DigestDue, should_stop: StopFlag = never,
               fence: Fence | None = None) -> bool:
        """Run the digest for the slot, then claim the slot (compare-and-set, fenced by the leader's epoch when
        ``fence`` is given); False when the slot was already claimed. The digest's messages are keyed by week and
        channel in the outbox, so running it again after a replica died mid-run queues nothing twice; claiming
        only afterwards means a death before the messages were queued loses nothing."""
        tz = schedule.zone(self.config.schedule.timezone)
        week = schedule.iso_week(due.slot, tz)
        if self.may_send:
            claimed = self.claimed_digest_slot()
            if claimed is not None and claimed >= due.slot:
                log.info("digest for %s (slot %s) already claimed: nothing to do", week, due.slot.isoformat(),
                         extra={"event": "digest_skipped", "week": week})
                return False
        if should_stop():
            return False
        result = digest.run_digest(self.config, self.clock, self.sessions, self.slack if self.may_send else None,
                                   dry_run=not self.may_send)
        if self.may_send:
            with self.sessions.begin() as session:
                if fence is not None and not fence(session):
                    log.warning("digest for %s ran, but this replica lost its leadership meanwhile: the new leader "
                                "claims the slot (the outbox keys keep the messages single)", week,
                                extra={"event": "fenced", "job": "digest"})
                    return False
                watch.claim_slot(session, DIGEST_SLOT, due.slot)
        log.info("digest for %s (slot %s): run_digest returned %s", week, due.slot.isoformat(), result,
                 extra={"event": "digest", "week": week, "slot": due.slot.isoformat(), "dry_run": not self.may_send})
        return True

    def claimed_digest_slot(self) -> datetime | None:
        with self.sessions() as session:
            return watch.claimed_slot(session, DIGEST_SLOT)

    def last_success_started(self) -> datetime | None:
        with self.sessions() as session:
            last = watch.last_successful_poll(session)
        return last.started_at if last else None


def _enqueue(session: Session, channel: str, now: datetime, key: str, title: str, lines: list[str]) -> bool:
    return alerts.enqueue(session, alerts.NewAlert(key=key, kind=OPERATIONAL, channel=channel,
                                                   message=operational_message(title, lines, key)), now)


def _delivered(report: DeliveryReport | None) -> str:
    if report is None:
        return ""
    return (f" delivered {report.sent} sent, {report.recovered} found already posted, {report.retried} to retry, "
            f"{report.failed} failed")
