"""Start and stop the emulators' local HTTP(S) servers: 127.0.0.1, a free port, a daemon thread."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None, name: str) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    # A short poll interval: stop() waits up to one interval, and tests start and stop many servers.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name=name).start()
    return server


def shutdown(server: ThreadingHTTPServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()
