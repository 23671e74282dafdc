"""An Azure Resource Manager emulator: the Cognitive Services and subscription list endpoints over HTTPS on
127.0.0.1, with a managed-identity token endpoint, so the real SDK clients and a real credential class run end to
end in tests, in ``retirewatch demo`` and in benchmarks.

Scenario (a dict, JSON-compatible; the estate being served)::

    {"locationModels": {"eastus": [{"kind", "skuName", "model": AccountModel}, ...]},   # every subscription
     "subscriptions": [{"subscriptionId", "displayName", "state",
                        "locationModels": {...},                 # optional: replaces the shared list
                        "accounts": [{"name", "resourceGroup", "kind", "location", "tags",
                                      "deployments": [{"name", "sku": {...}, "properties": {...}}],
                                      "models": [AccountModel, ...]}]}]}

Any string holding ``{{today+N}}`` / ``{{today-N}}`` is rewritten to an ISO date relative to the day given to
:func:`load_scenario`, so a packaged estate never goes stale. Change the estate while the emulator runs with
:meth:`ArmEmulator.update` (under its lock). Faults (:class:`Faults`) are injected per path substring.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from daemon.emulators.server import serve, shutdown
from daemon.emulators.tls import LocalCA, shared_ca

Scenario = dict[str, Any]
_RELATIVE = re.compile(r"\{\{today([+-]\d+)\}\}")
_PROVIDER = "providers/microsoft.cognitiveservices"


def load_scenario(source: str | Path | Scenario, today: date) -> Scenario:
    """A scenario from a file or a dict, with ``{{today+N}}`` dates resolved against ``today``."""
    text = Path(source).read_text() if isinstance(source, str | Path) else json.dumps(source)
    resolved = _RELATIVE.sub(lambda m: (today + timedelta(days=int(m.group(1)))).isoformat(), text)
    data: Scenario = json.loads(resolved)
    return data


def demo_estate(today: date) -> Scenario:
    """The packaged simulated estate that ``retirewatch demo`` shows."""
    text = resources.files("daemon.emulators").joinpath("estates/demo.json").read_text()
    return load_scenario(json.loads(text), today)


@dataclass
class _Fault:
    match: str
    remaining: int | None  # None: always
    action: Callable[[], tuple[int, dict[str, str], bytes] | None]

    def applies(self, path: str) -> bool:
        return self.match.casefold() in path.casefold() and (self.remaining is None or self.remaining > 0)


class Faults:
    """Trouble to inject, each scoped by a substring of the request path (``""`` matches everything)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []

    def _add(self, match: str, times: int | None, action: Callable[[], tuple[int, dict[str, str], bytes] | None]
             ) -> None:
        with self._lock:
            self._faults.append(_Fault(match, times, action))

    def throttle(self, match: str = "", *, times: int = 1, retry_after: float = 1) -> None:
        body = _error("TooManyRequests", "Rate limit exceeded: retry later.")
        self._add(match, times, lambda: (429, {"Retry-After": f"{retry_after:g}"}, body))

    def server_error(self, match: str = "", *, times: int | None = 1, status: int = 500) -> None:
        self._add(match, times, lambda: (status, {}, _error("InternalServerError", "Something went wrong.")))

    def forbid_subscription(self, subscription_id: str) -> None:
        message = f"The client does not have authorization to read subscription '{subscription_id}'."
        self._add(f"/subscriptions/{subscription_id}/", None,
                  lambda: (403, {}, _error("AuthorizationFailed", message)))

    def slow(self, match: str = "", *, seconds: float, times: int | None = None) -> None:
        def sleep() -> None:
            time.sleep(seconds)
            return None

        self._add(match, times, lambda: sleep())

    def malformed(self, match: str = "", *, times: int | None = None, body: bytes = b'{"value": [') -> None:
        self._add(match, times, lambda: (200, {}, body))

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, path: str) -> tuple[int, dict[str, str], bytes] | None:
        """Run the faults that apply to ``path``; the first one that answers wins."""
        with self._lock:
            due = [fault for fault in self._faults if fault.applies(path)]
            for fault in due:
                if fault.remaining is not None:
                    fault.remaining -= 1
        for fault in due:
            answer = fault.action()
            if answer is not None:
                return answer
        return None


def _error(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    target: str  # path and query as sent
    status: int
    at: float


@dataclass
class _Tokens:
    audience_by_token: dict[str, str] = field(default_factory=dict)
    issued: int = 0


class ArmEmulator:
    def __init__(self, scenario: Scenario, *, page_size: int = 100, ca: LocalCA | None = None) -> None:
        self._scenario = copy.deepcopy(scenario)
        self._lock = threading.RLock()
        self.page_size = page_size
        self.faults = Faults()
        self.requests: list[RecordedRequest] = []
        self._ca = ca or shared_ca()
        self._tokens = _Tokens()
        self._identity_header = secrets.token_hex(8)
        self._arm: ThreadingHTTPServer | None = None
        self._identity: ThreadingHTTPServer | None = None
        self._ids = itertools.count(1)

    # -- life cycle ------------------------------------------------------------------------------------------------

    def start(self) -> ArmEmulator:
        self._arm = serve(_handler(self._serve_arm), self._ca.server_context(), "arm-emulator")
        self._identity = serve(_handler(self._serve_token), None, "arm-emulator-identity")
        return self

    def stop(self) -> None:
        shutdown(self._arm)
        shutdown(self._identity)

    def __enter__(self) -> ArmEmulator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._arm is not None, "start() the emulator first"
        return f"https://127.0.0.1:{self._arm.server_address[1]}"

    @property
    def ca_bundle_path(self) -> str:
        return self._ca.ca_bundle_path

    @property
    def identity_env(self) -> dict[str, str]:
        """Environment for azure-identity's App Service managed identity, pointed at the local token endpoint."""
        assert self._identity is not None, "start() the emulator first"
        return {"IDENTITY_ENDPOINT": f"http://127.0.0.1:{self._identity.server_address[1]}/msi/token",
                "IDENTITY_HEADER": self._identity_header}

    @property
    def tokens_issued(self) -> int:
        return self._tokens.issued

    # -- the estate ------------------------------------------------------------------------------------------------

    @contextmanager
    def update(self) -> Iterator[Scenario]:
        """Change the estate in place: ``with arm.update() as estate: ...``."""
        with self._lock:
            yield self._scenario

    def replace(self, scenario: Scenario) -> None:
        with self._lock:
            self._scenario = copy.deepcopy(scenario)

    def count(self, path_substring: str = "", status: int | None = None) -> int:
        """Requests whose path and query contain ``path_substring`` (case-insensitive), optionally by status."""
        return sum(1 for r in list(self.requests) if path_substring.casefold() in r.target.casefold()
                   and (status is None or r.status == status))

    # -- token endpoint --------------------------------------------------------------------------------------------

    def _serve_token(self, request: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
        if request.headers.get("X-IDENTITY-HEADER") != self._identity_header:
            return 401, {}, json.dumps({"error": "invalid_request", "error_description": "bad header"}).encode()
        resource = (query.get("resource") or [""])[0].rstrip("/")
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens.audience_by_token[token] = resource
            self._tokens.issued += 1
        body = {"access_token": token, "expires_on": str(int(time.time()) + 3600), "resource": resource,
                "token_type": "Bearer", "client_id": (query.get("client_id") or ["system-assigned"])[0]}
        return 200, {}, json.dumps(body).encode()

    # -- ARM -------------------------------------------------------------------------------------------------------

    def _serve_arm(self, request: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        parts = urllib.parse.urlsplit(request.path)
        path = parts.path.rstrip("/")
        query = urllib.parse.parse_qs(parts.query)
        status, headers, body = self._answer(request, path, query)
        self.requests.append(RecordedRequest(request.command, path, query, request.path, status, time.time()))
        headers.setdefault("x-ms-request-id", f"emulator-{next(self._ids)}")
        headers.setdefault("x-ms-ratelimit-remaining-subscription-reads", "11999")
        return status, headers, body

    def _answer(self, request: BaseHTTPRequestHandler, path: str, query: dict[str, list[str]]
                ) -> tuple[int, dict[str, str], bytes]:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip()
        with self._lock:
            audience = self._tokens.audience_by_token.get(token)
        if audience != self.base_url:
            return 401, {}, _error("InvalidAuthenticationToken", "The access token is missing or invalid.")
        if "api-version" not in query:
            return 400, {}, _error("MissingApiVersionParameter", "The api-version query parameter is required.")
        fault = self.faults.take(path + "/")
        if fault is not None:
            return fault
        with self._lock:
            listed = self._route(path.casefold())
        if isinstance(listed, tuple):
            return listed
        return 200, {}, json.dumps(self._page(path, query, listed)).encode()

    def _page(self, path: str, query: dict[str, list[str]], items: list[Any]) -> dict[str, Any]:
        start = int((query.get("$skipToken") or ["0"])[0])
        page: dict[str, Any] = {"value": items[start:start + self.page_size]}
        if start + self.page_size < len(items):
            api_version = query["api-version"][0]
            page["nextLink"] = (f"{self.base_url}{path}?api-version={api_version}"
                                f"&$skipToken={start + self.page_size}")
        return page

    def _route(self, path: str) -> list[Any] | tuple[int, dict[str, str], bytes]:
        segments = path.strip("/").split("/")
        if segments == ["subscriptions"]:
            return [self._subscription_json(sub) for sub in self._scenario.get("subscriptions", [])]
        if len(segments) < 2 or segments[0] != "subscriptions":
            return 404, {}, _error("NotFound", f"No route for {path}")
        subscription = self._subscription(segments[1])
        if subscription is None:
            return 404, {}, _error("SubscriptionNotFound", f"The subscription '{segments[1]}' could not be found.")
        rest = "/".join(segments[2:])
        if rest == f"{_PROVIDER}/accounts":
            return [self._account_json(subscription, account) for account in subscription.get("accounts", [])]
        location = re.fullmatch(rf"{_PROVIDER}/locations/([^/]+)/models", rest)
        if location:
            models: dict[str, Any] = subscription.get("locationModels") or self._scenario.get("locationModels") or {}
            return list(_casefold_get(models, location.group(1)) or [])
        scoped = re.fullmatch(rf"resourcegroups/([^/]+)/{_PROVIDER}/accounts/([^/]+)/(deployments|models)", rest)
        if scoped:
            account = self._account(subscription, scoped.group(1), scoped.group(2))
            if account is None:
                return 404, {}, _error("ResourceNotFound", f"The account '{scoped.group(2)}' was not found.")
            if scoped.group(3) == "models":
                return list(account.get("models", []))
            return [self._deployment_json(subscription, account, d) for d in account.get("deployments", [])]
        return 404, {}, _error("NotFound", f"No route for {path}")

    def _subscription(self, subscription_id: str) -> dict[str, Any] | None:
        for sub in self._scenario.get("subscriptions", []):
            if str(sub["subscriptionId"]).casefold() == subscription_id:
                return dict(sub)
        return None

    @staticmethod
    def _account(subscription: dict[str, Any], resource_group: str, name: str) -> dict[str, Any] | None:
        for account in subscription.get("accounts", []):
            if account["name"].casefold() == name and account["resourceGroup"].casefold() == resource_group:
                return dict(account)
        return None

    @staticmethod
    def _subscription_json(sub: dict[str, Any]) -> dict[str, Any]:
        return {"id": f"/subscriptions/{sub['subscriptionId']}", "subscriptionId": sub["subscriptionId"],
                "displayName": sub.get("displayName"), "state": sub.get("state", "Enabled"),
                "tenantId": "00000000-0000-0000-0000-00000000cafe"}

    @staticmethod
    def _account_id(sub: dict[str, Any], account: dict[str, Any]) -> str:
        return (f"/subscriptions/{sub['subscriptionId']}/resourceGroups/{account['resourceGroup']}/providers/"
                f"Microsoft.CognitiveServices/accounts/{account['name']}")

    def _account_json(self, sub: dict[str, Any], account: dict[str, Any]) -> dict[str, Any]:
        body = {"id": self._account_id(sub, account), "name": account["name"],
                "type": "Microsoft.CognitiveServices/accounts", "kind": account.get("kind", "OpenAI"),
                "location": account.get("location", "eastus"), "sku": {"name": "S0"},
                "properties": {"provisioningState": "Succeeded",
                               "endpoint": f"https://{account['name']}.openai.azure.com/"}}
        if account.get("tags") is not None:
            body["tags"] = account["tags"]
        return body

    def _deployment_json(self, sub: dict[str, Any], account: dict[str, Any], deployment: dict[str, Any]
                         ) -> dict[str, Any]:
        body = {key: value for key, value in deployment.items() if key not in ("id", "type")}
        body["id"] = f"{self._account_id(sub, account)}/deployments/{deployment['name']}"
        body["type"] = "Microsoft.CognitiveServices/accounts/deployments"
        return body


def _casefold_get(mapping: dict[str, Any], key: str) -> Any:
    for candidate, value in mapping.items():
        if candidate.casefold() == key.casefold():
            return value
    return None


def _handler(serve: Callable[[BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes]]
             ) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            status, headers, body = serve(self)
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
