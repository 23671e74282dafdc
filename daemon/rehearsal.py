"""Rehearsals never touch real state: the one rule for ``--now`` far from the wall clock.

``--now`` lets a person (or a test rig) ask "what would happen then?". Within a day of the wall clock it is an
ordinary run (a cron job started a few seconds late, a replayed morning). Further away it is a rehearsal: anything
that would send to Slack or change alert state acts as ``--dry-run`` instead, unless the config sets
``[testing] allow_time_travel = true`` (test rigs, the demo and emulator setups do).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

REHEARSAL_DISTANCE = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Rehearsal:
    """Whether a run at ``now`` may send and change alert state, with the sentence that says why not."""

    may_send: bool
    reason: str = ""


def rehearsal_verdict(now: datetime, wall_now: datetime, allow_time_travel: bool) -> Rehearsal:
    """Pure: compare the clock the run acts on with the wall clock."""
    distance = abs(now - wall_now)
    if distance <= REHEARSAL_DISTANCE or allow_time_travel:
        return Rehearsal(may_send=True)
    days = distance.total_seconds() / 86400
    return Rehearsal(
        may_send=False,
        reason=(f"--now is {days:.1f} days from the wall clock: rehearsal, acting as --dry-run "
                "(nothing sent, no alert state changed; set [testing] allow_time_travel = true to send)"),
    )
