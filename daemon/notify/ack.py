"""``retirewatch ack``: silence a deployment's current deadline (until a date, or until it changes), and say so in
its thread. Acks are never deleted; a later ack for the same deadline supersedes an earlier one."""

from __future__ import annotations

import getpass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daemon.config import Config
from daemon.store import alerts
from daemon.store.schema import AckRow, AlertThreadRow, DeploymentRow


class AckError(Exception):
    """The deployment cannot be found, or is ambiguous."""


def find_deployment(session: Session, reference: str) -> DeploymentRow:
    """By ARM id, or ``ACCOUNT/DEPLOYMENT``, or a deployment name that is unique."""
    query = select(DeploymentRow).where(DeploymentRow.removed_at.is_(None))
    if reference.startswith("/"):
        rows = session.scalars(query.where(DeploymentRow.key == reference.casefold())).all()
    elif "/" in reference:
        account, name = reference.split("/", 1)
        rows = session.scalars(query.where(func.lower(DeploymentRow.account_name) == account.casefold(),
                                           func.lower(DeploymentRow.name) == name.casefold())).all()
    else:
        rows = session.scalars(query.where(func.lower(DeploymentRow.name) == reference.casefold())).all()
    if not rows:
        raise AckError(f"no deployment {reference!r} in the inventory (see `retirewatch status`)")
    if len(rows) > 1:
        choices = ", ".join(f"{r.account_name}/{r.name}" for r in rows[:5])
        raise AckError(f"{reference!r} names {len(rows)} deployments ({choices}); use ACCOUNT/DEPLOYMENT or the ARM id")
    return rows[0]


def acknowledge(session: Session, config: Config, now: datetime, reference: str, *, until: date | None,
                note: str | None) -> str:
    deployment = find_deployment(session, reference)
    thread = session.scalars(select(AlertThreadRow).where(AlertThreadRow.deployment_key == deployment.key,
                                                          AlertThreadRow.closed_at.is_(None))).first()
    if thread is None:
        raise AckError(f"{deployment.account_name}/{deployment.name} has no open alert to acknowledge")
    who = _user()
    session.add(AckRow(deployment_key=deployment.key, deadline=thread.deadline, until=until, note=note,
                       created_by=who, created_at=now))
    session.flush()
    ack_count = len(session.scalars(select(AckRow.id).where(AckRow.deployment_key == deployment.key)).all())
    span = f"until {until}" if until else "for this deadline"
    unsilenceable = ", ".join(config.escalation.unsilenceable) or "nothing"
    text = (f":white_check_mark: Acknowledged by {who} {span}: no more alerts for "
            f"{deployment.account_name}/{deployment.name} (deadline {thread.deadline}) except {unsilenceable}."
            + (f"\nNote: {note}" if note else ""))
    key = f"{deployment.key}|ack|{thread.id}|{ack_count}"
    alerts.enqueue(session, alerts.NewAlert(
        key=key, kind="acknowledged", channel=thread.channel, thread_id=thread.id, deployment_key=deployment.key,
        deadline=thread.deadline,
        message={"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}],
                 "metadata": {"event_type": "model_retirement_alert",
                              "event_payload": {"deployment_id": deployment.arm_id,
                                                "deadline": thread.deadline.isoformat() if thread.deadline else "",
                                                "stage": thread.stage or "", "consequence": thread.consequence,
                                                "alert_key": key, "kind": "acknowledged"}}}), now)
    return (f"acknowledged {deployment.account_name}/{deployment.name} (deadline {thread.deadline}) {span}; "
            f"the thread is told at the next `retirewatch notify`")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "someone"
