"""Read the estate: subscriptions -> accounts -> deployments, and the catalog they run on.

Concurrency is bounded by one thread pool (``azure.max_concurrency`` requests in flight at most). Work is split into
leaf tasks that never wait on each other (one list call each, all its pages), coordinated from the calling thread,
and each subscription is handed back as soon as its last task finishes, so memory holds only the subscriptions
in flight, not the estate.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from azure.core.exceptions import AzureError, DeserializationError, HttpResponseError
from azure.core.rest import HttpRequest
from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
from azure.mgmt.cognitiveservices import models as sdk

from daemon.collect.azure import AzureClients
from daemon.collect.parse import (
    ParseError,
    account_record,
    catalog_record,
    deployment_record,
    enum_text,
    merge_catalog,
    normalise_location,
)
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
    return None, f"{type(exc).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


@dataclass
class _Outcome:
    items: list[Any] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


def _guarded(subscription_id: str | None, target: str, operation: str, read: Callable[[], Iterable[T]]) -> _Outcome:
    try:
        return _Outcome(items=list(read()))
    except (AzureError, ValueError, OSError) as exc:
        status, reason = describe_error(exc)
        log.warning("%s %s failed: %s", operation, target, reason)
        return _Outcome(failures=[Failure(subscription_id, target, operation, reason, status)])


class _SubscriptionWork:
    """The state of one subscription while its tasks run."""

    def __init__(self, subscription: Subscription, client: CognitiveServicesManagementClient) -> None:
        self.inventory = SubscriptionInventory(subscription=subscription)
        self.client = client
        self.outstanding = 0
        self.account_models_checked = False

    @property
    def subscription_id(self) -> str:
        return self.inventory.subscription.subscription_id


class InventoryCollector:
    def __init__(self, clients: AzureClients, config: AzureConfig) -> None:
        self._clients = clients
        self._config = config
        self._kinds = {kind.casefold() for kind in config.account_kinds}

    def subscriptions(self) -> list[Subscription]:
        """The configured subscriptions, or every one the credential can list."""
        if self._config.subscriptions:
            return [Subscription(subscription_id=sub) for sub in self._config.subscriptions]
        client = self._clients.subscriptions()
        outcome = _guarded(None, "/subscriptions", "list-subscriptions", client.subscriptions.list)
        if outcome.failures:
            raise CollectError(f"cannot list subscriptions: {outcome.failures[0].error}")
        return [
            Subscription(subscription_id=sub.subscription_id, display_name=sub.display_name,
                         state=enum_text(sub.state))
            for sub in outcome.items
            if sub.subscription_id
        ]

    def collect(self, subscriptions: Iterable[Subscription]) -> Iterator[SubscriptionInventory]:
        queue = deque(subscriptions)
        max_open = max(4, 2 * self._config.max_concurrency)
        pending: dict[Future[_Outcome], tuple[_SubscriptionWork, Callable[[_Outcome], None]]] = {}
        open_count = 0
        with ThreadPoolExecutor(self._config.max_concurrency, thread_name_prefix="collect") as pool:

            def submit(work: _SubscriptionWork, task: Callable[[], _Outcome],
                       then: Callable[[_Outcome], None]) -> None:
                work.outstanding += 1
                pending[pool.submit(task)] = (work, then)

            while queue or pending:
                while queue and open_count < max_open:
                    open_count += 1
                    self._start(queue.popleft(), submit)
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in done:
                    work, then = pending.pop(future)
                    work.outstanding -= 1
                    then(future.result())
                    if work.outstanding == 0 and not work.account_models_checked:
                        work.account_models_checked = True
                        self._fetch_account_models(work, submit)
                    if work.outstanding == 0:
                        open_count -= 1
                        yield work.inventory

    # -- the steps of one subscription -------------------------------------------------------------------------

    def _start(self, subscription: Subscription, submit: _Submit) -> None:
        work = _SubscriptionWork(subscription, self._clients.cognitive_services(subscription.subscription_id))
        sub_id = work.subscription_id
        submit(work, lambda: _guarded(sub_id, f"/subscriptions/{sub_id}", "list-accounts",
                                      work.client.accounts.list),
               lambda outcome: self._accounts_listed(work, outcome, submit))

    def _accounts_listed(self, work: _SubscriptionWork, outcome: _Outcome, submit: _Submit) -> None:
        work.inventory.failures.extend(outcome.failures)
        if outcome.failures:
            work.account_models_checked = True
            return
        accounts = [account_record(account, work.subscription_id) for account in outcome.items]
        accounts = [account for account in accounts if account.kind.casefold() in self._kinds]
        work.inventory.accounts = accounts
        for account in accounts:
            submit(work, self._deployments_task(work, account),
                   partial(self._deployments_listed, work, account))
        for location in sorted({account.location for account in accounts}):
            submit(work, self._location_models_task(work, location),
                   partial(self._catalog_listed, work, location_scope(location)))

    def _deployments_task(self, work: _SubscriptionWork, account: Account) -> Callable[[], _Outcome]:
        path = f"{account.id}/deployments"

        def read() -> list[sdk.Deployment]:
            return list(work.client.deployments.list(account.resource_group, account.name))

        def task() -> _Outcome:
            outcome = _salvaging(work, account.id, "list-deployments", read, path, sdk.Deployment)
            outcome.items = [deployment_record(item, account) for item in outcome.items]
            return outcome

        return task

    def _deployments_listed(self, work: _SubscriptionWork, account: Account, outcome: _Outcome) -> None:
        work.inventory.failures.extend(outcome.failures)
        if any(failure.operation.startswith("list-") for failure in outcome.failures):
            return
        work.inventory.deployments[account.id] = outcome.items
        if outcome.failures:  # some items were unreadable: keep what was read, remove nothing
            work.inventory.partial_accounts.add(account.id)

    def _location_models_task(self, work: _SubscriptionWork, location: str) -> Callable[[], _Outcome]:
        scope = location_scope(location)
        target = f"/subscriptions/{work.subscription_id}/providers/Microsoft.CognitiveServices/locations/{location}"

        def read() -> list[Any]:
            listed = _salvaging(work, target, "list-location-models", lambda: list(work.client.models.list(location)),
                                f"{target}/models", sdk.Model)
            if listed.failures and not listed.items:
                raise _Failed(listed)
            work_failures.extend(listed.failures)
            return [(item.model, item.kind) for item in listed.items if item.model]

        work_failures: list[Failure] = []

        def task() -> _Outcome:
            outcome = _parse_catalog(work.subscription_id, target, "list-location-models", scope, read)
            outcome.failures.extend(work_failures)
            return outcome

        return task

    def _catalog_listed(self, work: _SubscriptionWork, scope: str, outcome: _Outcome) -> None:
        work.inventory.failures.extend(outcome.failures)
        work.inventory.catalog.extend(outcome.items)
        if not outcome.failures:  # a partly readable list cannot tell that a model is not listed
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
        def read() -> list[Any]:
            listed = _salvaging(work, account.id, "list-account-models",
                                lambda: list(work.client.accounts.list_models(account.resource_group, account.name)),
                                f"{account.id}/models", sdk.AccountModel)
            if listed.failures and not listed.items:
                raise _Failed(listed)
            return [(model, None) for model in listed.items]

        return lambda: _parse_catalog(work.subscription_id, account.id, "list-account-models", account.id, read)


_Submit = Callable[[_SubscriptionWork, Callable[[], _Outcome], Callable[[_Outcome], None]], None]


class _Failed(Exception):
    """Carries the failures of a listing that produced nothing."""

    def __init__(self, outcome: _Outcome) -> None:
        super().__init__(outcome.failures[0].error if outcome.failures else "failed")
        self.outcome = outcome


def _salvaging(work: _SubscriptionWork, target: str, operation: str, read: Callable[[], list[Any]], path: str,
               model_type: type[Any]) -> _Outcome:
    """List through the SDK's pager; if one item on a page cannot be deserialised (the pager then fails the whole
    page), read the pages again through the client's own request method and deserialise item by item, so one bad
    item is reported and the rest kept."""
    try:
        return _Outcome(items=read())
    except DeserializationError as exc:
        log.warning("%s %s: %s; reading item by item", operation, target, describe_error(exc)[1])
    except (AzureError, ValueError, OSError) as exc:
        status, reason = describe_error(exc)
        return _Outcome(failures=[Failure(work.subscription_id, target, operation, reason, status)])
    return _read_item_by_item(work, target, operation, path, model_type)


def _read_item_by_item(work: _SubscriptionWork, target: str, operation: str, path: str,
                       model_type: type[Any]) -> _Outcome:
    outcome = _Outcome()
    send = getattr(work.client, "send_request", None) or work.client._send_request
    api_version = getattr(getattr(work.client, "_config", None), "api_version", None) or "2025-09-01"
    url: str | None = f"{path}?api-version={api_version}"
    try:
        while url:
            response = send(HttpRequest("GET", url))
            response.raise_for_status()
            page = response.json()
            for raw in page.get("value") or []:
                try:
                    outcome.items.append(model_type.deserialize(raw))
                except (DeserializationError, ValueError, TypeError, AttributeError) as exc:
                    name = raw.get("name") or (raw.get("model") or {}).get("name") if isinstance(raw, dict) else None
                    outcome.failures.append(Failure(work.subscription_id, f"{target} ({name or 'item'})",
                                                    f"parse-{operation.removeprefix('list-')}",
                                                    f"malformed item skipped: {describe_error(exc)[1]}"))
            url = page.get("nextLink")
    except (AzureError, ValueError, OSError) as exc:
        status, reason = describe_error(exc)
        outcome.failures.append(Failure(work.subscription_id, target, operation, reason, status))
        outcome.items = []
    return outcome


def _parse_catalog(subscription_id: str, target: str, operation: str, scope: str,
                   read: Callable[[], list[Any]]) -> _Outcome:
    """Fetch (all pages), then parse entry by entry: one entry with a nonsense date is reported and skipped,
    the rest of the catalog is kept."""
    try:
        fetched = _guarded(subscription_id, target, operation, read)
    except _Failed as failed:
        return failed.outcome
    if fetched.failures:
        return fetched
    entries: list[CatalogModel] = []
    failures: list[Failure] = []
    for model, kind in fetched.items:
        try:
            entries.append(catalog_record(model, scope, kind))
        except ParseError as exc:
            name = f"{model.name} {model.version}"
            failures.append(Failure(subscription_id, f"{target} ({name})", "parse-catalog", str(exc)))
    return _Outcome(items=merge_catalog(entries), failures=failures)


__all__ = ["CollectError", "InventoryCollector", "describe_error", "normalise_location"]
