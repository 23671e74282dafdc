"""One inventory pass: collect -> (catalog facts per deployment) -> store, one subscription at a time.

The estate is read on a thread of its own (:class:`_Reader`) into a short queue, while this thread stores one
subscription after another. ``retirewatch poll`` starts reading before it even loads the database machinery
(:func:`run_poll_reading_first`), and on Linux reads in a forked child process (:class:`_ForkedReader`), so that
importing the Azure SDK, reading and parsing run on one core while loading SQLAlchemy and writing run on another,
instead of taking turns on one interpreter lock (this module loads the SDK only where the estate is read); the
reading process spools what it read (:class:`_Spool`) rather than wait for the storing one to take it. It forks
only when the process runs no other thread (``RETIREWATCH_POLL_READER``: ``auto``, ``process``, ``thread``), so a
program that embeds a poll among threads reads on a thread. The service and tests, which have their database open,
read on a thread once they hold the poll lock (:func:`run_poll`).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import pickle
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, BinaryIO

from daemon.clock import Clock
from daemon.collect.usage import AnyUsagePlan, DeferredUsagePlan, UsagePlan
from daemon.config import Config
from daemon.lifecycle import CatalogIndex, deployment_retirement
from daemon.records import DeploymentObservation, Failure, Subscription, SubscriptionInventory, location_scope

if TYPE_CHECKING:  # the store loads SQLAlchemy and Alembic: only once the estate is being read; the Azure SDK
    # only where the estate is read (the reading process, or a reading thread)
    from azure.core.credentials import TokenCredential
    from sqlalchemy.orm import Session, sessionmaker

    from daemon.store.inventory import DiedHook, InventoryStore
    from daemon.store.schema import PollRow
    from daemon.usage import UsageRound

log = logging.getLogger(__name__)
LOCK_WAIT_SECONDS = 900.0  # a poll waits this long for another to finish before giving up
WAITED_FOR_LOCK = 0.15  # taking a free lock is quicker; a held one is retried every 0.2 s
# `retirewatch poll` reads in a child process: "auto" (the default) when this process runs no other thread, "process"
# always, "thread" never. A fork copies every lock as it is at that moment: a lock another thread held (the import
# lock, a logging handler's, one inside OpenSSL) would stay held in the child forever.
READER = os.environ.get("RETIREWATCH_POLL_READER", "auto")


@dataclass
class PollReport:
    poll_id: int
    subscriptions: int = 0
    accounts: int = 0
    deployments: int = 0
    catalog_models: int = 0
    events: int = 0
    requests: int = 0
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    stopped: bool = False  # asked to stop between subscriptions (the service shutting down)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.stopped


class SharedPollRunning(Exception):
    """The service's shared poll (its replicas working one unit per subscription) is under way: a poll of its
    own would store reads older than the units' over them, so this one stores nothing."""

    def __init__(self, poll_id: int, recorded: int, total: int) -> None:
        super().__init__(f"poll {poll_id} of the service is under way ({recorded} of {total} subscriptions "
                         "recorded): this poll stores nothing; `retirewatch service` shows its progress")
        self.poll_id, self.recorded, self.total = poll_id, recorded, total


def _refuse_beside_shared_poll(sessions: sessionmaker[Session], config: Config) -> None:
    """Holding the poll lock (the service starts no shared poll meanwhile): raise :class:`SharedPollRunning`
    if one is under way, that is, unfinished while a replica is alive (one that every replica left waits for them
    to come back, and is no reason to refuse)."""
    from datetime import timedelta

    from daemon.store import lease, units

    with sessions() as session:
        running = units.in_flight(session)
        if running and lease.any_alive(session, timedelta(seconds=config.service.lease_seconds)):
            poll = running[-1]
            raise SharedPollRunning(poll.poll_id, poll.done, poll.pending + len(poll.claimed) + poll.done)


class PollInterrupted(KeyboardInterrupt):
    """A poll stopped by Ctrl-C (or SIGTERM, see ``cli``) after it was recorded as started: it is closed as
    ``stopped`` (what was stored stays) instead of being left ``running`` for the next poll to report as died."""

    def __init__(self, report: PollReport, total: int | None) -> None:
        super().__init__()
        self.report, self.total = report, total


def observe(inventory: SubscriptionInventory) -> list[DeploymentObservation]:
    """Attach to each listed deployment what this poll's catalog says about its model."""
    index = CatalogIndex(inventory.catalog)
    observations = []
    for deployments in inventory.deployments.values():
        for deployment in deployments:
            model = index.find(deployment)
            read = inventory.catalog_scopes_read
            # Not found is only "no catalog facts" when both lists that could name it were read.
            catalog_read = model is not None or (
                location_scope(deployment.location) in read and deployment.account_id in read)
            retirement, source = deployment_retirement(deployment, index)
            observations.append(DeploymentObservation(
                deployment=deployment,
                catalog_read=catalog_read,
                retirement_date=retirement,
                retirement_source=source.value if source else None,
                deprecation_status=model.deprecation_status if model else None,
                lifecycle_status=model.lifecycle_status if model else None,
            ))
    return observations


class _Reader:
    """Reads the estate on its own thread: the subscription list, then one :class:`SubscriptionInventory` after
    another into a short queue (the collector keeps a bounded number of subscriptions in flight), so memory holds
    what is being read and stored, never the estate."""

    _DONE = object()

    def __init__(self, config: Config, credential: TokenCredential | None,
                 usage: AnyUsagePlan | None = None) -> None:
        from daemon.collect.azure import AzureClients
        from daemon.collect.inventory import InventoryCollector

        self.clients = AzureClients(config.azure, credential)
        self._usage = usage
        self._collector = InventoryCollector(self.clients, config.azure, usage=usage)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=4)
        self._stop = threading.Event()
        self._listed = threading.Event()
        self._subscriptions: list[Subscription] = []
        self._listing_failure: Failure | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="poll-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from daemon.collect.inventory import CollectError

        try:
            try:
                self._subscriptions = self._collector.subscriptions()
            except CollectError as exc:
                self._listing_failure = Failure(None, "/subscriptions", "list-subscriptions", str(exc))
            self._listed.set()
            inventories = self._collector.collect(self._subscriptions)
            try:
                for inventory in inventories:
                    if not self._put(inventory):
                        return
            finally:
                inventories.close()
            self._put(self._DONE)
        except BaseException as exc:  # handed to the storing thread, which raises it
            self._error = exc
            self._listed.set()
            self._put(self._DONE)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def listed(self) -> tuple[list[Subscription], Failure | None]:
        """The subscriptions to read (waiting for the list), and why the list failed, if it did."""
        self._listed.wait()
        if self._error is not None:
            raise self._error
        return self._subscriptions, self._listing_failure

    def __iter__(self) -> Iterator[SubscriptionInventory]:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                if self._error is not None:
                    raise self._error
                return
            assert isinstance(item, SubscriptionInventory)
            yield item

    def plan_usage(self, plan: UsagePlan | None) -> None:
        """Which accounts' usage this poll reads, once the storing side knows (see :class:`DeferredUsagePlan`)."""
        if isinstance(self._usage, DeferredUsagePlan):
            self._usage.settle(plan)

    def close(self) -> int:
        """Stop reading (what is in flight finishes), close the clients; the number of requests made."""
        self._stop.set()
        self.plan_usage(None)  # workers waiting for a plan that will not come read no usage
        self._thread.join()
        self.clients.close()
        return self.clients.requests.count


class _ForkedReader:
    """:class:`_Reader` in a child process (``os.fork``): reading then runs on a core of its own instead of sharing
    this interpreter's lock with loading the store and writing to it. Each message comes back pickled through a pipe:
    the subscription list, then one inventory after another, then how many requests were made. The usage plan goes
    the other way, through a pipe of its own, once this process has the database open. The child dies with this
    process (``PR_SET_PDEATHSIG``), and when this process stops listening."""

    def __init__(self, config: Config, credential: TokenCredential | None, usage: bool = False) -> None:
        read_fd, write_fd = os.pipe()
        plan_read_fd, plan_write_fd = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: read, send, and leave without running the parent's exit handlers
            os.close(read_fd)
            os.close(plan_write_fd)
            gc.freeze()  # what it inherited stays as it is: no collection walks it (nor copies its pages)
            code = 1
            try:
                _die_with(parent)
                deferred = DeferredUsagePlan() if usage else None
                if deferred is not None:
                    threading.Thread(target=_receive_plan, args=(plan_read_fd, deferred), name="usage-plan",
                                     daemon=True).start()
                else:
                    os.close(plan_read_fd)
                with os.fdopen(write_fd, "wb") as out:
                    _read_into(out, config, credential, deferred)
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        os.close(plan_read_fd)
        self._pid = pid
        self._input = os.fdopen(read_fd, "rb")
        self._plan_output: BinaryIO | None = os.fdopen(plan_write_fd, "wb")
        self._requests = 0
        self._finished = False

    def plan_usage(self, plan: UsagePlan | None) -> None:
        if self._plan_output is None:
            return
        with contextlib.suppress(OSError):  # the child is gone: what it read (or why not) comes through the other pipe
            pickle.dump(plan, self._plan_output, protocol=pickle.HIGHEST_PROTOCOL)
        self._close_plan()

    def _close_plan(self) -> None:
        if self._plan_output is not None:
            with contextlib.suppress(OSError):
                self._plan_output.close()
            self._plan_output = None

    def _receive(self) -> tuple[object, ...]:
        try:
            message: tuple[object, ...] = pickle.load(self._input)
        except EOFError:
            raise RuntimeError("the reading process ended without a word (killed?)") from None
        if message[0] == "error":
            raise RuntimeError(f"reading Azure failed: {message[1]}")
        return message

    def listed(self) -> tuple[list[Subscription], Failure | None]:
        _, subscriptions, failure = self._receive()
        return subscriptions, failure  # type: ignore[return-value]

    def __iter__(self) -> Iterator[SubscriptionInventory]:
        while True:
            message = self._receive()
            if message[0] == "done":
                self._requests = int(message[1])  # type: ignore[call-overload]
                self._finished = True
                return
            assert isinstance(message[1], SubscriptionInventory)
            yield message[1]

    def close(self) -> int:
        if not self._finished:
            os.kill(self._pid, signal.SIGKILL)
        self._close_plan()
        self._input.close()
        os.waitpid(self._pid, 0)
        return self._requests


# What the reading process holds, pickled, for a storing process that is busy (loading SQLAlchemy, creating the
# schema, writing a subscription): about 380 bytes a deployment, so a 10,000-deployment estate is read ahead whole,
# and a larger one in pieces of this size, memory staying flat.
SPOOL_BYTES = 32 * 1024 * 1024


class _StorerGone(Exception):
    """The pipe to the storing process broke: nothing more can reach it."""


class _Spool:
    """Messages for the storing process, pickled at once and written to the pipe by a thread of their own, so
    reading never waits for the storing process to take the last one (it only waits once ``limit`` bytes are held).
    A pipe holds 64 KiB (one subscription or two) and reading stopped each time it was full: the storing process
    starts late (its imports and the database) and stores at its own pace."""

    def __init__(self, out: BinaryIO, limit: int = SPOOL_BYTES) -> None:
        self._out, self._limit = out, limit
        self._held: deque[bytes | None] = deque()
        self._bytes = 0
        self._error: OSError | None = None
        self._changed = threading.Condition()
        self._writer = threading.Thread(target=self._write, name="poll-spool", daemon=True)
        self._writer.start()

    def send(self, *message: object) -> None:
        blob = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with self._changed:
            while self._error is None and self._bytes and self._bytes + len(blob) > self._limit:
                self._changed.wait()
            if self._error is not None:
                raise _StorerGone(self._error)
            self._held.append(blob)
            self._bytes += len(blob)
            self._changed.notify_all()

    def close(self) -> None:
        """Wait until everything sent is written (raising why it could not be)."""
        with self._changed:
            self._held.append(None)
            self._changed.notify_all()
        self._writer.join()
        if self._error is not None:
            raise _StorerGone(self._error)

    def _write(self) -> None:
        while True:
            with self._changed:
                while not self._held:
                    self._changed.wait()
                blob = self._held.popleft()
            if blob is None:
                return
            try:
                self._out.write(blob)
                self._out.flush()
            except OSError as exc:  # the storing process is gone: nothing more can reach it
                with self._changed:
                    self._error = exc
                    self._changed.notify_all()
                return
            with self._changed:
                self._bytes -= len(blob)
                self._changed.notify_all()


def _read_into(out: BinaryIO, config: Config, credential: TokenCredential | None,
               usage: AnyUsagePlan | None) -> None:
    spool = _Spool(out)
    reader = _Reader(config, credential, usage)
    try:
        subscriptions, failure = reader.listed()
        spool.send("listed", subscriptions, failure)
        for inventory in reader:
            spool.send("inventory", inventory)
    except _StorerGone:
        raise
    except BaseException as exc:
        spool.send("error", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        requests = reader.close()
    spool.send("done", requests)
    spool.close()


def _receive_plan(plan_fd: int, deferred: DeferredUsagePlan) -> None:
    """The child's side of the usage plan: whatever arrives, or nothing (the parent closed the pipe first)."""
    plan: UsagePlan | None = None
    try:
        with contextlib.suppress(EOFError, OSError, pickle.UnpicklingError), os.fdopen(plan_fd, "rb") as plans:
            received = pickle.load(plans)
            plan = received if isinstance(received, UsagePlan) else None
    finally:
        deferred.settle(plan)


def _die_with(parent: int) -> None:
    """Have the kernel kill this child when its parent dies (SIGKILL included); Linux only."""
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the call
        os._exit(1)


def _reader(config: Config, credential: TokenCredential | None) -> _Reader | _ForkedReader:
    """A reading process where fork is safe and cheap (Linux), else a reading thread. With ``[usage]`` on, its
    metrics reads wait for :meth:`plan_usage`, which needs the database (opened meanwhile)."""
    if sys.platform == "linux" and (READER == "process" or (READER == "auto" and threading.active_count() == 1)):
        return _ForkedReader(config, credential, usage=config.usage.enabled)
    return _Reader(config, credential, DeferredUsagePlan() if config.usage.enabled else None)


def run_poll(config: Config, clock: Clock, sessions: sessionmaker[Session],
             credential: TokenCredential | None = None, *, lock_wait_seconds: float = LOCK_WAIT_SECONDS,
             should_stop: Callable[[], bool] | None = None) -> PollReport:
    """One poll, holding the poll lock: a second poll started meanwhile waits for this one, then runs.
    ``should_stop`` is asked between subscriptions (each one is stored whole or not at all)."""
    from daemon.store.inventory import InventoryStore
    from daemon.store.poll_lock import poll_lock
    from daemon.usage import UsageRound

    store = InventoryStore(sessions)
    with poll_lock(sessions.kw["bind"], lock_wait_seconds) as held:
        if not held:
            return _skipped(store, clock, lock_wait_seconds)
        _refuse_beside_shared_poll(sessions, config)
        started, timer = clock.now(), time.monotonic()
        usage = UsageRound.start(config.usage, started, sessions)
        return _locked_poll(config, clock, store, started, timer, _Reader(config, credential, usage.plan), usage,
                            should_stop)


def run_poll_reading_first(config: Config, clock: Clock, open_sessions: Callable[[], sessionmaker[Session]],
                           credential: TokenCredential | None = None, *,
                           lock_wait_seconds: float = LOCK_WAIT_SECONDS) -> PollReport:
    """:func:`run_poll` for a fresh process: Azure is being read while the database machinery loads and the
    database opens. If another poll holds the lock, what was read meanwhile is dropped and read again once this
    poll holds it (never store what was read before another poll's newer writes)."""
    started, timer = clock.now(), time.monotonic()
    reader = _reader(config, credential)
    try:
        sessions = open_sessions()
        from daemon.store.inventory import InventoryStore
        from daemon.store.poll_lock import poll_lock
        from daemon.usage import UsageRound
    except BaseException:
        reader.close()
        raise
    # Everything imported so far lives as long as the process: keep the collector from walking it again in every
    # full collection during the poll and once more at exit (about 0.15 s of CPU for a command that ends here).
    gc.freeze()
    store = InventoryStore(sessions)
    asked = time.monotonic()
    with poll_lock(sessions.kw["bind"], lock_wait_seconds) as held:
        try:
            if held:
                _refuse_beside_shared_poll(sessions, config)
        except BaseException:
            reader.close()
            raise
        if not held or time.monotonic() - asked > WAITED_FOR_LOCK:
            reader.close()
            if not held:
                return _skipped(store, clock, lock_wait_seconds)
            started, timer = clock.now(), time.monotonic()
            reader = _reader(config, credential)
        try:
            usage = UsageRound.start(config.usage, started, sessions)  # holding the lock: the last reads decide
        except BaseException:
            reader.close()
            raise
        reader.plan_usage(usage.plan)
        return _locked_poll(config, clock, store, started, timer, reader, usage, None)


def _skipped(store: InventoryStore, clock: Clock, lock_wait_seconds: float) -> PollReport:
    failure = Failure(None, "poll", "wait-for-poll", f"another poll held the poll lock for {lock_wait_seconds:.0f} s; "
                      "this one read nothing (the next poll reads everything)")
    return PollReport(poll_id=store.record_skipped(clock.now(), failure), failures=[failure])


def _report_died(config: Config, now: datetime) -> DiedHook:
    channel = config.slack.fallback_channel or config.slack.default_channel

    def report(session: Session, died: Sequence[PollRow], found_by: int) -> None:
        from daemon.notify.ops import raise_operational

        lines = [f"poll {row.id}, started {row.started_at:%Y-%m-%d %H:%M:%S} UTC, never finished" for row in died]
        lines.append(f"marked `died`; poll {found_by} reads everything again, nothing from a died poll is kept half")
        problem = "poll-died|" + ",".join(str(row.id) for row in died)
        raise_operational(session, channel, now, problem,
                          f"{len(died)} poll(s) stopped without finishing (killed, or the machine restarted)", lines)
        log.warning("poll(s) %s stopped without finishing: marked died", ", ".join(str(row.id) for row in died))

    return report


def _locked_poll(config: Config, clock: Clock, store: InventoryStore, started: datetime, timer: float,
                 reader: _Reader | _ForkedReader, usage: UsageRound,
                 should_stop: Callable[[], bool] | None) -> PollReport:
    report: PollReport | None = None
    subscriptions: list[Subscription] | None = None
    try:
        report = PollReport(poll_id=store.start_poll(started, on_died=_report_died(config, started)))
        subscriptions, listing_failure = reader.listed()
        if listing_failure is not None:
            report.failures.append(listing_failure)
        elif not config.azure.subscriptions:
            report.events += store.mark_subscriptions_gone(
                report.poll_id, clock.now(), (s.subscription_id for s in subscriptions))
        for inventory in reader:
            observations = observe(inventory)
            with _signals_held():
                written = store.record(report.poll_id, clock.now(), inventory, observations)
                report.subscriptions += 1
                report.accounts += written.accounts
                report.deployments += written.deployments
                report.catalog_models += written.catalog_models
                report.events += written.events
                report.failures.extend(inventory.failures)
            usage.record(clock.now(), inventory)
            if should_stop is not None and should_stop():
                report.stopped = True
                break
    except KeyboardInterrupt:
        requests = reader.close()
        if report is None:
            raise
        report.requests, report.stopped = requests, True
        _finish(store, clock, report, timer)  # a second Ctrl-C here leaves it running: the next poll says so
        raise PollInterrupted(report, None if subscriptions is None else len(subscriptions)) from None
    except BaseException:
        reader.close()
        raise
    report.requests = reader.close()
    return _finish(store, clock, report, timer)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM while one subscription is stored and counted, then act on them: between the
    transaction's commit and the count, an interrupt would have the poll say it stored one subscription fewer
    than it did. Main thread only (signal handlers live there); elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda signum, _frame: caught.append(signum)) for signum in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if caught:
            signal.raise_signal(caught[0])  # its own handler now: KeyboardInterrupt, cli.Terminated, or the default


def _finish(store: InventoryStore, clock: Clock, report: PollReport, timer: float) -> PollReport:
    report.seconds = time.monotonic() - timer
    status = "ok" if report.ok else ("failed" if not report.subscriptions else "partial")
    store.finish_poll(
        report.poll_id, clock.now(), status="stopped" if report.stopped else status,
        counts={"subscriptions": report.subscriptions, "accounts": report.accounts,
                "deployments": report.deployments, "catalog_models": report.catalog_models,
                "events": report.events, "requests": report.requests},
        failures=report.failures,
    )
    return report
