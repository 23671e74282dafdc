"""``retirewatch ack``: silence a deployment's current deadline (until a date, or until it changes), and say so in
its thread. Acks are never deleted; a later ack for the same deadline supersedes an earlier one, and an ack
identical to the one in force changes nothing (no second row, no second message) unless a stage alert was told
since it (an unsilenceable stage broke through: the same ack again is the team answering it). The Acknowledge and
Snooze buttons in Slack record the same ack (:func:`acknowledge_deadline`), with the Slack user as who."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from daemon.config import Config
from daemon.notify.render import AlertView, MessageKind, render_alert
from daemon.store import alerts, queries
from daemon.store.queries import deployment_from_row
from daemon.store.schema import AckRow, DeploymentRow


class AckError(Exception):
    """The deployment cannot be found, or is ambiguous."""


def find_deployment(session: Session, reference: str) -> DeploymentRow:
    """By ARM id, or ``ACCOUNT/DEPLOYMENT``, or a deployment name that is unique."""
    if reference.startswith("/"):
        rows = queries.current_deployment_rows_by_key(session, reference)
    elif "/" in reference:
        account, name = reference.split("/", 1)
        rows = queries.current_deployment_rows_named(session, name, account=account)
    else:
        rows = queries.current_deployment_rows_named(session, reference)
    if not rows:
        raise AckError(f"no deployment {reference!r} in the inventory (see `retirewatch status`)")
    if len(rows) > 1:
        choices = ", ".join(f"{r.account_name}/{r.name}" for r in rows[:5])
        raise AckError(f"{reference!r} names {len(rows)} deployments ({choices}); use ACCOUNT/DEPLOYMENT or the ARM id")
    return rows[0]


def acknowledge(session: Session, config: Config, now: datetime, reference: str, *, until: date | None,
                note: str | None, who: str | None = None) -> str:
    if until is not None and until <= now.date():
        raise AckError(f"--until {until} is not in the future (today is {now.date()}): alerts resume on that day, "
                       "so give a later one, or leave --until out to silence this deadline until it changes")
    deployment = find_deployment(session, reference)
    thread = alerts.open_thread_of(session, deployment.key)
    if thread is None:
        raise AckError(f"{deployment.account_name}/{deployment.name} has no open alert to acknowledge")
    span = f"until {until}" if until else "for this deadline"
    in_force = alerts.ack_in_force(session, deployment.key, thread.deadline)
    if in_force is not None and in_force.until == until and (in_force.note or None) == (note or None) and \
            not alerts.stage_alert_since(session, deployment.key, thread.deadline, in_force.created_at):
        return (f"{deployment.account_name}/{deployment.name} (deadline {thread.deadline}) is already "
                f"acknowledged {span}: nothing changed, nothing posted")
    who = who or _user()
    alerts.add_ack(session, AckRow(deployment_key=deployment.key, deadline=thread.deadline, until=until, note=note,
                                   created_by=who, created_at=now))
    ack_count = alerts.ack_count(session, deployment.key)
    unsilenceable = ", ".join(config.escalation.unsilenceable) or "nothing"
    text = (f"Acknowledged by {who} {span}: no more alerts for "
            f"{deployment.account_name}/{deployment.name} (deadline {thread.deadline}) except {unsilenceable}."
            + (f"\nNote: {note}" if note else ""))
    key = f"{deployment.key}|ack|{thread.id}|{ack_count}"
    record = deployment_from_row(deployment)
    view = AlertView(kind=MessageKind.ACKNOWLEDGED, alert_key=key, stage=thread.stage, deployment_id=record.id,
                     subscription_id=record.subscription_id, resource_group=record.resource_group,
                     account=record.account_name, deployment=record.name, location=record.location,
                     model=record.model_name, version=record.model_version, sku=record.sku_name,
                     upgrade_option=record.upgrade_option, consequence=thread.consequence,
                     retirement_date=deployment.retirement_date, strikes_on=thread.deadline, detail=text,
                     days_left=(thread.deadline - now.date()).days if thread.deadline else None)
    message = render_alert(view, config.slack.portal_url)
    alerts.enqueue(session, alerts.NewAlert(
        key=key, kind=MessageKind.ACKNOWLEDGED.value, channel=thread.channel, thread_id=thread.id,
        deployment_key=deployment.key, deadline=thread.deadline,
        message=message.as_json()), now)
    return (f"acknowledged {deployment.account_name}/{deployment.name} (deadline {thread.deadline}) {span}; "
            f"the thread is told at the next `retirewatch notify`")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "someone"


@dataclass(frozen=True)
class PressedAck:
    """What an ack from Slack did: ``recorded`` False when the same ack was already in force (pressed twice, or a
    replayed request); ``by`` and ``until`` describe the ack in force afterwards."""

    recorded: bool
    summary: str
    by: str | None
    until: date | None


def acknowledge_deadline(session: Session, config: Config, now: datetime, deployment_id: str,
                         deadline: date | None, *, until: date | None, who: str) -> PressedAck:
    """:func:`acknowledge` for a button pressed on an alert about ``deadline``: refused when the deployment's open
    alert is about another deadline now (the button is out of date), so nobody silences a date they did not see."""
    deployment = find_deployment(session, deployment_id)
    thread = alerts.open_thread_of(session, deployment.key)
    if thread is not None and thread.deadline != deadline:
        raise AckError(f"{deployment.account_name}/{deployment.name}: this alert is about the deadline "
                       f"{deadline or '(no date)'}, which has moved to {thread.deadline or '(no date)'}: "
                       "use the buttons of the latest alert")
    before = alerts.ack_in_force(session, deployment.key, deadline)
    summary = acknowledge(session, config, now, deployment.key, until=until, note=None, who=who)
    after = alerts.ack_in_force(session, deployment.key, deadline)
    recorded = after is not None and (before is None or after.id != before.id)
    return PressedAck(recorded, summary, after.created_by if after else None, after.until if after else None)
