"""The one place that builds Azure SDK clients: credential, token audience, transport, timeouts and retries.

Defaults in azure-core would let one sick subscription hold a worker for many minutes (10 retries, ``Retry-After``
slept in full, 300 s timeouts) and would discard pooled connections beyond 10 per host; every client built here
shares one transport whose pool fits the configured concurrency, with explicit timeouts and a capped retry.
"""

from __future__ import annotations

import threading
from typing import Any

import requests
from azure.core.credentials import TokenCredential
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import RetryPolicy
from azure.core.pipeline.transport import RequestsTransport
from azure.identity import DefaultAzureCredential
from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
from azure.mgmt.resource.subscriptions import SubscriptionClient

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


class AzureClients:
    """Factory for the SDK clients of one poll; call :meth:`close` when the poll is done."""

    def __init__(self, config: AzureConfig, credential: TokenCredential | None = None) -> None:
        self._config = config
        self.credential = credential or build_credential(config)
        self.requests = RequestCounter()
        self._session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=4, pool_maxsize=config.max_concurrency + 2, max_retries=0
        )
        self._session.mount("https://", adapter)
        self._transport = RequestsTransport(
            session=self._session,
            session_owner=False,
            connection_timeout=config.timeout_seconds,
            read_timeout=config.timeout_seconds,
            connection_verify=config.ca_bundle or True,
        )

    def _common(self) -> dict[str, Any]:
        config = self._config
        return {
            "base_url": config.resource_manager_endpoint,
            "credential_scopes": [f"{config.audience}/.default"],
            "transport": self._transport,
            "retry_policy": CappedRetryPolicy(
                retry_total=config.max_retries,
                retry_backoff_factor=0.8,
                retry_backoff_max=min(30.0, config.max_retry_after_seconds),
                max_retry_after=config.max_retry_after_seconds,
                timeout=config.timeout_seconds * (config.max_retries + 1) * 2,
            ),
            "raw_request_hook": self.requests,
        }

    def subscriptions(self) -> SubscriptionClient:
        return SubscriptionClient(self.credential, **self._common())

    def cognitive_services(self, subscription_id: str) -> CognitiveServicesManagementClient:
        return CognitiveServicesManagementClient(self.credential, subscription_id, **self._common())

    def close(self) -> None:
        self._session.close()
        close = getattr(self.credential, "close", None)
        if callable(close):
            close()


def build_credential(config: AzureConfig) -> TokenCredential:
    """``DefaultAzureCredential``: environment, workload identity, managed identity, Azure CLI... in that order."""
    kwargs: dict[str, Any] = {"exclude_interactive_browser_credential": True}
    if config.managed_identity_client_id:
        kwargs["managed_identity_client_id"] = config.managed_identity_client_id
    return DefaultAzureCredential(**kwargs)
