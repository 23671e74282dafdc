"""``retirewatch ack``: silence a deployment's current deadline (until a date, or until it changes), and say so in
its thread. Acks are never deleted; a later ack for the same deadline supersedes an earlier one, and an ack
identical to the one in force changes nothing (no second row, no second message) unless a stage alert was told
since it (an unsilenceable stage broke through: the same ack again is the team answering it). The Acknowledge and
Snooze buttons in Slack record the same ack (:func:`acknowledge_deadline`), with the Slack user as who.

A grouped alert is acknowledged whole with ``retirewatch ack group:REF`` (REF is in its message), or with its
buttons (:func:`acknowledge_group_deadline`): every member's deadline gets the ack, and the group's thread is told
once. Acknowledging one member (``ACCOUNT/DEPLOYMENT``) silences that member only, and is told in the group's
thread; the group's next stages name the others."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from daemon.config import Config
from daemon.notify.groups import GroupKey, group_ref, parse_group_key
from daemon.notify.render import AlertView, GroupMember, GroupView, MessageKind, render_alert, render_group
from daemon.records import Deployment
from daemon.store import alerts, queries
from daemon.store.queries import deployment_from_row
from daemon.store.schema import AckRow, AlertThreadRow, DeploymentRow

GROUP = "group:"


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
    if reference.casefold().startswith(GROUP):
        return acknowledge_group(session, config, now, reference[len(GROUP):], until=until, note=note, who=who)
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
    others = ""
    if thread.grouped:
        size = len(alerts.thread_members(session, thread.id))
        others = (f" It is one of the {size} deployments in this group; the others are still alerted "
                  f"(`retirewatch ack {GROUP}{group_ref(thread.deployment_key)}` acknowledges them all).")
    text = (f"Acknowledged by {who} {span}: no more alerts for "
            f"{deployment.account_name}/{deployment.name} (deadline {thread.deadline}) except {unsilenceable}."
            + others + (f"\nNote: {note}" if note else ""))
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


def find_group(session: Session, reference: str) -> AlertThreadRow:
    """The open grouped thread ``reference`` (the REF of ``group:REF``) names."""
    wanted = reference.strip().casefold()
    for thread in alerts.open_grouped_threads(session):
        if group_ref(thread.deployment_key) == wanted:
            return thread
    raise AckError(f"no open group {GROUP}{reference}: the reference is in the group's message (`retirewatch ack "
                   f"{GROUP}REF`); a group that resolved has nothing left to acknowledge")


def acknowledge_group(session: Session, config: Config, now: datetime, reference: str, *, until: date | None,
                      note: str | None, who: str | None = None) -> str:
    """Acknowledge every member of a grouped alert for the group's deadline; one message in its thread."""
    return _acknowledge_group(session, config, now, find_group(session, reference), until=until, note=note,
                              who=who).summary


def _acknowledge_group(session: Session, config: Config, now: datetime, thread: AlertThreadRow, *,
                       until: date | None, note: str | None, who: str | None) -> PressedAck:
    """:func:`acknowledge_group` on a found thread, saying whether it recorded anything and which ack is in force
    (the acks are read once)."""
    reference = group_ref(thread.deployment_key)
    members = alerts.thread_members(session, thread.id)
    in_force = alerts.acks_for(session, [(key, thread.deadline) for key in members])
    broke_through: dict[datetime, bool] = {}  # by the ack's time: a group's members are acked at once

    def unchanged(ack: AckRow | None) -> bool:
        """The same ack is in force, and no stage (an unsilenceable one) was told in the group since it."""
        if ack is None or ack.until != until or (ack.note or None) != (note or None):
            return False
        if ack.created_at not in broke_through:
            broke_through[ack.created_at] = alerts.stage_alert_since(session, thread.deployment_key, thread.deadline,
                                                                     ack.created_at)
        return not broke_through[ack.created_at]

    new = [key for key in members if not unchanged(in_force.get((key, thread.deadline)))]
    span = f"until {until}" if until else "for this deadline"
    shared = parse_group_key(thread.deployment_key) or GroupKey(thread.channel, "", "", thread.consequence,
                                                                thread.deadline)
    stored = queries.deployments_by_keys(session, members)
    first = stored.get(members[0]) if members else None
    model = f"{first.model_name} {first.model_version}" if first else f"{shared.model} {shared.version}"
    about = f"the {len(members)} deployments of group {GROUP}{reference} ({model}, deadline {thread.deadline})"
    if not new:
        newest = max(filter(None, in_force.values()), key=lambda ack: ack.id, default=None)
        return PressedAck(False, f"{about} are already acknowledged {span}: nothing changed, nothing posted",
                          newest.created_by if newest else None, newest.until if newest else None)
    who = who or _user()
    alerts.add_acks(session, [AckRow(deployment_key=key, deadline=thread.deadline, until=until, note=note,
                                     created_by=who, created_at=now) for key in new])
    unsilenceable = ", ".join(config.escalation.unsilenceable) or "nothing"
    text = (f"Acknowledged by {who} {span}: no more alerts for the {len(members)} deployments in this group "
            f"(deadline {thread.deadline}) except {unsilenceable}." + (f"\nNote: {note}" if note else ""))
    key = f"{thread.deployment_key}|ack|{thread.id}|{alerts.acks_count(session, members, thread.deadline)}"
    view = GroupView(
        about=AlertView(kind=MessageKind.ACKNOWLEDGED, alert_key=key, stage=thread.stage,
                        model=first.model_name if first else shared.model,
                        version=first.model_version if first else shared.version, consequence=thread.consequence,
                        strikes_on=thread.deadline, detail=text,
                        days_left=(thread.deadline - now.date()).days if thread.deadline else None),
        members=tuple(_member(stored[key]) if key in stored else GroupMember(key, "?", key.rsplit("/", 1)[-1])
                      for key in members),
        group=group_ref(thread.deployment_key), channel=thread.channel, size=len(members),
        status_filter=shared.status_filter())
    alerts.enqueue(session, alerts.NewAlert(
        key=key, kind=MessageKind.ACKNOWLEDGED.value, channel=thread.channel, thread_id=thread.id,
        deployment_key=thread.deployment_key, deadline=thread.deadline, message=render_group(view).as_json()), now)
    return PressedAck(True, f"acknowledged {about} {span}; the thread is told at the next `retirewatch notify`",
                      who, until)


def acknowledge_group_deadline(session: Session, config: Config, now: datetime, reference: str,
                               deadline: date | None, *, until: date | None, who: str) -> PressedAck:
    """:func:`acknowledge_group` for a button pressed on a grouped alert about ``deadline`` (as
    :func:`acknowledge_deadline`: refused when the group's deadline is another now, or the group has resolved)."""
    thread = find_group(session, reference)
    if thread.deadline != deadline:
        raise AckError(f"{GROUP}{reference}: this alert is about the deadline {deadline or '(no date)'}, which has "
                       f"moved to {thread.deadline or '(no date)'}: use the buttons of the latest alert")
    return _acknowledge_group(session, config, now, thread, until=until, note=None, who=who)


def _member(deployment: Deployment) -> GroupMember:
    return GroupMember(deployment_id=deployment.id, account=deployment.account_name, deployment=deployment.name,
                       subscription_id=deployment.subscription_id, resource_group=deployment.resource_group,
                       location=deployment.location, sku=deployment.sku_name)
