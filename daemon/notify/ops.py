"""Operational alerts: problems of retirewatch itself (Slack refusing a channel, Azure failing, an account tag
naming a channel it may not) for the people who run it, posted to ``slack.fallback_channel`` (else the default
channel), at most once a day per problem (once for good where the problem does not come back by itself).

They carry their own metadata ``event_type`` (``retirewatch_operational``, payload ``problem``, ``first_seen``,
``alert_key``), never a retirement alert's, so no workflow mistakes them for news about a deployment."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from daemon.notify.render import AlertView, MessageKind, render_alert
from daemon.store import alerts
from daemon.store.schema import AlertRow, PollFailureRow

OPERATIONAL = "operational"


def operational_message(title: str, lines: Sequence[str], key: str, *, problem: str = "",
                        first_seen: datetime | None = None) -> dict[str, object]:
    body = "\n".join(f"• {line}" for line in lines[:20])
    if len(lines) > 20:
        body += f"\n… and {len(lines) - 20} more"
    view = AlertView(kind=MessageKind.OPERATIONAL, alert_key=key, stage=OPERATIONAL, consequence="",
                     detail=f"{title}\n{body}", problem=problem,
                     first_seen=first_seen.isoformat() if first_seen else "")
    message = render_alert(view, "")
    return message.as_json()


def raise_operational(session: Session, channel: str, now: datetime, problem: str, title: str,
                      lines: Sequence[str], *, daily: bool = True) -> bool:
    """Queue one operational alert for ``problem``: once a day (``daily``) or once for good."""
    key = f"ops|{problem}|{now.date()}" if daily else f"ops|{problem}"
    message = operational_message(title, lines, key, problem=problem, first_seen=now)
    return alerts.enqueue(session, alerts.NewAlert(key=key, kind=OPERATIONAL, channel=channel, message=message),
                          now)


def report_refused_tags(session: Session, channel: str, now: datetime, refused: Iterable[tuple[str, str]]) -> bool:
    """Account tags that named a channel outside ``slack.allowed_channels``: told once per set of such tags."""
    pairs = sorted(set(refused))
    if not pairs:
        return False
    problem = "tag|" + hashlib.sha256("\n".join(f"{a} {c}" for a, c in pairs).encode()).hexdigest()[:16]
    lines = [f"account {account}: tag names {named}" for account, named in pairs]
    lines.append("their alerts went to the routes or the default channel instead; allow the channel in "
                 "slack.allowed_channels or fix the tag")
    return raise_operational(session, channel, now, problem,
                             f"{len(pairs)} account tag(s) name a channel outside slack.allowed_channels (ignored)",
                             lines, daily=False)


class DeliveryFailureReporter:
    """The deliverer's hook: a message Slack refused for good becomes one operational alert."""

    def __init__(self, channel: str, now: datetime) -> None:
        self._channel, self._now = channel, now

    def __call__(self, session: Session, row: AlertRow, error: str) -> None:
        if row.kind == OPERATIONAL:
            return  # the fallback channel itself is broken: the log and `retirewatch alerts` say so
        raise_operational(session, self._channel, self._now, f"slack|{row.channel}|{error}",
                          f"Slack refused alerts for {row.channel}: {error}",
                          [f"alert {row.key} marked failed: {error}",
                           "fix the channel or the bot's access, then check `retirewatch alerts --status failed`"])


def report_poll_failures(session: Session, channel: str, now: datetime, poll_id: int,
                         failures: Sequence[PollFailureRow]) -> bool:
    if not failures:
        return False
    lines = [f"{f.operation} {f.target}: {f.status_code or '-'} {f.error}" for f in failures]
    # The same failures poll after poll are one problem: told once a day, not once per poll.
    problem = hashlib.sha256("\n".join(sorted(f"{f.operation} {f.target} {f.status_code}" for f in failures))
                             .encode()).hexdigest()[:16]
    return raise_operational(session, channel, now, f"poll|{problem}",
                             f"poll {poll_id} could not read {len(failures)} source(s); kept their last known state",
                             lines)
