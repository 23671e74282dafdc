"""one open thread per deployment, enforced; outbox rows remember their pending alarm

Two planners at once used to open two threads for one deployment; the loser's thread had no first message and
the replies queued into it waited forever. Before the unique index can exist, such duplicates are merged: the
thread that has a first message (else the oldest) stays open, the others are closed, and their unsent replies and
edits move to the one that stays.

Revision ID: 0004
Revises: 0003a
Create Date: 2026-11-26 09:00:00
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003a'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("closed_at IS NULL")


def _merge_duplicate_open_threads() -> None:
    bind = op.get_bind()
    threads = sa.table("alert_threads", sa.column("id", sa.Integer), sa.column("deployment_key", sa.String),
                       sa.column("closed_at", sa.DateTime(timezone=True)), sa.column("close_reason", sa.Text))
    alerts = sa.table("alerts", sa.column("thread_id", sa.Integer), sa.column("is_parent", sa.Boolean),
                      sa.column("status", sa.String))
    open_rows = bind.execute(sa.select(threads.c.id, threads.c.deployment_key)
                             .where(threads.c.closed_at.is_(None)).order_by(threads.c.id)).all()
    by_deployment: dict[str, list[int]] = defaultdict(list)
    for thread_id, deployment_key in open_rows:
        by_deployment[deployment_key].append(thread_id)
    with_parent = {row[0] for row in bind.execute(sa.select(alerts.c.thread_id).where(alerts.c.is_parent.is_(True)))}
    now = datetime.now(UTC)
    for ids in by_deployment.values():
        if len(ids) < 2:
            continue
        keep = next((i for i in ids if i in with_parent), ids[0])
        for other in ids:
            if other == keep:
                continue
            bind.execute(sa.update(alerts).where(alerts.c.thread_id == other, alerts.c.is_parent.is_(False),
                                                 alerts.c.status.in_(("pending", "sending")))
                         .values(thread_id=keep))
            bind.execute(sa.update(threads).where(threads.c.id == other)
                         .values(closed_at=now, close_reason=f"duplicate of thread {keep}, merged by migration 0004"))


def upgrade() -> None:
    _merge_duplicate_open_threads()
    with op.batch_alter_table('alert_threads', schema=None) as batch_op:
        batch_op.drop_index('ix_alert_threads_open')
    op.create_index('uq_alert_threads_one_open', 'alert_threads', ['deployment_key'], unique=True,
                    postgresql_where=OPEN, sqlite_where=OPEN)
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending_alarm_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_column('pending_alarm_at')
    op.drop_index('uq_alert_threads_one_open', table_name='alert_threads')
    with op.batch_alter_table('alert_threads', schema=None) as batch_op:
        batch_op.create_index('ix_alert_threads_open', ['deployment_key', 'closed_at'], unique=False)
