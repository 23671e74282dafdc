"""The weekly digest end to end: the demo estate (and a 500-deployment channel) through the real poll, the real
slack_sdk client against the Slack emulator, the outbox on SQLite and PostgreSQL; golden files for what it says."""

from __future__ import annotations

import json
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
from azure.identity import ManagedIdentityCredential
from sqlalchemy import select

from daemon.cli import main
from daemon.demo import DEMO_ROUTES
from daemon.digest import DigestReport, Outcome, run_digest
from daemon.digest.render import BLOCK_TEXT_BUDGET
from daemon.emulators.arm import demo_estate
from daemon.emulators.scenario import add_deployment, catalog_models, deployment, remove_deployment
from daemon.emulators.slack import Message
from daemon.notify.ack import acknowledge
from daemon.notify.slack import SlackClient
from daemon.poll import run_poll
from daemon.store.schema import AlertRow
from tests.golden import check_golden
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

TODAY = date(2026, 11, 25)  # a Wednesday: ISO week 2026-W48
WEEK = "2026-W48"
DS_SUBSCRIPTION = "c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f"
DEMO_CHANNELS = {"#search": "team", "#support-bot": "team", "#ml-platform": "team", "#ml-alerts": "overview"}


def digests(world: World, channel: str | None = None) -> list[Message]:
    return [m for m in world.slack.messages(channel)
            if (m.metadata or {}).get("event_type") == "model_retirement_digest"]


def run(world: World, **kwargs: Any) -> DigestReport:
    return run_digest(world.config, world.clock, world.sessions, SlackClient(world.config.slack,
                                                                             token=world.slack.token), **kwargs)


def outcomes(report: DigestReport) -> dict[str, Outcome]:
    return {item.channel: item.outcome for item in report.channels}


def digest_rows(world: World) -> list[AlertRow]:
    with world.sessions() as session:
        return list(session.scalars(select(AlertRow).where(AlertRow.kind == "digest").order_by(AlertRow.id)))


def limits_hold(blocks: list[dict[str, Any]], text: str) -> None:
    assert len(blocks) <= 50
    total = 0
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        texts = [block.get("text", {}).get("text", "")] + [e.get("text", "") for e in block.get("elements", [])]
        total += sum(len(t) for t in texts)
    assert total <= BLOCK_TEXT_BUDGET, f"{total} characters of block text"
    assert len(text) < 40_000


# -- the demo estate, a week in its life ------------------------------------------------------------------------


@pytest.fixture
def demo(database_url: str) -> Iterator[World]:
    """The demo estate: a baseline poll three days ago (and its alerts), then a week's changes: Azure upgraded a
    deployment, a date moved, a model started deprecating, a deployment was added and one deleted; today's poll
    cannot read the data-science subscription; the search team acknowledged one deadline."""
    with make_world(demo_estate(TODAY), database_url, TODAY - timedelta(days=3), routes=DEMO_ROUTES,
                    testing={"allow_time_travel": True}) as world:
        world.config = world.config.model_copy(update={"slack": world.config.slack.model_copy(
            update={"default_channel": "#ml-alerts"})})
        world.poll()
        world.notify()
        with world.arm.update() as served:
            deployment(served, "search-openai-eus", "chat-gpt4o-global")["properties"]["model"]["version"] = (
                "2024-11-20")
            for model in catalog_models(served, "o3-mini", "2025-01-31"):
                model["deprecation"]["inference"] = f"{TODAY + timedelta(days=40)}T00:00:00Z"
            for model in catalog_models(served, "o1", "2024-12-17"):
                model["lifecycleStatus"] = "Deprecating"
            add_deployment(served, "support-bot-aoai", deployment_entry("assistant-41", "gpt-4.1", "2025-04-14",
                                                                        option="OnceNewDefaultVersionAvailable",
                                                                        sku="GlobalStandard"))
            remove_deployment(served, "support-bot-aoai", "assistant-next")
        world.go_to(TODAY)
        world.arm.faults.forbid_subscription(DS_SUBSCRIPTION)
        assert not run_poll(world.config, world.clock, world.sessions, credential=ManagedIdentityCredential()).ok
        with world.sessions.begin() as session:
            acknowledge(session, world.config, world.clock.now(), "search-openai-eus/chat-gpt4o", until=None,
                        note="moving to gpt-4.1 next sprint")
        yield world


def test_demo_digests_match_the_golden_files(demo: World) -> None:
    report = run(demo)
    assert outcomes(report) == dict.fromkeys(DEMO_CHANNELS, Outcome.POSTED)
    posted = {payload(m)["channel"]: m for m in digests(demo)}
    assert set(posted) == set(DEMO_CHANNELS)
    for channel, scope in DEMO_CHANNELS.items():
        message = posted[channel]
        assert demo.slack.channels()[channel.lstrip("#")] == message.channel
        meta = message.metadata or {}
        assert meta["event_type"] == "model_retirement_digest"
        assert meta["event_payload"]["week"] == WEEK and meta["event_payload"]["channel_scope"] == scope
        assert message.blocks is not None
        limits_hold(message.blocks, message.text)
        name = f"digest_demo_{channel.lstrip('#')}"
        check_golden(f"{name}.txt", message.text + "\n")
        check_golden(f"{name}.json", {"blocks": message.blocks, "metadata": meta})
    overview = payload(posted["#ml-alerts"])
    assert overview["deployments"] == 18 and overview["unowned"] == 5
    assert payload(posted["#search"])["deployments"] == 4


def test_the_content_follows_the_week(demo: World) -> None:
    """What the golden files must say, stated on its own: the changes of the week, acks, unowned, health."""
    run(demo)
    text = {payload(m)["channel"]: m.text for m in digests(demo)}
    search, support, overview = text["#search"], text["#support-bot"], text["#ml-alerts"]
    assert "Upgraded (model version changed): gpt-4o 2024-05-13 → gpt-4o 2024-11-20" in search
    assert "search-openai-eus/chat-gpt4o-global" in search
    assert "Lifecycle changed: o1 2024-12-17: generally available → retiring" in search
    assert "Date moved: o3-mini 2025-01-31 from 2027-02-18 to 2027-01-04" in support
    assert "Added: gpt-4.1 2025-04-14 · 1 deployment: support-bot-aoai/assistant-41" in support
    assert "Removed: gpt-5.1 2025-11-13 · 1 deployment: support-bot-aoai/assistant-next" in support
    assert "Added:" not in overview.split("What changed")[0], "the baseline poll's deployments are not news"
    unacked = search.split("Not acknowledged")[1].split("\n\n")[0]
    assert "search-openai-eus/chat-gpt4o" not in unacked.replace("chat-gpt4o-global", ""), "acknowledged"
    assert "Nobody owns 5 deployments" in overview and "Nobody owns" not in search
    assert "1 source could not be read" in overview and DS_SUBSCRIPTION in overview
    assert "could not be read" not in search, "the failure is not in the search team's subscription"
    assert "#ml-alerts (default channel" in overview and "#search: 4 deployments" in overview


def test_once_a_week_per_channel(demo: World, capsys: pytest.CaptureFixture[str]) -> None:
    first = run(demo)
    assert set(outcomes(first).values()) == {Outcome.POSTED}
    demo.clock.set(demo.clock.now() + timedelta(hours=5))
    second = run(demo)
    assert set(outcomes(second).values()) == {Outcome.ALREADY_SENT}
    assert "already sent this week" in second.describe()
    assert len(digests(demo)) == 4
    assert [row.key for row in digest_rows(demo)] == [f"digest:{c}:{WEEK}" for c in
                                                       ("#ml-platform", "#search", "#support-bot", "#ml-alerts")]
    demo.go_to(date(2026, 11, 29))  # Sunday: still week 48
    assert set(outcomes(run(demo)).values()) == {Outcome.ALREADY_SENT}
    demo.go_to(date(2026, 11, 30))  # Monday: week 49
    third = run(demo)
    assert third.week == "2026-W49" and set(outcomes(third).values()) == {Outcome.POSTED}
    assert sorted(payload(m)["week"] for m in digests(demo)) == [WEEK] * 4 + ["2026-W49"] * 4


def test_a_lost_answer_is_found_in_the_channel_not_posted_twice(demo: World) -> None:
    demo.config = demo.config.model_copy(update={"slack": demo.config.slack.model_copy(
        update={"timeout_seconds": 1.0})})
    demo.slack.crash_after_accept("chat.postMessage", times=1, hang=3)
    report = run(demo)  # the deliverer retries within the run: it looks in the channel first
    assert report.delivery is not None and report.delivery.recovered == 1  # (the ack's reply went out too)
    assert set(outcomes(report).values()) == {Outcome.POSTED}
    assert len(digests(demo)) == 4 and len({payload(m)["alert_key"] for m in digests(demo)}) == 4
    assert {row.status for row in digest_rows(demo)} == {"sent"} and all(row.ts for row in digest_rows(demo))


def test_dry_run_prints_and_records_nothing(demo: World) -> None:
    calls = len(demo.slack.calls())
    report = run(demo, dry_run=True)
    assert set(outcomes(report).values()) == {Outcome.PREVIEW}
    assert all(item.preview and item.preview.startswith("Retirement digest 2026-W48") for item in report.channels)
    assert len(demo.slack.calls()) == calls and digest_rows(demo) == []
    assert set(outcomes(run(demo)).values()) == {Outcome.POSTED}, "the dry run left nothing that stops the real one"


def test_one_channel_only(demo: World) -> None:
    report = run(demo, channel="search")
    assert outcomes(report) == {"#search": Outcome.POSTED}
    assert [payload(m)["channel"] for m in digests(demo)] == ["#search"]
    assert outcomes(run(demo, channel="#nowhere")) == {"#nowhere": Outcome.NOTHING}


# -- a quiet team, the command line, the rehearsal rule ---------------------------------------------------------


def quiet_scenario() -> dict[str, Any]:
    return estate([
        account_entry("search", {"team": "search"}, [deployment_entry("chat", "gpt-4o", "2024-05-13")]),
        account_entry("ops", {"retirewatch-channel": "#ml-ops"}, [deployment_entry("safe", "gpt-5.1", "2025-11-13")]),
    ], [
        catalog_entry("gpt-4o", "2024-05-13", TODAY + timedelta(days=20)),
        catalog_entry("gpt-5.1", "2025-11-13", None, default=True),
    ])


@pytest.fixture
def quiet(database_url: str) -> Iterator[World]:
    with make_world(quiet_scenario(), database_url, TODAY, testing={"allow_time_travel": True}) as world:
        world.poll()
        yield world


def test_a_team_with_nothing_to_say_gets_nothing(quiet: World) -> None:
    report = run(quiet)
    assert outcomes(report) == {"#search": Outcome.POSTED, "#ml-ops": Outcome.NOTHING,
                                "#ml-platform": Outcome.POSTED}
    assert not quiet.slack.messages("#ml-ops") and [r.channel for r in digest_rows(quiet)] == ["#search",
                                                                                              "#ml-platform"]
    overview = digests(quiet, "#ml-platform")[0].text
    assert "#ml-ops: 1 deployment · nothing within 90 days" in overview


def _config_file(world: World, tmp_path: Path, *, time_travel: bool) -> str:
    slack = world.config.slack
    path = tmp_path / "retirewatch.toml"
    path.write_text(
        f'[database]\nurl = "{world.config.database.url}"\n'
        f'[slack]\napi_url = "{slack.api_url}"\nca_bundle = "{slack.ca_bundle}"\ndefault_channel = "#ml-platform"\n'
        'messages_per_second = 1000\n'
        '[[routes]]\nchannel = "#search"\nmatch = { tags = { team = "search" } }\n'
        f'[testing]\nallow_time_travel = {"true" if time_travel else "false"}\n'
        '[digest]\nhorizon_days = 30\n')
    return str(path)


def test_the_command(quiet: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", quiet.slack.token)
    args = ["digest", "--config", _config_file(quiet, tmp_path, time_travel=True), "--now", at(TODAY).isoformat()]
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "(dry run: nothing sent, nothing recorded)" in out and "--> #search" in out
    assert "strike within 30 days" in out and not digests(quiet)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "#search [team]: posted" in out and "#ml-ops [team]: nothing to say" in out
    assert main(args) == 0
    assert "#search [team]: already sent this week" in capsys.readouterr().out
    assert len(digests(quiet)) == 2


def test_a_rehearsal_far_from_the_wall_clock_only_previews(quiet: World, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    config = _config_file(quiet, tmp_path, time_travel=False)
    assert main(["digest", "--config", config, "--now", "2031-01-06T09:00:00"]) == 0
    out = capsys.readouterr().out
    assert "rehearsal, acting as --dry-run" in out and "--> #search" in out
    assert not digests(quiet) and digest_rows(quiet) == []


# -- 500 deployments in one channel -------------------------------------------------------------------------------


def big_scenario() -> dict[str, Any]:
    """500 deployments of the search team: 20 model versions with dates from 10 days ago to 120 days ahead, three
    upgrade options, in five accounts."""
    catalog, deployments_by_account = [], {f"search-{n}": [] for n in range(5)}  # type: ignore[var-annotated]
    options = ["NoAutoUpgrade", "OnceCurrentVersionExpired", "OnceNewDefaultVersionAvailable"]
    catalog.append(catalog_entry("gpt-next", "2026-10-01", None, default=True))
    for m in range(20):
        version = f"2025-{m % 12 + 1:02d}-{m + 1:02d}"
        retires = TODAY + timedelta(days=-10 + 7 * m)
        catalog.append(catalog_entry(f"model-{m:02d}", version, retires, replacementConfig={
            "targetModelName": "gpt-next", "targetModelVersion": "2026-10-01"}))
        for i in range(25):
            account = f"search-{(m + i) % 5}"
            deployments_by_account[account].append(deployment_entry(
                f"svc-{m:02d}-{i:02d}-{'x' * (i % 7)}", f"model-{m:02d}", version, option=options[i % 3]))
    return estate([account_entry(name, {"team": "search"}, items) for name, items in deployments_by_account.items()],
                  catalog)


def test_500_deployments_in_one_channel_stay_within_slacks_limits(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'big.sqlite'}"
    with make_world(big_scenario(), url, TODAY, testing={"allow_time_travel": True}) as world:
        world.poll()
        report = run(world, channel="#search")
        assert outcomes(report) == {"#search": Outcome.POSTED}, report.describe()
        message = digests(world, "#search")[0]
        assert message.blocks is not None
        limits_hold(message.blocks, message.text)
        assert payload(message)["deployments"] == 500
        assert "`retirewatch status --format csv`" in json.dumps(message.blocks)
        assert all(f"svc-{m:02d}-{i:02d}" in message.text for m in range(15) for i in range(25)), \
            "the text names every deployment inside the horizon"
        check_golden("digest_500_search.txt", message.text + "\n")
        check_golden("digest_500_search.json", {"blocks": message.blocks, "metadata": message.metadata})


def test_killed_after_slack_accepted_the_next_run_records_it_and_posts_nothing_twice(quiet: World,
                                                                                     tmp_path: Path) -> None:
    config = _config_file(quiet, tmp_path, time_travel=True)
    env = {**os.environ, "SLACK_BOT_TOKEN": quiet.slack.token}
    quiet.slack.crash_after_accept("chat.postMessage", times=1, hang=60)
    process = subprocess.Popen([sys.executable, "-m", "daemon.cli", "digest", "--config", config,
                                "--now", at(TODAY).isoformat()], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not digests(quiet) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert digests(quiet), "the first digest never reached Slack"
    process.send_signal(signal.SIGKILL)  # Slack has the digest; the database does not know
    process.wait(timeout=10)
    assert len(digests(quiet)) == 1 and {row.status for row in digest_rows(quiet)} == {"sending", "pending"}

    later = at(TODAY).replace(minute=20).isoformat()  # the same week, past the 5-minute lease
    done = subprocess.run([sys.executable, "-m", "daemon.cli", "digest", "--config", config, "--now", later],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "1 found already posted" in done.stdout and "#search [team]: posted" in done.stdout
    assert len(digests(quiet)) == 2 and len({payload(m)["alert_key"] for m in digests(quiet)}) == 2
    assert {row.status for row in digest_rows(quiet)} == {"sent"}
