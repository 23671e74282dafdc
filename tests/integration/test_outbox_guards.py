"""Nothing waits forever in the outbox: a reply or an edit whose first message failed, an alert stuck for long, a
poll that died, duplicate open threads left by an older version. In process, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from azure.identity import ManagedIdentityCredential
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from daemon.poll import run_poll
from daemon.store import database
from daemon.store.schema import AlertRow, AlertThreadRow, PollRow
from tests.integration.fault_rig import OPS, at, big_estate
from tests.integration.world import World, make_world, payload

T0 = date(2026, 3, 2)


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with make_world(big_estate(T0, 8, accounts=2), database_url, T0) as made:
        made.poll()
        yield made


def _rows(world: World) -> list[AlertRow]:
    with world.sessions() as session:
        return list(session.scalars(select(AlertRow).order_by(AlertRow.id)))


def test_replies_and_edits_never_wait_on_a_first_message_that_failed(world: World) -> None:
    world.slack.fail_channel("#search", "not_in_channel")
    world.notify()
    assert {r.status for r in _rows(world) if r.channel == "#search"} == {"failed"}
    world.slack.clear_channel("#search")
    world.go_to(T0 + timedelta(days=6))  # every deployment a stage further: replies and parent edits
    world.step()
    rows = [r for r in _rows(world) if r.channel == "#search" and r.kind != "operational"]
    assert not [r for r in rows if r.status in ("pending", "sending")], "something waits for a parent"
    edits = [r for r in rows if r.kind == "parent_update"]
    assert edits and {(r.status, r.last_error) for r in edits} == {
        ("failed", "nothing to edit: the thread's first message was never posted")}
    replies = [m for m in world.slack.messages("#search") if payload(m)["kind"] == "stage"]
    assert len(replies) == 4 and all(m.thread_ts is None for m in replies), "told in the channel instead"


def test_an_alert_stuck_past_the_alarm_age_is_reported_once(world: World) -> None:
    world.slack.ratelimit("chat.postMessage", times=1, retry_after=6 * 3600)
    world.notify()
    # The 429 holds its channel for the run: the throttled message and, untried, the rest of its channel.
    stuck = [r for r in _rows(world) if r.status == "pending" and r.attempts]
    assert len(stuck) == 1 and stuck[0].last_error == "ratelimited"
    for minutes in (30, 61, 120, 180):
        world.clock.set(at(T0) + timedelta(minutes=minutes))
        world.notify()
        told = [m for m in world.slack.messages(OPS) if "still unsent" in m.text]
        assert len(told) == (0 if minutes < 60 else 1), minutes
    assert stuck[0].key in told[0].text and "60 minutes" in told[0].text


def test_a_killed_poll_is_marked_died_and_told_once(world: World) -> None:
    with world.sessions.begin() as session:  # what a SIGKILLed poll leaves: its row, still running
        session.add(PollRow(started_at=at(T0) - timedelta(hours=1), status="running"))
    for _ in range(2):
        world.poll()
        world.notify()
    with world.sessions() as session:
        statuses = [row.status for row in session.scalars(select(PollRow).order_by(PollRow.id))]
    assert statuses == ["ok", "died", "ok", "ok"]
    told = [m.text for m in world.slack.messages(OPS)]
    assert len(told) == 1 and "poll 2," in told[0] and "never finished" in told[0]


def test_a_second_poll_waits_for_the_first_then_reads_everything(world: World) -> None:
    from daemon.store.poll_lock import poll_lock

    engine = world.sessions.kw["bind"]
    with poll_lock(engine, 1) as held:
        assert held
        report = run_poll(world.config, world.clock, world.sessions, credential=ManagedIdentityCredential(),
                          lock_wait_seconds=0.5)
        assert [f.operation for f in report.failures] == ["wait-for-poll"]
    assert run_poll(world.config, world.clock, world.sessions, credential=ManagedIdentityCredential()).ok


def test_the_database_refuses_a_second_open_thread(world: World) -> None:
    now = datetime(2026, 3, 2, tzinfo=UTC)
    with pytest.raises(IntegrityError), world.sessions.begin() as session:
        for _ in range(2):
            session.add(AlertThreadRow(deployment_key="k", channel="#c", consequence="outage", opened_at=now))
            session.flush()
    with world.sessions.begin() as session:  # closed ones do not count
        session.add(AlertThreadRow(deployment_key="k", channel="#c", consequence="outage", opened_at=now,
                                   closed_at=now))
        session.add(AlertThreadRow(deployment_key="k", channel="#c", consequence="outage", opened_at=now))


def test_migration_merges_duplicate_open_threads(database_url: str) -> None:
    engine = database.make_engine(database_url)
    database.upgrade(engine, "0002")
    now = datetime(2026, 3, 2, tzinfo=UTC)
    thread = {"deployment_key": "d", "channel": "#c", "consequence": "outage", "opened_at": now}
    with engine.begin() as connection:  # what two planners at once left behind: the winner, and an orphan
        connection.execute(insert(AlertThreadRow.__table__), [{**thread, "id": 1}, {**thread, "id": 2}])
        base = {"kind": "stage", "channel": "#c", "message": {}, "status": "pending", "attempts": 0,
                "created_at": now, "next_attempt_at": now, "broadcast": False, "deployment_key": "d"}
        connection.execute(insert(AlertRow.__table__), [{**base, "key": "parent", "thread_id": 1, "is_parent": True},
             {**base, "key": "stranded reply", "thread_id": 2, "is_parent": False}])
    database.upgrade(engine)
    with engine.connect() as connection:
        open_ids = connection.scalars(text("SELECT id FROM alert_threads WHERE closed_at IS NULL")).all()
        moved = connection.scalar(text("SELECT thread_id FROM alerts WHERE key = 'stranded reply'"))
    engine.dispose()
    assert open_ids == [1] and moved == 1


def test_migration_gives_every_thread_its_members_and_keeps_the_steps_told(database_url: str) -> None:
    """0005_plan: a thread written before groups existed gets its deployment as its member (one that has left, when
    the thread is closed), and every step the outbox told is in alert_steps, so nothing is told again."""
    engine = database.make_engine(database_url)
    database.upgrade(engine, "0004")
    now = datetime(2026, 3, 2, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO alert_threads (id, deployment_key, channel, consequence, opened_at, closed_at) VALUES "
            "(1, 'a', '#c', 'outage', :now, NULL), (2, 'b', '#c', 'outage', :now, :now)"), {"now": now})
        base = {"kind": "stage", "channel": "#c", "message": {}, "status": "sent", "attempts": 1, "created_at": now,
                "next_attempt_at": now, "broadcast": False, "is_parent": False, "deadline": date(2026, 4, 1)}
        connection.execute(insert(AlertRow.__table__), [
            {**base, "key": "a-notice", "thread_id": 1, "deployment_key": "a", "stage": "notice", "is_parent": True},
            {**base, "key": "a-warning", "thread_id": 1, "deployment_key": "a", "stage": "warning"},
            {**base, "key": "a-edit", "thread_id": 1, "deployment_key": "a", "stage": None, "kind": "parent_update"},
            {**base, "key": "b-notice", "thread_id": 2, "deployment_key": "b", "stage": "notice"}])
    database.upgrade(engine)
    with engine.connect() as connection:
        members = connection.execute(text("SELECT thread_id, deployment_key, left_at IS NULL FROM "
                                          "alert_thread_members ORDER BY thread_id")).all()
        steps = connection.execute(text("SELECT deployment_key, step FROM alert_steps ORDER BY id")).all()
        grouped = connection.scalars(text("SELECT DISTINCT grouped FROM alert_threads")).all()
    engine.dispose()
    assert [tuple(m) for m in members] == [(1, "a", True), (2, "b", False)]
    assert [tuple(s) for s in steps] == [("a", "notice"), ("a", "warning"), ("b", "notice")]
    assert [bool(g) for g in grouped] == [False]
