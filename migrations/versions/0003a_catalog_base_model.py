"""catalog models: the base model of a fine-tuned account model

Revision ID: 0003a
Revises: 0002
Create Date: 2026-11-25 21:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003a'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('catalog_models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('base_format', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('base_name', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('base_version', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('catalog_models', schema=None) as batch_op:
        batch_op.drop_column('base_version')
        batch_op.drop_column('base_name')
        batch_op.drop_column('base_format')
