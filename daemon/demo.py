"""``retirewatch demo``: the real pipeline (real SDK, real credential class, embedded SQLite) against the built-in
ARM emulator and its simulated estate. No Azure account and no network needed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from azure.identity import ManagedIdentityCredential

from daemon import report, usage
from daemon.clock import Clock, today
from daemon.config import parse_config
from daemon.digest import DigestReport, run_digest
from daemon.emulators.arm import ArmEmulator, demo_estate
from daemon.emulators.slack import SlackEmulator
from daemon.notify.run import NotifyReport, run_notify
from daemon.notify.slack import SlackClient
from daemon.poll import run_poll
from daemon.store import database, queries

DEMO_ROUTES: list[dict[str, Any]] = [
    {"name": "search team", "channel": "#search", "match": {"tags": {"team": "search"}},
     "mentions": {"critical": ["@search-oncall"], "overdue": ["@search-oncall"]}},
    {"name": "support bot", "channel": "#support-bot", "match": {"tags": {"team": "support-bot"}}},
]


def run_demo(clock: Clock, *, keep_database: str | None = None, fmt: str = "table") -> int:
    with tempfile.TemporaryDirectory(prefix="retirewatch-demo-") as scratch:
        url = keep_database or f"sqlite:///{Path(scratch) / 'demo.sqlite'}"
        with ArmEmulator(demo_estate(today(clock))) as arm, SlackEmulator() as slack:
            os.environ.update(arm.identity_env)  # the managed-identity endpoint the real credential asks
            config = parse_config({
                "database": {"url": url},
                "azure": {"resource_manager_endpoint": arm.base_url, "ca_bundle": arm.ca_bundle_path},
                "slack": {"api_url": slack.api_url, "ca_bundle": slack.ca_bundle_path,
                          "default_channel": "#ml-alerts", "fallback_channel": "#retirewatch-ops",
                          "messages_per_second": 1000},
                "routes": DEMO_ROUTES,
                # The demo's Slack is the built-in emulator: `retirewatch demo --now` may post there at any date.
                "testing": {"allow_time_travel": True},
            }, "<demo>")
            sessions = database.session_factory(database.open_database(url))
            credential = ManagedIdentityCredential()
            result = run_poll(config, clock, sessions, credential=credential)
            with sessions() as session:
                rows = report.status_rows(queries.current_deployments(session), queries.catalog(session),
                                          today(clock), usage=usage.index(session, config, today(clock)))
            if fmt == "table":
                notified = run_notify(config, clock, sessions, SlackClient(config.slack, token=slack.token),
                                      wait_seconds=5)
                slack_view = describe_slack(slack, notified)
                digest_view = describe_digest(run_digest(config, clock, sessions, None, dry_run=True))
    if fmt == "json":
        print(report.to_json(rows))
        return 0
    if fmt == "csv":
        print(report.to_csv(rows), end="")
        return 0
    print(f"Simulated Azure estate: {result.subscriptions} subscriptions, {result.accounts} accounts, "
          f"{result.deployments} deployments, {result.catalog_models} catalog entries read through the real "
          f"Azure SDK in {result.requests} requests ({result.seconds:.1f}s).\n")
    print(report.to_table(rows))
    print(f"\nAs of {today(clock)}. Each row: the day the consequence strikes, what happens then (OUTAGE: the "
          "deployment stops answering; forced/auto-upgrade: Azure moves it to the replacement, untested), and the "
          "size of the move (update scope).")
    print(slack_view)
    print(digest_view)
    return 0


def describe_slack(slack: SlackEmulator, notified: NotifyReport) -> str:
    """What reached each channel of the built-in Slack emulator: each alert's headline and its key sentence."""
    delivery = notified.delivery
    sent = delivery.sent if delivery else 0
    lines = [f"\nSlack (built-in emulator, real slack_sdk client): {sent} alerts delivered; "
             f"{len(notified.plan.unowned)} deployments no route claims went to the default channel."]
    by_channel: dict[str, list[str]] = {}
    names = {channel_id: name for name, channel_id in slack.channels().items()}
    for message in slack.messages():
        text = message.text.splitlines()
        key_lines = [line for line in text[1:] if line.startswith(
            ("Training new fine-tunes", "In ", "Today", "Tomorrow", "Tentative", "Usage:")) or "ago:" in line]
        summary = [text[0], *key_lines[:3]]
        by_channel.setdefault(names.get(message.channel, message.channel), []).append(
            "\n".join(f"  {'*' if i == 0 else ' '} {line}" for i, line in enumerate(summary)))
    for channel, messages in sorted(by_channel.items()):
        lines.append(f"\n#{channel.lstrip('#')} ({len(messages)})")
        lines.extend(messages)
    first = slack.messages()[:1]
    if first:
        lines.append("\nOne message in full (Slack shows it as Block Kit; this is its plain-text fallback):\n")
        lines.append(first[0].text)
    return "\n".join(lines)


def describe_digest(report: DigestReport) -> str:
    """The weekly digest each channel would get this week (a dry run: nothing sent, nothing recorded)."""
    lines = [f"\nWeekly digest (`retirewatch digest`), week {report.week}, as each channel would get it "
             "(plain-text fallback; Slack shows Block Kit):"]
    for item in report.channels:
        if item.preview is None:
            lines.append(f"\n--> {item.channel}: {item.outcome.value} ({item.detail})")
        else:
            lines.append(f"\n--> {item.channel} [{item.scope}]\n{item.preview}")
    return "\n".join(lines)
