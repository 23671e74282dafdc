"""last seen without a write per poll: subscriptions, accounts and catalog entries remember when a poll missed them

An unchanged poll used to rewrite every deployment, account, subscription and catalog row just to move
``last_seen``. Now ``last_seen`` is written only when a row is written anyway (added, changed, removed, missed,
seen again), and ``missed_since`` marks the rows the latest polls did not see: a row with ``missed_since`` NULL (and
not removed) was seen by every complete poll since its ``last_seen`` (``queries.deployments_last_seen``). Existing rows
start as seen (NULL), which is what their ``last_seen`` already said.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 00:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ('subscriptions', 'accounts', 'catalog_models')


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('missed_since', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('missed_since')
