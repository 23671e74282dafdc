"""``retirewatch service``: the replicas sharing the database, the leader and its epoch, the work in flight."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from daemon.store import lease, units, watch


@dataclass(frozen=True)
class Overview:
    now: datetime
    leader: dict[str, Any] | None
    replicas: list[dict[str, Any]]
    polls: list[dict[str, Any]]
    sending: int

    def as_json(self) -> str:
        return json.dumps({"now": self.now.isoformat(), "leader": self.leader, "replicas": self.replicas,
                           "polls_in_flight": self.polls, "messages_being_sent": self.sending}, indent=2,
                          default=units.as_json)


def gather(session: Session, lease_seconds: float) -> Overview:
    now = lease.db_now(session)
    current = lease.leader(session)
    held = current is not None and current.holder is not None and current.expires_at is not None and \
        lease.aware(current.expires_at) > now
    leader = None if not held or current is None else {
        "replica": current.holder, "epoch": current.epoch, "since": current.acquired_at,
        "lease_until": current.expires_at}
    stale = timedelta(seconds=lease_seconds)
    replicas = []
    for row in lease.replicas(session):
        state = lease.replica_state(row, now, stale)
        replicas.append({"replica": row.id, "host": row.host, "pid": row.pid, "started_at": row.started_at,
                         "heartbeat_at": row.heartbeat_at, "state": state,
                         "leader": leader is not None and leader["replica"] == row.id})
    polls = [{"poll_id": p.poll_id, "started_at": p.started_at, "leader_epoch": p.leader_epoch,
              "pending": p.pending, "done": p.done,
              "claimed": [{"subscription": s, "replica": r, "until": u} for s, r, u in p.claimed]}
             for p in units.in_flight(session)]
    return Overview(now, leader, replicas, polls, watch.sending_count(session))


def render(view: Overview) -> str:
    lines = []
    if view.leader is None:
        lines.append("leader: none (no replica holds the lease: the next one to renew takes it)")
    else:
        left = (lease.aware(view.leader["lease_until"]) - view.now).total_seconds()
        lines.append(f"leader: {view.leader['replica']}, epoch {view.leader['epoch']} "
                     f"(lease renewed, {left:.0f} s left)")
    live = [r for r in view.replicas if r["state"] != "stopped"]
    lines.append(f"replicas: {len(live)} running, {len(view.replicas) - len(live)} stopped")
    for r in view.replicas:
        if r["state"] == "stopped":
            continue
        age = (view.now - lease.aware(r["heartbeat_at"])).total_seconds()
        lines.append(f"  {r['replica']:<40} {r['state']:<7} heartbeat {age:.0f} s ago"
                     f"{'  (leader)' if r['leader'] else ''}")
    if not view.polls:
        lines.append("polls in flight: none")
    for p in view.polls:
        lines.append(f"poll {p['poll_id']} (leader epoch {p['leader_epoch']}, started "
                     f"{p['started_at']:%Y-%m-%d %H:%M:%S} UTC): {p['done']} subscriptions done, "
                     f"{len(p['claimed'])} being read, {p['pending']} waiting")
        for c in p["claimed"]:
            lines.append(f"  {c['subscription']}  by {c['replica']}")
    lines.append(f"messages being sent: {view.sending}")
    return "\n".join(lines)
