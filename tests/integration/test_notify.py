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


def scenario(today: date = TODAY) -> dict[str, Any]:
    return estate([
        account_entry("search", {"team": "search"}, [
            deployment_entry("chat", "gpt-4o", "2024-05-13"),  # 5 days: critical
            deployment_entry("mini", "gpt-4o-mini", "2024-07-18", option="OnceCurrentVersionExpired")]),
        account_entry("lab", {}, [deployment_entry("tentative", "o1", "2024-12-17")]),  # unowned
        account_entry("owned-by-tag", {"retirewatch-channel": "#ml-ops"}, [
            deployment_entry("safe", "gpt-5.1", "2025-11-13")]),
    ], [
        catalog_entry("gpt-4o", "2024-05-13", today + timedelta(days=5)),
        catalog_entry("gpt-4o-mini", "2024-07-18", today + timedelta(days=25), replacementConfig={
            "targetModelName": "gpt-4.1-mini", "targetModelVersion": "2025-04-14"}),
        catalog_entry("gpt-4.1-mini", "2025-04-14", None, default=True),
        catalog_entry("o1", "2024-12-17", today + timedelta(days=80), status="Tentative"),
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
    world.slack.ratelimit("chat.postMessage", "#ml-platform", times=1, retry_after=120)
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
    assert ops[0].text.count("marked failed: not_in_channel") == 1, "the detail is stated once"
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


def _config_file(world: World, tmp_path: Path, *, time_travel: bool = True) -> Path:
    slack = world.config.slack
    path = tmp_path / "retirewatch.toml"
    path.write_text(
        f'[database]\nurl = "{world.config.database.url}"\n'
        f'[slack]\napi_url = "{slack.api_url}"\nca_bundle = "{slack.ca_bundle}"\ndefault_channel = "#ml-platform"\n'
        f'fallback_channel = "#retirewatch-ops"\nmessages_per_second = 1000\n'
        '[[routes]]\nchannel = "#search"\nmatch = { tags = { team = "search" } }\n'
        'mentions = { critical = ["<!subteam^S0SEARCH>"] }\n'
        f'[testing]\nallow_time_travel = {str(time_travel).lower()}\n')
    return path


def test_killed_mid_delivery_loses_nothing_and_repeats_nothing(world: World, tmp_path: Path) -> None:
    config = _config_file(world, tmp_path)
    env = {**os.environ, "SLACK_BOT_TOKEN": world.slack.token}
    now = at(TODAY).isoformat()
    world.slack.crash_after_accept("chat.postMessage", "#search", times=1, hang=60)
    process = subprocess.Popen([sys.executable, "-m", "daemon.cli", "notify", "--config", str(config),
                                "--now", now, "--wait", "0"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    # #search hangs on its first message; #ml-platform, delivered in parallel, gets its one message through.
    while time.monotonic() < deadline and not (len(world.slack.messages()) == 2 and "sent" in
                                               {row.status for row in alerts(world)}):
        time.sleep(0.05)
    assert len(world.slack.messages()) == 2, "the first messages never reached Slack"
    process.send_signal(signal.SIGKILL)  # Slack has #search's message; the database does not know
    process.wait(timeout=10)
    assert len(world.slack.messages()) == 2
    assert sorted(row.status for row in alerts(world)) == ["pending", "sending", "sent"]

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
    for past in ("2026-02-01", TODAY.isoformat()):
        assert main(["ack", "search/mini", "--until", past, *now]) == 2
        err = capsys.readouterr().err
        assert "not in the future" in err and err.count("\n") == 1
    assert main(["ack", "search/mini", "--until", "2026-03-20", "--note", "moving next sprint", *now]) == 0
    assert "acknowledged search/mini" in capsys.readouterr().out
    assert main(["ack", "search/mini", "--until", "2026-03-20", "--note", "moving next sprint", *now]) == 0
    assert "nothing changed" in capsys.readouterr().out, "the same ack twice is a no-op"
    assert main(["ack", "nope", *now]) == 2
    assert "no deployment 'nope'" in capsys.readouterr().err
    world.notify()
    mini = [m for m in world.slack.messages() if payload(m)["deployment_id"].endswith("/mini")]
    assert [payload(m)["kind"] for m in mini] == ["stage", "acknowledged"], "one ack message, not two"
    assert mini[1].thread_ts == mini[0].ts and "moving next sprint" in mini[1].text
    assert "no date announced" not in mini[1].text.lower() and "In 25 days:" in mini[1].text
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


# -- whole-app Slack outages, requeueing, rehearsals, channel tags, operational metadata -------------------------


def _notify_cli(world: World, tmp_path: Path, *, time_travel: bool = True, now: str | None = None) -> list[str]:
    return ["notify", "--wait", "0", "--config", str(_config_file(world, tmp_path, time_travel=time_travel)),
            "--now", now or at(TODAY).isoformat()]


@pytest.mark.parametrize("error", ["token_revoked", "missing_scope", "invalid_auth"])
def test_a_revoked_token_holds_every_message_pending_then_sends_each_once(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        error: str) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", world.slack.token)
    notify = _notify_cli(world, tmp_path)
    world.slack.revoke_token(error)
    for _ in range(2):  # still revoked at the next run: still nothing failed, nothing burnt
        assert main(notify) == 3
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and error in err and "Traceback" not in err
        assert "stays pending" in err
        rows = alerts(world)
        assert len(rows) == 3 and {(r.status, r.attempts) for r in rows} == {("pending", 0)}
    assert len(world.slack.calls("chat.postMessage")) == 2, "each run stopped at the first refusal"
    assert world.slack.messages() == []
    world.slack.reset_faults()  # the token is fixed
    assert main(notify) == 0
    keys = [payload(m)["alert_key"] for m in world.slack.messages()]
    assert len(keys) == 3 and len(set(keys)) == 3, "every message once"
    assert {r.status for r in alerts(world)} == {"sent"}
    assert world.slack.messages("#retirewatch-ops") == [], "an app outage is not a channel problem"


def test_no_token_queues_and_exits_3(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    assert main(_notify_cli(world, tmp_path)) == 3
    err = capsys.readouterr().err
    assert "SLACK_BOT_TOKEN is not set" in err and err.count("\n") == 1
    assert {(r.status, r.attempts) for r in alerts(world)} == {("pending", 0)} and world.slack.calls() == []
    world.notify()
    assert len(world.slack.messages()) == 3


def test_alerts_retry_requeues_failed_messages(world: World, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    world.slack.fail_channel("#search", "not_in_channel")
    world.notify()
    failed = [row for row in alerts(world) if row.status == "failed"]
    assert len(failed) == 2
    world.slack.clear_channel("#search")
    now = ["--config", str(_config_file(world, tmp_path)), "--now", at(TODAY).isoformat()]
    assert main(["alerts", "retry", *now]) == 2
    assert main(["alerts", "retry", "no-such-key", *now]) == 2
    sent = next(row for row in alerts(world) if row.status == "sent")
    assert main(["alerts", "retry", sent.key, *now]) == 2
    assert "not failed" in capsys.readouterr().err
    assert main(["alerts", "retry", failed[0].key, *now]) == 0
    assert "requeued 1 failed message" in capsys.readouterr().out
    assert main(["alerts", "retry", "--failed", *now]) == 0
    assert "requeued 1 failed message" in capsys.readouterr().out
    assert {(r.status, r.attempts) for r in alerts(world) if r.key in {f.key for f in failed}} == {("pending", 0)}
    world.notify()
    assert {r.status for r in alerts(world)} == {"sent"}
    search = [payload(m)["alert_key"] for m in world.slack.messages("#search")]
    assert sorted(search) == sorted(f.key for f in failed), "each requeued message sent once"


def test_a_far_now_is_a_rehearsal_that_sends_and_records_nothing(world: World, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", world.slack.token)
    assert main(_notify_cli(world, tmp_path, time_travel=False)) == 0  # 2026-03-01: far from any wall clock now
    out = capsys.readouterr().out
    assert out.startswith("REHEARSAL: --now is") and "would queue: 3 stage" in out
    assert world.slack.calls() == [] and alerts(world) == []
    world.notify()  # the rig (allow_time_travel) sends; now an ack and a retry rehearsed change nothing
    rows = alerts(world)
    config = ["--config", str(_config_file(world, tmp_path, time_travel=False)), "--now", at(TODAY).isoformat()]
    assert main(["ack", "search/mini", *config]) == 0
    assert capsys.readouterr().out.startswith("REHEARSAL:")
    assert main(["alerts", "retry", "--failed", *config]) == 0
    assert [(r.id, r.status) for r in alerts(world)] == [(r.id, r.status) for r in rows]
    from daemon.store.schema import AckRow

    with world.sessions() as session:
        assert session.scalars(select(AckRow)).all() == []


def test_a_now_within_a_day_of_the_wall_clock_sends(database_url: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from daemon.clock import SystemClock

    wall = SystemClock().now()
    with make_world(scenario(wall.date()), database_url, wall.date()) as live:
        live.poll()
        monkeypatch.setenv("SLACK_BOT_TOKEN", live.slack.token)
        now = (wall + timedelta(hours=1)).isoformat()
        assert main(_notify_cli(live, tmp_path, time_travel=False, now=now)) == 0
        assert "REHEARSAL" not in capsys.readouterr().out
        assert len(live.slack.messages()) == 3


def test_a_tag_outside_allowed_channels_is_ignored_and_reported_once(database_url: str) -> None:
    tagged = scenario()
    lab = tagged["subscriptions"][0]["accounts"][1]
    lab["tags"] = {"retirewatch-channel": "#general"}
    with make_world(tagged, database_url, TODAY) as world:
        world.config = world.config.model_copy(update={"slack": world.config.slack.model_copy(
            update={"allowed_channels": ("#search", "#ml-*")})})
        world.poll()
        report = world.notify()
        assert report.refused_tags == 1
        assert world.slack.messages("#general") == []
        lab_alerts = [payload(m) for m in world.slack.messages("#ml-platform")]
        assert [p["deployment_id"].rsplit("/", 1)[-1] for p in lab_alerts] == ["tentative"], "the default channel"
        ops = world.slack.messages("#retirewatch-ops")
        assert len(ops) == 1 and "#general" in ops[0].text and "lab" in ops[0].text
        world.go_to(TODAY + timedelta(days=1))
        world.step()
        assert len(world.slack.messages("#retirewatch-ops")) == 1, "reported once"


def test_operational_messages_have_their_own_metadata(world: World) -> None:
    world.slack.fail_channel("#search", "channel_not_found")
    world.notify()
    ops = world.slack.messages("#retirewatch-ops")
    assert len(ops) == 1
    meta = ops[0].metadata or {}
    assert meta["event_type"] == "retirewatch_operational"
    assert {"problem", "first_seen", "alert_key"} <= set(meta["event_payload"])
    assert "channel_not_found" in meta["event_payload"]["problem"]
    assert meta["event_payload"]["first_seen"].startswith(TODAY.isoformat())
    assert "deployment_id" not in meta["event_payload"]
    about_deployments = [m for m in world.slack.messages() if m.channel != world.slack.channel_id("#retirewatch-ops")]
    assert about_deployments
    for message in about_deployments:
        assert (message.metadata or {})["event_type"] in ("model_retirement_alert", "model_retirement_resolved")
        assert payload(message)["deployment_id"].startswith("/subscriptions/")
