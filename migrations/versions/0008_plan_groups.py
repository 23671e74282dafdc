"""grouped alerts: thread members, the steps each deployment was told

A thread may now tell several deployments at once (a grouped alert): ``alert_thread_members`` says which, and since
when, and the database allows each deployment one open membership, whatever thread it is in (a unique index over the
members that have not left). Every thread has members: an existing one gets its deployment as its only member (one
that has left if the thread is closed). ``alert_steps`` records which escalation step each message told which
deployment, for the deadline it had; the planner reads the rows of today's deadlines only. It is filled from the
outbox rows that carry a step.

Downgrading closes the open grouped threads first (the code before this revision knows only one deployment per
thread); their members are then alerted one by one again.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAYING = sa.text("left_at IS NULL")


def upgrade() -> None:
    # A plain ADD COLUMN (SQLite has it): a batch copy of the table would trip over the outbox's foreign keys.
    op.add_column('alert_threads', sa.Column('grouped', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        'alert_thread_members',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('thread_id', sa.Integer(), nullable=False),
        sa.Column('deployment_key', sa.String(length=600), nullable=False),
        sa.Column('joined_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('left_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('left_reason', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['thread_id'], ['alert_threads.id'],
                                name=op.f('fk_alert_thread_members_thread_id_alert_threads')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_thread_members')),
    )
    with op.batch_alter_table('alert_thread_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_thread_members_thread_id'), ['thread_id'], unique=False)
    op.create_index('uq_alert_thread_members_one_open', 'alert_thread_members', ['deployment_key'], unique=True,
                    postgresql_where=STAYING, sqlite_where=STAYING)
    op.create_table(
        'alert_steps',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('deployment_key', sa.String(length=600), nullable=False),
        sa.Column('deadline', sa.Date(), nullable=True),
        sa.Column('step', sa.String(length=32), nullable=False),
        sa.Column('alert_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_alert_steps_alert_id_alerts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_steps')),
    )
    op.create_index('ix_alert_steps_deadline', 'alert_steps', ['deployment_key', 'deadline'], unique=False)
    op.execute("INSERT INTO alert_thread_members (thread_id, deployment_key, joined_at, left_at, left_reason) "
               "SELECT id, deployment_key, opened_at, closed_at, close_reason FROM alert_threads")
    op.execute("INSERT INTO alert_steps (deployment_key, deadline, step, alert_id) "
               "SELECT deployment_key, deadline, stage, id FROM alerts "
               "WHERE stage IS NOT NULL AND deployment_key IS NOT NULL ORDER BY id")


def downgrade() -> None:
    op.execute("UPDATE alert_threads SET closed_at = CURRENT_TIMESTAMP, close_reason = 'grouped thread closed by "
               "the downgrade below revision 0005_plan' WHERE grouped AND closed_at IS NULL")
    op.drop_index('ix_alert_steps_deadline', table_name='alert_steps')
    op.drop_table('alert_steps')
    op.drop_index('uq_alert_thread_members_one_open', table_name='alert_thread_members')
    with op.batch_alter_table('alert_thread_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_thread_members_thread_id'))
    op.drop_table('alert_thread_members')
    if op.get_bind().dialect.name == "sqlite":  # native DROP COLUMN (SQLite 3.35+), not a copy of the table
        op.execute("ALTER TABLE alert_threads DROP COLUMN grouped")
    else:
        op.drop_column('alert_threads', 'grouped')
