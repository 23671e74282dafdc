"""The weekly retirement digest: one message per routed channel about its own deployments, plus an overview to
``slack.default_channel``; through the same routing, rendering conventions and outbox as the alerts.

    facts.py    what the estate looks like today (reads the store; the rest is pure)
    content.py  what each channel's digest says, grouped and ordered
    render.py   Block Kit + plain text + metadata, within Slack's limits
    week.py     the ISO week and the outbox key
    run.py      decide -> outbox (one transaction) -> deliver
"""

from daemon.digest.run import ChannelDigest, DigestReport, Outcome, rehearsal_for, run_digest

__all__ = ["ChannelDigest", "DigestReport", "Outcome", "rehearsal_for", "run_digest"]
