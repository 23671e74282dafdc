"""A forward HTTP proxy for HTTPS: ``CONNECT host:port``, then bytes both ways (what corporate egress proxies do).

It sees only the tunnel, never the TLS inside it. Each ``CONNECT`` is recorded (target, the user of its
``Proxy-Authorization: Basic`` header); with ``credentials`` set, a request without them is answered
``407 Proxy Authentication Required``. Anything but ``CONNECT`` gets 405: retirewatch talks HTTPS only. The proxy
resolves ``tls.PROXIED_HOST`` to 127.0.0.1, as an egress proxy resolves names the client's own DNS does not: a
client configured with that name reaches the emulators through the proxy or not at all.

    with ProxyEmulator(credentials=("egress", "secret")) as proxy:
        os.environ["HTTPS_PROXY"] = proxy.url_with("egress", "secret")
"""

from __future__ import annotations

import base64
import select
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from daemon.emulators.server import serve, shutdown
from daemon.emulators.tls import PROXIED_HOST

TUNNEL_IDLE_SECONDS = 30.0


@dataclass(frozen=True)
class Tunnel:
    target: str  # "host:port"
    user: str | None  # from Proxy-Authorization, when given


class ProxyEmulator:
    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.credentials = credentials
        self._lock = threading.Lock()
        self._tunnels: list[Tunnel] = []
        self.refused = 0  # CONNECTs answered 407
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> ProxyEmulator:
        self._server = serve(_handler(self), None, "proxy-emulator")
        return self

    def stop(self) -> None:
        shutdown(self._server)
        self._server = None

    def __enter__(self) -> ProxyEmulator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "the proxy is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url_with(self, user: str, password: str) -> str:
        return self.url.replace("http://", f"http://{user}:{password}@", 1)

    @property
    def tunnels(self) -> list[Tunnel]:
        with self._lock:
            return list(self._tunnels)

    def _opened(self, tunnel: Tunnel) -> None:
        with self._lock:
            self._tunnels.append(tunnel)

    def _authorised(self, header: str | None) -> tuple[bool, str | None]:
        user = None
        if header and header.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False, None
            if self.credentials is None or (user, password) == self.credentials:
                return True, user
            return False, user
        return self.credentials is None, None


def _handler(proxy: ProxyEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_CONNECT(self) -> None:
            allowed, user = proxy._authorised(self.headers.get("Proxy-Authorization"))
            if not allowed:
                with proxy._lock:
                    proxy.refused += 1
                self._empty(407, {"Proxy-Authenticate": 'Basic realm="egress"'})
                return
            host, _, port = self.path.rpartition(":")
            host = "127.0.0.1" if host.casefold() == PROXIED_HOST else host.strip("[]")
            try:
                upstream = socket.create_connection((host, int(port)), timeout=10)
            except (OSError, ValueError):
                self._empty(502)
                return
            proxy._opened(Tunnel(self.path, user))
            self.send_response(200, "Connection established")
            self.end_headers()
            self.close_connection = True
            _pump(self.connection, upstream)

        def _empty(self, status: int, headers: dict[str, str] | None = None) -> None:
            """An answer without a body (the connection stays usable for the client's next request)."""
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _refuse(self) -> None:
            self._empty(405)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _refuse

    return Handler


def _pump(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways until either side closes (or the tunnel is idle too long)."""
    sockets = [client, upstream]
    try:
        while True:
            readable, _, _ = select.select(sockets, [], [], TUNNEL_IDLE_SECONDS)
            if not readable:
                return
            for source in readable:
                data = source.recv(65536)
                if not data:
                    return
                (upstream if source is client else client).sendall(data)
    except OSError:
        return
    finally:
        upstream.close()
