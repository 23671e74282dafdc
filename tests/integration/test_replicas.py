"""Several ``retirewatch run`` processes on one real PostgreSQL database, against the ARM and Slack emulators.

A replica is killed (SIGKILL) in the middle of a poll and in the middle of delivery, and one is stopped (SIGSTOP)
past its claims and resumed: the survivors finish the work, the estate in the database is complete, and every alert
reaches Slack exactly once. The clock is the real one: leases are the database's, not a rehearsal's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from daemon.emulators.arm import ArmEmulator
from daemon.emulators.slack import SlackEmulator
from daemon.store import database
from daemon.store.schema import DeploymentRow, EventRow, LeaseRow, PollRow, PollUnitRow
from tests.integration.world import account_entry, catalog_entry, deployment_entry, eventually, payload

LEASE = 3  # seconds: every claim and the leader's lease
TODAY = datetime.now(UTC).date()
SUBSCRIPTIONS = 6
ACCOUNTS = 2  # per subscription, each with its own channel and two deployments: 24 alerts, no groups


def scenario() -> dict[str, Any]:
    catalog = [catalog_entry("gpt-4o", "2024-05-13", TODAY + timedelta(days=5)),
               catalog_entry("gpt-4o-mini", "2024-07-18", TODAY + timedelta(days=20))]
    return {"locationModels": {"eastus": catalog}, "subscriptions": [
        {"subscriptionId": f"{s:08d}-2222-3333-4444-555555555555", "displayName": f"sub-{s}", "accounts": [
            account_entry(f"acct-{s}-{a}", {"retirewatch-channel": f"#team-{s}-{a}"}, [
                deployment_entry("chat", "gpt-4o", "2024-05-13"),
                deployment_entry("mini", "gpt-4o-mini", "2024-07-18")])
            for a in range(ACCOUNTS)]}
        for s in range(SUBSCRIPTIONS)]}


EXPECTED = SUBSCRIPTIONS * ACCOUNTS * 2


class Rig:
    def __init__(self, arm: ArmEmulator, slack: SlackEmulator, url: str, tmp_path: Path) -> None:
        self.arm, self.slack, self.url = arm, slack, url
        self.engine = database.make_engine(url)
        database.upgrade(self.engine)
        self.sessions: sessionmaker[Session] = database.session_factory(self.engine)
        self.config = tmp_path / "retirewatch.toml"
        self.config.write_text(
            f'[database]\nurl = "{url}"\n'
            f'[azure]\nresource_manager_endpoint = "{arm.base_url}"\nca_bundle = "{arm.ca_bundle_path}"\n'
            'max_retries = 1\nmax_concurrency = 2\n'
            f'[slack]\napi_url = "{slack.api_url}"\nca_bundle = "{slack.ca_bundle_path}"\n'
            'default_channel = "#ml-platform"\nfallback_channel = "#retirewatch-ops"\nmessages_per_second = 1000\n'
            '[schedule]\npoll_every = "6h"\ndeliver_every = "2s"\ndigest = "0 9 1 1 *"\n'
            f'[service]\nlease_seconds = {LEASE}\nshutdown_grace_seconds = 5\n')
        self.replicas: list[Replica] = []

    def start(self, count: int) -> list[Replica]:
        started = [Replica(self) for _ in range(count)]
        self.replicas += started
        return started

    def stop_all(self) -> None:
        for replica in self.replicas:
            replica.end()
        self.engine.dispose()

    def leader(self) -> Replica:
        holder = wait_until(lambda: self._holder(), "a leader")
        return next(r for r in self.replicas if f":{r.process.pid}:" in holder)

    def _holder(self) -> str | None:
        with self.sessions() as session:
            row = session.get(LeaseRow, "leader")
            return row.holder if row is not None else None

    def explain(self) -> str:
        with self.sessions() as session:
            units = [(u.subscription_id[:8], u.status, u.claimed_by, u.claim_token, u.claimed_until)
                     for u in session.scalars(select(PollUnitRow).order_by(PollUnitRow.id))]
        logs = "\n".join(f"--- replica {r.process.pid}\n" + "".join(r.lines[-15:]) for r in self.replicas)
        return f"units: {units}\n{logs}"

    def poll_status(self) -> str | None:
        with self.sessions() as session:
            return session.scalar(select(PollRow.status).order_by(PollRow.id.desc()).limit(1))

    def stage_alerts(self) -> Counter[str]:
        """Top-level retirement alerts in Slack, by deployment: each must be 1."""
        found: Counter[str] = Counter()
        for message in self.slack.messages():
            data = payload(message)
            if message.thread_ts is None and data.get("deployment_id") and data.get("stage"):
                found[str(data["deployment_id"]).casefold()] += 1
        return found


class Replica:
    def __init__(self, rig: Rig) -> None:
        env = {**os.environ, "SLACK_BOT_TOKEN": rig.slack.token, "PYTHONUNBUFFERED": "1", **rig.arm.identity_env}
        self.process = subprocess.Popen([sys.executable, "-m", "daemon.cli", "run", "--config", str(rig.config),
                                         "--log-format", "json"], env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in list(self.lines):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == name:
                found.append(event)
        return found

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def end(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)


wait_until = partial(eventually, timeout=90.0, every=0.1)


@pytest.fixture
def rig(postgres_database_url: str, tmp_path: Path) -> Iterator[Rig]:
    with ArmEmulator(scenario()) as arm, SlackEmulator() as slack:
        built = Rig(arm, slack, postgres_database_url, tmp_path)
        try:
            yield built
        finally:
            built.stop_all()


def assert_complete_and_told_once(rig: Rig) -> None:
    wait_until(lambda: rig.poll_status() in ("ok", "partial"), "the poll to finish", explain=rig.explain)
    assert rig.poll_status() == "ok"
    with rig.sessions() as session:
        assert session.scalar(select(func.count()).select_from(DeploymentRow)
                              .where(DeploymentRow.removed_at.is_(None))) == EXPECTED
        added = session.scalar(select(func.count()).select_from(EventRow).where(EventRow.kind == "deployment_added"))
        assert added == EXPECTED, "no subscription was recorded twice"
        assert {u.status for u in session.scalars(select(PollUnitRow))} == {"done"}
    wait_until(lambda: len(rig.stage_alerts()) == EXPECTED, "every alert in Slack")
    time.sleep(LEASE + 2)  # long enough for a late duplicate to show
    told = rig.stage_alerts()
    assert len(told) == EXPECTED and set(told.values()) == {1}, told


def test_killing_the_leader_mid_poll_leaves_the_survivors_to_finish_it(rig: Rig) -> None:
    rig.arm.faults.slow("", seconds=0.4)  # every ARM answer takes a while: the poll is mid-way below
    rig.start(3)
    leader = rig.leader()
    wait_until(lambda: leader.events("poll_started"), "the leader to start the poll")
    wait_until(lambda: _claimed_by(rig, leader), "the leader to hold a unit")
    leader.signal(signal.SIGKILL)
    took_over = wait_until(lambda: (rig._holder() or "").find(f":{leader.process.pid}:") < 0 and rig._holder(),
                           "another replica to lead", timeout=LEASE * 4)
    assert took_over
    assert_complete_and_told_once(rig)


def test_a_frozen_replica_loses_its_units_and_cannot_record_over_the_one_that_took_them(rig: Rig) -> None:
    rig.arm.faults.slow("", seconds=0.4)
    rig.start(3)
    leader = rig.leader()
    frozen = wait_until(lambda: next((r for r in rig.replicas if r is not leader and _claimed_by(rig, r)), None),
                        "a follower to hold a unit")
    frozen.signal(signal.SIGSTOP)
    assert_complete_and_told_once(rig)
    frozen.signal(signal.SIGCONT)
    wait_until(lambda: frozen.events("unit_lost"), "the woken replica to find its unit taken", timeout=30)
    time.sleep(2)
    with rig.sessions() as session:
        added = session.scalar(select(func.count()).select_from(EventRow).where(EventRow.kind == "deployment_added"))
    assert added == EXPECTED, "the woken replica recorded nothing"
    assert set(rig.stage_alerts().values()) == {1}


def test_killing_a_replica_mid_delivery_sends_every_alert_once(rig: Rig) -> None:
    rig.slack.slow(1.0, "chat.postMessage")  # each message takes a second: delivery is mid-way below
    rig.start(2)
    wait_until(lambda: len(rig.stage_alerts()) >= 2, "the first alerts")
    sender = next(r for r in rig.replicas if r.events("poll"))  # it finished the poll and is delivering
    sender.signal(signal.SIGKILL)
    assert_complete_and_told_once(rig)


def _claimed_by(rig: Rig, replica: Replica) -> bool:
    with rig.sessions() as session:
        return session.scalar(select(func.count()).select_from(PollUnitRow).where(
            PollUnitRow.status == "claimed", PollUnitRow.claimed_by.contains(f":{replica.process.pid}:"))) > 0
