"""A rig for the fault suite: the ARM and Slack emulators in this process, the real ``retirewatch`` CLI in child
processes (started, killed, run side by side), a database of each kind, and the estate and expectations the tests
share. ``--now`` drives every child; the Slack emulator's clock is set to the same instant, so message timestamps
and the CLI's own clock agree (the crash recovery looks for a message by time)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from daemon.clock import FixedClock
from daemon.emulators.arm import IDENTITY_ENV_CONFLICTS, ArmEmulator
from daemon.emulators.slack import Message, SlackEmulator
from daemon.store import database
from tests.integration.world import SUB, catalog_entry, deployment_entry, payload

OPS = "#retirewatch-ops"

# (model, version, days from T0 to its retirement): notice, warning, urgent and critical on day 0; each a stage
# further on day 6 (warning, urgent, critical, overdue).
MODELS = (("gpt-4o", "2024-05-13", 35), ("gpt-4o-mini", "2024-07-18", 20), ("o1", "2024-12-17", 12),
          ("dall-e-3", "3.0", 5))
STAGE_ON_DAY = {0: ("notice", "warning", "urgent", "critical@7"), 6: ("warning", "urgent", "critical@7", "overdue")}


def at(day: date, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, 6, 0, tzinfo=UTC) + timedelta(minutes=minute)


def big_estate(t0: date, deployments: int, *, accounts: int = 4) -> dict[str, Any]:
    """``deployments`` deployments over ``accounts`` accounts (even ones routed to #search by tag); deployment i runs
    ``MODELS[i % 4]``."""
    catalog = [catalog_entry(name, version, t0 + timedelta(days=days)) for name, version, days in MODELS]
    catalog.append(catalog_entry("gpt-5.1", "2025-11-13", None, default=True))
    owned: list[dict[str, Any]] = []
    for a in range(accounts):
        entries = [deployment_entry(f"d{i:04d}", *MODELS[i % len(MODELS)][:2])
                   for i in range(deployments) if i % accounts == a]
        owned.append({"name": f"acct{a}", "resourceGroup": f"rg-{a}", "kind": "OpenAI", "location": "eastus",
                      "tags": {"team": "search"} if a % 2 == 0 else {}, "deployments": entries})
    return {"locationModels": {"eastus": catalog},
            "subscriptions": [{"subscriptionId": SUB, "displayName": "prod", "accounts": owned}]}


def expected_stage(index: int, day: int) -> str:
    return STAGE_ON_DAY[day][index % len(MODELS)]


@dataclass
class Rig:
    arm: ArmEmulator
    slack: SlackEmulator
    clock: FixedClock
    url: str
    config: Path
    env: dict[str, str]
    engine: Engine

    @property
    def sessions(self) -> sessionmaker[Session]:
        return database.session_factory(self.engine)

    def start(self, *args: str, now: datetime) -> subprocess.Popen[str]:
        """Start ``retirewatch ARGS --now NOW`` in a child process; Slack's clock moves to ``now`` with it."""
        self.clock.set(now)
        return subprocess.Popen([sys.executable, "-m", "daemon.cli", *args, "--config", str(self.config),
                                 "--now", now.isoformat()], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def run(self, *args: str, now: datetime, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        process = self.start(*args, now=now)
        out, err = process.communicate(timeout=timeout)
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    def run_all(self, commands: Sequence[Sequence[str]], *, now: datetime,
                timeout: float = 240) -> list[subprocess.CompletedProcess[str]]:
        """Start every command at once; wait for all."""
        processes = [self.start(*command, now=now) for command in commands]
        done = []
        for process in processes:
            out, err = process.communicate(timeout=timeout)
            done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
        return done

    def messages(self, channel: str | None = None) -> list[Message]:
        return self.slack.messages(channel)

    def alert_messages(self) -> list[Message]:
        ops_id = self.slack.channels().get(OPS.lstrip("#"))
        return [m for m in self.slack.messages() if m.channel != ops_id]


def kill(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)


def kill_after(process: subprocess.Popen[str], seconds: float) -> bool:
    """SIGKILL ``process`` after ``seconds`` unless it ended first; True when it was killed."""
    return kill_when(process, lambda: False, timeout=seconds)


def kill_when(process: subprocess.Popen[str], happened: Callable[[], bool], *, timeout: float = 60) -> bool:
    """SIGKILL ``process`` the moment ``happened()`` turns true (polled every few ms) unless it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if happened():
            break
        if process.poll() is not None:
            process.communicate()
            return False
        time.sleep(0.003)
    killed = process.poll() is None
    kill(process)
    return killed


def write_config(path: Path, arm: ArmEmulator, slack: SlackEmulator, url: str, *,
                 messages_per_second: float = 1000, group_min: int | None = None) -> Path:
    grouping = f"group_min = {group_min}\n" if group_min is not None else ""
    path.write_text(
        f'[database]\nurl = "{url}"\n'
        f'[azure]\nresource_manager_endpoint = "{arm.base_url}"\nca_bundle = "{arm.ca_bundle_path}"\n'
        'max_retries = 1\n'
        f'[slack]\napi_url = "{slack.api_url}"\nca_bundle = "{slack.ca_bundle_path}"\n'
        f'default_channel = "#ml-platform"\nfallback_channel = "{OPS}"\nmessages_per_second = {messages_per_second}\n'
        f'{grouping}'
        '[testing]\nallow_time_travel = true\n'
        '[[routes]]\nchannel = "#search"\nmatch = { tags = { team = "search" } }\n'
        'mentions = { critical = ["<!subteam^S0SEARCH>"] }\n')
    return path


@contextmanager
def make_rig(scenario: dict[str, Any], url: str, tmp_path: Path, start: datetime, *,
             messages_per_second: float = 1000, group_min: int | None = None) -> Iterator[Rig]:
    clock = FixedClock(start)
    with ArmEmulator(scenario, read_capacity=100_000, read_refill_per_second=10_000) as arm, \
            SlackEmulator(clock=lambda: clock.now().timestamp()) as slack:
        engine = database.make_engine(url)
        database.upgrade(engine)
        env = {name: value for name, value in os.environ.items()
               if name not in IDENTITY_ENV_CONFLICTS and not name.startswith("RETIREWATCH_")}
        env.update(arm.identity_env)
        env["SLACK_BOT_TOKEN"] = slack.token
        config = write_config(tmp_path / "retirewatch.toml", arm, slack, url, messages_per_second=messages_per_second,
                              group_min=group_min)
        try:
            yield Rig(arm, slack, clock, url, config, env, engine)
        finally:
            engine.dispose()


def signature(message: Message) -> tuple[str, str, str]:
    """What a message says, free of database ids (which differ between runs): (deployment, kind, step)."""
    p = payload(message)
    deployment = str(p.get("deployment_id", "")).rsplit("/", 1)[-1]
    kind = str(p.get("kind"))
    step = str(p["alert_key"]).rsplit("|", 1)[-1] if kind == "stage" else ""
    return deployment, kind, step


def duplicates(messages: Sequence[Message]) -> list[tuple[str, str, str]]:
    counts = Counter(signature(m) for m in messages)
    keys = Counter(payload(m).get("alert_key") for m in messages)
    return [s for s, n in counts.items() if n > 1] + [("alert_key", str(k), "") for k, n in keys.items() if n > 1]


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
