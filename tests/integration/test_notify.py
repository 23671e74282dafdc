"""The notify stage through the real WebClient against the Slack emulator: routing, metadata, dedup, dry run,
rate limits, retries, permanent errors, crash recovery (in process and with a killed process), and ack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from daemon.cli import main
from daemon.store.schema import AlertRow
from tests.integration.world import (
    World,
    account_entry,
    at,
    catalog_entry,
    deployment_entry,
    estate,
    make_world,
    payload,
)

TODAY = date(2026, 3, 1)


def scenario() -> dict[str, Any]:
    return estate([
        account_entry("search", {"team": "search"}, [
            deployment_entry("chat", "gpt-4o", "2024-05-13"),  # 5 days: critical
            deployment_entry("mini", "gpt-4o-mini", "2024-07-18", option="OnceCurrentVersionExpired")]),
        account_entry("lab", {}, [deployment_entry("tentative", "o1", "2024-12-17")]),  # unowned
        account_entry("owned-by-tag", {"retirewatch-channel": "#ml-ops"}, [
            deployment_entry("safe", "gpt-5.1", "2025-11-13")]),
    ], [
        catalog_entry("gpt-4o", "2024-05-13", TODAY + timedelta(days=5)),
        catalog_entry("gpt-4o-mini", "2024-07-18", TODAY + timedelta(days=25), replacementConfig={
            "targetModelName": "gpt-4.1-mini", "targetModelVersion": "2025-04-14"}),
        catalog_entry("gpt-4.1-mini", "2025-04-14", None, default=True),
        catalog_entry("o1", "2024-12-17", TODAY + timedelta(days=80), status="Tentative"),
        catalog_entry("gpt-5.1", "2025-11-13", None, default=True),
    ])


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with make_world(scenario(), database_url, TODAY) as made:
        made.poll()
        yield made


def alerts(world: World) -> list[AlertRow]:
    with world.sessions() as session:
        return list(session.scalars(select(AlertRow).order_by(AlertRow.id)))


def test_routing_mentions_metadata_and_unowned(world: World) -> None:
    report = world.notify()
    assert report.delivery is not None and report.delivery.sent == 3
    assert [key.rsplit("/", 1)[-1] for key in report.plan.unowned] == ["tentative"]
    by_name = {payload(m)["deployment_id"].rsplit("/", 1)[-1]: m for m in world.slack.messages()}
    assert set(by_name) == {"chat", "mini", "tentative"}
    assert world.slack.channels()["search"] == by_name["chat"].channel == by_name["mini"].channel
    assert world.slack.channels()["ml-platform"] == by_name["tentative"].channel
    assert by_name["chat"].text.startswith("<!subteam^S0SEARCH>"), "critical mentions the route's group"
    assert "<!subteam" not in by_name["mini"].text, "warning carries no mention"
    assert "stops answering on 2026-03-06" in by_name["chat"].text
    assert "gpt-4.1-mini" in by_name["mini"].text and "tentative" in by_name["tentative"].text.lower()
    for message in world.slack.messages():
        meta = message.metadata or {}
        assert meta["event_type"] == "model_retirement_alert"
        assert {"deployment_id", "deadline", "stage", "consequence"} <= set(meta["event_payload"])
    chat = payload(by_name["chat"])
    assert (chat["deadline"], chat["stage"], chat["consequence"]) == ("2026-03-06", "critical", "outage")
    assert chat["deployment_id"].endswith("/accounts/search/deployments/chat")


def test_notify_twice_sends_nothing_new(world: World) -> None:
    world.notify()
    again = world.notify()
    assert sum(again.plan.queued.values()) == 0
    assert again.delivery is not None and again.delivery.sent == 0
    assert len(world.slack.messages()) == 3


def test_dry_run_prints_and_records_nothing(world: World) -> None:
    report = world.notify(dry_run=True)
    assert {channel for channel, _ in report.previews} == {"#search", "#ml-platform"}
    assert any("Critical" in text for _, text in report.previews)
    assert world.slack.calls() == [] and alerts(world) == []
    world.notify()
    assert len(world.slack.messages()) == 3, "the dry run left nothing behind that would stop the real run"


def test_ratelimited_waits_for_retry_after(world: World) -> None:
    world.slack.ratelimit("chat.postMessage", times=1, retry_after=120)
    first = world.notify()
    assert first.delivery is not None and first.delivery.retried == 1 and first.delivery.sent == 2
    waiting = [row for row in alerts(world) if row.status == "pending"]
    assert len(waiting) == 1 and waiting[0].last_error == "ratelimited"
    world.clock.set(world.clock.now() + timedelta(seconds=60))
    assert world.notify().delivery.sent == 0  # type: ignore[union-attr]
    world.clock.set(world.clock.now() + timedelta(seconds=61))
    assert world.notify().delivery.sent == 1  # type: ignore[union-attr]
    assert len(world.slack.messages()) == 3
    assert {row.status for row in alerts(world)} == {"sent"}


def test_server_errors_back_off_then_deliver(world: World) -> None:
    world.slack.server_error("chat.postMessage", times=2, status=503)
    world.notify()
    for _ in range(3):
        world.clock.set(world.clock.now() + timedelta(minutes=5))
        world.notify()
    assert {row.status for row in alerts(world)} == {"sent"}
    assert len(world.slack.messages()) == 3
    assert max(row.attempts for row in alerts(world)) >= 2


def test_permanent_error_fails_the_alert_and_raises_one_operational_alert(world: World,
                                                                         capsys: pytest.CaptureFixture[str]
                                                                         ) -> None:
    world.slack.fail_channel("#search", "not_in_channel")
    report = world.notify()
    assert report.delivery is not None and report.delivery.failed == 2
    failed = [row for row in alerts(world) if row.status == "failed"]
    assert {row.last_error for row in failed} == {"not_in_channel"}
    ops = world.slack.messages("#retirewatch-ops")
    assert len(ops) == 1 and "not_in_channel" in ops[0].text
    world.clock.set(world.clock.now() + timedelta(hours=1))
    world.notify()
    assert len(world.slack.messages("#retirewatch-ops")) == 1, "one operational alert, not one per retry"


def test_lost_answer_is_found_in_history_not_sent_twice(world: World) -> None:
    world.config = world.config.model_copy(update={"slack": world.config.slack.model_copy(
        update={"timeout_seconds": 1.0})})
    world.slack.crash_after_accept("chat.postMessage", times=1, hang=3)
    first = world.notify()
    assert first.delivery is not None and first.delivery.retried == 1
    assert len(world.slack.messages()) == 3, "Slack has all three, though we heard back for two"
    world.clock.set(world.clock.now() + timedelta(minutes=10))
    second = world.notify()
    assert second.delivery is not None and (second.delivery.recovered, second.delivery.sent) == (1, 0)
    assert len(world.slack.messages()) == 3
    assert {row.status for row in alerts(world)} == {"sent"} and all(row.ts for row in alerts(world))


def _config_file(world: World, tmp_path: Path) -> Path:
    slack = world.config.slack
    path = tmp_path / "retirewatch.toml"
    path.write_text(
        f'[database]\nurl = "{world.config.database.url}"\n'
        f'[slack]\napi_url = "{slack.api_url}"\nca_bundle = "{slack.ca_bundle}"\ndefault_channel = "#ml-platform"\n'
        f'fallback_channel = "#retirewatch-ops"\nmessages_per_second = 1000\n'
        '[[routes]]\nchannel = "#search"\nmatch = { tags = { team = "search" } }\n'
        'mentions = { critical = ["<!subteam^S0SEARCH>"] }\n'
        '[testing]\nallow_time_travel = true\n')
    return path


def test_killed_mid_delivery_loses_nothing_and_repeats_nothing(world: World, tmp_path: Path) -> None:
    config = _config_file(world, tmp_path)
    env = {**os.environ, "SLACK_BOT_TOKEN": world.slack.token}
    now = at(TODAY).isoformat()
    world.slack.crash_after_accept("chat.postMessage", times=1, hang=60)
    process = subprocess.Popen([sys.executable, "-m", "daemon.cli", "notify", "--config", str(config),
                                "--now", now, "--wait", "0"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not world.slack.messages() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert world.slack.messages(), "the first message never reached Slack"
    process.send_signal(signal.SIGKILL)  # Slack has the message; the database does not know
    process.wait(timeout=10)
    assert len(world.slack.messages()) == 1
    assert {row.status for row in alerts(world)} == {"sending", "pending"}

    later = at(TODAY).replace(minute=20).isoformat()  # past the 5-minute lease
    done = subprocess.run([sys.executable, "-m", "daemon.cli", "notify", "--config", str(config),
                           "--now", later, "--wait", "0"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "1 found already posted" in done.stdout
    keys = [payload(m)["alert_key"] for m in world.slack.messages()]
    assert len(keys) == 3 and len(set(keys)) == 3, "nothing lost, nothing repeated"
    assert {row.status for row in alerts(world)} == {"sent"}


def test_ack_silences_and_tells_the_thread(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world.notify()
    config = str(_config_file(world, tmp_path))
    now = ["--now", at(TODAY).isoformat(), "--config", config]
    assert main(["ack", "search/mini", "--until", "2026-03-20", "--note", "moving next sprint", *now]) == 0
    assert "acknowledged search/mini" in capsys.readouterr().out
    assert main(["ack", "nope", *now]) == 2
    assert "no deployment 'nope'" in capsys.readouterr().err
    world.notify()
    mini = [m for m in world.slack.messages() if payload(m)["deployment_id"].endswith("/mini")]
    assert [payload(m)["kind"] for m in mini] == ["stage", "acknowledged"]
    assert mini[1].thread_ts == mini[0].ts and "moving next sprint" in mini[1].text
    world.go_to(TODAY + timedelta(days=11))  # 14 days left: urgent, but acked until 03-20
    world.step()
    assert len([m for m in world.slack.messages() if payload(m)["deployment_id"].endswith("/mini")]) == 2
    world.go_to(date(2026, 3, 20))  # the ack ends: the current stage (6 days left: critical) is told
    world.step()
    mini = [m for m in world.slack.messages() if payload(m)["deployment_id"].endswith("/mini")]
    assert [payload(m)["stage"] for m in mini][-1] == "critical"
    assert main(["alerts", "--status", "sent", *now]) == 0
    assert "acknowledged" in capsys.readouterr().out


def test_poll_failures_raise_one_operational_alert_a_day(world: World) -> None:
    from azure.identity import ManagedIdentityCredential

    from daemon.poll import run_poll
    from tests.integration.world import SUB

    world.arm.faults.forbid_subscription(SUB)
    for hour in (0, 1):
        world.clock.set(at(TODAY) + timedelta(hours=hour))
        assert not run_poll(world.config, world.clock, world.sessions, credential=ManagedIdentityCredential()).ok
        world.notify()
    ops = world.slack.messages("#retirewatch-ops")
    assert len(ops) == 1 and "AuthorizationFailed" in ops[0].text
    assert len(world.slack.messages("#search")) == 2, "the last known inventory is still alerted on"
    world.go_to(TODAY + timedelta(days=1))
    run_poll(world.config, world.clock, world.sessions, credential=ManagedIdentityCredential())
    world.notify()
    assert len(world.slack.messages("#retirewatch-ops")) == 2
