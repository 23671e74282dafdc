"""How the estate is read for a poll: subscriptions finish one after another, and the reading process never waits
for the storing one (real ARM emulator over HTTPS, real pipes)."""

from __future__ import annotations

import contextlib
import os
import pickle
import threading
import time
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from daemon.collect.azure import AzureClients
from daemon.collect.inventory import InventoryCollector
from daemon.config import Config, parse_config
from daemon.emulators.arm import ArmEmulator, load_scenario
from daemon.poll import _read_into, _Spool, _StorerGone
from daemon.records import SubscriptionInventory
from tests.conftest import TODAY
from tests.integration.world import sign_in_to

SUBSCRIPTIONS = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(40)]


def estate(deployments: int) -> dict[str, Any]:
    def deployment(n: int) -> dict[str, Any]:
        return {"name": f"dep-{n:03d}", "sku": {"name": "GlobalStandard", "capacity": 10},
                "properties": {"model": {"format": "OpenAI", "name": "gpt-4o", "version": "2024-11-20"},
                               "versionUpgradeOption": "OnceNewDefaultVersionAvailable",
                               "provisioningState": "Succeeded"}}

    return {"locationModels": {"eastus": [{"kind": "OpenAI", "skuName": "S0", "model": {
                "format": "OpenAI", "name": "gpt-4o", "version": "2024-11-20",
                "deprecation": {"inference": "{{today+200}}T00:00:00Z"}}}]},
            "subscriptions": [{"subscriptionId": sub, "displayName": f"sub {i}", "accounts": [
                {"name": f"acct-{i}", "resourceGroup": "rg", "kind": "OpenAI", "location": "eastus",
                 "deployments": [deployment(n) for n in range(deployments)]}]}
                for i, sub in enumerate(SUBSCRIPTIONS)]}


@pytest.fixture
def arm(monkeypatch: pytest.MonkeyPatch) -> Iterator[ArmEmulator]:
    with ArmEmulator(load_scenario(estate(50), TODAY), page_size=100) as emulator:
        sign_in_to(emulator, monkeypatch)
        yield emulator


def config_for(arm: ArmEmulator, **azure: Any) -> Config:
    return parse_config({"azure": {"resource_manager_endpoint": arm.base_url, "ca_bundle": arm.ca_bundle_path,
                                   "max_retries": 0, "timeout_seconds": 10, **azure},
                         "usage": {"enabled": False}}, "<test>")


@contextlib.contextmanager
def one_worker_collection(monkeypatch: pytest.MonkeyPatch
                          ) -> Iterator[tuple[ArmEmulator, Generator[SubscriptionInventory, None, None]]]:
    """The estate of 40 subscriptions read by one worker from an emulator that takes 0.1 s per answer (so the
    order of requests is the pool's, not the machine's), as the collector's generator."""
    with ArmEmulator(load_scenario(estate(5), TODAY), latency=0.1) as arm:
        sign_in_to(arm, monkeypatch)
        config = config_for(arm, max_concurrency=1)
        clients = AzureClients(config.azure)
        collector = InventoryCollector(clients, config.azure)
        inventories = collector.collect(collector.subscriptions())
        try:
            yield arm, inventories
        finally:
            inventories.close()
            clients.close()


def test_the_first_subscription_is_handed_on_before_the_others_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """One worker, four subscriptions open at once: first-come order lists the accounts of all four before the first
    one's deployments; ranked by place, the first subscription is read whole first. (At most one task of a later
    subscription slips in: the worker that lists the first one's accounts takes the next task before the first
    one's deployment lists are queued. Every answer takes 0.1 s, so nothing else can.)"""
    with one_worker_collection(monkeypatch) as (arm, inventories):
        first = next(inventories)
        others = sum(arm.count(f"/subscriptions/{sub}/") for sub in SUBSCRIPTIONS[1:])
        assert first.subscription.subscription_id == SUBSCRIPTIONS[0]
        assert first.failures == [] and len(first.deployments[first.accounts[0].id]) == 5  # type: ignore[index]
        assert others <= 1, f"{others} requests for later subscriptions before the first was handed on"
        assert next(inventories).subscription.subscription_id == SUBSCRIPTIONS[1]


def test_a_bug_in_a_task_reaches_the_caller_instead_of_hanging_the_poll(arm: ArmEmulator,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Outcomes are taken in on the workers: an error that is not Azure's (a bug in parsing) must still end
    the collection with that error, not leave the caller waiting for a subscription that never finishes."""
    import daemon.collect.inventory as inventory_module

    def broken(raw: Any, **_: Any) -> Any:
        raise RuntimeError("a bug in parsing")

    monkeypatch.setattr(inventory_module, "parse_deployment", broken)
    config = config_for(arm)
    clients = AzureClients(config.azure)
    collector = InventoryCollector(clients, config.azure)
    outcome: list[BaseException | None] = []

    def collect() -> None:
        try:
            list(collector.collect(collector.subscriptions()))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    reading = threading.Thread(target=collect, daemon=True)
    reading.start()
    reading.join(30)
    clients.close()
    assert not reading.is_alive(), "the collection hung after a task raised"
    assert isinstance(outcome[0], RuntimeError) and str(outcome[0]) == "a bug in parsing"


def test_closing_the_collection_early_starts_no_more_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller stops after the first subscription (a poll asked to stop). With one worker, the second
    subscription's account list is in flight then: it finishes, but the deployment and catalog lists it would
    start are not started, and nothing more reaches Azure."""
    with one_worker_collection(monkeypatch) as (arm, inventories):
        next(inventories)
        before = arm.count()
        inventories.close()  # waits for the list in flight (it may reach Azure only now)
        time.sleep(0.3)
        after = arm.count() - before
        assert after <= 1, f"{after} requests after the close: more than the one in flight"


def test_reading_goes_on_while_the_storing_process_takes_nothing(arm: ArmEmulator) -> None:
    """The pipe holds 64 KiB; the estate pickled is several times that. Nothing reads the pipe until every
    request has been made: the reading side spools what it read instead of stopping."""
    read_fd, write_fd = os.pipe()
    failures: list[BaseException] = []

    def read() -> None:
        try:
            with os.fdopen(write_fd, "wb") as out:
                _read_into(out, config_for(arm), None, None)
        except BaseException as exc:
            failures.append(exc)

    reading = threading.Thread(target=read, daemon=True)
    reading.start()
    expected = 1 + 2 * len(SUBSCRIPTIONS) + len(SUBSCRIPTIONS)  # subscriptions; accounts, deployments; catalogs
    deadline = time.monotonic() + 60
    while arm.count() < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert arm.count() == expected, "reading stopped while nobody took what it read"
    messages = []
    with os.fdopen(read_fd, "rb") as pipe:
        while True:
            try:
                messages.append(pickle.load(pipe))
            except EOFError:
                break
    reading.join(10)
    assert not failures
    assert [m[0] for m in messages] == ["listed", *["inventory"] * len(SUBSCRIPTIONS), "done"]
    assert sum(len(m[1].deployments[m[1].accounts[0].id]) for m in messages[1:-1]) == 50 * len(SUBSCRIPTIONS)
    assert messages[-1] == ("done", expected)
    assert sum(len(pickle.dumps(m)) for m in messages) > 4 * 65536


def test_a_full_spool_waits_and_a_closed_pipe_ends_the_reading() -> None:
    read_fd, write_fd = os.pipe()
    out = os.fdopen(write_fd, "wb")
    spool = _Spool(out, limit=200_000)
    blob = b"x" * 150_000
    spool.send("one", blob)  # more than the pipe holds: the writer thread is stuck writing it
    second = threading.Thread(target=spool.send, args=("two", blob), daemon=True)
    second.start()
    second.join(0.3)
    assert second.is_alive(), "past the limit, send waits for the storing side"
    with os.fdopen(read_fd, "rb") as pipe:
        assert pickle.load(pipe) == ("one", blob)
        second.join(10)
        assert not second.is_alive()
        assert pickle.load(pipe) == ("two", blob)
    with pytest.raises(_StorerGone):  # the storing side is gone: the next message cannot reach it
        for _ in range(3):
            spool.send("three", blob)
            time.sleep(0.1)
    out.close()


def test_a_connection_the_server_closed_while_idle_is_replaced_before_it_is_used(arm: ArmEmulator) -> None:
    """ARM's front ends drop idle kept-alive connections without warning. A request written into one would fail
    (the server is gone) and cost a retry; the transport sees the closed socket first and opens a new one."""
    clients = AzureClients(config_for(arm, max_retries=2).azure)
    path = f"/subscriptions/{SUBSCRIPTIONS[0]}/providers/Microsoft.CognitiveServices/accounts"
    try:
        reader = clients.arm()
        arm.faults.hang_up_after(path, times=1)
        assert len(reader.list(path)) == 1
        time.sleep(0.2)  # the close reaches the client's socket
        assert len(reader.list(path)) == 1
        assert clients.requests.count == 2, "no attempt went into the closed connection"
        assert arm.faults.pending() == [] and [r.status for r in arm.requests] == [200, 200]
    finally:
        clients.close()
