"""replicas: a leader lease with an epoch, the replicas' heartbeats, per-subscription poll units

Revision ID: 0005_replicas
Revises: 0004
Create Date: 2026-11-29 23:55:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005_replicas'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'service_replicas',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_service_replicas')),
    )
    op.create_table(
        'service_leases',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('holder', sa.String(length=64), nullable=True),
        sa.Column('epoch', sa.Integer(), nullable=False),
        sa.Column('acquired_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_service_leases')),
    )
    op.create_table(
        'poll_units',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('poll_id', sa.Integer(), nullable=False),
        sa.Column('subscription_id', sa.String(length=64), nullable=False),
        sa.Column('display_name', sa.String(length=255), nullable=True),
        sa.Column('state', sa.String(length=32), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('claimed_by', sa.String(length=64), nullable=True),
        sa.Column('claim_token', sa.Integer(), nullable=False),
        sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('result', sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(['poll_id'], ['polls.id'], name=op.f('fk_poll_units_poll_id_polls')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_poll_units')),
        sa.UniqueConstraint('poll_id', 'subscription_id', name=op.f('uq_poll_units_poll_id')),
    )
    op.create_index(op.f('ix_poll_units_poll_id'), 'poll_units', ['poll_id'], unique=False)
    with op.batch_alter_table('polls') as batch:
        batch.add_column(sa.Column('leader_epoch', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('polls') as batch:
        batch.drop_column('leader_epoch')
    op.drop_index(op.f('ix_poll_units_poll_id'), table_name='poll_units')
    op.drop_table('poll_units')
    op.drop_table('service_leases')
    op.drop_table('service_replicas')
