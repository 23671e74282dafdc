"""usage: daily traffic per deployment (Azure Monitor) and the metrics reads of each account

Revision ID: 0006
Revises: 0005_replicas
Create Date: 2026-11-30 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005_replicas'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'deployment_usage',
        sa.Column('deployment_key', sa.String(length=600), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('account_key', sa.String(length=600), nullable=False),
        sa.Column('requests', sa.BigInteger(), nullable=False),
        sa.Column('tokens', sa.BigInteger(), nullable=True),
        sa.Column('read_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('deployment_key', 'day', name=op.f('pk_deployment_usage')),
    )
    with op.batch_alter_table('deployment_usage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deployment_usage_account_key'), ['account_key'], unique=False)
    op.create_table(
        'usage_reads',
        sa.Column('account_key', sa.String(length=600), nullable=False),
        sa.Column('covered_from', sa.Date(), nullable=True),
        sa.Column('covered_to', sa.Date(), nullable=True),
        sa.Column('last_ok_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_failed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('account_key', name=op.f('pk_usage_reads')),
    )


def downgrade() -> None:
    op.drop_table('usage_reads')
    with op.batch_alter_table('deployment_usage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deployment_usage_account_key'))
    op.drop_table('deployment_usage')
