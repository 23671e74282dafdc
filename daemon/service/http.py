"""The HTTP endpoints, a WSGI app on the standard library's WSGI server (one thread per request):
``/healthz`` (the process runs), ``/readyz`` (the database answers and the last good poll is fresh), ``/metrics``,
``/calendar/{channel}.ics`` (the channel's retirement deadlines as an iCalendar feed, to subscribe to once)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from daemon.service.schedule import Readiness

log = logging.getLogger(__name__)
StartResponse = Callable[..., Any]
Environ = dict[str, Any]


Calendar = Callable[[str, int], bytes | None]  # (channel, days) -> the feed, or None: no alert goes there
CALENDAR_PREFIX, CALENDAR_SUFFIX = "/calendar/", ".ics"


def health_app(readiness: Callable[[], Readiness], registry: CollectorRegistry,
               calendar: Calendar | None = None) -> Callable[[Environ, StartResponse], Iterable[bytes]]:
    metrics = make_wsgi_app(registry)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if calendar is not None and path.startswith(CALENDAR_PREFIX) and path.endswith(CALENDAR_SUFFIX):
            return _calendar(calendar, path[len(CALENDAR_PREFIX):-len(CALENDAR_SUFFIX)],
                             environ.get("QUERY_STRING", ""), start_response)
        if path == "/metrics":
            result: Iterable[bytes] = metrics(environ, start_response)
            return result
        if path == "/healthz":
            return _text(start_response, "200 OK", "ok\n")
        if path == "/readyz":
            try:
                verdict = readiness()
            except Exception as exc:  # never a traceback as an answer
                verdict = Readiness(False, f"readiness check failed: {type(exc).__name__}: {exc}")
            status = "200 OK" if verdict.ready else "503 Service Unavailable"
            return _text(start_response, status, f"{'ready' if verdict.ready else 'not ready'}: {verdict.reason}\n")
        return _text(start_response, "404 Not Found", "not found: try /healthz, /readyz or /metrics\n")

    return app


def _calendar(calendar: Calendar, channel: str, query: str, start_response: StartResponse) -> list[bytes]:
    """``/calendar/search.ics`` (``?days=N``, default 90): 404 for a channel no alert goes to."""
    from daemon.forecast.run import DEFAULT_DAYS, MAX_DAYS

    wanted = parse_qs(query).get("days", [str(DEFAULT_DAYS)])[-1]
    if not wanted.isdigit() or not 1 <= int(wanted) <= MAX_DAYS:
        return _text(start_response, "400 Bad Request", f"days: give 1 to {MAX_DAYS} (got {wanted!r})\n")
    if "/" in channel or not channel.strip("#"):
        return _text(start_response, "404 Not Found", "not found: /calendar/CHANNEL.ics, e.g. /calendar/search.ics\n")
    try:
        feed = calendar(channel, int(wanted))
    except Exception as exc:  # the database is down, say: never a traceback as an answer
        log.warning("calendar for %s failed: %s: %s", channel, type(exc).__name__, exc)
        return _text(start_response, "503 Service Unavailable", f"calendar unavailable: {type(exc).__name__}\n")
    if feed is None:
        return _text(start_response, "404 Not Found", f"no alerts go to channel {channel!r}: no route, channel tag "
                     "or default channel names it\n")
    start_response("200 OK", [("Content-Type", "text/calendar; charset=utf-8"), ("Content-Length", str(len(feed))),
                              ("Content-Disposition", f'inline; filename="{channel.lstrip("#")}.ics"')])
    return [feed]


def _text(start_response: StartResponse, status: str, body: str) -> list[bytes]:
    data = body.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))])
    return [data]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s", format % args)


class HealthServer:
    """Serves the app on ``host:port`` (port 0: any free port; :attr:`port` says which) in a background thread."""

    def __init__(self, host: str, port: int, app: Callable[[Environ, StartResponse], Iterable[bytes]]) -> None:
        self._server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
