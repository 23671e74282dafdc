"""``retirewatch run`` for real: a subprocess against the ARM and Slack emulators, started with ``--now`` a few
seconds before the digest slot; and the job functions it schedules, driven with an injected clock on SQLite and
PostgreSQL (the slot claim, the stale-watcher messages, the stop flag, what is due at start)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.jobstores.memory import MemoryJobStore
from azure.identity import ManagedIdentityCredential
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from daemon.notify.slack import SlackClient
from daemon.service import schedule
from daemon.service.jobs import DIGEST_SLOT, Work
from daemon.service.runner import Service
from daemon.store import lease, watch
from daemon.store.schema import AlertRow, CatalogModelRow, DeploymentRow, LeaseRow, PollRow, PollUnitRow
from tests.integration.world import (
    SUB,
    World,
    account_entry,
    catalog_entry,
    deployment_entry,
    estate,
    make_world,
    payload,
)

MONDAY = date(2026, 3, 2)  # the digest slot "0 9 * * mon" (UTC) is at 09:00
SLOT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GRACE = 10


def scenario() -> dict[str, Any]:
    return estate([
        account_entry("search", {"team": "search"}, [
            deployment_entry("chat", "gpt-4o", "2024-05-13"),  # 5 days: critical
            deployment_entry("mini", "gpt-4o-mini", "2024-07-18", option="OnceCurrentVersionExpired")]),
        account_entry("lab", {}, [deployment_entry("tentative", "o1", "2024-12-17")]),
        account_entry("owned-by-tag", {"retirewatch-channel": "#ml-ops"}, [
            deployment_entry("safe", "gpt-5.1", "2025-11-13")]),
    ], [
        catalog_entry("gpt-4o", "2024-05-13", MONDAY + timedelta(days=5)),
        catalog_entry("gpt-4o-mini", "2024-07-18", MONDAY + timedelta(days=25), replacementConfig={
            "targetModelName": "gpt-4.1-mini", "targetModelVersion": "2025-04-14"}),
        catalog_entry("gpt-4.1-mini", "2025-04-14", None, default=True),
        catalog_entry("o1", "2024-12-17", MONDAY + timedelta(days=80), status="Tentative"),
        catalog_entry("gpt-5.1", "2025-11-13", None, default=True),
    ])


# -- the real process ------------------------------------------------------------------------------------------


def config_file(world: World, tmp_path: Path) -> Path:
    slack, azure = world.config.slack, world.config.azure
    path = tmp_path / "retirewatch.toml"
    path.write_text(
        f'[database]\nurl = "{world.config.database.url}"\n'
        f'[azure]\nresource_manager_endpoint = "{azure.resource_manager_endpoint}"\nca_bundle = "{azure.ca_bundle}"\n'
        'max_retries = 1\n'
        f'[slack]\napi_url = "{slack.api_url}"\nca_bundle = "{slack.ca_bundle}"\ndefault_channel = "#ml-platform"\n'
        'fallback_channel = "#retirewatch-ops"\nmessages_per_second = 1000\n'
        '[schedule]\ntimezone = "UTC"\npoll_every = "6h"\ndeliver_every = "1m"\ndigest = "0 9 * * mon"\n'
        f'[service]\nlisten = "127.0.0.1:0"\nshutdown_grace_seconds = {GRACE}\n'
        '[testing]\nallow_time_travel = true\n'
        '[[routes]]\nchannel = "#search"\nmatch = { tags = { team = "search" } }\n'
        'mentions = { critical = ["<!subteam^S0SEARCH>"] }\n')
    return path


class Running:
    """A ``retirewatch run`` subprocess whose JSON log lines are read as they come."""

    def __init__(self, world: World, config: Path, now: datetime) -> None:
        env = {**os.environ, "SLACK_BOT_TOKEN": world.slack.token, "PYTHONUNBUFFERED": "1"}
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daemon.cli", "run", "--config", str(config), "--now", now.isoformat(),
             "--log-format", "json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.events: list[tuple[float, dict[str, Any]]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            self.events.append((time.monotonic() - self.started, json.loads(line)))

    def wait_for(self, event: str, timeout: float = 60) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [(t, e) for t, e in list(self.events) if e.get("event") == event]
            if found:
                return found[0]
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no {event!r} log line; got:\n{''.join(self.lines)}")

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for _t, e in self.events if e.get("event") == event]

    def stop(self) -> tuple[int, float]:
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=GRACE + 5)
        self._reader.join(timeout=5)
        return code, time.monotonic() - began


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def metrics(port: int) -> dict[str, list[Any]]:
    status, text = get(port, "/metrics")
    assert status == 200
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def digests_by_channel(world: World) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in world.slack.messages():
        if (message.metadata or {}).get("event_type") == "model_retirement_digest":
            channel = str(payload(message)["channel"])
            counts[channel] = counts.get(channel, 0) + 1
    return counts


def test_the_service_polls_notifies_runs_the_digest_answers_http_and_stops_on_sigterm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'retirewatch.sqlite'}"
    with make_world(scenario(), url, MONDAY) as world:
        config = config_file(world, tmp_path)
        service = Running(world, config, SLOT - timedelta(seconds=10))
        try:
            _, listening = service.wait_for("listening")
            port = int(listening["port"])
            service.wait_for("notify")
            alerts_sent = len(world.slack.messages())
            assert alerts_sent == 3, [m.text.splitlines()[0] for m in world.slack.messages()]
            assert not service.named("digest"), "the digest slot is 10 s after --now, not at start"

            assert get(port, "/healthz") == (200, "ok\n")
            status, body = get(port, "/readyz")
            assert status == 200 and body.startswith("ready: last successful poll"), body
            samples = metrics(port)
            by_stage = {(s.labels["consequence"], s.labels["stage"]): s.value
                        for s in samples["retirewatch_deployments"]}
            assert by_stage[("outage", "critical")] == 1 and sum(by_stage.values()) == 4
            days = {s.labels["deployment"]: s for s in samples["retirewatch_deployment_days_left"]}
            assert days["chat"].value == 5 and days["chat"].labels == {
                "subscription": SUB, "account": "search", "deployment": "chat", "model": "gpt-4o",
                "version": "2024-05-13", "consequence": "outage"}
            deadlines = {s.labels["deployment"]: s.value
                         for s in samples["retirewatch_deployment_deadline_timestamp_seconds"]}
            assert deadlines["chat"] == datetime(2026, 3, 7, tzinfo=UTC).timestamp()
            last_poll = samples["retirewatch_last_successful_poll_timestamp_seconds"][0].value
            assert abs(last_poll - SLOT.timestamp()) < 10, "the service clock, not the wall clock"
            assert samples["retirewatch_outbox_pending"][0].value == 0
            sent = {s.labels["kind"]: s.value for s in samples["retirewatch_alerts_sent"]
                    if s.name == "retirewatch_alerts_sent_total"}
            assert sent == {"stage": 3}
            assert "retirewatch_poll_duration_seconds" in samples and "retirewatch_alerts_failed" in samples
            assert samples["retirewatch_database_up"][0].value == 1

            elapsed, digest = service.wait_for("digest", timeout=30)
            assert 9 <= elapsed <= 25, f"the slot is 10 s after --now; it ran {elapsed:.1f}s after start"
            assert digest["week"] == "2026-W10" and digest["slot"] == SLOT.isoformat()
            ticks = metrics(port)["retirewatch_job_runs"]
            assert any(s.labels == {"job": "digest", "outcome": "ok"} and s.value == 1 for s in ticks)
        finally:
            code, took = service.stop()
        assert code == 0, "".join(service.lines)
        assert took < GRACE
        assert service.named("stopped")
        output = "".join(service.lines)
        assert world.slack.token not in output
        digests = digests_by_channel(world)
        assert digests and all(count == 1 for count in digests.values()), digests
        assert "#ml-platform" in digests, "the overview goes to the default channel"
        assert len(world.slack.messages()) == alerts_sent + len(digests)

        # Restarted the same week, six hours on: it polls again at once, tells nothing twice, no second digest.
        again = Running(world, config, SLOT + timedelta(hours=6, minutes=1))
        try:
            again.wait_for("notify")
            again.wait_for("listening")
            time.sleep(1.5)  # a tick or two: a digest that were due would have started
        finally:
            code, _ = again.stop()
        assert code == 0, "".join(again.lines)
        assert not again.named("digest")
        assert [e["job"] for e in again.named("missed")] == ["poll"], "down past a poll slot: one late poll"
        assert len(world.slack.messages()) == alerts_sent + len(digests), "no alert and no digest twice"
        assert digests_by_channel(world) == digests
        with world.sessions() as session:
            assert session.scalar(select(PollRow.status).order_by(PollRow.id.desc()).limit(1)) == "ok"
            assert watch.claimed_slot(session, DIGEST_SLOT) == SLOT


def test_sigterm_mid_poll_gives_its_units_back_and_exits_0_within_the_grace(tmp_path: Path) -> None:
    two = scenario()
    two["subscriptions"].append({**two["subscriptions"][0], "subscriptionId": "22222222-2222-3333-4444-555555555555",
                                 "displayName": "dev"})
    url = f"sqlite:///{tmp_path / 'retirewatch.sqlite'}"
    with make_world(two, url, MONDAY) as world:
        world.arm.faults.slow("", seconds=2)  # every ARM answer takes 2 s: the poll is still running below
        service = Running(world, config_file(world, tmp_path), SLOT - timedelta(hours=1))
        try:
            service.wait_for("start")
            time.sleep(1)
        finally:
            code, took = service.stop()
        assert code == 0, "".join(service.lines)
        assert took < GRACE, f"took {took:.1f}s"
        assert service.named("stopping") and service.named("stopped")
        assert not service.named("poll") and not service.named("notify"), "no new work after the signal"
        with world.sessions() as session:
            assert session.scalar(select(PollRow.status)) == "running", "the next replica to start goes on"
            left = session.scalars(select(PollUnitRow)).all()
            assert len(left) == 2 and {u.status for u in left} == {"pending"}, "its claims were given back"
        assert world.slack.messages() == []


def test_a_second_service_on_one_sqlite_file_refuses_to_start_with_exit_2(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'retirewatch.sqlite'}"
    with make_world(scenario(), url, MONDAY) as world:
        config = config_file(world, tmp_path)
        first = Running(world, config, SLOT - timedelta(hours=1))
        try:
            first.wait_for("start")
            env = {**os.environ, "SLACK_BOT_TOKEN": world.slack.token}
            second = subprocess.run([sys.executable, "-m", "daemon.cli", "run", "--config", str(config), "--now",
                                     (SLOT - timedelta(hours=1)).isoformat()],
                                    env=env, capture_output=True, text=True, timeout=60)
        finally:
            code, _took = first.stop()
        assert second.returncode == 2, second.stderr
        assert "one service per SQLite file" in second.stderr and "PostgreSQL" in second.stderr
        assert f"pid {first.process.pid}" in second.stderr, "it names the holder"
        assert "Traceback" not in second.stderr
        assert code == 0


def test_bad_schedule_config_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[schedule]\npoll_every = "6 hours"\n')
    done = subprocess.run([sys.executable, "-m", "daemon.cli", "run", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"{path}: schedule.poll_every: " in done.stderr and "Traceback" not in done.stderr


def test_a_port_in_use_exits_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from daemon.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        path = tmp_path / "retirewatch.toml"
        path.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "db.sqlite"}"\n'
                        f'[service]\nlisten = "127.0.0.1:{taken.getsockname()[1]}"\n')
        # --now a year back: a rehearsal, which needs no Slack token
        assert main(["run", "--config", str(path), "--now", "2025-03-02T09:00:00Z"]) == 2
    assert f"{path}: service.listen: cannot listen on 127.0.0.1:" in capsys.readouterr().err


# -- the job functions, with an injected clock -----------------------------------------------------------------


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with make_world(scenario(), database_url, MONDAY) as made:
        yield made


def work(world: World, *, may_send: bool = True, **service: Any) -> Work:
    """The service's jobs on the world; ``service``: ``[service]`` settings to change (``listen=None``: no HTTP)."""
    config = world.config.model_copy(update={"service": world.config.service.model_copy(update=service)}) \
        if service else world.config
    return Work(config=config, clock=world.clock, sessions=world.sessions,
                slack=SlackClient(config.slack, token=world.slack.token), may_send=may_send,
                credential=ManagedIdentityCredential())


def test_poll_job_polls_then_notifies(world: World) -> None:
    report, notified = work(world).poll(world.clock.now())
    assert report.ok and report.deployments == 4
    assert notified is not None and notified.delivery is not None and notified.delivery.sent == 3
    assert len(world.slack.messages()) == 3


def test_a_rehearsal_sends_nothing_and_claims_nothing(world: World) -> None:
    rehearsal = work(world, may_send=False)
    _, notified = rehearsal.poll(world.clock.now())
    assert notified is not None and notified.delivery is None and notified.plan.at_risk == 3
    assert rehearsal.digest(schedule.DigestDue(SLOT, 0)) is True
    assert rehearsal.deliver(world.clock.now()) is None
    assert world.slack.messages() == []
    with world.sessions() as session:
        assert session.scalars(select(AlertRow)).all() == []
        assert watch.claimed_slot(session, DIGEST_SLOT) is None


def test_the_digest_slot_is_claimed_once_across_restarts_and_replicas(world: World) -> None:
    first, second = work(world), work(world)
    due = schedule.DigestDue(SLOT, 0)
    assert first.digest(due) is True
    assert first.digest(due) is False and second.digest(due) is False
    assert second.claimed_digest_slot() == SLOT
    assert second.digest(schedule.DigestDue(SLOT + timedelta(days=7), 0)) is True


def test_a_failed_digest_gives_its_slot_back(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from daemon import digest

    def broken(*_args: Any, **_kwargs: Any) -> object:
        raise RuntimeError("slack is down")

    runner = work(world)
    assert runner.digest(schedule.DigestDue(SLOT - timedelta(days=7), 0)) is True
    monkeypatch.setattr(digest, "run_digest", broken)
    with pytest.raises(RuntimeError):
        runner.digest(schedule.DigestDue(SLOT, 0))
    assert runner.claimed_digest_slot() == SLOT - timedelta(days=7)
    monkeypatch.undo()
    assert runner.digest(schedule.DigestDue(SLOT, 0)) is True


def test_a_watcher_that_cannot_poll_says_so_once_and_once_when_it_recovers(world: World) -> None:
    runner = work(world)
    runner.poll(world.clock.now())
    started = world.clock.now()
    world.arm.faults.forbid_subscription(SUB)  # every poll from now reads nothing
    for hours in (6, 12):
        world.clock.set(started + timedelta(hours=hours))
        runner.poll(started)
        assert runner.watch(started) is None, "not stale before stale_after (twice poll_every)"
    world.clock.set(started + timedelta(hours=12, minutes=30))
    assert runner.watch(started) == "stale"
    assert runner.watch(started) is None
    world.clock.set(started + timedelta(hours=18))
    runner.poll(started)
    assert work(world).watch(started) is None, "a restarted service does not say it again"
    world.arm.faults.reset()
    world.clock.set(started + timedelta(hours=24))
    runner.poll(started)
    assert runner.watch(started) is None
    runner.deliver(started)
    ops = [m.text.splitlines()[0] for m in world.slack.messages("#retirewatch-ops")]
    stale = [line for line in ops if "has not polled" in line]
    recovered = [line for line in ops if "polls Azure again" in line]
    assert len(stale) == 1 and len(recovered) == 1, ops


def test_shutdown_gives_up_on_a_stuck_job_after_the_grace_and_leaves_the_process_to_its_owner(
        world: World) -> None:
    """In-process: shutdown() returns and names what it left running; only `retirewatch run` exits over it."""
    world.arm.faults.slow("", seconds=4)  # every ARM answer outlasts the grace
    service = Service(work(world, shutdown_grace_seconds=1.0, listen=None))
    service.start()

    def running() -> set[str]:
        with service._lock:
            return set(service._started)

    deadline = time.monotonic() + 15
    while "poll" not in running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "poll" in running(), "the poll job started"
    started = time.monotonic()
    assert service.shutdown() == 0
    assert time.monotonic() - started < 3, "the grace, not the slow answers"
    assert service.abandoned == ["poll"]
    deadline = time.monotonic() + 30  # the abandoned poll sees the stop and ends: nothing leaks into other tests
    while running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running()


class _HeldStore(MemoryJobStore):
    """A job store whose scheduler pass stops, once it has found ``deliver`` due, until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.in_pass, self.release = threading.Event(), threading.Event()

    def get_due_jobs(self, now: datetime) -> list[Any]:
        due = super().get_due_jobs(now)
        if any(job.id == "deliver" for job in due):
            self.in_pass.set()
            self.release.wait(10)
        return due  # type: ignore[no-any-return]


def test_a_job_falling_due_as_the_service_stops_kills_no_thread_and_logs_no_traceback(
        world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """APScheduler 3's shutdown() marks the scheduler stopped and closes its executor while its thread may be in a
    pass over the due jobs: the pass then submitted ``deliver`` to the closed executor ("Error submitting job",
    with a traceback) and its removal of the one-shot job raised JobLookupError, killing the scheduler thread.
    The store holds the pass there while shutdown() starts."""
    service = Service(work(world, listen=None))
    store = _HeldStore()
    service.scheduler.remove_jobstore("default")
    service.scheduler.add_jobstore(store, "default")
    died: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_value))
    service.start()
    thread = service.scheduler._thread  # type: ignore[attr-defined]
    service._dispatch("deliver", None, world.clock.now())
    assert store.in_pass.wait(10), "the scheduler's pass found deliver due"
    stopping = threading.Thread(target=service.shutdown)
    stopping.start()
    time.sleep(0.3)  # shutdown() is under way (it waits for the pass either way)
    store.release.set()
    stopping.join(30)
    thread.join(10)
    assert not stopping.is_alive() and not thread.is_alive()
    assert died == []
    assert [r.getMessage() for r in caplog.records if r.name.startswith("apscheduler") and r.levelno >= 40] == []


def test_a_shared_poll_marks_the_catalogs_no_unit_listed_as_missed(world: World) -> None:
    """As a poll in one process does: every account moved to another region, so the first region's catalog is
    no longer listed by any subscription; the replica that finishes the shared poll marks its entries missed."""
    runner = work(world)

    def shared_poll() -> None:
        assert runner.start_shared_poll(1, lambda session: True) is not None
        report = runner.work_units("replica-a", timedelta(minutes=5), world.clock.now())
        assert [poll.status for poll in report.finished] == ["ok"]

    def missed() -> dict[str, set[str]]:
        with world.sessions() as session:
            rows = session.execute(select(CatalogModelRow.scope, CatalogModelRow.missed_since)).all()
        return {"missed": {scope for scope, since in rows if since is not None},
                "current": {scope for scope, since in rows if since is None}}

    shared_poll()
    assert missed() == {"missed": set(), "current": {"location:eastus"}}
    with world.arm.update() as served:
        served["locationModels"]["swedencentral"] = served["locationModels"]["eastus"]
        for subscription in served["subscriptions"]:
            for account in subscription["accounts"]:
                account["location"] = "swedencentral"
    world.clock.set(world.clock.now() + timedelta(hours=6))
    shared_poll()
    assert missed() == {"missed": {"location:eastus"}, "current": {"location:swedencentral"}}


def test_a_one_shot_poll_and_the_services_shared_poll_never_overlap(
        world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Both write the same subscriptions: the one that read first could store its older reads over the other's.
    A shared poll does not start while `retirewatch poll` holds the poll lock; `retirewatch poll` stores nothing
    while a shared poll is under way, and says whose poll it is and how far it got. A shared poll every replica
    left (the service is stopped) is no reason to refuse."""
    from daemon.cli import main
    from daemon.store.poll_lock import poll_lock

    runner = work(world)
    with poll_lock(world.sessions.kw["bind"], 0) as held:  # as `retirewatch poll` holds it
        assert held
        assert runner.start_shared_poll(1, lambda session: True) is None
    assert world.arm.count("/subscriptions?") == 0, "no listing for a shared poll that cannot start"
    poll_id = runner.start_shared_poll(1, lambda session: True)
    assert world.arm.count("/subscriptions?") == 1
    assert poll_id is not None
    with world.sessions.begin() as session:
        lease.register(session, "replica-a", "host", 1)
    command = ["poll", "--config", str(config_file(world, tmp_path)), "--now", world.clock.now().isoformat()]
    assert main(command) == 0
    assert f"poll {poll_id} of the service is under way (0 of 1 subscriptions recorded): this poll stores nothing" \
        in capsys.readouterr().err
    with world.sessions() as session:
        assert session.scalars(select(PollRow.id)).all() == [poll_id], "no poll of its own was recorded"
        assert session.scalar(select(func.count()).select_from(DeploymentRow)) == 0
    with world.sessions.begin() as session:
        lease.mark_stopped(session, "replica-a")
    assert main(command) == 0
    with world.sessions() as session:
        assert session.scalar(select(PollRow.status).where(PollRow.id != poll_id)) == "ok"
        assert session.scalar(select(func.count()).select_from(DeploymentRow)) == 4
    report = runner.work_units("replica-b", timedelta(minutes=5), world.clock.now())
    assert [(poll.id, poll.status) for poll in report.finished] == [(poll_id, "ok")]


def test_a_stop_request_ends_the_poll_between_subscriptions(world: World) -> None:
    report, notified = work(world).poll(world.clock.now(), should_stop=lambda: True)
    assert report.stopped and not report.ok and notified is None
    with world.sessions() as session:
        assert session.scalar(select(PollRow.status)) == "stopped"
        assert watch.last_successful_poll(session) is None


def test_what_is_due_follows_the_injected_clock(world: World) -> None:
    service = Service(work(world))
    world.clock.set(SLOT - timedelta(seconds=15))
    service.start_state()
    service.keep_lease(force=True)
    assert [job for job, _ in service.due(world.clock.now())] == ["poll"], "first start: poll at once"
    service.work.poll(service.started_at)
    service.start_state()
    assert [job for job, _ in service.due(world.clock.now())] == ["deliver"]
    world.clock.set(SLOT)
    due = dict(service.due(world.clock.now()))
    assert due["digest"] == schedule.DigestDue(SLOT, 0)
    world.clock.set(SLOT + timedelta(hours=6))
    assert "poll" in dict(service.due(world.clock.now()))


def _expire_lease(world: World) -> None:
    """What a frozen leader looks like to the others: its lease ran out by the database's clock."""
    with world.sessions.begin() as session:
        session.execute(update(LeaseRow).values(expires_at=datetime(2000, 1, 1, tzinfo=UTC)))


def test_one_leader_decides_when_and_a_frozen_one_is_fenced_out(world: World) -> None:
    first, second = Service(work(world)), Service(work(world))
    world.clock.set(SLOT - timedelta(seconds=15))
    for service in (first, second):
        service.start_state()
        service.keep_lease(force=True)
    assert first.leadership is not None and first.leadership.epoch == 1
    assert second.leadership is None
    assert [job for job, _ in second.due(world.clock.now())] == ["deliver"], "a follower only delivers"
    assert [job for job, _ in first.due(world.clock.now())] == ["poll"]

    _expire_lease(world)  # the leader froze past its lease
    second.keep_lease(force=True)
    assert second.leadership is not None and second.leadership.epoch == 2
    with world.sessions.begin() as session:
        assert first.fence(session) is False, "the old epoch no longer writes"
        assert second.fence(session) is True
    world.clock.set(SLOT)
    assert first.work.digest(schedule.DigestDue(SLOT, 0), fence=first.fence) is False
    assert first.work.claimed_digest_slot() is None, "a fenced-out leader claims nothing"
    assert second.work.digest(schedule.DigestDue(SLOT, 0), fence=second.fence) is True
    assert digests_by_channel(world), "the digest reached Slack"
    sent = sum(digests_by_channel(world).values())

    first.keep_lease(force=True)  # it wakes up: the renewal fails and it steps down
    assert first.leadership is None
    assert "digest" not in dict(first.due(world.clock.now()))
    assert first.work.digest(schedule.DigestDue(SLOT, 0)) is False
    assert sum(digests_by_channel(world).values()) == sent, "nothing was sent twice"

    second._leave()  # a clean shutdown gives the lease up at once
    first.keep_lease(force=True)
    assert first.leadership is not None and first.leadership.epoch == 3
    with world.sessions() as session:
        rows = {row.id: row for row in lease.replicas(session)}
        assert set(rows) == {first.replica_id, second.replica_id}
        assert rows[second.replica_id].stopped_at is not None and rows[first.replica_id].stopped_at is None
        current = lease.leader(session)
        assert current is not None and (current.holder, current.epoch) == (first.replica_id, 3)
