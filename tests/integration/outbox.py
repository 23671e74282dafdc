"""A synthetic outbox for delivery tests and the delivery benchmark: many due messages over many channels, in
threads (a first message and its replies), queued as a planner writes them: channel after channel (it goes account
by account, and an account's deployments share a channel), or with the channels interleaved."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from daemon.store import alerts
from daemon.store.schema import AlertThreadRow


@dataclass(frozen=True)
class Queued:
    key: str
    channel: str  # as queued: "#name"
    parent: str | None  # the key of the thread's first message (None: this is one)


def channel_name(index: int) -> str:
    return f"#lane-{index:02d}"


def fill_outbox(sessions: sessionmaker[Session], now: datetime, *, channels: int, per_channel: int,
                thread_size: int = 4, interleaved: bool = False) -> list[Queued]:
    """Queue ``per_channel`` messages due at ``now`` in each of ``channels`` channels: threads of one first message
    and ``thread_size - 1`` replies, channel after channel (``interleaved``: one message of each channel in turn).
    Returns them in queue order (oldest first)."""
    queued: list[Queued] = []
    threads: dict[tuple[int, int], tuple[int, str]] = {}  # (channel, thread) -> (thread id, first message key)
    order = ([(i, c) for i in range(per_channel) for c in range(channels)] if interleaved
             else [(i, c) for c in range(channels) for i in range(per_channel)])
    with sessions.begin() as session:
        for i, c in order:
            channel, group = channel_name(c), i // thread_size
            key = f"bench|{c:02d}|{i:04d}"
            if i % thread_size == 0:
                thread = AlertThreadRow(deployment_key=f"/deployments/lane-{c:02d}-{group:04d}", channel=channel,
                                        consequence="outage", opened_at=now)
                session.add(thread)
                session.flush()
                threads[(c, group)] = (thread.id, key)
            thread_id, parent = threads[(c, group)]
            is_parent = parent == key
            added = alerts.enqueue(session, alerts.NewAlert(
                key=key, kind="stage", channel=channel, message=_message(key), thread_id=thread_id,
                deployment_key=f"/deployments/lane-{c:02d}-{group:04d}", is_parent=is_parent), now)
            assert added, key
            queued.append(Queued(key, channel, None if is_parent else parent))
    return queued


def _message(key: str) -> dict[str, object]:
    return {"text": f"alert {key}", "blocks": [],
            "metadata": {"event_type": "model_retirement_alert", "event_payload": {"alert_key": key}}}
