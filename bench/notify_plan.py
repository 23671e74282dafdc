"""What planning and queueing the Slack alerts costs: statements and seconds, for 10k and 100k deployments.

Run: .venv/bin/python bench/notify_plan.py [--sizes 10000 100000] [--due 0.7] [--databases sqlite postgresql]
     [--modes grouped one-by-one] [--postgres-admin-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Each estate is written straight into a fresh database through the store's own write path
(``InventoryStore.record``, one transaction per subscription of 10,000 deployments), spread over 40 team channels
(account tags) and five model versions: four retire within 90 days (so ``--due`` of the deployments are in an
alerting stage; about 44 per team and retiring version), one has no date. Then the planning step of ``retirewatch
notify`` (``plan_due``: evaluate every deployment, decide, write the outbox in one transaction; no Slack) runs
three times:

- ``first``: nothing told yet; every due deployment gets its first alert (its thread opens);
- ``again``: the same instant; must queue nothing;
- ``next day``: one day later, everything queued having been delivered in between, every due deployment is a
  stage further (replies and first-message edits).

Each in two modes: ``grouped`` (the default ``slack.group_min`` 5: one thread per team and version) and
``one-by-one`` (``group_min`` beyond any group: a thread per deployment, the most messages planning can meet).

Statements are counted with a SQLAlchemy ``before_cursor_execute`` listener on the engine; ``seconds`` is wall
time, ``cpu s`` this process's CPU time (on a busy machine the steadier of the two; the database server's work is
not in it). Prints figures from one run; it is not a test. Absolute seconds depend on the machine: compare ratios
from one run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url

from daemon.clock import FixedClock
from daemon.config import Config, parse_config
from daemon.notify.run import plan_due
from daemon.poll import observe
from daemon.records import Account, CatalogModel, Deployment, Subscription, SubscriptionInventory
from daemon.store import database
from daemon.store.inventory import InventoryStore

T0 = date(2026, 3, 2)
TEAMS = 40
PER_SUBSCRIPTION = 10_000
PER_ACCOUNT = 100
MODES = {"grouped": None, "one-by-one": 1_000_000}  # slack.group_min: the default, or beyond any group
# (model, version, days from T0 to retirement): notice, warning, urgent, critical@7 on T0; each a stage further
# the next day (warning, urgent, critical@7, critical@1).
DUE_MODELS = (("gpt-4o", "2024-05-13", 31), ("gpt-4o-mini", "2024-07-18", 15), ("o1", "2024-12-17", 8),
              ("dall-e-3", "3.0", 2))
SAFE_MODEL = ("gpt-5.1", "2025-11-13")


def catalog() -> list[CatalogModel]:
    entries = [CatalogModel(scope="location:eastus", format="OpenAI", name=name, version=version,
                            lifecycle_status="GenerallyAvailable", inference_retirement=T0 + timedelta(days=days),
                            deprecation_status="Planned")
               for name, version, days in DUE_MODELS]
    entries.append(CatalogModel(scope="location:eastus", format="OpenAI", name=SAFE_MODEL[0], version=SAFE_MODEL[1],
                                is_default_version=True, lifecycle_status="GenerallyAvailable"))
    return entries


def inventories(size: int, due: float) -> Iterator[SubscriptionInventory]:
    """``size`` deployments, ``PER_SUBSCRIPTION`` per subscription, ``PER_ACCOUNT`` per account; deployment i of an
    account is due when i < due * PER_ACCOUNT (on one of the four retiring versions), else on the safe version."""
    due_per_account = round(due * PER_ACCOUNT)
    for s in range(max(1, size // PER_SUBSCRIPTION)):
        sub_id = f"{s:08d}-0000-4000-8000-000000000000"
        inventory = SubscriptionInventory(subscription=Subscription(sub_id, f"sub-{s}", "Enabled"), accounts=[],
                                          catalog=catalog(), catalog_scopes_read={"location:eastus"})
        assert inventory.accounts is not None
        for a in range(min(size, PER_SUBSCRIPTION) // PER_ACCOUNT):
            name = f"acct-{s}-{a}"
            account_id = f"/subscriptions/{sub_id}/resourceGroups/rg-{a % 10}/providers/" \
                         f"Microsoft.CognitiveServices/accounts/{name}"
            team = (s * 1000 + a) % TEAMS
            inventory.accounts.append(Account(id=account_id, subscription_id=sub_id, resource_group=f"rg-{a % 10}",
                                              name=name, kind="OpenAI", location="eastus",
                                              tags={"retirewatch-channel": f"#team-{team:02d}"}))
            deployments = []
            for d in range(PER_ACCOUNT):
                model, version = DUE_MODELS[d % len(DUE_MODELS)][:2] if d < due_per_account else SAFE_MODEL
                deployments.append(Deployment(
                    id=f"{account_id}/deployments/dep-{d:03d}", account_id=account_id, subscription_id=sub_id,
                    resource_group=f"rg-{a % 10}", account_name=name, location="eastus", name=f"dep-{d:03d}",
                    model_format="OpenAI", model_name=model, model_version=version, sku_name="Standard",
                    sku_capacity=10, upgrade_option="NoAutoUpgrade", provisioning_state="Succeeded"))
            inventory.deployments[account_id] = deployments
        yield inventory


def build(engine: Engine, size: int, due: float) -> float:
    store = InventoryStore(database.session_factory(engine))
    started = time.perf_counter()
    now = datetime(T0.year, T0.month, T0.day, 5, 0, tzinfo=UTC)
    poll_id = store.start_poll(now)
    for inventory in inventories(size, due):
        store.record(poll_id, now, inventory, observe(inventory))
    store.finish_poll(poll_id, now, status="ok", counts={"deployments": size}, failures=[])
    return time.perf_counter() - started


class Statements:
    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        self.count += 1


@dataclass
class Figure:
    label: str
    statements: int
    seconds: float
    cpu: float  # this process's CPU seconds (the database server's own work is not in it)
    queued: int


def plan_once(engine: Engine, config: Config, now: datetime, counter: Statements, label: str) -> Figure:
    sessions = database.session_factory(engine)
    before = counter.count
    started, cpu = time.perf_counter(), time.process_time()
    with sessions.begin() as session:
        report = plan_due(session, config, FixedClock(now))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return Figure(label, counter.count - before, seconds, cpu, sum(report.queued.values()))


def delivered(engine: Engine, now: datetime) -> None:
    """What delivery would have recorded: every queued message sent, every thread's first message posted."""
    with engine.begin() as connection:
        connection.execute(text("UPDATE alerts SET status = 'sent', sent_at = :now, channel_id = 'C0BENCH', "
                                "ts = '1700000000.' || id WHERE status = 'pending'"), {"now": now})
        connection.execute(text("UPDATE alert_threads SET channel_id = 'C0BENCH', parent_ts = a.ts FROM alerts a "
                                "WHERE a.thread_id = alert_threads.id AND a.is_parent "
                                "AND alert_threads.parent_ts IS NULL"))


@contextmanager
def scratch(kind: str, admin_url: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{directory}/bench.sqlite"
        return
    import psycopg

    libpq = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"retirewatch_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(libpq, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(libpq, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench(kind: str, size: int, due: float, admin_url: str, group_min: int | None) -> tuple[float, list[Figure]]:
    """Build the estate in a fresh database, then plan three times; (seconds to build, figures)."""
    with scratch(kind, admin_url) as url:
        engine = database.make_engine(url)
        database.upgrade(engine)
        built = build(engine, size, due)
        slack: dict[str, Any] = {"default_channel": "#ml-platform", "fallback_channel": "#retirewatch-ops"}
        if group_min is not None:
            slack["group_min"] = group_min
        config = parse_config({"database": {"url": url}, "slack": slack}, "<bench>")
        counter = Statements(engine)
        t0 = datetime(T0.year, T0.month, T0.day, 6, 0, tzinfo=UTC)
        figures = [plan_once(engine, config, t0, counter, "first"),
                   plan_once(engine, config, t0 + timedelta(minutes=5), counter, "again")]
        delivered(engine, t0 + timedelta(minutes=10))
        figures.append(plan_once(engine, config, t0 + timedelta(days=1), counter, "next day"))
        engine.dispose()
        return built, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--due", type=float, default=0.7, help="share of deployments in an alerting stage")
    parser.add_argument("--databases", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"])
    parser.add_argument("--postgres-admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--modes", nargs="+", choices=tuple(MODES), default=list(MODES))
    args = parser.parse_args()
    print(f"{'database':<11} {'mode':<10} {'deployments':>11} {'due':>7} {'run':<9} {'statements':>10} "
          f"{'seconds':>8} {'cpu s':>6} {'queued':>7} {'stmts/due':>9}", flush=True)
    for size in args.sizes:
        for kind in args.databases:
            for mode in args.modes:
                built, figures = bench(kind, size, args.due, args.postgres_admin_url, MODES[mode])
                due = round(size * args.due)
                for figure in figures:
                    print(f"{kind:<11} {mode:<10} {size:>11} {due:>7} {figure.label:<9} {figure.statements:>10} "
                          f"{figure.seconds:>8.2f} {figure.cpu:>6.2f} {figure.queued:>7} "
                          f"{figure.statements / due:>9.3f}")
                print(f"{'':<11} (estate written through InventoryStore.record in {built:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
