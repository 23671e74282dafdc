"""What `retirewatch poll` costs next to the floor, measured side by side in one run against one ARM emulator.

Run:  .venv/bin/python bench/poll.py                      # 10k deployments (100 subs x 5 accounts x 20), 20 ms
      .venv/bin/python bench/poll.py --scale 1000,10000,100000   # also how time and memory grow
      .venv/bin/python bench/poll.py --database-url postgresql+psycopg://...  # a scratch PostgreSQL database

Everything runs as a separate process, as a user would run it: the ARM emulator (``python -m daemon.emulators.arm
serve``, ``--latency`` per request, ARM's read throttling on), ``retirewatch poll`` with a config file pointing at
it (first poll into an empty database, then an unchanged re-poll), and beside them:

* start-up: ``retirewatch --help`` (interpreter + the CLI's imports);
* the leanest client: http.client, 32 keep-alive connections in threads, exactly the minimal request set, every
  body JSON-parsed, nothing stored; "floor" = start-up + its time (or the latency bound, if larger);
* the sequential SDK loop: azure-mgmt-cognitiveservices' client listing accounts, location models, deployments
  and account models one call after another, as a user scripts it.

Peak RSS is each process's own (``os.wait4``); requests are counted by the emulator. The figures are ratios from
one run: absolute seconds depend on the machine (and on what else it runs).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
API_VERSION = "2025-09-01"
PROVIDER = "/providers/Microsoft.CognitiveServices"
LOCATIONS = ("eastus", "swedencentral", "westeurope")
CONFLICTS = ("IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT", "AZURE_CLIENT_ID",
             "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE",
             "AZURE_USERNAME", "AZURE_PASSWORD", "RETIREWATCH_CONFIG", "RETIREWATCH_DATABASE_URL")


# -- the estate ------------------------------------------------------------------------------------------------------

def estate(subscriptions: int, accounts: int, deployments: int) -> dict[str, Any]:
    """``subscriptions`` x ``accounts`` x ``deployments``, built from the demo estate's deployments and catalog.
    Accounts spread over three regions; the last account of every subscription also runs a fine-tuned model, so
    its own model list is part of the minimal request set."""
    demo = json.loads((ROOT / "daemon/emulators/estates/demo.json").read_text())
    catalog = demo["locationModels"]
    known = {(m["model"]["format"], m["model"]["name"], m["model"]["version"])
             for models in catalog.values() for m in models}
    templates: list[dict[str, Any]] = []
    fine_tune: tuple[dict[str, Any], list[Any]] | None = None
    for sub in demo["subscriptions"]:
        for account in sub["accounts"]:
            for deployment in account.get("deployments", []):
                model = deployment["properties"]["model"]
                if (model["format"], model["name"], model["version"]) in known:
                    templates.append(deployment)
                elif account.get("models"):
                    fine_tune = (deployment, account["models"])
    assert fine_tune is not None
    subs = []
    for s in range(subscriptions):
        accts = []
        for a in range(accounts):
            deps = [dict(templates[(s + a + d) % len(templates)], name=f"dep-{d:04d}") for d in range(deployments)]
            account: dict[str, Any] = {"name": f"acct-{s:04d}-{a:03d}", "resourceGroup": f"rg-{a % 4}",
                                       "kind": "AIServices", "location": LOCATIONS[(s + a) % len(LOCATIONS)],
                                       "tags": {"team": f"team-{a % 7}"}, "deployments": deps}
            if a == accounts - 1:
                deps[-1] = dict(fine_tune[0], name=deps[-1]["name"])
                account["models"] = fine_tune[1]
            accts.append(account)
        subs.append({"subscriptionId": f"{s:08d}-0000-4000-8000-000000000000", "displayName": f"sub-{s}",
                     "accounts": accts})
    return {"locationModels": catalog, "subscriptions": subs}


def minimal_requests(scenario: dict[str, Any], page_size: int) -> int:
    """The fewest ARM requests that read the estate: the subscription list, each subscription's accounts, each
    account's deployments, each subscription's region catalogs, and the own model list of accounts running a model
    their region's catalog does not list (every list in pages of ``page_size``)."""
    def pages(n: int) -> int:
        return max(1, -(-n // page_size))

    catalog = scenario["locationModels"]
    known = {loc: {(m["model"]["format"], m["model"]["name"], m["model"]["version"]) for m in models}
             for loc, models in catalog.items()}
    total = pages(len(scenario["subscriptions"]))
    for sub in scenario["subscriptions"]:
        total += pages(len(sub["accounts"]))
        total += sum(pages(len(catalog[loc])) for loc in {a["location"] for a in sub["accounts"]})
        for account in sub["accounts"]:
            total += pages(len(account["deployments"]))
            if any((d["properties"]["model"]["format"], d["properties"]["model"]["name"],
                    d["properties"]["model"]["version"]) not in known[account["location"]]
                   for d in account["deployments"]):
                total += pages(len(account.get("models", [])))
    return total


# -- the emulator, in its own process ----------------------------------------------------------------------------------

class Emulator:
    def __init__(self, scenario_file: Path, latency: float, page_size: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daemon.emulators.arm", "serve", "--scenario", str(scenario_file), "--latency",
             str(latency), "--page-size", str(page_size), "--throttle"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.process.stdout is not None
        self.info: dict[str, Any] = json.loads(self.process.stdout.readline())

    def ask(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        answer: dict[str, Any] = json.loads(self.process.stdout.readline())
        return answer

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in CONFLICTS}
        env.update(self.info["identity_env"])
        return env

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


@dataclass
class Run:
    seconds: float
    cpu: float  # user + system seconds
    rss_mb: float
    requests: int
    output: str


def measure(command: Sequence[str], env: dict[str, str], emulator: Emulator | None = None) -> Run:
    """Wall time, CPU and peak RSS of one process, and the ARM requests it made. Peak RSS and CPU come from GNU
    time where it is installed: a child forked from this (large) process would count this process's pages in its
    own peak before it execs; ``os.wait4`` otherwise."""
    if emulator is not None:
        emulator.ask("clear")
    gnu_time = Path("/usr/bin/time")
    with tempfile.TemporaryFile("w+") as out, tempfile.NamedTemporaryFile("r") as usage_file:
        wrapped = [str(gnu_time), "-f", "%M %U %S", "-o", usage_file.name, *command] if gnu_time.exists() \
            else list(command)
        started = time.perf_counter()
        process = subprocess.Popen(wrapped, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read()
        rss_kb, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
        if gnu_time.exists():
            fields = usage_file.read().split()
            rss_kb, cpu = int(fields[-3]), float(fields[-2]) + float(fields[-1])
    if process.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}:\n{output}")
    requests = emulator.ask("requests")["requests"] if emulator is not None else 0
    return Run(seconds, cpu, rss_kb / 1024, requests, output)


# -- the leanest client (run as `bench/poll.py floor`) -----------------------------------------------------------------

def floor_client(base_url: str, ca_bundle: str, connections: int, metrics: bool) -> None:
    """Read the minimal request set with ``connections`` keep-alive HTTPS connections; print seconds and counts.
    ``metrics``: also each account's usage request, the poll's own query."""
    from datetime import UTC, datetime, timedelta

    sys.path.insert(0, str(ROOT))
    from daemon.collect.usage import metrics_path, metrics_query

    now = datetime.now(UTC)
    usage_query = urllib.parse.urlencode(metrics_query(now.date() - timedelta(days=29), now))
    started = time.perf_counter()
    endpoint, header = os.environ["IDENTITY_ENDPOINT"], os.environ["IDENTITY_HEADER"]
    query = urllib.parse.urlencode({"api-version": "2019-08-01", "resource": base_url})
    with urllib.request.urlopen(urllib.request.Request(f"{endpoint}?{query}",
                                                       headers={"X-IDENTITY-HEADER": header})) as answer:
        token = json.loads(answer.read())["access_token"]
    host = urllib.parse.urlsplit(base_url)
    context = ssl.create_default_context(cafile=ca_bundle)
    local = threading.local()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    counts = {"requests": 0, "items": 0}
    lock = threading.Lock()

    def get_all(path: str) -> list[Any]:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = http.client.HTTPSConnection(host.hostname, host.port, context=context)
        url: str | None = f"{path}?{usage_query}" if path.endswith("/metrics") else f"{path}?api-version={API_VERSION}"
        items: list[Any] = []
        while url:
            connection.request("GET", url, headers=headers)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"{url}: {response.status} {body[:200]!r}")
            page = json.loads(body)
            items.extend(page["value"])
            link = page.get("nextLink")
            url = urllib.parse.urlsplit(link)._replace(scheme="", netloc="").geturl() if link else None
            with lock:
                counts["requests"] += 1
        with lock:
            counts["items"] += len(items)
        return items

    def key(model: dict[str, Any]) -> tuple[str, str, str]:
        return (model.get("format") or "").casefold(), (model.get("name") or "").casefold(), \
            (model.get("version") or "").casefold()

    # Every task runs on one pool of ``connections`` threads (one connection each) and never waits on another:
    # what a list enables is submitted from its completion callback.
    pool = ThreadPoolExecutor(connections)
    outstanding = [0]
    done = threading.Event()
    errors: list[BaseException] = []

    def task(path: str, then: Any) -> None:
        with lock:
            outstanding[0] += 1

        def finished(future: Future[list[Any]]) -> None:
            try:
                then(future.result())
            except BaseException as exc:
                errors.append(exc)
            with lock:
                outstanding[0] -= 1
                if outstanding[0] == 0:
                    done.set()

        pool.submit(get_all, path).add_done_callback(finished)

    def subscription(sub_id: str) -> None:
        state: dict[str, Any] = {"left": 0, "known": {}, "deployments": []}

        def step_done() -> None:
            with lock:
                state["left"] -= 1
                last = state["left"] == 0
            if last:  # every catalog and deployment list of the subscription is in: account models if needed
                for account, listed in state["deployments"]:
                    if any(key(d["properties"]["model"]) not in state["known"][account["location"]] for d in listed):
                        task(f"{account['id']}/models", lambda items: None)

        def accounts_listed(accounts: list[Any]) -> None:
            locations = sorted({a["location"] for a in accounts})
            state["left"] = len(locations) + len(accounts)
            for loc in locations:
                def catalog(items: list[Any], loc: str = loc) -> None:
                    state["known"][loc] = {key(m["model"]) for m in items}
                    step_done()
                task(f"/subscriptions/{sub_id}{PROVIDER}/locations/{loc}/models", catalog)
            for account in accounts:
                if metrics:
                    task(metrics_path(account["id"]), lambda items: None)

                def deployments(items: list[Any], account: Any = account) -> None:
                    state["deployments"].append((account, items))
                    step_done()
                task(f"{account['id']}/deployments", deployments)

        task(f"/subscriptions/{sub_id}{PROVIDER}/accounts", accounts_listed)

    task("/subscriptions", lambda subs: [subscription(s["subscriptionId"]) for s in subs])
    done.wait()
    pool.shutdown()
    if errors:
        raise errors[0]
    print(json.dumps({"seconds": time.perf_counter() - started, **counts}))


# -- the sequential SDK loop (run as `bench/poll.py sequential`) -----------------------------------------------------

def sequential_sdk(base_url: str, ca_bundle: str) -> None:
    from azure.identity import ManagedIdentityCredential
    from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
    from azure.mgmt.resource.subscriptions import SubscriptionClient

    started = time.perf_counter()
    credential = ManagedIdentityCredential()
    options: dict[str, Any] = {"base_url": base_url, "credential_scopes": [f"{base_url}/.default"],
                               "connection_verify": ca_bundle}
    deployments = 0
    for sub in SubscriptionClient(credential, **options).subscriptions.list():
        client = CognitiveServicesManagementClient(credential, sub.subscription_id, **options)
        accounts = list(client.accounts.list())
        catalogs = {loc: {(m.model.format, m.model.name, m.model.version) for m in client.models.list(loc)}
                    for loc in sorted({a.location for a in accounts})}
        for account in accounts:
            group = account.id.split("/")[4]
            listed = list(client.deployments.list(group, account.name))
            deployments += len(listed)
            if any((d.properties.model.format, d.properties.model.name, d.properties.model.version)
                   not in catalogs[account.location] for d in listed):
                list(client.accounts.list_models(group, account.name))
    print(json.dumps({"seconds": time.perf_counter() - started, "deployments": deployments}))


# -- the comparison --------------------------------------------------------------------------------------------------

def retirewatch() -> list[str]:
    found = shutil.which("retirewatch", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "daemon.cli"]


def write_config(folder: Path, emulator: Emulator, database_url: str, usage: bool) -> Path:
    config = folder / "retirewatch.toml"
    config.write_text(f'[database]\nurl = "{database_url}"\n\n[azure]\nresource_manager_endpoint = '
                      f'"{emulator.info["base_url"]}"\nca_bundle = "{emulator.info["ca_bundle"]}"\n\n'
                      f'[usage]\nenabled = {"true" if usage else "false"}\n')
    return config


def reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


@dataclass
class Floor:
    """The leanest client's run of one request set, and what the floor of a poll reading that set is."""

    minimal: int
    client: float  # seconds, as the client measured itself (its own start-up excluded)
    run: Run
    latency_bound: float  # the minimal set's round trips over 32 connections

    def seconds(self, startup: float) -> float:
        return startup + max(self.client, self.latency_bound)


@dataclass
class Figures:
    deployments: int
    startup: float
    first: Run
    again: Run
    first_floor: Floor  # what the first poll reads: the inventory, and each account's usage when [usage] is on
    again_floor: Floor  # what an unchanged re-poll reads: the inventory (usage was read today already)
    sequential: Run | None

    def x_floor(self, run: Run, floor: Floor) -> float:
        return run.seconds / floor.seconds(self.startup)


def compare(shape: tuple[int, int, int], args: argparse.Namespace, scratch: Path, *, sequential: bool,
            repeat: int) -> Figures:
    scenario = estate(*shape)
    scenario_file = scratch / f"estate-{'x'.join(map(str, shape))}.json"
    scenario_file.write_text(json.dumps(scenario))
    inventory = minimal_requests(scenario, args.page_size)
    accounts = sum(len(sub["accounts"]) for sub in scenario["subscriptions"])
    deployments = shape[0] * shape[1] * shape[2]
    emulator = Emulator(scenario_file, args.latency, args.page_size)
    try:
        env = emulator.env()
        startup = min(measure([*retirewatch(), "--help"], env).seconds for _ in range(3))
        base, ca = emulator.info["base_url"], emulator.info["ca_bundle"]
        firsts, agains = [], []
        floors: dict[bool, list[Run]] = {False: [], True: []}
        for attempt in range(repeat):
            if args.database_url:
                reset_postgres(args.database_url)
                url = args.database_url
            else:
                url = f"sqlite:///{scratch}/poll-{deployments}-{attempt}.sqlite"
            config = write_config(scratch, emulator, url, args.usage)
            command = [*retirewatch(), "--config", str(config), "poll"]
            if args.database_url:  # PostgreSQL is migrated on purpose, not by the poll
                measure([*retirewatch(), "--config", str(config), "db", "upgrade"], env)
            for metrics in sorted({False, args.usage}):
                floors[metrics].append(measure([sys.executable, __file__, "floor", "--base-url", base, "--ca-bundle",
                                                ca, *(["--metrics"] if metrics else [])], env, emulator))
            firsts.append(measure(command, env, emulator))
            agains.append(measure(command, env, emulator))
            for run in (firsts[-1], agains[-1]):
                if f"{deployments} deployments" not in run.output:
                    raise SystemExit(f"the poll did not read every deployment:\n{run.output}")
        sequential_run = None
        if sequential:
            sequential_run = measure([sys.executable, __file__, "sequential", "--base-url", base, "--ca-bundle", ca],
                                     env, emulator)
    finally:
        emulator.close()

    def floor(metrics: bool) -> Floor:
        minimal = inventory + (accounts if metrics else 0)
        run = _median(floors[metrics], key=_client_seconds)
        return Floor(minimal, _client_seconds(run), run, -(-minimal // 32) * args.latency)

    return Figures(deployments, startup, _median(firsts), _median(agains), floor(args.usage), floor(False),
                   sequential_run)


def _client_seconds(run: Run) -> float:
    """The leanest client's own time: the last line it printed."""
    return float(json.loads(run.output.strip().splitlines()[-1])["seconds"])


def _median(runs: list[Run], key: Callable[[Run], float] = lambda r: r.seconds) -> Run:
    return sorted(runs, key=key)[len(runs) // 2]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    for name in ("floor", "sequential"):
        internal = sub.add_parser(name)
        internal.add_argument("--base-url", required=True)
        internal.add_argument("--ca-bundle", required=True)
        internal.add_argument("--connections", type=int, default=32)
        internal.add_argument("--metrics", action="store_true", help="also each account's usage request")
    parser.add_argument("--deployments", type=int, default=10_000, help="the main comparison's estate size")
    parser.add_argument("--scale", default="", help="comma-separated sizes for the growth table, e.g. 1000,100000")
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="runs of poll and floor (the median is shown)")
    parser.add_argument("--no-sequential", action="store_true")
    parser.add_argument("--usage", action="store_true",
                        help="read usage as by default ([usage] on): the first poll also reads each account's "
                             "metrics and stores its daily figures, and its floor reads the metrics too")
    parser.add_argument("--database-url", help="a scratch PostgreSQL database (its public schema is dropped and "
                        "migrated again before each first poll)")
    args = parser.parse_args(argv)
    if args.command == "floor":
        floor_client(args.base_url, args.ca_bundle, args.connections, args.metrics)
        return
    if args.command == "sequential":
        sequential_sdk(args.base_url, args.ca_bundle)
        return

    def shape(n: int) -> tuple[int, int, int]:
        """Subscriptions x 5 accounts x 20 deployments up to 100k (1,000 subscriptions); beyond, more deployments
        per account (the emulator looks subscriptions up one by one)."""
        subscriptions = max(1, min(1000, n // 100))
        return subscriptions, 5, max(1, n // (subscriptions * 5))

    print(f"machine: {machine()}; latency {args.latency * 1000:g} ms per ARM request; database "
          f"{'PostgreSQL' if args.database_url else 'SQLite'}; usage "
          + ("read (each account once a UTC day: by the first poll)" if args.usage else
             "off ([usage] enabled = false)"))
    with tempfile.TemporaryDirectory(prefix="retirewatch-bench-") as folder:
        scratch = Path(folder)
        main_run = compare(shape(args.deployments), args, scratch, sequential=not args.no_sequential,
                           repeat=args.repeat)
        f = main_run
        subs, accounts, per_account = shape(args.deployments)
        print(f"\n{f.deployments} deployments ({subs} subscriptions x {accounts} accounts x {per_account}), "
              f"minimal request set {f.first_floor.minimal} (first poll), {f.again_floor.minimal} (re-poll)")
        print(f"{'':36} {'seconds':>8} {'x floor':>8} {'requests':>9} {'x minimal':>10} {'peak RSS MB':>12} "
              f"{'CPU s':>6}")

        def line(name: str, seconds: float, floor: Floor, run: Run | None = None) -> None:
            req = f"{run.requests:>9} {run.requests / floor.minimal:>10.2f} {run.rss_mb:>12.0f} {run.cpu:>6.2f}" \
                if run is not None else ""
            print(f"{name:36} {seconds:>8.2f} {seconds / floor.seconds(f.startup):>8.2f} {req}".rstrip())

        floors = [("", f.first_floor)] if f.first_floor is f.again_floor or not args.usage else \
            [(" (first)", f.first_floor), (" (re-poll)", f.again_floor)]
        line("retirewatch poll (first)", f.first.seconds, f.first_floor, f.first)
        line("retirewatch poll (unchanged)", f.again.seconds, f.again_floor, f.again)
        for label, floor in floors:
            line(f"floor{label} = start-up + leanest", floor.seconds(f.startup), floor)
            line("  start-up (retirewatch --help)", f.startup, floor)
            line("  leanest client (32 connections)", floor.client, floor, floor.run)
            line("  latency bound (minimal / 32)", floor.latency_bound, floor)
        if f.sequential is not None:
            line("sequential SDK loop", f.sequential.seconds, f.again_floor, f.sequential)
            print(f"\npoll vs sequential SDK loop: {f.sequential.seconds / f.first.seconds:.1f}x faster (first), "
                  f"{f.sequential.seconds / f.again.seconds:.1f}x (unchanged)")
        print(f"poll vs floor: {f.x_floor(f.first, f.first_floor):.2f}x (first), "
              f"{f.x_floor(f.again, f.again_floor):.2f}x (unchanged)")
        print("last poll said: " + f.again.output.strip().splitlines()[0])

        sizes = [int(n) for n in args.scale.split(",") if n.strip()]
        if sizes:
            print(f"\n{'deployments':>11} {'first s':>8} {'again s':>8} {'floor s':>8} {'x floor':>8} "
                  f"{'requests':>9} {'x min':>6} {'RSS MB first':>13} {'RSS MB again':>13} {'CPU s first':>12} "
                  f"{'CPU s again':>12}")
            for n in sizes:
                g = main_run if n == args.deployments else compare(shape(n), args, scratch, sequential=False,
                                                                   repeat=1)
                print(f"{g.deployments:>11} {g.first.seconds:>8.2f} {g.again.seconds:>8.2f} "
                      f"{g.first_floor.seconds(g.startup):>8.2f} {g.x_floor(g.first, g.first_floor):>8.2f} "
                      f"{g.first.requests:>9} {g.first.requests / g.first_floor.minimal:>6.2f} "
                      f"{g.first.rss_mb:>13.0f} {g.again.rss_mb:>13.0f} {g.first.cpu:>12.2f} {g.again.cpu:>12.2f}",
                      flush=True)

if __name__ == "__main__":
    main()
