"""What a forecast costs: seconds for the demo estate and a synthetic one scaled up from it, by window length.

Run: .venv/bin/python bench/forecast.py [--subscriptions 10] [--accounts 5] [--deployments 10]
Prints figures; it is not a test. The forecast asks ``assess`` and ``decide`` about every deployment on every day of
the window, so its cost is deployments x days: compare the per-deployment-day figure across rows of one run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

from azure.identity import ManagedIdentityCredential
from poll_baseline import scaled

from daemon.clock import FixedClock
from daemon.config import parse_config
from daemon.demo import DEMO_ROUTES
from daemon.emulators.arm import ArmEmulator, demo_estate
from daemon.forecast.ics import to_ics
from daemon.forecast.run import build_forecast
from daemon.poll import run_poll
from daemon.store import database


def measure(scenario: dict[str, Any], windows: tuple[int, ...]) -> list[tuple[int, int, int, float, float]]:
    clock = FixedClock(datetime.now(UTC))
    rows = []
    with tempfile.TemporaryDirectory() as scratch, ArmEmulator(scenario) as arm:
        os.environ.update(arm.identity_env)
        config = parse_config({"database": {"url": f"sqlite:///{scratch}/bench.sqlite"}, "routes": DEMO_ROUTES,
                               "azure": {"resource_manager_endpoint": arm.base_url, "ca_bundle": arm.ca_bundle_path}},
                              "<bench>")
        sessions = database.session_factory(database.open_database(config.database.url))
        report = run_poll(config, clock, sessions, credential=ManagedIdentityCredential())
        for days in windows:
            started = time.perf_counter()
            result = build_forecast(config, clock, sessions, days=days)
            seconds = time.perf_counter() - started
            started = time.perf_counter()
            to_ics(result, clock.now())
            ics = time.perf_counter() - started
            rows.append((report.deployments, days, len(result.items), seconds, ics))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=10)
    parser.add_argument("--accounts", type=int, default=5)
    parser.add_argument("--deployments", type=int, default=10)
    args = parser.parse_args()
    demo = demo_estate(datetime.now(UTC).date())
    big = scaled(demo, args.subscriptions, args.accounts, args.deployments)
    print(f"{'estate':<24} {'deps':>6} {'days':>5} {'messages':>9} {'seconds':>8} {'us/dep-day':>11} {'ics s':>7}")
    for name, scenario in (("demo", demo), (f"synthetic {args.subscriptions}x{args.accounts}x{args.deployments}",
                                            big)):
        for deployments, days, items, seconds, ics in measure(scenario, (30, 90, 365)):
            print(f"{name:<24} {deployments:>6} {days:>5} {items:>9} {seconds:>8.2f} "
                  f"{seconds / (deployments * days) * 1e6:>11.0f} {ics:>7.2f}")


if __name__ == "__main__":
    main()
