"""Read the estate: subscriptions -> accounts -> deployments, and the catalog they run on.

Concurrency is bounded by one pool of threads (``azure.max_concurrency`` requests in flight at most). Work is split
into leaf tasks that never wait on each other (one list call each, all its pages); the worker that finishes one takes
its outcome in and submits what it enables, under one lock, and each subscription is handed back to the calling
thread as soon as its last task finishes, so memory holds only the subscriptions in flight, not the estate. The
pool (``collect.pool``) runs the earliest subscription's tasks first, so subscriptions finish one after another
from the start of the poll and storing starts at once.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from functools import partial
from queue import SimpleQueue
from typing import Any, TypeVar

from azure.core.exceptions import AzureError, DeserializationError, HttpResponseError

from daemon.collect.azure import ArmReader, AzureClients
from daemon.collect.parse import (
    Parsed,
    ParseError,
    item_label,
    merge_catalog,
    normalise_location,
    parse_account,
    parse_account_model,
    parse_deployment,
    parse_location_model,
)
from daemon.collect.pool import RankedPool
from daemon.collect.usage import USAGE_OPERATION, AnyUsagePlan, read_if_due
from daemon.config import AzureConfig
from daemon.records import (
    Account,
    CatalogModel,
    Failure,
    Subscription,
    SubscriptionInventory,
    location_scope,
    model_key,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

PROVIDER = "/providers/Microsoft.CognitiveServices"
FIELD_OPERATION = "parse-field"


class CollectError(Exception):
    """Nothing could be collected at all (e.g. the subscriptions cannot be listed)."""


def describe_error(exc: BaseException) -> tuple[int | None, str]:
    """(HTTP status, one-line reason) for anything the SDK or the network raised."""
    if isinstance(exc, HttpResponseError):
        status = exc.status_code
        error = getattr(exc, "error", None)
        code = getattr(error, "code", None)
        message = getattr(error, "message", None) or exc.reason or type(exc).__name__
        first = str(message).strip().splitlines()[0] if str(message).strip() else type(exc).__name__
        return status, f"{code}: {first}" if code else first
    if isinstance(exc, DeserializationError):
        return None, f"malformed response: {str(exc).splitlines()[0][:300]}"
    text = str(exc).strip().splitlines()
    if text and text[0].startswith("malformed response:"):
        return None, text[0][:300]
    return None, f"{type(exc).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


@dataclass
class _Outcome:
    items: list[Any] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)  # the list could not be read: nothing in ``items``
    skipped: list[Failure] = field(default_factory=list)  # unidentifiable items left out: the list is partial
    issues: list[Failure] = field(default_factory=list)  # malformed fields of kept items: the list is complete

    @property
    def listed(self) -> bool:
        return not self.failures


def _guarded(subscription_id: str | None, target: str, operation: str, read: Callable[[], Iterable[T]]) -> _Outcome:
    try:
        return _Outcome(items=list(read()))
    except (AzureError, ValueError, OSError) as exc:
        status, reason = describe_error(exc)
        log.warning("%s %s failed: %s", operation, target, reason)
        return _Outcome(failures=[Failure(subscription_id, target, operation, reason, status)])


def _read_and_parse(subscription_id: str | None, target: str, operation: str, fetch: Callable[[], list[Any]],
                    parse: Callable[[Any], Parsed[T]], *, report_as: str | None = None,
                    report_subscription: str | None = None) -> _Outcome:
    """Fetch every page of one list, then parse item by item. ``report_as``: the target that item and field
    reports name (default ``target``); ``report_subscription``: their subscription (None for regional lists)."""
    fetched = _guarded(subscription_id, target, operation, fetch)
    if not fetched.listed:
        return fetched
    return _parsed(fetched.items, parse, report_as or target, operation, report_subscription)


def _parsed(items: list[Any], parse: Callable[[Any], Parsed[T]], where: str, operation: str,
            report_subscription: str | None) -> _Outcome:
    outcome = _Outcome()
    item_operation = f"parse-{operation.removeprefix('list-')}"
    for raw in items:
        try:
            parsed = parse(raw)
        except ParseError as exc:
            outcome.skipped.append(Failure(report_subscription, f"{where} ({item_label(raw)})", item_operation,
                                           f"malformed item skipped: {exc}"))
            continue
        outcome.items.append(parsed.record)
        outcome.issues.extend(
            Failure(report_subscription, f"{where} ({item_label(raw)}): {issue.field}", FIELD_OPERATION,
                    issue.problem)
            for issue in parsed.issues)
    return outcome


class _ParsedCatalogs:
    """A region's catalog is the same list for every subscription (as a rule): parse and merge each distinct
    answer once per poll. Keyed by the scope and a digest of the answer's bytes; thread-safe (a race parses twice)."""

    def __init__(self) -> None:
        self._outcomes: dict[tuple[str, bytes], _Outcome] = {}

    def read(self, reader: ArmReader, subscription_id: str, target: str, path: str, scope: str,
             report_as: str) -> _Outcome:
        digest = hashlib.blake2b(digest_size=16)
        fetched = _guarded(subscription_id, target, "list-location-models", partial(reader.list, path, digest=digest))
        if not fetched.listed:
            return fetched
        key = (scope, digest.digest())
        outcome = self._outcomes.get(key)
        if outcome is None:
            outcome = _merged(_parsed(fetched.items, partial(parse_location_model, scope=scope), report_as,
                                      "list-location-models", None))
            self._outcomes[key] = outcome
        return _Outcome(items=list(outcome.items), skipped=list(outcome.skipped), issues=list(outcome.issues))


class _SubscriptionWork:
    """The state of one subscription while its tasks run."""

    def __init__(self, subscription: Subscription, reader: ArmReader, rank: int) -> None:
        self.inventory = SubscriptionInventory(subscription=subscription)
        self.reader = reader
        self.rank = rank  # its place in the poll: the pool runs the tasks of earlier subscriptions first
        self.outstanding = 0
        self.account_models_checked = False

    @property
    def subscription_id(self) -> str:
        return self.inventory.subscription.subscription_id


class InventoryCollector:
    """Collects one poll; make a new one per poll (malformed fields are reported once per collector)."""

    def __init__(self, clients: AzureClients, config: AzureConfig, usage: AnyUsagePlan | None = None) -> None:
        self._clients = clients
        self._config = config
        self._usage = usage  # which accounts' metrics to read this poll (None: none)
        self._kinds = {kind.casefold() for kind in config.account_kinds}
        self._reader: ArmReader | None = None
        self._reported: set[tuple[str, str, str]] = set()  # (operation, target, error) of item and field reports
        self._catalogs = _ParsedCatalogs()

    def subscriptions(self) -> list[Subscription]:
        """The configured subscriptions, or every one the credential can list."""
        if self._config.subscriptions:
            return [Subscription(subscription_id=sub) for sub in self._config.subscriptions]
        reader = self._clients.subscriptions()
        outcome = _guarded(None, "/subscriptions", "list-subscriptions", partial(reader.list, "/subscriptions"))
        if outcome.failures:
            raise CollectError(f"cannot list subscriptions: {outcome.failures[0].error}")
        return [
            Subscription(subscription_id=str(sub["subscriptionId"]), display_name=_text_or_none(sub.get("displayName")),
                         state=_text_or_none(sub.get("state")))
            for sub in outcome.items
            if isinstance(sub, dict) and sub.get("subscriptionId")
        ]

    def collect(self, subscriptions: Iterable[Subscription]) -> Generator[SubscriptionInventory, None, None]:
        """Each subscription's inventory once its last task is done. A task's outcome is taken in on the worker
        that read it (under one lock, briefly: no I/O), which also submits the tasks it enables, so the calling
        thread wakes once per finished subscription instead of once per request (a thousand thread switches per
        10,000 deployments, each one contending for the interpreter lock with the workers)."""
        queue = deque(subscriptions)
        max_open = max(4, 2 * self._config.max_concurrency)
        finished: SimpleQueue[_SubscriptionWork | _Failed] = SimpleQueue()
        lock = threading.Lock()
        ranks = itertools.count()  # the earliest subscription's tasks first: subscriptions finish one after another
        open_count, closing = 0, False
        with RankedPool(self._config.max_concurrency, "collect") as pool:

            def submit(work: _SubscriptionWork, task: Callable[[], _Outcome],
                       then: Callable[[_Outcome], None]) -> None:  # holding ``lock``
                if not closing:  # the generator was closed: start nothing more
                    work.outstanding += 1
                    pool.submit(work.rank, partial(run, work, task, then))

            def run(work: _SubscriptionWork, task: Callable[[], _Outcome], then: Callable[[_Outcome], None]) -> None:
                try:
                    outcome = task()
                    with lock:
                        work.outstanding -= 1
                        then(outcome)
                        if work.outstanding == 0 and not work.account_models_checked:
                            work.account_models_checked = True
                            self._fetch_account_models(work, submit)
                        if work.outstanding == 0:
                            finished.put(work)
                except BaseException as exc:  # a bug, not Azure: raised to the caller
                    finished.put(_Failed(exc))

            def start_more() -> None:  # holding ``lock``
                nonlocal open_count
                while queue and open_count < max_open:
                    open_count += 1
                    self._start(queue.popleft(), next(ranks), submit)

            try:
                with lock:
                    start_more()
                while open_count:
                    done = finished.get()
                    if isinstance(done, _Failed):
                        raise done.error
                    with lock:
                        open_count -= 1
                        start_more()
                    yield done.inventory
            finally:
                with lock:
                    closing = True

    # -- the steps of one subscription (tasks run on the pool; the ``_listed`` steps after them, holding the lock) -

    def _report(self, work: _SubscriptionWork, outcome: _Outcome) -> None:
        """Add the outcome's failures to the subscription; item and field reports only the first time this poll
        (a regional catalog is read once per subscription but is one catalog)."""
        work.inventory.failures.extend(outcome.failures)
        for failure in (*outcome.skipped, *outcome.issues):
            key = (failure.operation, failure.target, failure.error)
            if key not in self._reported:
                self._reported.add(key)
                work.inventory.failures.append(failure)

    def _start(self, subscription: Subscription, rank: int, submit: _Submit) -> None:
        if self._reader is None:
            self._reader = self._clients.arm()
        work = _SubscriptionWork(subscription, self._reader, rank)
        sub_id = work.subscription_id
        path = f"/subscriptions/{sub_id}{PROVIDER}/accounts"
        submit(work,
               lambda: _read_and_parse(sub_id, f"/subscriptions/{sub_id}", "list-accounts",
                                       partial(work.reader.list, path), partial(parse_account, subscription_id=sub_id),
                                       report_as=path, report_subscription=sub_id),
               lambda outcome: self._accounts_listed(work, outcome, submit))

    def _accounts_listed(self, work: _SubscriptionWork, outcome: _Outcome, submit: _Submit) -> None:
        self._report(work, outcome)
        if not outcome.listed or outcome.skipped:
            # an account that cannot be identified may be one we know: keep the last known state of them all
            work.account_models_checked = True
            return
        accounts = [account for account in outcome.items if account.kind.casefold() in self._kinds]
        work.inventory.accounts = accounts
        for account in accounts:
            submit(work, self._deployments_task(work, account),
                   partial(self._deployments_listed, work, account))
        for location in sorted({account.location for account in accounts}):
            submit(work, self._location_models_task(work, location),
                   partial(self._catalog_listed, work, location_scope(location)))
        usage = self._usage
        for account in accounts:  # one metrics request per due account, in the same pool and read budget
            if usage is not None and usage.maybe_due(account.id):
                submit(work, partial(_guarded, work.subscription_id, account.id, USAGE_OPERATION,
                                     partial(read_if_due, usage, work.reader, account.id)), partial(_usage_read, work))

    def _deployments_task(self, work: _SubscriptionWork, account: Account) -> Callable[[], _Outcome]:
        path = f"{account.id}/deployments"
        return lambda: _read_and_parse(work.subscription_id, account.id, "list-deployments",
                                       partial(work.reader.list, path), partial(parse_deployment, account=account),
                                       report_as=path, report_subscription=work.subscription_id)

    def _deployments_listed(self, work: _SubscriptionWork, account: Account, outcome: _Outcome) -> None:
        self._report(work, outcome)
        if not outcome.listed:
            return
        work.inventory.deployments[account.id] = outcome.items
        if outcome.skipped:  # some items were unreadable: keep what was read, remove nothing
            work.inventory.partial_accounts.add(account.id)

    def _location_models_task(self, work: _SubscriptionWork, location: str) -> Callable[[], _Outcome]:
        scope = location_scope(location)
        target = f"/subscriptions/{work.subscription_id}{PROVIDER}/locations/{location}"
        return partial(self._catalogs.read, work.reader, work.subscription_id, target, f"{target}/models", scope,
                       f"{PROVIDER}/locations/{location}/models")

    def _catalog_listed(self, work: _SubscriptionWork, scope: str, outcome: _Outcome) -> None:
        self._report(work, outcome)
        work.inventory.catalog.extend(outcome.items)
        if outcome.listed and not outcome.skipped:  # a partly readable list cannot tell that a model is not listed
            work.inventory.catalog_scopes_read.add(scope)

    def _fetch_account_models(self, work: _SubscriptionWork, submit: _Submit) -> None:
        """Account model lists only for accounts running a model their region's catalog does not list
        (fine-tuned or account-specific models), and only where that region's catalog could be read."""
        known = {(entry.scope, *entry.key) for entry in work.inventory.catalog}
        accounts = {account.id: account for account in work.inventory.accounts or ()}
        for account_id, deployments in work.inventory.deployments.items():
            scope = location_scope(accounts[account_id].location)
            if scope not in work.inventory.catalog_scopes_read:
                continue
            missing = [d for d in deployments
                       if (scope, *model_key(d.model_format, d.model_name, d.model_version)) not in known]
            if missing:
                account = accounts[account_id]
                submit(work, self._account_models_task(work, account),
                       partial(self._catalog_listed, work, account_id))

    def _account_models_task(self, work: _SubscriptionWork, account: Account) -> Callable[[], _Outcome]:
        path = f"{account.id}/models"
        return lambda: _merged(_read_and_parse(
            work.subscription_id, account.id, "list-account-models", partial(work.reader.list, path),
            partial(parse_account_model, scope=account.id),
            report_as=path, report_subscription=work.subscription_id))


@dataclass
class _Failed:
    """A task that raised what the collector does not handle (a bug): the caller gets it."""

    error: BaseException


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


_Submit = Callable[[_SubscriptionWork, Callable[[], _Outcome], Callable[[_Outcome], None]], None]


def _usage_read(work: _SubscriptionWork, outcome: _Outcome) -> None:
    work.inventory.failures.extend(outcome.failures)
    for usage in outcome.items:
        work.inventory.usage[usage.account_id] = usage
        work.inventory.failures.extend(Failure(work.subscription_id, usage.account_id, FIELD_OPERATION, issue)
                                       for issue in usage.issues)


def _merged(outcome: _Outcome) -> _Outcome:
    """The same model listed under several kinds is one catalog record."""
    entries: list[CatalogModel] = outcome.items
    outcome.items = merge_catalog(entries)
    return outcome


__all__ = ["CollectError", "InventoryCollector", "describe_error", "normalise_location"]
