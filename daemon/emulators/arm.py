"""An Azure Resource Manager emulator: the Microsoft.CognitiveServices read endpoints and the subscription list
over HTTPS on 127.0.0.1, with a managed-identity token endpoint, so the real SDK clients
(``azure-mgmt-cognitiveservices``, ``azure-mgmt-resource-subscriptions``) and a real ``azure-identity`` credential run
end to end in tests, in ``retirewatch demo`` and in benchmarks. Standard library only (``http.server``, ``ssl``).

Served (paths match case-insensitively, like ARM; every list is paged, see ``page_size``)::

    GET /subscriptions
    GET /subscriptions/{sub}/providers/Microsoft.CognitiveServices/accounts
    GET /subscriptions/{sub}/providers/Microsoft.CognitiveServices/locations/{location}/models
    GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts[/{acct}]
    GET .../accounts/{acct}/deployments[/{name}]
    GET .../accounts/{acct}/models
    GET .../accounts/{acct}/providers/Microsoft.Insights/metrics   (Azure Monitor: see daemon.emulators.metrics)

The estate is a scenario dict (format: :mod:`daemon.emulators.scenario`). Change it while the emulator runs with
``with arm.update() as estate: ...`` (under the emulator's lock; helpers in :mod:`daemon.emulators.scenario`) or
replace it with ``arm.scenario = new``.

Authentication: every ARM request needs ``Authorization: Bearer <token>`` with a token the emulator's own token
endpoint issued for the audience ``base_url`` (clients ask for the scope ``<base_url>/.default``). The token endpoint
speaks App Service's managed-identity protocol (``api-version=2019-08-01``, header ``X-IDENTITY-HEADER``, optional
``client_id`` / ``mi_res_id`` / ``object_id`` for a user-assigned identity); point ``ManagedIdentityCredential`` or
``DefaultAzureCredential`` at it with the variables in :attr:`ArmEmulator.identity_env`. Errors, like ARM's:
401 ``AuthenticationFailed`` (no header), ``InvalidAuthenticationToken`` (not issued here, or revoked),
``ExpiredAuthenticationToken``, ``InvalidAuthenticationTokenAudience`` (issued for another resource, e.g. the default
``https://management.azure.com``).

Faults (:class:`Faults`, ``arm.faults``) are injected at run time, each scoped by a substring of the request's path
and query (case-insensitive; a subscription id works as a scope): throttling, server errors, 403 for a subscription,
slow answers, dropped connections, malformed bodies and wrong values inside well-formed ones. Every request is
recorded (:attr:`ArmEmulator.requests`, :meth:`ArmEmulator.count`).

Every answer carries ``x-ms-request-id``, ``x-ms-correlation-request-id`` and
``x-ms-ratelimit-remaining-subscription-reads``: the level of a token bucket per subscription (ARM's read limits:
250, refilled at 25 per second). With ``throttle_when_exhausted=True`` an empty bucket answers 429 like ARM.
"""

from __future__ import annotations

import copy
import json
import math
import re
import secrets
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from daemon.emulators.metrics import metrics_answer
from daemon.emulators.scenario import Scenario, ScenarioError, demo_estate, load_scenario, validate
from daemon.emulators.server import serve, shutdown
from daemon.emulators.tls import LocalCA, shared_ca

__all__ = [
    "IDENTITY_API_VERSION",
    "IDENTITY_ENV_CONFLICTS",
    "ArmEmulator",
    "Faults",
    "RecordedRequest",
    "Scenario",
    "ScenarioError",
    "TokenGrant",
    "demo_estate",
    "load_scenario",
]

TENANT_ID = "72f988bf-0000-4000-8000-00000000cafe"
SYSTEM_ASSIGNED_CLIENT_ID = "00000000-0000-4000-8000-0000005a5a5a"
IDENTITY_API_VERSION = "2019-08-01"
IDENTITY_PATH = "/msi/token"
# Variables that would make azure-identity / MSAL pick another credential or identity source than the emulator's
# App Service endpoint (Service Fabric, Azure ML, a service principal, a default user-assigned client id...).
IDENTITY_ENV_CONFLICTS = (
    "IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT", "AZURE_CLIENT_ID", "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_USERNAME",
    "AZURE_PASSWORD",
)

_PROVIDER = ("providers", "microsoft.cognitiveservices")
_TENANT_SCOPE = "<tenant>"

Answer = tuple[int, dict[str, str], bytes]
"""(status, extra headers, body); status 0 means: close the connection without answering."""


def _error(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


# Not a header anyone sends: it tells the emulator's handler to close the connection after this answer.
HANG_UP = "x-emulator-hang-up"


# -- faults ----------------------------------------------------------------------------------------------------------

@dataclass
class _Fault:
    kind: Literal["delay", "answer", "transform", "hang_up"]
    name: str
    match: str  # casefolded substring of path + "/" + "?" + query
    remaining: int | None  # None: every matching request
    delay: float = 0.0
    answer: Answer | None = None
    transform: Callable[[Any], Any] | None = None


@dataclass
class _Plan:
    delay: float = 0.0
    answer: Answer | None = None
    transforms: list[_Fault] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    hang_up: bool = False  # close the connection once the answer is sent


class Faults:
    """Trouble to inject, each scoped by ``match``: a case-insensitive substring of the request path (followed by
    ``/``) and query, e.g. ``"/deployments"``, ``"/accounts/acct-a/"``, a subscription id, ``"$skipToken=2"``;
    ``""`` matches every request. ``times``: how many matching requests it hits (``None``: all of them).

    Faults apply after authentication, in the order they were added: every matching delay is slept, then the first
    matching answer (throttle, error, malformed, disconnect) replaces the response; transforms (:meth:`mangle`,
    :meth:`wrong_value`) edit a successful JSON answer. A fault's count drops only when it acts. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []

    def _add(self, fault: _Fault) -> None:
        if fault.remaining is not None and fault.remaining < 1:
            raise ValueError("times must be at least 1 (or None for every request)")
        fault.match = fault.match.casefold()
        with self._lock:
            self._faults.append(fault)

    def throttle(self, match: str = "", *, times: int | None = 1, retry_after: float = 1) -> None:
        """429 ``SubscriptionRequestsThrottled`` with ``Retry-After: retry_after`` (seconds)."""
        message = (f"Number of 'read' requests exceeded. Please try again after '{retry_after:g}' seconds after "
                   "the additional tokens are replenished.")
        self._add(_Fault("answer", f"throttle:{match}", match, times,
                         answer=(429, {"Retry-After": f"{retry_after:g}"},
                                 _error("SubscriptionRequestsThrottled", message))))

    def server_error(self, match: str = "", *, times: int | None = 1, status: int = 500,
                     retry_after: float | None = None) -> None:
        """A 5xx (500 ``InternalServerError``, 503 ``ServiceUnavailable``, ...), optionally with ``Retry-After``."""
        if not 500 <= status <= 599:
            raise ValueError(f"server_error needs a 5xx status, not {status}")
        code = {503: "ServiceUnavailable", 502: "BadGateway", 504: "GatewayTimeout"}.get(status, "InternalServerError")
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        self._add(_Fault("answer", f"server_error:{status}:{match}", match, times,
                         answer=(status, headers, _error(code, "The server encountered an internal error."))))

    def forbid_subscription(self, subscription_id: str, *, times: int | None = None) -> None:
        """403 ``AuthorizationFailed`` for every request inside the subscription (the principal lost its role)."""
        message = (f"The client '{SYSTEM_ASSIGNED_CLIENT_ID}' does not have authorization to perform action "
                   f"'Microsoft.CognitiveServices/accounts/read' over scope '/subscriptions/{subscription_id}' "
                   "or the scope is invalid.")
        self._add(_Fault("answer", f"forbid:{subscription_id}", f"/subscriptions/{subscription_id}/", times,
                         answer=(403, {}, _error("AuthorizationFailed", message))))

    def fail(self, match: str = "", *, status: int, code: str, message: str = "Injected failure.",
             times: int | None = 1, headers: Mapping[str, str] | None = None) -> None:
        """Any ARM error answer: ``status`` with ``{"error": {"code": code, "message": message}}``."""
        self._add(_Fault("answer", f"fail:{status}:{code}:{match}", match, times,
                         answer=(status, dict(headers or {}), _error(code, message))))

    def slow(self, match: str = "", *, seconds: float, times: int | None = None) -> None:
        """Sleep ``seconds`` before answering (then answer normally, or with another fault)."""
        self._add(_Fault("delay", f"slow:{seconds:g}:{match}", match, times, delay=seconds))

    def disconnect(self, match: str = "", *, times: int | None = 1) -> None:
        """Close the connection without an answer (the client sees a connection error)."""
        self._add(_Fault("answer", f"disconnect:{match}", match, times, answer=(0, {}, b"")))

    def hang_up_after(self, match: str = "", *, times: int | None = 1) -> None:
        """Answer normally, then close the kept-alive connection, as a front end does when it drops idle ones: no
        ``Connection: close`` header, so the client learns it only from the closed socket."""
        self._add(_Fault("hang_up", f"hang_up:{match}", match, times))

    def malformed(self, match: str = "", *, times: int | None = None, body: bytes = b'{"value": [') -> None:
        """200 with ``body`` as is (default: truncated JSON) under ``Content-Type: application/json``."""
        self._add(_Fault("answer", f"malformed:{match}", match, times, answer=(200, {}, body)))

    def mangle(self, match: str = "", transform: Callable[[Any], Any] | None = None, *,
               times: int | None = None) -> None:
        """Edit a successful JSON answer: ``transform(body)`` gets the decoded page (``{"value": [...],
        "nextLink"?}``) and returns the body to send, or ``None`` to send the page it changed in place."""
        if transform is None:
            raise ValueError("mangle needs a transform")
        self._add(_Fault("transform", f"mangle:{match}", match, times, transform=transform))

    def wrong_value(self, match: str, path: Sequence[str | int], value: Any, *, times: int | None = None) -> None:
        """Set one value inside a successful JSON answer, e.g. a bad date::

            faults.wrong_value("/locations/eastus/models",
                               ["value", 0, "model", "skus", 0, "deprecationDate"], "next Tuesday")

        Answers where ``path`` does not exist (another page) go out unchanged."""
        if not path:
            raise ValueError("wrong_value needs a path")

        def put(body: Any) -> Any:
            target = body
            try:
                for step in path[:-1]:
                    target = target[step]
                target[path[-1]] = value
            except (KeyError, IndexError, TypeError):
                pass
            return body

        self._add(_Fault("transform", f"wrong_value:{'.'.join(map(str, path))}:{match}", match, times,
                         transform=put))

    def reset(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[str]:
        """The faults that can still act, by name (for test diagnostics)."""
        with self._lock:
            return [f.name for f in self._faults if f.remaining is None or f.remaining > 0]

    def _claim(self, fault: _Fault) -> bool:
        if fault.remaining is None:
            return True
        if fault.remaining <= 0:
            return False
        fault.remaining -= 1
        return True

    def plan(self, target: str) -> _Plan:
        """The faults that act on a request to ``target``; delays and the answer are claimed now."""
        target = target.casefold()
        plan = _Plan()
        with self._lock:
            for fault in self._faults:
                if fault.match not in target:
                    continue
                if fault.kind == "delay" and self._claim(fault):
                    plan.delay += fault.delay
                    plan.names.append(fault.name)
                elif fault.kind == "answer" and plan.answer is None and self._claim(fault):
                    plan.answer = fault.answer
                    plan.names.append(fault.name)
                elif fault.kind == "transform" and (fault.remaining is None or fault.remaining > 0):
                    plan.transforms.append(fault)
                elif fault.kind == "hang_up" and not plan.hang_up and self._claim(fault):
                    plan.hang_up = True
                    plan.names.append(fault.name)
        return plan

    def apply_transforms(self, plan: _Plan, body: bytes) -> bytes:
        """Run the plan's transforms on a successful JSON body, claiming each one that runs."""
        if not plan.transforms:
            return body
        decoded = json.loads(body)
        for fault in plan.transforms:
            with self._lock:
                claimed = self._claim(fault)
            if claimed and fault.transform is not None:
                changed = fault.transform(decoded)
                decoded = decoded if changed is None else changed
                plan.names.append(fault.name)
        return json.dumps(decoded).encode()


# -- records ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # as sent, percent-decoded, without the query
    query: dict[str, list[str]]
    target: str  # path and query, percent-decoded
    status: int  # 0: the connection was dropped on purpose
    at: float  # time.time() when the answer was ready
    faults: tuple[str, ...] = ()  # names of the faults that acted on it


@dataclass(frozen=True)
class TokenGrant:
    resource: str
    client_id: str | None  # as asked; None: the system-assigned identity
    mi_res_id: str | None
    object_id: str | None
    at: float


@dataclass(frozen=True)
class _Found:
    payload: Any
    paged: bool = True


@dataclass
class _Token:
    audience: str
    expires_at: float


class _ReadBudget:
    """ARM's read token bucket, one per subscription (and one for tenant-level calls)."""

    def __init__(self, capacity: float, refill_per_second: float) -> None:
        self.capacity = capacity
        self.refill = refill_per_second
        self._levels: dict[str, tuple[float, float]] = {}

    def take(self, scope: str, now: float) -> tuple[bool, float, float]:
        """(allowed, remaining, seconds until one token is back)."""
        level, since = self._levels.get(scope, (self.capacity, now))
        level = min(self.capacity, level + (now - since) * self.refill)
        if level >= 1:
            level -= 1
            self._levels[scope] = (level, now)
            return True, level, 0.0
        self._levels[scope] = (level, now)
        wait = (1 - level) / self.refill if self.refill > 0 else 60.0
        return False, level, wait


# -- the emulator ----------------------------------------------------------------------------------------------------

class ArmEmulator:
    """ARM + its token endpoint on 127.0.0.1. Use as a context manager, or :meth:`start` / :meth:`stop`.

    ``page_size``: items per page of every list (a page with more to come carries an absolute ``nextLink``,
    ``https://<Host><path>?api-version=...&$skipToken=N``). ``token_lifetime``: seconds a token is valid.
    ``latency``: seconds every ARM request waits before it is answered (a network round trip to ARM).
    """

    def __init__(self, scenario: Mapping[str, Any], *, page_size: int = 100, ca: LocalCA | None = None,
                 token_lifetime: float = 3600, read_capacity: float = 250, read_refill_per_second: float = 25,
                 throttle_when_exhausted: bool = False, latency: float = 0.0) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        validate(scenario)
        self._scenario: Scenario = copy.deepcopy(dict(scenario))
        self._lock = threading.RLock()
        self.page_size = page_size
        self.token_lifetime = token_lifetime
        self.throttle_when_exhausted = throttle_when_exhausted
        self.latency = latency  # seconds slept before answering each ARM request (not the token endpoint)
        self.faults = Faults()
        self._requests: list[RecordedRequest] = []
        self._grants: list[TokenGrant] = []
        self._tokens: dict[str, _Token] = {}
        self._budget = _ReadBudget(read_capacity, read_refill_per_second)
        self._ca = ca or shared_ca()
        self._identity_header = secrets.token_hex(16)
        self._arm: ThreadingHTTPServer | None = None
        self._identity: ThreadingHTTPServer | None = None

    # -- life cycle --------------------------------------------------------------------------------------------------

    def start(self) -> ArmEmulator:
        if self._arm is not None:
            raise RuntimeError("the emulator is already running")
        self._arm = serve(_handler(self._serve_arm), self._ca.server_context(), "arm-emulator")
        self._identity = serve(_handler(self._serve_token), None, "arm-emulator-identity")
        return self

    def stop(self) -> None:
        # each shutdown waits for its serve loop's next poll (up to 0.5 s): stop both at once
        stoppers = [threading.Thread(target=shutdown, args=(server,)) for server in (self._arm, self._identity)]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        self._arm = self._identity = None

    def __enter__(self) -> ArmEmulator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``https://127.0.0.1:PORT``: the clients' ``base_url``; ``<base_url>/.default`` is the token scope."""
        if self._arm is None:
            raise RuntimeError("start() the emulator first")
        return f"https://127.0.0.1:{self._arm.server_address[1]}"

    @property
    def scope(self) -> str:
        """The scope a client must ask its credential for (``credential_scopes=[arm.scope]``)."""
        return f"{self.base_url}/.default"

    @property
    def ca_bundle_path(self) -> str:
        """PEM file of the CA that signed the server certificate (``connection_verify=`` on the transport)."""
        return self._ca.ca_bundle_path

    @property
    def identity_env(self) -> dict[str, str]:
        """``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` for azure-identity's App Service managed identity, pointed
        at this emulator's token endpoint. Unset :data:`IDENTITY_ENV_CONFLICTS` too, or another source may win."""
        if self._identity is None:
            raise RuntimeError("start() the emulator first")
        return {"IDENTITY_ENDPOINT": f"http://127.0.0.1:{self._identity.server_address[1]}{IDENTITY_PATH}",
                "IDENTITY_HEADER": self._identity_header}

    # -- the estate --------------------------------------------------------------------------------------------------

    @contextmanager
    def update(self) -> Iterator[Scenario]:
        """Change the served estate in place, under the lock: ``with arm.update() as estate: ...``. The estate is
        validated when the block ends."""
        with self._lock:
            yield self._scenario
            validate(self._scenario)

    @property
    def scenario(self) -> Scenario:
        """A copy of the estate being served; assign a new scenario to replace it."""
        with self._lock:
            return copy.deepcopy(self._scenario)

    @scenario.setter
    def scenario(self, scenario: Mapping[str, Any]) -> None:
        self.replace(scenario)

    def replace(self, scenario: Mapping[str, Any]) -> None:
        validate(scenario)
        fresh = copy.deepcopy(dict(scenario))
        with self._lock:
            self._scenario = fresh

    # -- records and faults ------------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every ARM request so far (a copy), oldest first."""
        with self._lock:
            return list(self._requests)

    def count(self, path_substring: str = "", status: int | None = None, *, method: str | None = None) -> int:
        """ARM requests whose percent-decoded path and query contain ``path_substring`` (case-insensitive),
        optionally only those answered with ``status``."""
        wanted = path_substring.casefold()
        return sum(1 for r in self.requests if wanted in r.target.casefold()
                   and (status is None or r.status == status) and (method is None or r.method == method.upper()))

    requests_count = count

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def reset_faults(self) -> None:
        self.faults.reset()

    @property
    def tokens_issued(self) -> int:
        with self._lock:
            return len(self._grants)

    @property
    def token_grants(self) -> list[TokenGrant]:
        """Every token the token endpoint issued (a copy), oldest first."""
        with self._lock:
            return list(self._grants)

    def revoke_tokens(self) -> None:
        """Forget every issued token: requests carrying one get 401 ``InvalidAuthenticationToken``."""
        with self._lock:
            self._tokens.clear()

    # -- token endpoint ----------------------------------------------------------------------------------------------

    def _serve_token(self, method: str, target: str, headers: Message) -> Answer:
        parts = urllib.parse.urlsplit(target)
        query = urllib.parse.parse_qs(parts.query)

        def one(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        def refuse(status: int, message: str) -> Answer:
            return status, {}, json.dumps({"statusCode": status, "message": message}).encode()

        if parts.path != IDENTITY_PATH:
            return refuse(404, f"no token endpoint at {parts.path}")
        if method != "GET":
            return refuse(405, "use GET")
        if headers.get("X-IDENTITY-HEADER") != self._identity_header:
            return refuse(401, "X-IDENTITY-HEADER is missing or does not match IDENTITY_HEADER")
        if one("api-version") != IDENTITY_API_VERSION:
            return refuse(400, f"api-version must be {IDENTITY_API_VERSION}")
        resource = one("resource")
        if not resource:
            return refuse(400, "the resource parameter is required")
        now = time.time()
        token = f"emulator.{secrets.token_urlsafe(24)}"
        expires_at = int(now + self.token_lifetime)
        with self._lock:
            self._tokens[token] = _Token(_audience(resource), expires_at)
            self._grants.append(TokenGrant(resource, one("client_id"), one("mi_res_id"), one("object_id"), now))
        body = {"access_token": token, "expires_on": str(expires_at), "resource": resource, "token_type": "Bearer",
                "client_id": one("client_id") or SYSTEM_ASSIGNED_CLIENT_ID}
        return 200, {}, json.dumps(body).encode()

    # -- ARM ---------------------------------------------------------------------------------------------------------

    def _serve_arm(self, method: str, target: str, headers: Message) -> Answer:
        if self.latency > 0:
            time.sleep(self.latency)
        parts = urllib.parse.urlsplit(target)
        path = urllib.parse.unquote(parts.path).rstrip("/") or "/"
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        decoded = urllib.parse.unquote(parts.query)
        match_target = f"{path}/" + (f"?{decoded}" if decoded else "")
        segments = [s.casefold() for s in path.strip("/").split("/")]
        scope = segments[1] if len(segments) > 1 and segments[0] == "subscriptions" else _TENANT_SCOPE

        plan = _Plan()
        status, extra, body = self._authenticate(headers)
        remaining = self._budget.capacity
        if status == 200:
            if method != "GET":
                status, extra, body = 405, {}, _error("MethodNotAllowed", "The ARM emulator is read-only: GET only.")
            elif "api-version" not in query:
                status, extra, body = 400, {}, _error("MissingApiVersionParameter",
                                                      "The api-version query parameter (?api-version=) is required "
                                                      "for all requests.")
            else:
                # nextLinks name the host the client asked for, as ARM's do (a client may reach it by another name)
                origin = f"https://{headers['Host']}" if headers.get("Host") else self.base_url
                status, extra, body, remaining, plan = self._answer(path, segments, query, match_target, scope,
                                                                    origin)
        response_headers = {
            "x-ms-request-id": str(uuid.uuid4()),
            "x-ms-correlation-request-id": str(uuid.uuid4()),
            "x-ms-ratelimit-remaining-subscription-reads": str(max(0, math.floor(remaining))),
            **extra,
        }
        if scope == _TENANT_SCOPE:
            response_headers["x-ms-ratelimit-remaining-tenant-reads"] = response_headers[
                "x-ms-ratelimit-remaining-subscription-reads"]
        if plan.hang_up:
            response_headers[HANG_UP] = "1"
        with self._lock:
            self._requests.append(RecordedRequest(method, path, query, f"{path}?{decoded}" if decoded else path,
                                                  status, time.time(), tuple(plan.names)))
        return status, response_headers, body

    def _authenticate(self, headers: Message) -> Answer:
        authorization = headers.get("Authorization")
        if not authorization:
            return self._unauthorized("AuthenticationFailed", "Authentication failed. The 'Authorization' header "
                                      "is missing.")
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            issued = self._tokens.get(token.strip()) if scheme.casefold() == "bearer" else None
        if issued is None:
            return self._unauthorized("InvalidAuthenticationToken", "The access token is invalid.")
        if issued.expires_at <= time.time():
            return self._unauthorized("ExpiredAuthenticationToken", "The access token expiry UTC time is earlier "
                                      "than current UTC time.")
        if issued.audience != _audience(self.base_url):
            return self._unauthorized(
                "InvalidAuthenticationTokenAudience",
                f"The access token has been obtained for wrong audience or resource '{issued.audience}'. It should "
                f"exactly match with one of the allowed audiences '{self.base_url}', '{self.base_url}/'.")
        return 200, {}, b""

    @staticmethod
    def _unauthorized(code: str, message: str) -> Answer:
        challenge = (f'Bearer authorization_uri="https://login.microsoftonline.com/{TENANT_ID}", '
                     f'error="invalid_token", error_description="{message}"')
        return 401, {"WWW-Authenticate": challenge}, _error(code, message)

    def _answer(self, path: str, segments: list[str], query: dict[str, list[str]], match_target: str, scope: str,
                origin: str) -> tuple[int, dict[str, str], bytes, float, _Plan]:
        with self._lock:
            allowed, remaining, wait = self._budget.take(scope, time.monotonic())
        if not allowed and self.throttle_when_exhausted:
            retry_after = max(1, math.ceil(wait))
            return (429, {"Retry-After": str(retry_after)},
                    _error("SubscriptionRequestsThrottled",
                           f"Number of 'read' requests for subscription '{scope}' exceeded. Please try again "
                           f"after '{retry_after}' seconds after the additional tokens are replenished."),
                    remaining, _Plan())
        plan = self.faults.plan(match_target)
        if plan.delay:
            time.sleep(plan.delay)
        if plan.answer is not None:
            status, extra, body = plan.answer
            return status, dict(extra), body, remaining, plan
        status, extra, body = self._route(path, segments, query, origin)
        if status == 200:
            body = self.faults.apply_transforms(plan, body)
        return status, extra, body, remaining, plan

    def _route(self, path: str, segments: list[str], query: dict[str, list[str]], origin: str) -> Answer:
        skip = (query.get("$skipToken") or query.get("$skiptoken") or ["0"])[0]
        if not skip.isdigit():
            return 400, {}, _error("InvalidSkipToken", f"The $skipToken '{skip}' is not valid.")
        if len(segments) > 3 and segments[-3:] == ["providers", "microsoft.insights", "metrics"]:
            return self._metrics(segments, path.strip("/").split("/"), query)
        with self._lock:
            found = self._find(segments, path.strip("/").split("/"))
            if not isinstance(found, _Found):
                return found
            if not found.paged:
                return 200, {}, json.dumps(found.payload).encode()
            return 200, {}, json.dumps(self._page(origin, path, query, found.payload, int(skip))).encode()

    def _page(self, origin: str, path: str, query: dict[str, list[str]], items: list[Any], start: int
              ) -> dict[str, Any]:
        page: dict[str, Any] = {"value": items[start:start + self.page_size]}
        if start + self.page_size < len(items):
            api_version = urllib.parse.quote(query["api-version"][0], safe="")
            page["nextLink"] = (f"{origin}{urllib.parse.quote(path)}?api-version={api_version}"
                                f"&$skipToken={start + self.page_size}")
        return page

    def _find(self, segments: list[str], raw: list[str]) -> _Found | Answer:
        """``segments``: the path's segments casefolded, for matching; ``raw``: as sent, for messages."""
        if segments == ["subscriptions"]:
            return _Found([self._subscription_json(sub) for sub in self._scenario.get("subscriptions", [])])
        if len(segments) < 2 or segments[0] != "subscriptions":
            return _not_found(segments)
        sub = self._subscription(segments[1])
        if sub is None:
            return 404, {}, _error("SubscriptionNotFound", f"The subscription '{raw[1]}' could not be found.")
        rest = segments[2:]
        if rest == [*_PROVIDER, "accounts"]:
            return _Found([self._account_json(sub, a) for a in sub.get("accounts", [])])
        if len(rest) == 5 and rest[:3] == [*_PROVIDER, "locations"] and rest[4] == "models":
            return _Found(self._location_models(sub, rest[3]))
        if len(rest) < 5 or rest[0] != "resourcegroups" or rest[2:4] != list(_PROVIDER) or rest[4] != "accounts":
            return _not_found(segments)
        group, tail = rest[1], rest[5:]
        accounts = [a for a in sub.get("accounts", []) if a["resourceGroup"].casefold() == group]
        if not tail:
            return _Found([self._account_json(sub, a) for a in accounts])
        account = next((a for a in accounts if a["name"].casefold() == tail[0]), None)
        if account is None:
            return 404, {}, _error("ResourceNotFound",
                                   f"The Resource 'Microsoft.CognitiveServices/accounts/{raw[7]}' under resource "
                                   f"group '{raw[3]}' was not found. For more details please go to "
                                   "https://aka.ms/ARMResourceNotFoundFix")
        if len(tail) == 1:
            return _Found(paged=False, payload=self._account_json(sub, account))
        if tail[1:] == ["models"]:
            return _Found(list(account.get("models", [])))
        if tail[1] == "deployments" and len(tail) <= 3:
            deployments = [self._deployment_json(sub, account, d) for d in account.get("deployments", [])]
            if len(tail) == 2:
                return _Found(deployments)
            one = next((d for d in deployments if d["name"].casefold() == tail[2]), None)
            if one is None:
                return 404, {}, _error("DeploymentNotFound", f"Deployment '{raw[9]}' not found.")
            return _Found(paged=False, payload=one)
        return _not_found(segments)

    def _metrics(self, segments: list[str], raw: list[str], query: dict[str, list[str]]) -> Answer:
        """Azure Monitor's metrics of an account (the only resource here that has them)."""
        with self._lock:
            found = self._find(segments[:-3], raw[:-3])
            if not isinstance(found, _Found):
                return found
            if found.paged or found.payload.get("type") != "Microsoft.CognitiveServices/accounts":
                return _not_found(segments)
            account_id = found.payload["id"]
            account = next(a for sub, a in _accounts(self._scenario)
                           if self._account_id(sub, a).casefold() == account_id.casefold())
            return metrics_answer(copy.deepcopy(account), account_id, query)

    def _subscription(self, subscription_id: str) -> dict[str, Any] | None:
        for sub in self._scenario.get("subscriptions", []):
            if str(sub["subscriptionId"]).casefold() == subscription_id:
                found: dict[str, Any] = sub
                return found
        return None

    def _location_models(self, sub: dict[str, Any], location: str) -> list[Any]:
        wanted = _location_key(location)
        for catalog in (sub.get("locationModels") or {}, self._scenario.get("locationModels") or {}):
            for name, entries in catalog.items():
                if _location_key(name) == wanted:
                    return list(entries)
        return []

    @staticmethod
    def _subscription_json(sub: dict[str, Any]) -> dict[str, Any]:
        body = {key: value for key, value in sub.items() if key not in ("accounts", "locationModels")}
        body.update({"id": f"/subscriptions/{sub['subscriptionId']}",
                     "displayName": sub.get("displayName") or sub["subscriptionId"],
                     "state": sub.get("state", "Enabled"), "tenantId": sub.get("tenantId", TENANT_ID)})
        body.setdefault("authorizationSource", "RoleBased")
        body.setdefault("subscriptionPolicies", {"locationPlacementId": "Public_2014-09-01",
                                                 "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"})
        return body

    @staticmethod
    def _account_id(sub: dict[str, Any], account: dict[str, Any]) -> str:
        return (f"/subscriptions/{sub['subscriptionId']}/resourceGroups/{account['resourceGroup']}/providers/"
                f"Microsoft.CognitiveServices/accounts/{account['name']}")

    def _account_json(self, sub: dict[str, Any], account: dict[str, Any]) -> dict[str, Any]:
        body = {key: value for key, value in account.items()
                if key not in ("resourceGroup", "deployments", "models") and value is not None}
        kind = account.get("kind", "OpenAI")
        host = "openai.azure.com" if kind == "OpenAI" else "cognitiveservices.azure.com"
        properties = {"provisioningState": "Succeeded", "endpoint": f"https://{account['name']}.{host}/",
                      "customSubDomainName": account["name"], **(account.get("properties") or {})}
        body.update({"id": self._account_id(sub, account), "name": account["name"],
                     "type": "Microsoft.CognitiveServices/accounts", "kind": kind,
                     "location": account.get("location", "eastus"), "sku": account.get("sku") or {"name": "S0"},
                     "properties": properties})
        return body

    def _deployment_json(self, sub: dict[str, Any], account: dict[str, Any], deployment: dict[str, Any]
                         ) -> dict[str, Any]:
        body = dict(deployment)
        body.pop("usage", None)  # the scenario's traffic, served by the metrics endpoint only
        body["id"] = f"{self._account_id(sub, account)}/deployments/{deployment['name']}"
        body["type"] = "Microsoft.CognitiveServices/accounts/deployments"
        if isinstance(body.get("properties"), dict) and "provisioningState" not in body["properties"]:
            body["properties"] = {**body["properties"], "provisioningState": "Succeeded"}
        return body


def _accounts(scenario: Scenario) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for sub in scenario.get("subscriptions", []):
        for account in sub.get("accounts", []):
            yield sub, account


def _audience(resource: str) -> str:
    return resource.strip().rstrip("/").casefold()


def _location_key(location: str) -> str:
    return re.sub(r"\s+", "", location).casefold()


def _not_found(segments: list[str]) -> Answer:
    path = "/" + "/".join(segments)
    return 404, {}, _error("NotFound", f"The ARM emulator serves no resource at '{path}'.")


def _handler(serve_one: Callable[[str, str, Message], Answer]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _respond(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            try:
                status, headers, body = serve_one(self.command, self.path, self.headers)
            except Exception as exc:  # the emulator's own bug: answer it, do not drop the connection
                status, headers, body = 500, {}, _error("EmulatorError", f"{type(exc).__name__}: {exc}")
            if status == 0:
                self.close_connection = True
                return
            hang_up = headers.pop(HANG_UP, None) is not None
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            if hang_up:
                self.wfile.flush()
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _respond

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


# -- a separate process, for benchmarks --------------------------------------------------------------------------------

def serve_main(argv: Sequence[str] | None = None) -> int:
    """``python -m daemon.emulators.arm serve --scenario FILE [--latency 0.02] [--page-size 100] [--throttle]``

    Runs the emulator in its own process (so a client measured against it does not share its interpreter) and
    prints one JSON line: ``{"base_url", "ca_bundle", "scope", "identity_env"}``. Then it reads commands, one per
    line, on standard input and answers each with one JSON line on standard output: ``requests`` (how many ARM
    requests so far, and how many per status), ``clear`` (forget them). End of input stops it.
    """
    import argparse
    import sys
    from datetime import UTC, datetime

    parser = argparse.ArgumentParser(prog="python -m daemon.emulators.arm")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="serve a scenario until standard input closes")
    serve_parser.add_argument("--scenario", help="scenario JSON file (default: the demo estate)")
    serve_parser.add_argument("--latency", type=float, default=0.0, help="seconds before each ARM answer")
    serve_parser.add_argument("--page-size", type=int, default=100)
    serve_parser.add_argument("--throttle", action="store_true", help="answer 429 when a read bucket is empty")
    args = parser.parse_args(argv)
    today = datetime.now(UTC).date()
    scenario = load_scenario(args.scenario, today) if args.scenario else demo_estate(today)
    with ArmEmulator(scenario, page_size=args.page_size, latency=args.latency,
                     throttle_when_exhausted=args.throttle) as arm:
        # http.server writes the headers and the body of an answer separately: with Nagle's algorithm on, the body
        # waits for the client's delayed ACK (40 ms on Linux), which no real ARM front end adds to a round trip.
        # And socketserver listens with a backlog of 5: a client opening its connections at once would lose SYNs
        # and wait a second for each retransmission.
        for server in (arm._arm, arm._identity):
            if server is not None:
                server.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
                server.socket.listen(128)
        print(json.dumps({"base_url": arm.base_url, "ca_bundle": arm.ca_bundle_path, "scope": arm.scope,
                          "identity_env": arm.identity_env}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "requests":
                with arm._lock:
                    statuses: dict[str, int] = {}
                    for request in arm._requests:
                        statuses[str(request.status)] = statuses.get(str(request.status), 0) + 1
                    answer: dict[str, Any] = {"requests": len(arm._requests), "statuses": statuses,
                                              "tokens": len(arm._grants)}
            elif command == "clear":
                arm.clear_requests()
                answer = {"cleared": True}
            else:
                answer = {"error": f"unknown command {command!r}: requests | clear"}
            print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(serve_main())
