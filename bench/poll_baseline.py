"""What one poll costs: requests and seconds, for the demo estate and for a synthetic estate scaled up from it.

Run: .venv/bin/python bench/poll_baseline.py [--subscriptions 40] [--accounts 5] [--deployments 10]
Prints figures; it is not a test. The emulator runs in the same process, so absolute times include its work:
compare ratios from one run, not numbers across machines.
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

from azure.identity import ManagedIdentityCredential

from daemon.clock import FixedClock
from daemon.config import parse_config
from daemon.emulators.arm import ArmEmulator, demo_estate
from daemon.poll import PollReport, run_poll
from daemon.store import database


def scaled(base: dict[str, Any], subscriptions: int, accounts: int, deployments: int) -> dict[str, Any]:
    template_account = base["subscriptions"][0]["accounts"][0]
    template_deployments = template_account["deployments"]
    estate = {"locationModels": base["locationModels"], "subscriptions": []}
    for s in range(subscriptions):
        subs_accounts = []
        for a in range(accounts):
            account = copy.deepcopy(template_account)
            account["name"] = f"acct-{s}-{a}"
            account["deployments"] = [dict(copy.deepcopy(template_deployments[d % len(template_deployments)]),
                                           name=f"dep-{d}") for d in range(deployments)]
            subs_accounts.append(account)
        estate["subscriptions"].append({"subscriptionId": f"{s:08d}-0000-4000-8000-000000000000",
                                        "displayName": f"sub-{s}", "accounts": subs_accounts})
    return estate


def poll_once(scenario: dict[str, Any], concurrency: int, page_size: int) -> tuple[PollReport, float, int]:
    clock = FixedClock(datetime.now(UTC))
    with tempfile.TemporaryDirectory() as scratch, ArmEmulator(scenario, page_size=page_size) as arm:
        os.environ.update(arm.identity_env)
        url = f"sqlite:///{scratch}/bench.sqlite"
        config = parse_config({"database": {"url": url}, "azure": {
            "resource_manager_endpoint": arm.base_url, "ca_bundle": arm.ca_bundle_path,
            "max_concurrency": concurrency}}, "<bench>")
        sessions = database.session_factory(database.open_database(url))
        started = time.perf_counter()
        report = run_poll(config, clock, sessions, credential=ManagedIdentityCredential())
        first = time.perf_counter() - started
        again = run_poll(config, clock, sessions, credential=ManagedIdentityCredential())
        return report, first, again.events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=40)
    parser.add_argument("--accounts", type=int, default=5)
    parser.add_argument("--deployments", type=int, default=10)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()
    demo = demo_estate(datetime.now(UTC).date())
    rows = [("demo estate", demo, 16)]
    big = scaled(demo, args.subscriptions, args.accounts, args.deployments)
    rows += [(f"synthetic {args.subscriptions}x{args.accounts}x{args.deployments}, concurrency {c}", big, c)
             for c in (1, 16)]
    header = ("estate", "subs", "deps", "requests", "seconds", "deps/s", "2nd poll events")
    print(f"{header[0]:<44} {header[1]:>5} {header[2]:>6} {header[3]:>9} {header[4]:>8} {header[5]:>8} {header[6]:>16}")
    for name, scenario, concurrency in rows:
        report, seconds, events = poll_once(scenario, concurrency, args.page_size)
        print(f"{name:<44} {report.subscriptions:>5} {report.deployments:>6} {report.requests:>9} {seconds:>8.2f} "
              f"{report.deployments / seconds:>8.0f} {events:>16}")


if __name__ == "__main__":
    main()
