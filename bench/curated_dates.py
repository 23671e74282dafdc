"""What the curated dates cost the pure core: assessing N deployments with and without the shipped
config/retirement-dates.csv (the same work `status`, the planner, the digest and the metrics do per deployment).

Run: .venv/bin/python bench/curated_dates.py [--deployments 10000] [--repeat 3]
Prints figures; it is not a test. Compare the ratio from one run, not numbers across machines.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

from daemon.dates_file import read_dates_file
from daemon.lifecycle import CatalogIndex, CuratedDates, assess
from daemon.records import CatalogModel, Deployment, location_scope

SHIPPED = Path(__file__).resolve().parents[1] / "config" / "retirement-dates.csv"
TODAY = date(2026, 3, 1)


def estate(count: int, rows: CuratedDates) -> tuple[list[Deployment], list[CatalogModel]]:
    """Deployments of the models the dates file names (every one matches a row) plus as many it does not."""
    models = sorted({(row.model, row.version if row.version != "*" else "1") for row in rows.rows})
    models += [(f"custom-{i}", "1") for i in range(len(models))]
    catalog = [CatalogModel(scope=location_scope("eastus"), format="OpenAI", name=name, version=version,
                            inference_retirement=date(2026, 12, 31), deprecation_status="Planned")
               for name, version in models]
    account = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a"
    deployments = [Deployment(id=f"{account}/deployments/d{i}", account_id=account, subscription_id="s",
                              resource_group="rg", account_name="a", location="eastus", name=f"d{i}",
                              model_format="OpenAI", model_name=models[i % len(models)][0],
                              model_version=models[i % len(models)][1],
                              sku_name=("Standard", "GlobalStandard", "ProvisionedManaged")[i % 3],
                              upgrade_option="NoAutoUpgrade")
                   for i in range(count)]
    return deployments, catalog


def seconds(deployments: list[Deployment], index: CatalogIndex, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for deployment in deployments:
            assess(deployment, index, TODAY)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deployments", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = CuratedDates(read_dates_file(SHIPPED))
    deployments, catalog = estate(args.deployments, rows)
    plain = seconds(deployments, CatalogIndex(catalog), args.repeat)
    curated = seconds(deployments, CatalogIndex(catalog, rows), args.repeat)
    matched = sum(1 for d in deployments if rows.earliest(d) is not None)
    print(f"{len(rows)} curated rows, {args.deployments} deployments ({matched} with a matching row)")
    print(f"assess without curated dates: {plain:.3f} s ({plain / args.deployments * 1e6:.1f} us each)")
    print(f"assess with curated dates:    {curated:.3f} s ({curated / args.deployments * 1e6:.1f} us each)")
    print(f"ratio: {curated / plain:.2f}x")


if __name__ == "__main__":
    main()
