"""The one place that builds Azure clients: credential, token audience, transport, timeouts and retries.

Every list (subscriptions, and the Microsoft.CognitiveServices accounts, deployments, location and account models)
is read as raw JSON through :class:`ArmReader`, an ``azure.mgmt.core.ARMPipelineClient`` with those of the SDK
management clients' policies a read needs, so the collector parses it field by field: the SDK's model classes
reject a whole page over one odd item (a date without a time part) and cost CPU on every item (and seconds of
imports).

Defaults in azure-core would let one sick subscription hold a worker for many minutes (10 retries, ``Retry-After``
slept in full, 300 s timeouts) and would discard pooled connections beyond 10 per host; every client built here
shares one transport (``collect.transport``: http.client, a keep-alive connection per worker; ``requests`` when a
proxy is configured) with explicit timeouts and a capped retry. The environment (proxies, CA bundle) is read once
per poll, not on every request as ``requests`` would.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any

import requests
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    map_error,
)
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import (
    CustomHookPolicy,
    HeadersPolicy,
    ProxyPolicy,
    RequestIdPolicy,
    RetryPolicy,
    UserAgentPolicy,
)
from azure.core.pipeline.transport import HttpTransport, RequestsTransport
from azure.core.rest import HttpRequest
from azure.identity import DefaultAzureCredential
from azure.mgmt.core import ARMPipelineClient
from azure.mgmt.core.exceptions import ARMErrorFormat
from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy, ARMHttpLoggingPolicy

from daemon.collect.transport import HttpClientTransport
from daemon.config import AzureConfig


class CappedRetryPolicy(RetryPolicy):  # type: ignore[type-arg]
    """azure-core's retry (408, 429, 5xx, connection errors) with ``Retry-After`` capped, so a 429 asking for an
    hour costs at most ``max_retry_after`` seconds per attempt before the subscription is recorded as failed and
    retried at the next poll."""

    def __init__(self, *, max_retry_after: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._max_retry_after = max_retry_after

    def get_retry_after(self, response: PipelineResponse[Any, Any]) -> float | None:
        retry_after = super().get_retry_after(response)
        return None if retry_after is None else min(retry_after, self._max_retry_after)


class RequestCounter:
    """Counts every HTTP attempt (retries included) the clients make; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def __call__(self, _request: PipelineRequest[Any]) -> None:
        with self._lock:
            self.count += 1


API_VERSION = "2025-09-01"  # Microsoft.CognitiveServices; the first stable version with per-SKU dates
SUBSCRIPTIONS_API_VERSION = "2022-12-01"  # Microsoft.Resources/subscriptions


class MalformedResponse(ValueError):
    """A 200 answer whose body is not the list ARM documents."""


class ArmReader:
    """``GET`` ARM list operations as raw JSON through an azure-core pipeline, following ``nextLink``.

    Thread-safe: one reader serves every worker of a poll (one token cache, one connection pool)."""

    def __init__(self, client: ARMPipelineClient[Any, Any], base_url: str, api_version: str = API_VERSION) -> None:
        self._client = client
        self._base = urllib.parse.urlsplit(base_url.rstrip("/"))
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version

    def list(self, path: str, *, digest: Any = None) -> list[Any]:
        """Every item of every page of the list at ``path`` (an ARM path such as ``/subscriptions/{id}/...``).
        Raises ``HttpResponseError`` (and subclasses) for error answers, :class:`MalformedResponse` for a body that
        is not a list page, ``AzureError`` / ``OSError`` for the network. ``digest`` (a ``hashlib`` object) is
        updated with every page's body."""
        url: str | None = f"{self.base_url}{path}?api-version={self.api_version}"
        items: list[Any] = []
        seen: set[str] = set()
        while url:
            seen.add(url)
            page = self._get(url, digest)
            value = page.get("value", [])
            if not isinstance(value, list):
                raise MalformedResponse(f"malformed response: 'value' is not a list in {path}")
            items.extend(value)
            url = self._next(page.get("nextLink"), path, seen)
        return items

    def get(self, path: str, query: Mapping[str, str]) -> dict[str, Any]:
        """One ``GET`` of ``path`` with ``query`` (which carries its own ``api-version``), as a JSON object. Raises
        like :meth:`list`."""
        encoded = urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        return self._get(f"{self.base_url}{urllib.parse.quote(path)}?{encoded}")

    def _get(self, url: str, digest: Any = None) -> dict[str, Any]:
        response = self._client.send_request(HttpRequest("GET", url, headers={"Accept": "application/json"}))
        if response.status_code >= 300:  # redirects are not followed (see AzureClients._pipeline_client)
            map_error(response.status_code, response,
                      {401: ClientAuthenticationError, 404: ResourceNotFoundError})
            raise HttpResponseError(response=response, error_format=ARMErrorFormat)
        body = response.body()
        if digest is not None:
            digest.update(body)
        try:
            page = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedResponse(f"malformed response: not JSON ({str(exc).splitlines()[0][:200]})") from None
        if not isinstance(page, dict):
            raise MalformedResponse("malformed response: not a JSON object")
        return page

    def _next(self, link: Any, path: str, seen: set[str]) -> str | None:
        if link is None or link == "":
            return None
        if not isinstance(link, str):
            raise MalformedResponse(f"malformed response: nextLink is not a URL in {path}")
        url: str = link
        parts = urllib.parse.urlsplit(url)
        if (parts.scheme, parts.hostname, parts.port or 443) != (self._base.scheme, self._base.hostname,
                                                                 self._base.port or 443):
            # the bearer token goes with every request: never to another host than the configured endpoint
            raise MalformedResponse(f"malformed response: nextLink leaves {self.base_url}: {url[:200]}")
        if "api-version=" not in parts.query.casefold():
            query = "&".join(part for part in (parts.query, f"api-version={self.api_version}") if part)
            url = urllib.parse.urlunsplit(parts._replace(query=query))
        if url in seen:
            raise MalformedResponse(f"malformed response: nextLink repeats in {path}")
        return url


class AzureClients:
    """Factory for the Azure clients of one poll; call :meth:`close` when the poll is done."""

    def __init__(self, config: AzureConfig, credential: TokenCredential | None = None) -> None:
        self._config = config
        self.credential = credential or build_credential(config)
        self.requests = RequestCounter()
        # The environment does not change during a poll: read proxies and the CA bundle once, here, not on every
        # request as requests does with trust_env.
        self._proxies = {scheme: url for scheme, url in requests.utils.get_environ_proxies(
            config.resource_manager_endpoint).items() if scheme in ("http", "https", "all", "no")}
        verify = config.ca_bundle or _environment_ca_bundle() or True
        self._session: requests.Session | None = None
        self._transport: HttpTransport[Any, Any]
        if self._proxies:  # http.client would need CONNECT tunnels and proxy credentials: requests has them
            self._session = requests.Session()
            self._session.trust_env = False
            adapter = requests.adapters.HTTPAdapter(
                pool_connections=4, pool_maxsize=config.max_concurrency + 2, max_retries=0
            )
            self._session.mount("https://", adapter)
            self._transport = RequestsTransport(
                session=self._session,
                session_owner=False,
                connection_timeout=config.timeout_seconds,
                read_timeout=config.timeout_seconds,
                connection_verify=verify,
            )
        else:
            self._transport = HttpClientTransport(connection_timeout=config.timeout_seconds,
                                                  read_timeout=config.timeout_seconds, connection_verify=verify)
        self._pipeline: ARMPipelineClient[Any, Any] | None = None

    def _retry_policy(self) -> CappedRetryPolicy:
        config = self._config
        return CappedRetryPolicy(
            retry_total=config.max_retries,
            retry_backoff_factor=0.8,
            retry_backoff_max=min(30.0, config.max_retry_after_seconds),
            max_retry_after=config.max_retry_after_seconds,
            timeout=config.timeout_seconds * (config.max_retries + 1) * 2,
        )

    @property
    def _scope(self) -> str:
        return f"{self._config.audience}/.default"

    def subscriptions(self) -> ArmReader:
        """The raw-JSON reader for ``/subscriptions`` (Microsoft.Resources' API version)."""
        return ArmReader(self._pipeline_client(), self._config.resource_manager_endpoint, SUBSCRIPTIONS_API_VERSION)

    def arm(self) -> ArmReader:
        """The raw-JSON reader for Microsoft.CognitiveServices lists."""
        return ArmReader(self._pipeline_client(), self._config.resource_manager_endpoint)

    def _pipeline_client(self) -> ARMPipelineClient[Any, Any]:
        """The SDK management clients' policies that a read of ARM needs, in their order: headers, user agent,
        proxies (when the environment names one), the capped retry, the ARM bearer-token challenge and the request
        counter. Left out, each costing CPU on every one of a poll's thousand requests (a twentieth of a first poll's
        wall time on 10,000 deployments, measured): the deserialisation (``ContentDecodePolicy``), the automatic
        resource-provider registration (a write), redirects (ARM answers a list with 200; a 3xx is an error here,
        and the bearer token never follows one), and OpenTelemetry tracing (retirewatch configures none). With
        ``-vv`` (the ``azure`` logger at INFO) every request gets a client request id and is logged, as the SDK
        would."""
        if self._pipeline is not None:
            return self._pipeline
        debugging = logging.getLogger("azure").isEnabledFor(logging.INFO)
        policies: list[Any] = [
            *([RequestIdPolicy()] if debugging else []),
            HeadersPolicy(),
            UserAgentPolicy(sdk_moniker="retirewatch"),
            *([ProxyPolicy(proxies=self._proxies)] if self._proxies else []),
            self._retry_policy(),
            ARMChallengeAuthenticationPolicy(self.credential, self._scope),
            CustomHookPolicy(raw_request_hook=self.requests),
            *([ARMHttpLoggingPolicy()] if debugging else []),
        ]
        self._pipeline = ARMPipelineClient(
            base_url=self._config.resource_manager_endpoint, policies=policies, transport=self._transport)
        return self._pipeline

    def close(self) -> None:
        self._transport.close()
        if self._session is not None:
            self._session.close()
        close = getattr(self.credential, "close", None)
        if callable(close):
            close()


def _environment_ca_bundle() -> str | None:
    """The CA bundle ``requests`` would take from the environment (it no longer looks on every request)."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


def build_credential(config: AzureConfig) -> TokenCredential:
    """``DefaultAzureCredential``: environment, workload identity, managed identity, Azure CLI... in that order."""
    kwargs: dict[str, Any] = {"exclude_interactive_browser_credential": True}
    if config.managed_identity_client_id:
        kwargs["managed_identity_client_id"] = config.managed_identity_client_id
    return DefaultAzureCredential(**kwargs)
