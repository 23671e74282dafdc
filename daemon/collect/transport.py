"""An azure-core transport over the standard library's ``http.client``: one keep-alive connection per thread.

A poll sends about a thousand small GETs per 10,000 deployments. Through ``requests`` and ``urllib3`` each costs
about half a millisecond of CPU before the pipeline's own policies run (session and adapter settings merged, header
dicts rebuilt, cookies extracted, pool bookkeeping); ``http.client`` costs a fraction of that. Retries, timeouts,
authentication and logging stay the pipeline's (``collect.azure``); this module only moves bytes:

* each thread keeps one connection per host and reuses it; a connection the server closed while it was idle is
  noticed before it is used (like urllib3) and replaced; a failure mid-request closes it;
* errors map to azure-core's like ``RequestsTransport``'s: before the request is sent ``ServiceRequestError``
  (``...TimeoutError`` for a timeout), after it ``ServiceResponseError`` (``...TimeoutError``), which the retry
  policy retries;
* bodies are read whole (ARM list pages are small) and ``gzip`` answers are decompressed.

Proxies are not handled here: ``AzureClients`` uses ``RequestsTransport`` when the environment names one.
"""

from __future__ import annotations

import http.client
import select
import ssl
import threading
import urllib.parse
import zlib
from typing import Any

import certifi
from azure.core.exceptions import (
    IncompleteReadError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest
from azure.core.rest._http_response_impl import RestHttpClientTransportResponse

_Key = tuple[str, str, int]


class HttpClientTransport(HttpTransport):  # type: ignore[type-arg]
    """``connection_verify``: a CA bundle path, or True for certifi's (what ``requests`` trusts by default)."""

    def __init__(self, *, connection_timeout: float, read_timeout: float, connection_verify: str | bool = True) -> None:
        if connection_verify is False:
            raise ValueError("TLS verification cannot be turned off")
        cafile = connection_verify if isinstance(connection_verify, str) else certifi.where()
        self._context = ssl.create_default_context(cafile=cafile)
        self._connect_timeout = connection_timeout
        self._read_timeout = read_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()

    def __enter__(self) -> HttpClientTransport:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def open(self) -> None:
        pass

    def close(self) -> None:
        """Close every connection of every thread."""
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            connection.close()

    # -- connections -----------------------------------------------------------------------------------------------

    def _connections(self) -> dict[_Key, http.client.HTTPConnection]:
        connections: dict[_Key, http.client.HTTPConnection] | None = getattr(self._local, "connections", None)
        if connections is None:
            connections = self._local.connections = {}
        return connections

    def _connection(self, key: _Key) -> http.client.HTTPConnection:
        connections = self._connections()
        connection = connections.get(key)
        if connection is not None and _dropped(connection):
            self._discard(key, connection)
            connection = None
        if connection is None:
            scheme, host, port = key
            if scheme == "https":
                connection = http.client.HTTPSConnection(host, port, timeout=self._connect_timeout,
                                                         context=self._context)
            else:
                connection = http.client.HTTPConnection(host, port, timeout=self._connect_timeout)
            connections[key] = connection
            with self._lock:
                self._open.add(connection)
        return connection

    def _discard(self, key: _Key, connection: http.client.HTTPConnection) -> None:
        connection.close()
        self._connections().pop(key, None)
        with self._lock:
            self._open.discard(connection)

    # -- one request -----------------------------------------------------------------------------------------------

    def send(self, request: Any, **kwargs: Any) -> Any:
        """Send an ``azure.core.rest.HttpRequest``; the answer is read whole before it is returned."""
        if not isinstance(request, HttpRequest):
            raise TypeError("HttpClientTransport sends azure.core.rest requests only")
        if kwargs.get("proxies"):
            raise ValueError("HttpClientTransport does not go through proxies: use RequestsTransport")
        parts = urllib.parse.urlsplit(request.url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ServiceRequestError(f"cannot send to {request.url!r}")
        key = (scheme, parts.hostname, parts.port or (443 if scheme == "https" else 80))
        target = parts.path or "/"
        if parts.query:
            target += f"?{parts.query}"
        headers = dict(request.headers)
        headers.setdefault("Accept-Encoding", "gzip")
        body = request.content if isinstance(request.content, bytes) else None
        connection = self._connection(key)
        try:
            if connection.sock is None:
                connection.connect()
            connection.sock.settimeout(self._read_timeout)
            connection.request(request.method, target, body=body, headers=headers)
        except TimeoutError as exc:
            self._discard(key, connection)
            raise ServiceRequestTimeoutError(exc, error=exc) from exc
        except (OSError, http.client.HTTPException) as exc:
            self._discard(key, connection)
            raise ServiceRequestError(exc, error=exc) from exc
        try:
            answer = connection.getresponse()
            content = answer.read()
        except TimeoutError as exc:
            self._discard(key, connection)
            raise ServiceResponseTimeoutError(exc, error=exc) from exc
        except http.client.IncompleteRead as exc:
            self._discard(key, connection)
            raise IncompleteReadError(exc, error=exc) from exc
        except (OSError, http.client.HTTPException) as exc:
            self._discard(key, connection)
            raise ServiceResponseError(exc, error=exc) from exc
        if answer.will_close:
            self._discard(key, connection)
        if content and (answer.getheader("Content-Encoding") or "").strip().lower() == "gzip":
            try:
                content = zlib.decompress(content, 16 + zlib.MAX_WBITS)
            except zlib.error as exc:
                raise ServiceResponseError(f"undecodable gzip body: {exc}", error=exc) from exc
        response = RestHttpClientTransportResponse(  # type: ignore[no-untyped-call]
            request=request, internal_response=answer)
        response._content = content  # read above, so the connection is free for the next request
        return response


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """An idle keep-alive connection that is readable has been closed by the server (or has garbage to say)."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
