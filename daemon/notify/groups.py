"""Grouped alerts, the pure part: which deployments make a group, its key, and how a person names it.

As Alertmanager's ``group_by``: deployments routed to one channel that share model, version, consequence,
deadline and stage are one group. When at least ``slack.group_min`` of them would each open a thread in the same
pass, they open one grouped thread instead (one message listing them all). A group's key is what the database keeps
unique among open threads, so a group has one open thread, as a deployment does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class GroupKey:
    """What the members of a group share, besides the stage they enter it at."""

    channel: str
    model: str
    version: str
    consequence: str
    deadline: date | None

    @property
    def key(self) -> str:
        """The grouped thread's key (stored where a single thread keeps its deployment's key)."""
        return "|".join(("group", self.channel, self.model.casefold(), self.version.casefold(), self.consequence,
                         self.deadline.isoformat() if self.deadline else "none"))

    @property
    def ref(self) -> str:
        """Short and stable: what ``retirewatch ack group:REF`` takes."""
        return group_ref(self.key)

    def status_filter(self) -> str:
        """The ``retirewatch status`` command that lists every deployment of the group."""
        parts = ["retirewatch status", f"--channel '{self.channel}'", f"--model '{self.model}'",
                 f"--version '{self.version}'"]
        if self.deadline is not None:
            parts.append(f"--deadline {self.deadline.isoformat()}")
        return " ".join(parts)


def group_ref(thread_key: str) -> str:
    return hashlib.sha256(thread_key.encode()).hexdigest()[:8]


def parse_group_key(thread_key: str) -> GroupKey | None:
    """The :class:`GroupKey` a grouped thread's key spells (None: it is not a group's key)."""
    parts = thread_key.split("|")
    if len(parts) != 6 or parts[0] != "group":
        return None
    _, channel, model, version, consequence, deadline = parts
    try:
        day = None if deadline == "none" else date.fromisoformat(deadline)
    except ValueError:
        return None
    return GroupKey(channel, model, version, consequence, day)
