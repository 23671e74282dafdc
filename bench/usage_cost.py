"""What reading usage adds to a poll: requests and seconds with [usage] on and off, on a synthetic estate.

Run: .venv/bin/python bench/usage_cost.py [--subscriptions 40] [--accounts 5] [--deployments 10]
Prints figures; it is not a test. The emulator runs in the same process: compare the ratios of one run.
The first poll reads one metrics answer per account (30 days x deployments x 2 metrics) and stores 30 days per
deployment; the second poll of the same day reads none ([usage] every = "P1D"); the next day's first poll reads
and stores the days since the last read only.
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.identity import ManagedIdentityCredential

from daemon.clock import FixedClock
from daemon.config import parse_config
from daemon.emulators.arm import ArmEmulator, demo_estate
from daemon.poll import run_poll
from daemon.store import database


def scaled(base: dict[str, Any], subscriptions: int, accounts: int, deployments: int) -> dict[str, Any]:
    template = base["subscriptions"][0]["accounts"][0]
    estate: dict[str, Any] = {"locationModels": base["locationModels"], "subscriptions": []}
    for s in range(subscriptions):
        subs_accounts = []
        for a in range(accounts):
            account = copy.deepcopy(template)
            account["name"] = f"acct-{s}-{a}"
            account["deployments"] = [dict(copy.deepcopy(template["deployments"][d % len(template["deployments"])]),
                                           name=f"dep-{d}") for d in range(deployments)]
            subs_accounts.append(account)
        estate["subscriptions"].append({"subscriptionId": f"{s:08d}-0000-4000-8000-000000000000",
                                        "displayName": f"sub-{s}", "accounts": subs_accounts})
    return estate


def polls(scenario: dict[str, Any], usage: bool, concurrency: int) -> list[tuple[int, float]]:
    """(requests, seconds) of two polls on the same day, then one the next day."""
    clock = FixedClock(datetime.now(UTC))
    with tempfile.TemporaryDirectory() as scratch, ArmEmulator(scenario) as arm:
        os.environ.update(arm.identity_env)
        url = f"sqlite:///{scratch}/bench.sqlite"
        config = parse_config({"database": {"url": url}, "usage": {"enabled": usage}, "azure": {
            "resource_manager_endpoint": arm.base_url, "ca_bundle": arm.ca_bundle_path,
            "max_concurrency": concurrency}}, "<bench>")
        sessions = database.session_factory(database.open_database(url))
        figures = []
        for day in (0, 0, 1):
            clock.set(clock.now() + timedelta(days=day))
            started = time.perf_counter()
            report = run_poll(config, clock, sessions, credential=ManagedIdentityCredential())
            assert report.ok, report.failures[:3]
            figures.append((report.requests, time.perf_counter() - started))
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=40)
    parser.add_argument("--accounts", type=int, default=5)
    parser.add_argument("--deployments", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    estate = scaled(demo_estate(datetime.now(UTC).date()), args.subscriptions, args.accounts, args.deployments)
    print(f"{args.subscriptions} subscriptions x {args.accounts} accounts x {args.deployments} deployments, "
          f"concurrency {args.concurrency}")
    print(f"{'usage':<6} {'poll':<9} {'requests':>9} {'seconds':>8}")
    results = {}
    for usage in (False, True):
        results[usage] = polls(estate, usage, args.concurrency)
        for label, (requests, seconds) in zip(("first", "second", "next day"), results[usage], strict=True):
            print(f"{'on' if usage else 'off':<6} {label:<9} {requests:>9} {seconds:>8.2f}")
    (off_requests, off_seconds), (on_requests, on_seconds) = results[False][0], results[True][0]
    print(f"first poll with usage: {on_requests / off_requests:.2f}x the requests, "
          f"{on_seconds / off_seconds:.2f}x the time; second poll: "
          f"{results[True][1][1] / results[False][1][1]:.2f}x the time; next day: "
          f"{results[True][2][1] / results[False][2][1]:.2f}x the time")


if __name__ == "__main__":
    main()
