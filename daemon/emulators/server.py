"""Start and stop the emulators' local HTTP(S) servers: 127.0.0.1, a free port, a daemon thread."""

from __future__ import annotations

import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANDSHAKE_SECONDS = 10.0


class _Server(ThreadingHTTPServer):
    """A threading server whose TLS handshake happens in each connection's own thread.

    Wrapping the listening socket would run every handshake inside ``accept()`` on the one serving thread: a client
    frozen mid-handshake (a replica under SIGSTOP in the replica tests) would then stall every other client.
    """

    daemon_threads = True
    tls: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        raw: socket.socket = request
        raw.settimeout(HANDSHAKE_SECONDS)
        try:
            wrapped = self.tls.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            return  # process_request_thread closes the raw socket
        try:
            wrapped.settimeout(None)
            super().finish_request(wrapped, client_address)
        finally:
            self.shutdown_request(wrapped)


def serve(handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None, name: str) -> ThreadingHTTPServer:
    server = _Server(("127.0.0.1", 0), handler)
    server.tls = tls
    # A short poll interval: stop() waits up to one interval, and tests start and stop many servers.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name=name).start()
    return server


def shutdown(server: ThreadingHTTPServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()
