"""How fast a button press is answered (Slack waits 3 s) and how soon the thread and the buttons show it.

Run: .venv/bin/python bench/interactions_latency.py [--deployments 20] [--postgres]
The service (daemon.service.runner.Service) runs in this process against the ARM and Slack emulators; each of N
at-risk deployments gets one Acknowledge press (recorded), then the same press again (already so), then one
unsigned request (401). Prints figures; it is not a test: compare them within one run, not across machines.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from azure.identity import ManagedIdentityCredential

from daemon.emulators.slack import send_interaction
from daemon.notify.render import ACK_ACTION
from daemon.notify.slack import SlackClient
from daemon.service.jobs import Work
from daemon.service.runner import Service
from tests.integration.world import (
    account_entry,
    catalog_entry,
    deployment_entry,
    estate,
    make_world,
    payload,
)

TODAY = date(2026, 3, 1)


def figures(name: str, seconds: list[float]) -> None:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    print(f"{name:<44} n={len(ordered):<4} p50 {statistics.median(ordered) * 1000:7.1f} ms   "
          f"p95 {p95 * 1000:7.1f} ms   max {ordered[-1] * 1000:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deployments", type=int, default=20)
    parser.add_argument("--postgres", action="store_true", help="a scratch PostgreSQL database (default: SQLite)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the 401s say so in the log, once each
    scenario = estate([account_entry("search", {}, [deployment_entry(f"dep-{i}", "gpt-4o", "2024-05-13")
                                                    for i in range(args.deployments)])],
                      [catalog_entry("gpt-4o", "2024-05-13", TODAY + timedelta(days=20))])
    with tempfile.TemporaryDirectory() as scratch, contextlib.ExitStack() as stack:
        url = f"sqlite:///{scratch}/bench.sqlite"
        if args.postgres:
            from tests import postgres

            url = stack.enter_context(postgres.scratch_database(stack.enter_context(postgres.admin_server())))
        with make_world(scenario, url, TODAY, service={"listen": "127.0.0.1:0"}) as world:
            os.environ["SLACK_SIGNING_SECRET"] = world.slack.signing_secret
            world.step()
            parents = [m for m in world.slack.messages() if payload(m).get("kind") == "stage"]
            service = Service(Work(config=world.config, clock=world.clock, sessions=world.sessions,
                                   slack=SlackClient(world.config.slack, token=world.slack.token), may_send=True,
                                   credential=ManagedIdentityCredential()))
            service.start()
            assert service.http is not None
            endpoint = f"http://127.0.0.1:{service.http.port}/slack/interactions"
            try:
                requests = [world.slack.press(m, ACK_ACTION) for m in parents]
                first, again, unsigned, told = [], [], [], []
                for parent, (body, headers) in zip(parents, requests, strict=True):
                    began = time.perf_counter()
                    status, _ = send_interaction(endpoint, body, headers)
                    first.append(time.perf_counter() - began)
                    assert status == 200
                    while not any(payload(r).get("kind") == "acknowledged"
                                  for r in world.slack.thread(parent.channel, parent.ts)):
                        time.sleep(0.01)
                    told.append(time.perf_counter() - began)
                for body, headers in requests:
                    began = time.perf_counter()
                    assert send_interaction(endpoint, body, headers)[0] == 200
                    again.append(time.perf_counter() - began)
                    began = time.perf_counter()
                    assert send_interaction(endpoint, body, {"Content-Type": headers["Content-Type"]})[0] == 401
                    unsigned.append(time.perf_counter() - began)
            finally:
                service.shutdown()
            print(f"database: {url.split(':', 1)[0]}, {len(parents)} stage alerts")
            figures("press -> HTTP 200 (ack recorded)", first)
            figures("press -> thread reply in Slack (next tick)", told)
            figures("same press again -> HTTP 200 (nothing)", again)
            figures("unsigned -> HTTP 401", unsigned)


if __name__ == "__main__":
    main()
