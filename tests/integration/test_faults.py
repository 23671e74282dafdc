"""The fault suite: what must hold when several `retirewatch` processes run at once, when one is SIGKILLed at any
point, and when the database drops its connections mid-run. Real CLI processes against the ARM and Slack
emulators; every test compares what reached Slack with what the policy asks for, message by message."""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.engine import make_url

from daemon.emulators.slack import Message
from daemon.store.schema import AlertRow, AlertThreadMemberRow, AlertThreadRow, PollRow
from tests import postgres
from tests.integration.fault_rig import (
    OPS,
    Rig,
    at,
    big_estate,
    duplicates,
    expected_stage,
    kill_after,
    kill_when,
    make_rig,
    no_traceback,
    signature,
)
from tests.integration.world import payload

log = logging.getLogger(__name__)
T0 = date(2026, 3, 2)
PROCESSES = 5
DEPLOYMENTS = 320
ONE_BY_ONE = 1_000_000  # slack.group_min no estate here reaches: every deployment its own thread


def _outbox(rig: Rig) -> list[AlertRow]:
    with rig.sessions() as session:
        return list(session.scalars(select(AlertRow).order_by(AlertRow.id)))


def _check_threads(rig: Rig, messages: list[Message]) -> None:
    """Every reply in its own deployment's thread, every parent edited to the last stage told in its thread."""
    parents = {(m.channel, m.ts): m for m in messages if m.thread_ts is None}
    for message in messages:
        if message.thread_ts is None:
            assert payload(message).get("parent") is True, signature(message)
            continue
        parent = parents[(message.channel, message.thread_ts)]
        assert payload(parent)["deployment_id"] == payload(message)["deployment_id"], "reply in another's thread"
    with rig.sessions() as session:
        threads = list(session.scalars(select(AlertThreadRow).where(AlertThreadRow.closed_at.is_(None))))
    open_by_deployment = defaultdict(list)
    for thread in threads:
        open_by_deployment[thread.deployment_key].append(thread)
        assert thread.parent_ts is not None, f"thread {thread.id} never got its first message"
    assert all(len(t) == 1 for t in open_by_deployment.values())


@pytest.mark.postgres
def test_concurrent_notify_processes_on_postgres(postgres_database_url: str, tmp_path: Path) -> None:
    """(a) PROCESSES notify processes at once over DEPLOYMENTS new deployments, then again a stage later."""
    _concurrent_notify(postgres_database_url, tmp_path, PROCESSES, DEPLOYMENTS)


def test_concurrent_notify_processes_on_sqlite(tmp_path: Path) -> None:
    """(a) the same on SQLite, smaller: its writers take turns on one file."""
    _concurrent_notify(f"sqlite:///{tmp_path / 'concurrent.sqlite'}", tmp_path, 4, 120)


def _concurrent_notify(url: str, tmp_path: Path, processes: int, deployments: int) -> None:
    with make_rig(big_estate(T0, deployments), url, tmp_path, at(T0), group_min=ONE_BY_ONE) as rig:
        started = time.monotonic()
        polls = rig.run_all([["poll"], ["poll"]], now=at(T0))  # two polls at once on an empty database
        for result in polls:
            no_traceback(result)
            assert result.returncode == 0, result.stderr
        poll_seconds = time.monotonic() - started

        timings = []
        for day in (0, 6):
            now = at(T0 + timedelta(days=day))
            if day:
                assert rig.run("poll", now=now).returncode == 0
            begun = time.monotonic()
            results = rig.run_all([["notify", "--wait", "60"]] * processes, now=now)
            timings.append(time.monotonic() - begun)
            for result in results:
                no_traceback(result)
                assert result.returncode == 0, result.stderr
            assert {row.status for row in _outbox(rig)} == {"sent"}, "nothing pending, nothing failed"

        messages = rig.alert_messages()
        assert duplicates(messages) == []
        by_deployment: dict[str, list[Message]] = defaultdict(list)
        for message in messages:
            by_deployment[signature(message)[0]].append(message)
        assert len(by_deployment) == deployments
        for name, told in by_deployment.items():
            index = int(name[1:])
            steps = [signature(m)[2] for m in told]
            assert steps[0] == expected_stage(index, 0) and steps[1].startswith(expected_stage(index, 6)), (name, steps)
            assert len(steps) == 2, (name, steps)
            parent, reply = told
            assert parent.thread_ts is None and reply.thread_ts == parent.ts
            assert parent.edits and payload(parent)["stage"] == payload(reply)["stage"], "the parent shows the stage"
        _check_threads(rig, messages)
        assert rig.messages(OPS) == []
        log.warning("%d notify processes x %d deployments: %d messages, %d edits; two polls at once %.1fs; "
                    "notify day 0 %.1fs, day 6 %.1fs (%s)", processes, deployments, len(messages),
                    sum(len(m.edits) for m in messages), poll_seconds, *timings, url.split(":")[0])


@pytest.mark.postgres
def test_concurrent_notify_processes_with_grouped_alerts_on_postgres(postgres_database_url: str,
                                                                      tmp_path: Path) -> None:
    """(a) with grouped alerts (slack.group_min 5): each deployment named once per stage, in one group's thread."""
    _concurrent_grouped_notify(postgres_database_url, tmp_path, PROCESSES, DEPLOYMENTS)


def test_concurrent_notify_processes_with_grouped_alerts_on_sqlite(tmp_path: Path) -> None:
    _concurrent_grouped_notify(f"sqlite:///{tmp_path / 'grouped.sqlite'}", tmp_path, 4, 120)


def _concurrent_grouped_notify(url: str, tmp_path: Path, processes: int, deployments: int) -> None:
    """Deployment i runs MODELS[i % 4], in account i % 4: #search (even accounts) or #ml-platform. Four groups,
    told on day 0 and again a stage later (day 6), while several notify processes run at once."""
    with make_rig(big_estate(T0, deployments), url, tmp_path, at(T0), group_min=5) as rig:
        for day in (0, 6):
            now = at(T0 + timedelta(days=day))
            assert rig.run("poll", now=now).returncode == 0
            for result in rig.run_all([["notify", "--wait", "60"]] * processes, now=now):
                no_traceback(result)
                assert result.returncode == 0, result.stderr
            assert {row.status for row in _outbox(rig)} == {"sent"}, "nothing pending, nothing failed"
        messages = rig.alert_messages()
        keys = [payload(m)["alert_key"] for m in messages]
        assert len(keys) == len(set(keys)), "no message twice"
        parents = {(m.channel, m.ts): m for m in messages if m.thread_ts is None}
        told: dict[str, list[str]] = defaultdict(list)
        for message in messages:
            # What it said when posted: a group's first message is edited later to show the stage now.
            p = dict(((message.edits[0]["metadata"] if message.edits else message.metadata) or {})["event_payload"])
            assert "deployment_id" not in p and p["deployment_count"] == len(p["deployment_ids"])
            parent = parents[(message.channel, message.thread_ts or message.ts)]
            assert set(p["deployment_ids"]) <= set(payload(parent)["deployment_ids"]), "reply in its group's thread"
            for deployment_id in p["deployment_ids"]:
                told[deployment_id.rsplit("/", 1)[-1]].append(p["stage"])
        assert len(parents) == 4 and len(messages) == 8, [payload(m)["alert_key"] for m in messages]
        assert len(told) == deployments
        for name, stages in told.items():
            index = int(name[1:])
            assert stages == [expected_stage(index, day).split("@")[0] for day in (0, 6)], (name, stages)
        with rig.sessions() as session:
            threads = list(session.scalars(select(AlertThreadRow).where(AlertThreadRow.closed_at.is_(None))))
            members = session.scalars(select(AlertThreadMemberRow.deployment_key)
                                      .where(AlertThreadMemberRow.left_at.is_(None))).all()
        assert len(threads) == 4 and all(t.grouped and t.parent_ts for t in threads)
        assert len(members) == len(set(members)) == deployments, "each deployment in one open thread"
        assert rig.messages(OPS) == []


# -- (b) SIGKILL at random points ---------------------------------------------------------------------------------

KILL_DAYS = (0, 6, 12)
SMALL = 8
Kill = tuple[str, float]
kills = st.one_of(st.tuples(st.just("time"), st.floats(0.4, 1.5)), st.tuples(st.just("event"), st.integers(1, 10)))


def _change_the_world(rig_or_arm: Any, day: int) -> None:
    if day == 12:  # d0000 moves to a model without retirement: a version-changed reply, then resolved
        with rig_or_arm.update() as estate:
            deployment = estate["subscriptions"][0]["accounts"][0]["deployments"][0]
            deployment["properties"]["model"].update(name="gpt-5.1", version="2025-11-13")


def _reference(tmp_path: Path) -> list[tuple[str, str, str]]:
    """What the policy asks for on the same days, from a run without faults (in process, its own database)."""
    from tests.integration.world import make_world

    with make_world(big_estate(T0, SMALL, accounts=2), f"sqlite:///{tmp_path / 'reference.sqlite'}", T0) as world:
        for day in KILL_DAYS:
            world.go_to(T0 + timedelta(days=day))
            _change_the_world(world.arm, day)
            world.step()
        ops = world.slack.channels().get(OPS.lstrip("#"))
        return [signature(m) for m in world.slack.messages() if m.channel != ops]


def _killed(rig: Rig, process: Any, kill: Kill, source: str) -> bool:
    how, amount = kill
    if how == "time":
        return kill_after(process, amount)
    before = len(rig.arm.requests) if source == "arm" else len(rig.slack.calls())
    count = (lambda: len(rig.arm.requests)) if source == "arm" else (lambda: len(rig.slack.calls()))
    return kill_when(process, lambda: count() - before >= amount)


def _database(kind: str, tmp_path: Path, request: pytest.FixtureRequest, stack: Any) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / f'faults-{uuid.uuid4().hex[:12]}.sqlite'}"
    return str(stack.enter_context(postgres.scratch_database(request.getfixturevalue("postgres_admin_url"))))


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_sigkill_anywhere_in_poll_and_notify(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """(b) Each simulated day, `poll` and `notify` are SIGKILLed at a random point (a random delay, or the moment the
    n-th request reaches Azure or Slack), then run again. Slack must end up with exactly the messages a run without
    faults sends, each once; every killed poll is marked `died` and told once in the operational channel."""
    expected = _reference(tmp_path)
    assert {s for s in expected if s[1] == "stage" and s[2] == expected_stage(int(s[0][1:]), 0)} == {
        (f"d{i:04d}", "stage", expected_stage(i, 0)) for i in range(SMALL)}, "the reference follows the policy"
    stats = {"examples": 0, "kills": 0, "runs": 0}

    @settings(max_examples=3 if kind == "postgresql" else 2, deadline=None, database=None,
              phases=(Phase.explicit, Phase.generate),  # shrinking reruns whole worlds: too slow to be worth it
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(plan=st.lists(st.tuples(kills, kills), min_size=len(KILL_DAYS), max_size=len(KILL_DAYS)))
    def example(plan: list[tuple[Kill, Kill]]) -> None:
        from contextlib import ExitStack

        with ExitStack() as stack:
            url = _database(kind, tmp_path, request, stack)
            rig = stack.enter_context(make_rig(big_estate(T0, SMALL, accounts=2), url, tmp_path, at(T0),
                                               messages_per_second=20))
            for day, (poll_kill, notify_kill) in zip(KILL_DAYS, plan, strict=True):
                now = at(T0 + timedelta(days=day))
                _change_the_world(rig.arm, day)
                stats["kills"] += _killed(rig, rig.start("poll", now=now), poll_kill, "arm")
                done = rig.run("poll", now=now + timedelta(minutes=1))
                no_traceback(done)
                assert done.returncode == 0, done.stderr
                stats["kills"] += _killed(rig, rig.start("notify", "--wait", "0", now=now + timedelta(minutes=2)),
                                          notify_kill, "slack")
                done = rig.run("notify", "--wait", "60", now=now + timedelta(minutes=10))
                no_traceback(done)
                assert done.returncode == 0, done.stderr
                stats["runs"] += 4
            told = [signature(m) for m in rig.alert_messages()]
            assert duplicates(rig.alert_messages()) == [], "a message was sent twice"
            assert sorted(told) == sorted(expected), "lost or extra messages"
            _check_threads(rig, rig.alert_messages())
            assert {row.status for row in _outbox(rig)} == {"sent"}
            with rig.sessions() as session:
                statuses = {row.id: row.status for row in session.scalars(select(PollRow))}
            assert "running" not in statuses.values()
            ops = [m.text for m in rig.messages(OPS)]
            for poll_id in (i for i, status in statuses.items() if status == "died"):
                assert sum(f"poll {poll_id}," in text for text in ops) == 1, (poll_id, ops)
            stats["examples"] += 1

    started = time.monotonic()
    example()
    log.warning("SIGKILL (%s): %d examples, %d runs, %d processes killed mid-run, %d messages each, %.1fs",
                kind, stats["examples"], stats["runs"], stats["kills"], len(expected), time.monotonic() - started)


# -- (c) the database drops every connection mid-run ----------------------------------------------------------------

def _terminate_backends(url: str) -> int:
    """What a database failover does to a run: every connection to the database but this one, cut."""
    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as connection:
        rows = connection.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall()
    return sum(1 for (done,) in rows if done)


@pytest.mark.postgres
def test_database_drops_connections_mid_run(postgres_database_url: str, tmp_path: Path) -> None:
    """(c) `pg_terminate_backend` on the run's connections while it polls, plans and delivers: the next run
    recovers; nothing lost, nothing doubled."""
    deployments, cut = 80, 0
    with make_rig(big_estate(T0, deployments), postgres_database_url, tmp_path, at(T0),
                  messages_per_second=50, group_min=ONE_BY_ONE) as rig:
        started = time.monotonic()
        for day in (0, 6):
            now = at(T0 + timedelta(days=day))
            poll = rig.start("poll", now=now)
            for requests in (1, 3):
                kill_when_seen = len(rig.arm.requests) + requests
                while len(rig.arm.requests) < kill_when_seen and poll.poll() is None:
                    time.sleep(0.005)
                cut += _terminate_backends(postgres_database_url)
            poll.communicate(timeout=120)
            done = rig.run("poll", now=now + timedelta(minutes=1))
            assert done.returncode == 0, done.stderr

            notify = rig.start("notify", "--wait", "0", now=now + timedelta(minutes=2))
            time.sleep(0.9)  # about when the plan runs
            cut += _terminate_backends(postgres_database_url)
            notify.communicate(timeout=120)
            notify = rig.start("notify", "--wait", "0", now=now + timedelta(minutes=3))
            for calls in (5, 25, 60):  # in the middle of delivery
                seen = len(rig.slack.calls()) + calls
                while len(rig.slack.calls()) < seen and notify.poll() is None:
                    time.sleep(0.005)
                cut += _terminate_backends(postgres_database_url)
            notify.communicate(timeout=120)
            done = rig.run("notify", "--wait", "60", now=now + timedelta(minutes=10))
            no_traceback(done)
            assert done.returncode == 0, done.stderr

        messages = rig.alert_messages()
        assert duplicates(messages) == []
        expected = {(f"d{i:04d}", "stage", expected_stage(i, 0)) for i in range(deployments)}
        expected |= {(f"d{i:04d}", "stage", expected_stage(i, 6)) for i in range(deployments)}
        told = {(d, k, s.split("@")[0] if s.startswith("overdue") else s) for d, k, s in map(signature, messages)}
        assert told == expected and len(messages) == 2 * deployments
        _check_threads(rig, messages)
        assert {row.status for row in _outbox(rig)} == {"sent"}
        log.warning("connections cut mid-run: %d backends terminated over 2 days x (poll, plan, delivery); %d "
                    "deployments, %d messages, each once; %.1fs", cut, deployments, len(messages),
                    time.monotonic() - started)
