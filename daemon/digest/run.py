"""``retirewatch digest`` and the scheduled job: decide each channel's digest, write them all to the outbox in one
transaction (key ``digest:{channel}:{week}``, so a channel gets one a week whatever runs it, however often), then
deliver through the same :class:`Deliverer` as the alerts (claim, lease, look before re-sending after a crash)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session, sessionmaker

from daemon.clock import Clock, SystemClock
from daemon.config import Config
from daemon.digest.content import Digest, build_digests
from daemon.digest.facts import gather
from daemon.digest.render import render_digest
from daemon.digest.week import digest_key, digest_timezone, iso_week
from daemon.notify.deliver import Deliverer, DeliveryReport
from daemon.notify.ops import DeliveryFailureReporter
from daemon.notify.routing import normalize_channel
from daemon.notify.run import delivery_lease, ops_channel
from daemon.notify.slack import SlackClient
from daemon.rehearsal import Rehearsal, rehearsal_verdict
from daemon.store import alerts
from daemon.store.schema import AlertRow

DIGEST_KIND = "digest"
DELIVERY_WAIT_SECONDS = 15.0  # a 429 or a 5xx retried within this; longer waits are left to the next delivery pass


class Outcome(StrEnum):
    POSTED = "posted"
    ALREADY_SENT = "already sent this week"
    NOTHING = "nothing to say"
    PREVIEW = "preview (dry run)"
    PENDING = "queued, not delivered yet"
    FAILED = "failed"


@dataclass(frozen=True)
class ChannelDigest:
    channel: str
    scope: str  # "team" | "overview"
    outcome: Outcome
    deployments: int = 0
    detail: str = ""
    preview: str | None = None  # the plain text, in a dry run


@dataclass
class DigestReport:
    week: str
    dry_run: bool
    channels: list[ChannelDigest] = field(default_factory=list)
    delivery: DeliveryReport | None = None
    rehearsal: str = ""  # why a run acted as --dry-run

    @property
    def failed(self) -> bool:
        return any(c.outcome is Outcome.FAILED for c in self.channels)

    def describe(self) -> str:
        lines = [f"weekly digest {self.week}" + (" (dry run: nothing sent, nothing recorded)" if self.dry_run else "")]
        if self.rehearsal:
            lines.append(self.rehearsal)
        for item in self.channels:
            detail = f" ({item.detail})" if item.detail else ""
            lines.append(f"  {item.channel} [{item.scope}]: {item.outcome.value}{detail}")
        if self.delivery is not None:
            d = self.delivery
            lines.append(f"delivered from the outbox: {d.sent} sent, {d.recovered} found already posted, "
                         f"{d.retried} to retry, {d.failed} failed")
        for item in self.channels:
            if item.preview is not None:
                lines.append(f"\n--> {item.channel}\n{item.preview}")
        return "\n".join(lines)


def rehearsal_for(config: Config, clock: Clock) -> Rehearsal:
    return rehearsal_verdict(clock.now(), SystemClock().now(), config.testing.allow_time_travel)


def run_digest(config: Config, clock: Clock, sessions: sessionmaker[Session], slack: SlackClient | None, *,
               dry_run: bool = False, channel: str | None = None) -> DigestReport:
    now = clock.now()
    verdict = rehearsal_for(config, clock)
    report = DigestReport(week=iso_week(now, digest_timezone(config)), dry_run=dry_run or not verdict.may_send,
                          rehearsal="" if dry_run else verdict.reason)
    wanted = normalize_channel(channel) if channel else None
    if report.dry_run:
        with sessions() as session:
            digests = _chosen(build_digests(gather(session, config, now), report.week), wanted)
        report.channels = [_preview(d, report.week) for d in digests]
        return _name_unknown_channel(report, wanted)
    queued: dict[str, tuple[Digest, str | None]] = {}  # key -> (digest, status before this run)
    with sessions.begin() as session:
        for digest in _chosen(build_digests(gather(session, config, now), report.week), wanted):
            key = digest_key(digest.channel, report.week)
            before = alerts.alert_status(session, key)
            if before is None and not digest.worth_sending:
                report.channels.append(ChannelDigest(digest.channel, digest.scope.value, Outcome.NOTHING,
                                                     digest.deployments, _why_nothing(digest)))
                continue
            if before is None:
                message = render_digest(digest, key).as_json()
                alerts.enqueue(session, alerts.NewAlert(key=key, kind=DIGEST_KIND, channel=digest.channel,
                                                        message=message), now)
            queued[key] = (digest, before)
    if slack is not None and any(before != alerts.SENT for _, before in queued.values()):
        deliverer = Deliverer(sessions, slack, clock, messages_per_second=config.slack.messages_per_second,
                              max_parallel_channels=config.slack.max_parallel_channels,
                              max_attempts=config.slack.max_attempts, lease=delivery_lease(config),
                              on_permanent_failure=DeliveryFailureReporter(ops_channel(config), now))
        report.delivery = deliverer.run(wait_seconds=DELIVERY_WAIT_SECONDS)
    with sessions() as session:
        rows = alerts.alerts_by_key(session, queued)
    for key, (digest, before) in queued.items():
        report.channels.append(_outcome(digest, rows.get(key), before))
    report.channels.sort(key=lambda c: (c.scope != "team", c.channel))
    return _name_unknown_channel(report, wanted)


def _chosen(digests: list[Digest], wanted: str | None) -> list[Digest]:
    return [d for d in digests if wanted is None or d.channel == wanted]


def _why_nothing(digest: Digest) -> str:
    return f"nothing strikes within {digest.horizon_days} days and nothing changed this week: no digest"


def _preview(digest: Digest, week: str) -> ChannelDigest:
    if not digest.worth_sending:
        return ChannelDigest(digest.channel, digest.scope.value, Outcome.NOTHING, digest.deployments,
                             _why_nothing(digest))
    message = render_digest(digest, digest_key(digest.channel, week))
    return ChannelDigest(digest.channel, digest.scope.value, Outcome.PREVIEW, digest.deployments,
                         f"{len(message.blocks)} blocks", message.text)


def _outcome(digest: Digest, row: AlertRow | None, before: str | None) -> ChannelDigest:
    scope, count = digest.scope.value, digest.deployments
    if row is None:  # cannot happen: the row was written in this run or an earlier one
        return ChannelDigest(digest.channel, scope, Outcome.PENDING, count, "not in the outbox")
    if row.status == alerts.SENT and before == alerts.SENT:
        return ChannelDigest(digest.channel, scope, Outcome.ALREADY_SENT, count,
                             f"posted {_when(row.sent_at)}, ts {row.ts}; nothing posted now")
    if row.status == alerts.SENT:
        earlier = "" if before is None else "; queued by an earlier run"
        return ChannelDigest(digest.channel, scope, Outcome.POSTED, count, f"ts {row.ts}{earlier}")
    if row.status == alerts.FAILED:
        return ChannelDigest(digest.channel, scope, Outcome.FAILED, count, row.last_error or "")
    return ChannelDigest(digest.channel, scope, Outcome.PENDING, count,
                         f"{row.last_error or 'waiting'}; next try {_when(row.next_attempt_at)}")


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "?"


def _name_unknown_channel(report: DigestReport, wanted: str | None) -> DigestReport:
    if wanted and not report.channels:
        report.channels.append(ChannelDigest(wanted, "team", Outcome.NOTHING, 0,
                                             "no deployment routes to this channel"))
    return report
