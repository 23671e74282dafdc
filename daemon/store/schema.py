"""The tables. Alembic owns their creation (``migrations/``); a test proves these models and the migrations agree.

Keys: ARM ids are case-insensitive, so every table keyed by one stores ``key`` (the id case-folded) and ``arm_id``
(as Azure spelled it). Rows are never deleted when Azure stops listing them: ``removed_at`` marks them, so history
and the alerts that refer to them stay intact.

Last seen: an unchanged poll writes nothing. ``last_seen`` is set whenever a row is written anyway (added, changed,
removed, missed, seen again); ``missed_since`` (subscriptions, accounts, catalog entries) is set when a poll that
completed (``ok`` / ``partial``) did not see the row, and cleared when one sees it again. So a row that is neither
removed nor missed was seen by every complete poll since its ``last_seen``, and a deployment was seen whenever its
account was (``queries.last_seen`` reads it back).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ArmId = String(600)
Name = String(255)
UtcDateTime = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SubscriptionRow(Base):
    __tablename__ = "subscriptions"

    subscription_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(Name)
    state: Mapped[str | None] = mapped_column(String(64))
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    missed_since: Mapped[datetime | None] = mapped_column(UtcDateTime)  # see "Last seen" above


class AccountRow(Base):
    __tablename__ = "accounts"

    key: Mapped[str] = mapped_column(ArmId, primary_key=True)
    arm_id: Mapped[str] = mapped_column(ArmId)
    subscription_id: Mapped[str] = mapped_column(String(64), index=True)
    resource_group: Mapped[str] = mapped_column(Name)
    name: Mapped[str] = mapped_column(Name)
    kind: Mapped[str] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(String(64))
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # a poll did not read its deployments completely (the account was not listed, or its list failed)
    missed_since: Mapped[datetime | None] = mapped_column(UtcDateTime)


class DeploymentRow(Base):
    """A deployment's current state; ``retirement_*``, ``lifecycle_status`` and ``deprecation_status`` are what the
    catalog said about its model at the last poll that could read the catalog."""

    __tablename__ = "deployments"

    key: Mapped[str] = mapped_column(ArmId, primary_key=True)
    arm_id: Mapped[str] = mapped_column(ArmId)
    account_key: Mapped[str] = mapped_column(ArmId, ForeignKey("accounts.key"), index=True)
    subscription_id: Mapped[str] = mapped_column(String(64), index=True)
    resource_group: Mapped[str] = mapped_column(Name)
    account_name: Mapped[str] = mapped_column(Name)
    location: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(Name)
    model_format: Mapped[str | None] = mapped_column(String(64))
    model_name: Mapped[str | None] = mapped_column(Name)
    model_version: Mapped[str | None] = mapped_column(String(64))
    model_publisher: Mapped[str | None] = mapped_column(Name)
    model_source: Mapped[str | None] = mapped_column(ArmId)
    sku_name: Mapped[str | None] = mapped_column(String(64))
    sku_capacity: Mapped[int | None] = mapped_column(Integer)
    upgrade_option: Mapped[str | None] = mapped_column(String(64))
    provisioning_state: Mapped[str | None] = mapped_column(String(64))
    retirement_date: Mapped[date | None] = mapped_column(Date)
    retirement_source: Mapped[str | None] = mapped_column(String(32))
    deprecation_status: Mapped[str | None] = mapped_column(String(64))
    lifecycle_status: Mapped[str | None] = mapped_column(String(64))
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class CatalogModelRow(Base):
    """One model version in one catalog scope (``location:<region>`` or an account's key)."""

    __tablename__ = "catalog_models"
    __table_args__ = (UniqueConstraint("scope", "format_key", "name_key", "version_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(ArmId)
    format_key: Mapped[str] = mapped_column(String(64))
    name_key: Mapped[str] = mapped_column(Name)
    version_key: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(Name)
    version: Mapped[str] = mapped_column(String(64))
    publisher: Mapped[str | None] = mapped_column(Name)
    kinds: Mapped[list[str]] = mapped_column(JSON, default=list)
    is_default_version: Mapped[bool] = mapped_column(Boolean, default=False)
    lifecycle_status: Mapped[str | None] = mapped_column(String(64))
    inference_retirement: Mapped[date | None] = mapped_column(Date)
    fine_tune_retirement: Mapped[date | None] = mapped_column(Date)
    deprecation_status: Mapped[str | None] = mapped_column(String(64))
    sku_retirements: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    replacement_model: Mapped[str | None] = mapped_column(Name)
    replacement_version: Mapped[str | None] = mapped_column(String(64))
    auto_upgrade_start: Mapped[date | None] = mapped_column(Date)
    upgrade_lead_days: Mapped[int | None] = mapped_column(Integer)
    base_format: Mapped[str | None] = mapped_column(String(64))  # baseModel of a fine-tuned account model
    base_name: Mapped[str | None] = mapped_column(Name)
    base_version: Mapped[str | None] = mapped_column(String(64))
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    missed_since: Mapped[datetime | None] = mapped_column(UtcDateTime)  # not listed by a poll


class PollRow(Base):
    __tablename__ = "polls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # running | ok | partial | failed | died (found still running by a later poll: the process was killed)
    status: Mapped[str] = mapped_column(String(16))
    subscriptions: Mapped[int] = mapped_column(Integer, default=0)
    accounts: Mapped[int] = mapped_column(Integer, default=0)
    deployments: Mapped[int] = mapped_column(Integer, default=0)
    catalog_models: Mapped[int] = mapped_column(Integer, default=0)
    events: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    # The leader epoch that started it (None: a one-shot `retirewatch poll`); see LeaseRow.
    leader_epoch: Mapped[int | None] = mapped_column(Integer)


class PollFailureRow(Base):
    __tablename__ = "poll_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    poll_id: Mapped[int] = mapped_column(ForeignKey("polls.id"), index=True)
    subscription_id: Mapped[str | None] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(ArmId)
    operation: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text)


class EventRow(Base):
    """One difference between two polls. ``subject_key`` is the deployment's (or account's, catalog model's) key."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_subject", "subject_type", "subject_key", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    poll_id: Mapped[int | None] = mapped_column(ForeignKey("polls.id"), index=True)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_key: Mapped[str] = mapped_column(ArmId)
    kind: Mapped[str] = mapped_column(String(64))
    field: Mapped[str | None] = mapped_column(String(64))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)


class AlertThreadRow(Base):
    """One risk episode of one deployment in Slack: opened by its first alert (a channel message), carried on as
    replies in that message's thread, closed by a resolution. At most one open thread per deployment: the database
    enforces it (a unique index over the open rows), so two planners at once cannot both open one."""

    __tablename__ = "alert_threads"
    __table_args__ = (Index("uq_alert_threads_one_open", "deployment_key", unique=True,
                            postgresql_where=text("closed_at IS NULL"), sqlite_where=text("closed_at IS NULL")),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_key: Mapped[str] = mapped_column(ArmId)
    channel: Mapped[str] = mapped_column(Name)  # as routed: "#name" or an id
    channel_id: Mapped[str | None] = mapped_column(String(32))  # learnt from Slack's answer to the first post
    parent_ts: Mapped[str | None] = mapped_column(String(32))
    deadline: Mapped[date | None] = mapped_column(Date)
    consequence: Mapped[str] = mapped_column(String(32))
    stage: Mapped[str | None] = mapped_column(String(32))
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    close_reason: Mapped[str | None] = mapped_column(Text)
    # A grouped alert: one thread about several deployments (its members); ``deployment_key`` is then the group's
    # key (``group|channel|model|version|consequence|deadline``), so one group has at most one open thread too.
    grouped: Mapped[bool] = mapped_column(Boolean, server_default=false())


class AlertThreadMemberRow(Base):
    """Which deployments a thread is about, and since when. Every thread has members: a single-deployment thread
    its deployment, a grouped one several. A deployment has at most one open membership, whatever thread it is in
    (a unique index over the members that have not left): the invariant "one open thread per deployment" holds
    across single and grouped threads."""

    __tablename__ = "alert_thread_members"
    __table_args__ = (Index("uq_alert_thread_members_one_open", "deployment_key", unique=True,
                            postgresql_where=text("left_at IS NULL"), sqlite_where=text("left_at IS NULL")),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    thread_id: Mapped[int] = mapped_column(ForeignKey("alert_threads.id"), index=True)
    deployment_key: Mapped[str] = mapped_column(ArmId)
    joined_at: Mapped[datetime] = mapped_column(UtcDateTime)
    left_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    left_reason: Mapped[str | None] = mapped_column(Text)


class AlertStepRow(Base):
    """An escalation step told to a deployment for a deadline, by which outbox message (for a grouped message, one
    row per deployment it told). The planner reads the rows of today's deadlines to know what was already said."""

    __tablename__ = "alert_steps"
    __table_args__ = (Index("ix_alert_steps_deadline", "deployment_key", "deadline"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_key: Mapped[str] = mapped_column(ArmId)
    deadline: Mapped[date | None] = mapped_column(Date)
    step: Mapped[str] = mapped_column(String(32))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"))


class AlertRow(Base):
    """The outbox: a message that fell due, written in the transaction that decided it, delivered separately.

    ``key`` makes it unique (deployment, deadline, step; or the event it reports). Delivery claims a row with a
    lease (``status`` sending, ``lease_until``); a lease found expired means a process died mid-send, and the
    message is looked for in Slack (by ``key`` in its metadata) before it is sent again."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("key"),
        Index("ix_alerts_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(900))
    thread_id: Mapped[int | None] = mapped_column(ForeignKey("alert_threads.id"), index=True)
    deployment_key: Mapped[str | None] = mapped_column(ArmId, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    stage: Mapped[str | None] = mapped_column(String(32))
    deadline: Mapped[date | None] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(Name)
    is_parent: Mapped[bool] = mapped_column(Boolean, default=False)
    broadcast: Mapped[bool] = mapped_column(Boolean, default=False)
    message: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))  # pending | sending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attempt_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    channel_id: Mapped[str | None] = mapped_column(String(32))
    ts: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    # When this row, still unsent past ``slack.pending_alarm_minutes``, was reported as an operational problem.
    pending_alarm_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AckRow(Base):
    """An acknowledgement silences a deployment's deadline until a date (or for good); never deleted."""

    __tablename__ = "acks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_key: Mapped[str] = mapped_column(ArmId, index=True)
    deadline: Mapped[date | None] = mapped_column(Date)
    until: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(Name)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CursorRow(Base):
    """Progress markers, e.g. the last event the notify stage has turned into messages."""

    __tablename__ = "cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class ReplicaRow(Base):
    """A ``retirewatch run`` process: it says it is alive (``heartbeat_at``) every few seconds."""

    __tablename__ = "service_replicas"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(Name)
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class LeaseRow(Base):
    """A named lease (``leader``): who holds it, until when, and its epoch, the fencing token. Every taking of the
    lease adds one to the epoch; the holder's scheduling writes carry its epoch and are refused once it changed."""

    __tablename__ = "service_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(64))
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    acquired_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class PollUnitRow(Base):
    """One subscription of one poll: the unit of work every replica takes (``FOR UPDATE SKIP LOCKED`` on
    PostgreSQL). A claim lasts until ``claimed_until``; ``claim_token`` grows with every claim, and only the holder
    of the current token may record the unit, so a replica that froze past its claim cannot record over the one
    that took the unit after it."""

    __tablename__ = "poll_units"
    __table_args__ = (UniqueConstraint("poll_id", "subscription_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    poll_id: Mapped[int] = mapped_column(ForeignKey("polls.id"), index=True)
    subscription_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str | None] = mapped_column(Name)
    state: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # pending | claimed | done
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claim_token: Mapped[int] = mapped_column(Integer, default=0)
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)

class DeploymentUsageRow(Base):
    """One deployment's traffic on one UTC day (Azure Monitor, daily totals). Only days with traffic are stored:
    inside the days its account's reads covered (``usage_reads``), a missing row is a day without traffic."""

    __tablename__ = "deployment_usage"

    deployment_key: Mapped[str] = mapped_column(ArmId, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    account_key: Mapped[str] = mapped_column(ArmId, index=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    tokens: Mapped[int | None] = mapped_column(BigInteger)  # None: the token metric could not be read
    read_at: Mapped[datetime] = mapped_column(UtcDateTime)


class UsageReadRow(Base):
    """The last metrics reads of one account: what they covered, and whether the latest one failed."""

    __tablename__ = "usage_reads"

    account_key: Mapped[str] = mapped_column(ArmId, primary_key=True)
    covered_from: Mapped[date | None] = mapped_column(Date)  # first day of the unbroken run of days read
    covered_to: Mapped[date | None] = mapped_column(Date)  # the day of the last successful read
    last_ok_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_failed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
