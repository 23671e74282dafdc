"""The HTTP endpoints, a WSGI app on the standard library's WSGI server (one thread per request):
``/healthz`` (the process runs), ``/readyz`` (the database answers and the last good poll is fresh), ``/metrics``,
``/calendar/{channel}.ics`` (the channel's retirement deadlines as an iCalendar feed, to subscribe to once),
and ``POST /slack/interactions`` (the Acknowledge and Snooze buttons: the raw body is verified against the Slack
app's signing secret and a timestamp within 5 minutes of the service clock before anything reads it; a missing or
wrong signature, or a stale timestamp, is 401 and changes nothing; no secret configured is 503)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from slack_sdk.signature import Clock as SlackClock
from slack_sdk.signature import SignatureVerifier

from daemon.clock import Clock
from daemon.notify.interactions import Reply
from daemon.service.schedule import Readiness

log = logging.getLogger(__name__)
StartResponse = Callable[..., Any]
Environ = dict[str, Any]
INTERACTIONS_PATH = "/slack/interactions"
MAX_BODY_BYTES = 1 << 20  # a block_actions payload carries the pressed message: tens of kB at most


Calendar = Callable[[str, int], bytes | None]  # (channel, days) -> the feed, or None: no alert goes there
CALENDAR_PREFIX, CALENDAR_SUFFIX = "/calendar/", ".ics"


@dataclass(frozen=True)
class SlackInteractions:
    """``POST /slack/interactions``: requests signed with ``signing_secret`` (None: answer 503) within 5 minutes of
    ``clock`` go to ``handle`` with their raw body."""

    signing_secret: str | None
    clock: Clock
    handle: Callable[[bytes], Reply]


class _ServiceClock(SlackClock):
    """slack_sdk's clock (epoch seconds) read from the service's injected clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock.now().timestamp()


def health_app(readiness: Callable[[], Readiness], registry: CollectorRegistry,
               interactions: SlackInteractions | None = None, calendar: Calendar | None = None
               ) -> Callable[[Environ, StartResponse], Iterable[bytes]]:
    metrics = make_wsgi_app(registry)
    slack = _interactions_app(interactions) if interactions is not None else None

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
        if path == INTERACTIONS_PATH and slack is not None:
            return slack(environ, start_response)
        return _text(start_response, "404 Not Found", "not found: try /healthz, /readyz or /metrics\n")

    return app


def _interactions_app(config: SlackInteractions) -> Callable[[Environ, StartResponse], Iterable[bytes]]:
    verifier = SignatureVerifier(config.signing_secret, _ServiceClock(config.clock)) if config.signing_secret \
        else None

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return _text(start_response, "405 Method Not Allowed", "POST only\n", [("Allow", "POST")])
        if verifier is None:
            log.warning("a Slack interaction arrived but SLACK_SIGNING_SECRET is not set: answered 503, nothing "
                        "recorded (set it to the Slack app's signing secret)", extra={"event": "interaction_refused"})
            return _text(start_response, "503 Service Unavailable",
                         "Slack interactivity is off: SLACK_SIGNING_SECRET is not set\n")
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return _text(start_response, "411 Length Required", "Content-Length required\n")
        if length < 0 or length > MAX_BODY_BYTES:
            return _text(start_response, "413 Content Too Large", f"at most {MAX_BODY_BYTES} bytes\n")
        body = environ["wsgi.input"].read(length)
        if not _signed(verifier, body, environ):
            log.warning("a Slack interaction from %s failed verification (missing or wrong signature, or a timestamp "
                        "more than 5 minutes from the service clock): answered 401, nothing recorded",
                        environ.get("REMOTE_ADDR", "?"), extra={"event": "interaction_unverified"})
            return _text(start_response, "401 Unauthorized", "invalid or stale Slack signature\n")
        try:
            reply = config.handle(body)
        except Exception as exc:  # never a traceback as an answer; Slack shows the person an error
            log.error("a Slack interaction failed: %s: %s", type(exc).__name__, str(exc).splitlines()[0] if str(exc)
                      else "", extra={"event": "interaction_error"})
            log.debug("a Slack interaction failed", exc_info=True)
            return _text(start_response, "500 Internal Server Error", "the interaction failed; try again\n")
        return _text(start_response, _STATUS.get(reply.status, f"{reply.status} Error"), reply.text)

    return app


_STATUS = {200: "200 OK", 400: "400 Bad Request", 503: "503 Service Unavailable"}


def _signed(verifier: SignatureVerifier, body: bytes, environ: Environ) -> bool:
    timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP")
    signature = environ.get("HTTP_X_SLACK_SIGNATURE")
    if not isinstance(timestamp, str) or not timestamp.isdigit() or not isinstance(signature, str):
        return False
    try:
        return verifier.is_valid(body=body, timestamp=timestamp, signature=signature)
    except (ValueError, UnicodeDecodeError):  # a body that is not UTF-8 cannot carry Slack's signature
        return False


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


def _text(start_response: StartResponse, status: str, body: str,
          headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    data = body.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data))),
                            *(headers or [])])
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
