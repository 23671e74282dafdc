"""A Slack Web API emulator for the methods retirewatch uses, over HTTPS on 127.0.0.1, recording every call.

Methods: ``auth.test``, ``chat.postMessage``, ``chat.update``, ``conversations.history``,
``conversations.replies``, ``conversations.list``. Answers follow Slack: HTTP 200 with ``{"ok": false, "error"}``
for errors, HTTP 429 with ``Retry-After`` for rate limits; message metadata is returned only when
``include_all_metadata`` is set. Faults are injected per method and channel (see :class:`SlackEmulator`).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from daemon.emulators.server import serve, shutdown
from daemon.emulators.tls import LocalCA, shared_ca

Answer = tuple[int, dict[str, str], dict[str, Any] | None]  # None: drop the connection without answering


@dataclass
class Message:
    channel: str  # id
    ts: str
    text: str
    blocks: list[Any]
    metadata: dict[str, Any] | None
    thread_ts: str | None
    reply_broadcast: bool
    edits: list[dict[str, Any]] = field(default_factory=list)

    def as_slack(self, with_metadata: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "message", "ts": self.ts, "text": self.text, "blocks": self.blocks,
                                "bot_id": "B0RETIREW", "user": "U0RETIREW"}
        if self.thread_ts:
            body["thread_ts"] = self.thread_ts
        if self.edits:
            body["edited"] = {"user": "U0RETIREW", "ts": self.edits[-1]["ts"]}
        if with_metadata and self.metadata:
            body["metadata"] = self.metadata
        return body


@dataclass(frozen=True)
class Call:
    method: str
    params: dict[str, Any]
    status: int
    ok: bool
    error: str | None
    at: float


@dataclass
class _Fault:
    method: str | None
    channel: str | None
    remaining: int | None
    answer: Answer | None
    after_accept: bool = False  # store the message, then never answer (a crash between send and record)
    delay: float = 0.0


class SlackEmulator:
    def __init__(self, channels: dict[str, str] | None = None, *, token: str = "xoxb-emulator",
                 auto_create: bool = True, ca: LocalCA | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """``clock`` gives Slack's wall-clock time in epoch seconds; message ``ts`` values are taken from it (tests
        that travel in time share their clock, as the real Slack and a real server share the wall clock)."""
        self.token = token
        self._clock = clock
        self._last_ts = 0.0
        self.auto_create = auto_create
        self._channels: dict[str, str] = {}  # name (no #) -> id
        self._lock = threading.RLock()
        self._messages: list[Message] = []
        self._calls: list[Call] = []
        self._faults: list[_Fault] = []
        self._ids = itertools.count(1)
        self._ca = ca or shared_ca()
        self._server: ThreadingHTTPServer | None = None
        for name, channel_id in (channels or {}).items():
            self._channels[name.lstrip("#")] = channel_id

    # -- life cycle ------------------------------------------------------------------------------------------------

    def start(self) -> SlackEmulator:
        self._server = serve(_handler(self), self._ca.server_context(), "slack-emulator")
        return self

    def stop(self) -> None:
        shutdown(self._server)

    def __enter__(self) -> SlackEmulator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        assert self._server is not None, "start() the emulator first"
        return f"https://127.0.0.1:{self._server.server_address[1]}/api/"

    @property
    def ca_bundle_path(self) -> str:
        return self._ca.ca_bundle_path

    # -- faults ----------------------------------------------------------------------------------------------------

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def ratelimit(self, method: str | None = None, channel: str | None = None, *, times: int = 1,
                  retry_after: int = 1) -> None:
        self._add(_Fault(method, channel, times,
                         (429, {"Retry-After": str(retry_after)}, {"ok": False, "error": "ratelimited"})))

    def server_error(self, method: str | None = None, *, times: int | None = 1, status: int = 500) -> None:
        self._add(_Fault(method, None, times, (status, {}, {"ok": False, "error": "internal_error"})))

    def fail_channel(self, channel: str, error: str = "channel_not_found") -> None:
        self._add(_Fault(None, channel, None, (200, {}, {"ok": False, "error": error})))

    def revoke_token(self, error: str = "token_revoked") -> None:
        self._add(_Fault(None, None, None, (200, {}, {"ok": False, "error": error})))

    def slow(self, seconds: float, method: str | None = None, *, times: int | None = None) -> None:
        self._add(_Fault(method, None, times, None, delay=seconds))

    def crash_after_accept(self, method: str = "chat.postMessage", *, times: int = 1, hang: float = 30.0) -> None:
        """Store the message, then hold the answer for ``hang`` seconds and drop the connection: the client
        never learns the message was posted (as when the process dies between Slack's accept and its record)."""
        self._add(_Fault(method, None, times, None, after_accept=True, delay=hang))

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, channel: str | None) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method not in (None, method):
                    continue
                if fault.channel is not None and self._resolve(fault.channel) != channel:
                    continue
                if fault.remaining is not None:
                    if fault.remaining <= 0:
                        continue
                    fault.remaining -= 1
                return fault
        return None

    # -- what tests look at ----------------------------------------------------------------------------------------

    def channel_id(self, name: str) -> str:
        with self._lock:
            resolved = self._resolve(name, create=True)
            assert resolved is not None
            return resolved

    def channels(self) -> dict[str, str]:
        """Channel name (without ``#``) -> id, for every channel known or created so far."""
        with self._lock:
            return dict(self._channels)

    def messages(self, channel: str | None = None) -> list[Message]:
        with self._lock:
            wanted = self._resolve(channel) if channel else None
            return [m for m in self._messages if wanted is None or m.channel == wanted]

    def thread(self, channel: str, ts: str) -> list[Message]:
        return [m for m in self.messages(channel) if m.ts == ts or m.thread_ts == ts]

    def calls(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    # -- the API ---------------------------------------------------------------------------------------------------

    def _resolve(self, channel: str | None, *, create: bool = False) -> str | None:
        if not channel:
            return None
        if channel in self._channels.values():
            return channel
        name = channel.lstrip("#")
        if name not in self._channels and (create or self.auto_create) and not channel.startswith(("C0", "G0")):
            self._channels[name] = f"C{next(self._ids):08d}"
        return self._channels.get(name)

    def handle(self, method: str, params: dict[str, Any], authorization: str) -> Answer:
        with self._lock:
            channel = self._resolve(params.get("channel")) if params.get("channel") else None
        fault = self._take_fault(method, channel)
        if fault is not None and fault.delay and not fault.after_accept:
            time.sleep(fault.delay)
        if fault is not None and fault.answer is not None:
            return self._record(method, params, fault.answer)
        if authorization != f"Bearer {self.token}":
            return self._record(method, params, (200, {}, {"ok": False, "error": "invalid_auth"}))
        answer = self._dispatch(method, params, channel)
        if fault is not None and fault.after_accept:
            self._record(method, params, answer)
            time.sleep(fault.delay)
            return 0, {}, None
        return self._record(method, params, answer)

    def _record(self, method: str, params: dict[str, Any], answer: Answer) -> Answer:
        body = answer[2] or {}
        with self._lock:
            self._calls.append(Call(method, params, answer[0], bool(body.get("ok")), body.get("error"), time.time()))
        return answer

    def _dispatch(self, method: str, params: dict[str, Any], channel: str | None) -> Answer:
        handlers = {"auth.test": self._auth_test, "chat.postMessage": self._post, "chat.update": self._update,
                    "conversations.history": self._history, "conversations.replies": self._replies,
                    "conversations.list": self._list}
        handler = handlers.get(method)
        if handler is None:
            return 200, {}, {"ok": False, "error": "unknown_method"}
        if method not in ("auth.test", "conversations.list") and channel is None:
            return 200, {}, {"ok": False, "error": "channel_not_found"}
        with self._lock:
            return 200, {}, handler(params, channel or "")

    def _auth_test(self, _params: dict[str, Any], _channel: str) -> dict[str, Any]:
        return {"ok": True, "url": "https://emulator.slack.test/", "team": "Emulator", "user": "retirewatch",
                "team_id": "T0EMULATE", "user_id": "U0RETIREW", "bot_id": "B0RETIREW"}

    def _post(self, params: dict[str, Any], channel: str) -> dict[str, Any]:
        if not params.get("text") and not params.get("blocks"):
            return {"ok": False, "error": "no_text"}
        thread_ts = params.get("thread_ts") or None
        if thread_ts and not any(m.ts == thread_ts and m.channel == channel for m in self._messages):
            return {"ok": False, "error": "thread_not_found"}
        self._last_ts = max(self._clock(), self._last_ts + 0.000001)
        message = Message(channel=channel, ts=f"{self._last_ts:.6f}",
                          text=str(params.get("text") or ""), blocks=_json_field(params.get("blocks")) or [],
                          metadata=_json_field(params.get("metadata")), thread_ts=thread_ts,
                          reply_broadcast=_truthy(params.get("reply_broadcast")))
        self._messages.append(message)
        return {"ok": True, "channel": channel, "ts": message.ts, "message": message.as_slack(True)}

    def _update(self, params: dict[str, Any], channel: str) -> dict[str, Any]:
        for message in self._messages:
            if message.channel == channel and message.ts == params.get("ts"):
                message.edits.append({"ts": f"{time.time():.6f}", "text": message.text})
                message.text = str(params.get("text") or message.text)
                message.blocks = _json_field(params.get("blocks")) or message.blocks
                message.metadata = _json_field(params.get("metadata")) or message.metadata
                return {"ok": True, "channel": channel, "ts": message.ts, "text": message.text}
        return {"ok": False, "error": "message_not_found"}

    def _history(self, params: dict[str, Any], channel: str) -> dict[str, Any]:
        visible = [m for m in self._messages if m.channel == channel and (not m.thread_ts or m.reply_broadcast)]
        return self._paged(list(reversed(_window(visible, params))), params)

    def _replies(self, params: dict[str, Any], channel: str) -> dict[str, Any]:
        parent = params.get("ts")
        thread = [m for m in self._messages if m.channel == channel and (m.ts == parent or m.thread_ts == parent)]
        if not thread:
            return {"ok": False, "error": "thread_not_found"}
        return self._paged(_window(thread, params), params)

    def _paged(self, messages: list[Message], params: dict[str, Any]) -> dict[str, Any]:
        start = int(params.get("cursor") or 0)
        limit = max(1, min(int(params.get("limit") or 100), 1000))
        page = messages[start:start + limit]
        more = start + limit < len(messages)
        with_metadata = _truthy(params.get("include_all_metadata"))
        return {"ok": True, "messages": [m.as_slack(with_metadata) for m in page], "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def _list(self, params: dict[str, Any], _channel: str) -> dict[str, Any]:
        channels = [{"id": cid, "name": name, "is_channel": True} for name, cid in sorted(self._channels.items())]
        start, limit = int(params.get("cursor") or 0), int(params.get("limit") or 100)
        more = start + limit < len(channels)
        return {"ok": True, "channels": channels[start:start + limit],
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}


def _window(messages: list[Message], params: dict[str, Any]) -> list[Message]:
    oldest, latest = float(params.get("oldest") or 0), float(params.get("latest") or 0) or float("inf")
    return [m for m in messages if oldest <= float(m.ts) <= latest]


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def _json_field(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _handler(emulator: SlackEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            method = parts.path.removeprefix("/api/")
            params: dict[str, Any] = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if raw:
                if "json" in (self.headers.get("Content-Type") or ""):
                    params.update(json.loads(raw))
                else:
                    params.update({k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode()).items()})
            status, headers, body = emulator.handle(method, params, self.headers.get("Authorization", ""))
            if body is None:
                self.close_connection = True
                return
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = _serve
        do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
