"""A Slack Web API emulator for the methods retirewatch uses, over HTTPS on 127.0.0.1, recording every call.

The real ``slack_sdk.WebClient`` talks to it unchanged: ``WebClient(base_url=emu.api_url, ssl=..., token=emu.token)``.

Methods: ``auth.test``, ``chat.postMessage``, ``chat.update``, ``conversations.history``, ``conversations.replies``,
``conversations.list``. Requests are read the way Slack reads them: a JSON body (slack_sdk sends ``chat.*`` so, with
``blocks`` and ``metadata`` as JSON values) or a form body (everything else, booleans as ``"1"``/``"0"``, JSON-valued
fields as JSON strings); the token from ``Authorization: Bearer`` or, for form bodies, a ``token`` field.

Answers follow Slack: HTTP 200 with ``{"ok": false, "error": ...}`` for errors (``not_authed`` without a token,
``invalid_auth`` for a wrong one), HTTP 429 with ``Retry-After`` and ``{"ok": false, "error": "ratelimited"}`` for rate
limits. ``conversations.history`` gives top-level messages and broadcast thread replies, newest first, bounded by
``oldest``/``latest`` (exclusive unless ``inclusive``), paged by an opaque ``cursor``; ``conversations.replies`` gives
a thread with its parent first on every page. Message metadata comes back only with ``include_all_metadata``. Block
limits that Slack enforces (50 blocks, section text 3,000, fields 10 x 2,000, header 150, context 10 elements, actions
25) answer ``invalid_blocks``; ``text`` beyond 40,000 characters is cut, as Slack does.

Faults are injected at run time and are thread-safe (see :class:`SlackEmulator`): rate limits, 5xx, sticky channel
errors, a revoked token, slow answers, and a message that is stored but whose answer never arrives.

Interactivity, the other way round: :meth:`SlackEmulator.press` builds the ``block_actions`` request Slack sends to an
app's Request URL when someone presses a button of a stored message (the form body and the ``X-Slack-Signature`` /
``X-Slack-Request-Timestamp`` headers, signed with :attr:`SlackEmulator.signing_secret` at the emulator's clock), and
:func:`send_interaction` POSTs one. Buttons are checked like Slack checks them (text 75, value 2,000, url 3,000,
``action_id`` 255 characters, unique in the message).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import math
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from daemon.emulators.server import serve, shutdown
from daemon.emulators.tls import LocalCA, shared_ca

TEAM_ID = "T0EMULATE"
BOT_USER_ID = "U0RETIREW"
BOT_ID = "B0RETIREW"
APP_ID = "A0RETIREW"

TEXT_LIMIT = 40_000  # Slack cuts a message's text here
MAX_BLOCKS = 50
SECTION_TEXT_LIMIT = 3_000
SECTION_FIELDS_MAX = 10
SECTION_FIELD_LIMIT = 2_000
HEADER_TEXT_LIMIT = 150
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_ELEMENTS_MAX = 25
BUTTON_TEXT_LIMIT, BUTTON_VALUE_LIMIT, BUTTON_URL_LIMIT, ACTION_ID_LIMIT = 75, 2_000, 3_000, 255

HISTORY_LIMIT_DEFAULT, HISTORY_LIMIT_MAX = 100, 999
REPLIES_LIMIT_DEFAULT, REPLIES_LIMIT_MAX = 1000, 1000

_CHANNEL_ID = re.compile(r"[CDG][A-Z0-9]{2,}")  # channel names are lower case; ids are upper case
_JSON_FIELDS = ("blocks", "attachments", "metadata")
_CHANNEL_METHODS = frozenset({"chat.postMessage", "chat.update", "conversations.history", "conversations.replies"})


@dataclass
class Message:
    """A message as Slack holds it. ``thread_ts`` is None for a top-level message (also for a thread's parent, which
    Slack itself shows with ``thread_ts == ts``); ``edits`` holds one entry per ``chat.update``: the edit's ``ts`` and
    the ``text``, ``blocks`` and ``metadata`` the message had before it."""

    channel: str  # id
    ts: str
    text: str
    blocks: list[Any]
    metadata: dict[str, Any] | None
    thread_ts: str | None
    reply_broadcast: bool
    edits: list[dict[str, Any]] = field(default_factory=list)
    user: str = BOT_USER_ID
    bot_id: str = BOT_ID
    options: dict[str, Any] = field(default_factory=dict)  # the other arguments as sent: unfurl_links, mrkdwn, ...

    def as_slack(self, *, with_metadata: bool, replies: list[Message] | None = None,
                 root: Message | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "message", "ts": self.ts, "text": self.text, "user": self.user,
                                "bot_id": self.bot_id, "app_id": APP_ID, "team": TEAM_ID}
        if self.blocks:
            body["blocks"] = copy.deepcopy(self.blocks)
        if self.thread_ts:
            body["thread_ts"] = self.thread_ts
            body["parent_user_id"] = root.user if root else self.user
            if self.reply_broadcast:
                body["subtype"] = "thread_broadcast"
                if root is not None:
                    body["root"] = root.as_slack(with_metadata=with_metadata)
        elif replies:
            body.update({"thread_ts": self.ts, "reply_count": len(replies), "reply_users_count": 1,
                         "latest_reply": replies[-1].ts, "reply_users": [replies[-1].user], "is_locked": False,
                         "subscribed": False})
        if self.edits:
            body["edited"] = {"user": self.user, "ts": self.edits[-1]["ts"]}
        if with_metadata and self.metadata:
            body["metadata"] = copy.deepcopy(self.metadata)
        return body


@dataclass(frozen=True)
class Call:
    """One request as the emulator saw it: ``params`` decoded (form fields as strings, JSON-valued fields as JSON,
    no token); ``status`` the HTTP status it answered with (or would have, when ``answered`` is False: the answer
    was withheld by :meth:`SlackEmulator.crash_after_accept`); ``at`` the real wall-clock time it arrived."""

    method: str
    params: dict[str, Any]
    status: int
    ok: bool
    error: str | None
    at: float
    channel: str | None = None  # the channel id the call named, when it named a known one
    answered: bool = True


@dataclass
class _Reply:
    status: int
    body: dict[str, Any] | str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return isinstance(self.body, dict) and bool(self.body.get("ok"))

    @property
    def error(self) -> str | None:
        if isinstance(self.body, dict):
            error = self.body.get("error")
            return str(error) if error is not None else None
        return f"http {self.status}"


def _error(error: str, **extra: Any) -> _Reply:
    return _Reply(200, {"ok": False, "error": error, **extra})


@dataclass
class _Fault:
    kind: str  # "answer" (answer instead of Slack), "delay" (answer late), "crash" (store, never answer)
    method: str | None
    channel: str | None  # id
    remaining: int | None  # None: until reset
    reply: _Reply | None = None
    seconds: float | None = 0.0

    def matches(self, method: str, channel: str | None) -> bool:
        if self.method not in (None, method):
            return False
        if self.channel is not None and self.channel != channel:
            return False
        return self.remaining is None or self.remaining > 0

    def take(self) -> None:
        if self.remaining is not None:
            self.remaining -= 1


@dataclass
class _Bucket:
    tokens: float
    updated: float


class SlackEmulator:
    """A Slack workspace with one bot, reachable at :attr:`api_url` once started.

    ``channels`` maps names (with or without ``#``) to ids; an unknown name is created on first use when
    ``auto_create``, else it is ``channel_not_found`` (an unknown id always is). ``clock`` gives Slack's wall-clock
    time in epoch seconds; message ``ts`` values come from it and strictly increase (tests that travel in time share
    their clock, as Slack and a real server share the wall clock). ``page_cap`` caps a history/replies page (15
    models an app distributed outside the Slack Marketplace)."""

    def __init__(self, channels: dict[str, str] | None = None, *, token: str = "xoxb-emulator",
                 auto_create: bool = True, ca: LocalCA | None = None,
                 clock: Callable[[], float] = time.time, page_cap: int | None = None,
                 signing_secret: str = "emulator-signing-secret") -> None:
        self.token = token
        self.signing_secret = signing_secret
        self.auto_create = auto_create
        self._clock = clock
        self._page_cap = page_cap
        self._last_us = 0
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._channels: dict[str, str] = {}  # name (no #) -> id
        self._messages: list[Message] = []
        self._calls: list[Call] = []
        self._faults: list[_Fault] = []
        self._channel_errors: dict[str, str] = {}  # id -> sticky error
        self._revoked: str | None = None
        self._rate: tuple[str, float, int] | None = None  # method, per second, burst
        self._buckets: dict[str, _Bucket] = {}
        self._ids = itertools.count(1)
        self._ca = ca or shared_ca()
        self._server: ThreadingHTTPServer | None = None
        self._configured = {name.lstrip("#"): channel_id for name, channel_id in (channels or {}).items()}
        self._channels.update(self._configured)

    # -- life cycle ------------------------------------------------------------------------------------------------

    def start(self) -> SlackEmulator:
        self._stopping.clear()
        self._server = serve(_handler(self), self._ca.server_context(), "slack-emulator")
        return self

    def stop(self) -> None:
        self._stopping.set()  # wake answers held by slow() and crash_after_accept()
        shutdown(self._server)
        self._server = None

    def __enter__(self) -> SlackEmulator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        """The base URL for ``WebClient(base_url=...)``, with the trailing slash slack_sdk expects."""
        assert self._server is not None, "start() the emulator first"
        return f"https://127.0.0.1:{self._server.server_address[1]}/api/"

    @property
    def ca_bundle_path(self) -> str:
        return self._ca.ca_bundle_path

    # -- faults ----------------------------------------------------------------------------------------------------

    def ratelimit(self, method: str | None = None, channel: str | None = None, *, times: int | None = 1,
                  retry_after: int = 1) -> None:
        """Answer the next ``times`` matching calls (None: until reset) with HTTP 429, ``Retry-After``."""
        reply = _Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)})
        self._add(_Fault("answer", method, self._fault_channel(channel), times, reply))

    def server_error(self, method: str | None = None, *, times: int | None = 1, status: int = 500,
                     html: bool = False) -> None:
        """Answer the next ``times`` matching calls with ``status``: a JSON ``internal_error`` body, or with ``html``
        the kind of page a load balancer sends (slack_sdk then reports a "non-JSON" error)."""
        body: dict[str, Any] | str = (f"<html><body><h1>{status}</h1>Slack is having trouble.</body></html>" if html
                                      else {"ok": False, "error": "internal_error" if status < 503 else
                                            "service_unavailable"})
        self._add(_Fault("answer", method, None, times, _Reply(status, body)))

    def fail_channel(self, channel: str, error: str = "channel_not_found") -> None:
        """Every call naming ``channel`` answers ``error`` (``not_in_channel``, ``is_archived``...) until cleared."""
        with self._lock:
            self._channel_errors[self._known(channel)] = error

    def clear_channel(self, channel: str) -> None:
        with self._lock:
            self._channel_errors.pop(self._known(channel), None)

    def revoke_token(self, error: str = "token_revoked") -> None:
        """The bot token stops working (``token_revoked``, ``invalid_auth``, ``account_inactive``) until reset."""
        with self._lock:
            self._revoked = error

    def slow(self, seconds: float, method: str | None = None, *, times: int | None = None) -> None:
        """Hold the answer of matching calls for ``seconds`` (then answer normally)."""
        self._add(_Fault("delay", method, None, times, seconds=seconds))

    def crash_after_accept(self, method: str = "chat.postMessage", channel: str | None = None, *, times: int = 1,
                           hang: float | None = 30.0) -> None:
        """Do the call (store the message), then hold the answer ``hang`` seconds (None: until stop) and close the
        connection without answering: the client never learns the ts, as when a process dies between Slack's accept
        and its own record. ``hang=0`` drops at once, which slack_sdk's default retry handler answers by sending the
        same request again. ``channel``: only calls naming it."""
        self._add(_Fault("crash", method, self._fault_channel(channel), times, seconds=hang))

    def enforce_rate(self, per_second: float | None = 1.0, *, burst: int = 1,
                     method: str = "chat.postMessage") -> None:
        """Rate-limit ``method`` per channel like Slack (about one message a second, short bursts): a token bucket of
        ``burst`` refilled at ``per_second`` in real time; beyond it HTTP 429 with the seconds until the next token.
        ``None`` turns it off."""
        with self._lock:
            self._rate = (method, per_second, max(1, burst)) if per_second else None
            self._buckets.clear()

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._channel_errors.clear()
            self._revoked = None
            self._rate = None
            self._buckets.clear()

    def reset(self) -> None:
        """Back to the state at start: the configured channels only, no messages, no calls, no faults (message
        ``ts`` values keep increasing). Lets one running emulator serve many tests."""
        with self._lock:
            self.reset_faults()
            self._messages.clear()
            self._calls.clear()
            self._channels = dict(self._configured)

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _fault_channel(self, channel: str | None) -> str | None:
        if channel is None:
            return None
        with self._lock:
            return self._known(channel)

    def _known(self, channel: str) -> str:
        """The id of ``channel``, creating a named channel if need be (a fault names a channel that exists)."""
        resolved = self._resolve(channel, create=True)
        return resolved if resolved is not None else channel

    # -- what tests look at ----------------------------------------------------------------------------------------

    def channel_id(self, name: str) -> str:
        """The id of a channel (a name with or without ``#``, or an id); a new name is created when auto_create."""
        with self._lock:
            resolved = self._resolve(name)
        if resolved is None:
            raise KeyError(f"no channel {name!r} (auto_create is off)")
        return resolved

    def channels(self) -> dict[str, str]:
        """Channel name (without ``#``) -> id, for every channel known or created so far."""
        with self._lock:
            return dict(self._channels)

    def messages(self, channel: str | None = None) -> list[Message]:
        """Snapshots of the stored messages (thread replies included) in post order, optionally of one channel."""
        with self._lock:
            wanted = self._resolve(channel, create=False) if channel else None
            if channel and wanted is None:
                return []
            return [copy.deepcopy(m) for m in self._messages if wanted is None or m.channel == wanted]

    def thread(self, channel: str, ts: str) -> list[Message]:
        """A thread, parent first (``ts`` may be the parent's or any reply's)."""
        with self._lock:
            channel_id = self._resolve(channel, create=False)
            root = self._root(channel_id or "", ts)
            if root is None:
                return []
            return [copy.deepcopy(m) for m in [root, *self._replies_of(root)]]

    def calls(self, method: str | None = None, channel: str | None = None) -> list[Call]:
        with self._lock:
            wanted = self._resolve(channel, create=False) if channel else None
            if channel and wanted is None:
                return []
            return [c for c in self._calls
                    if (method is None or c.method == method) and (channel is None or c.channel == wanted)]

    # -- interactivity: what Slack sends the app when a button is pressed ------------------------------------------

    def block_actions(self, message: Message, action_id: str, *, user_id: str = "U0PRESSER",
                      user_name: str = "jane.doe") -> dict[str, Any]:
        """The ``block_actions`` payload for pressing the button ``action_id`` of ``message`` (as stored now)."""
        with self._lock:
            stored = self._find(message.channel, message.ts)
            if stored is None:
                raise KeyError(f"no message {message.ts} in {message.channel}")
            body = self._slack(stored, with_metadata=False)
            name = next((n for n, cid in self._channels.items() if cid == stored.channel), stored.channel)
        found = [(block, element) for block in stored.blocks if block.get("type") == "actions"
                 for element in block.get("elements") or [] if element.get("action_id") == action_id]
        if not found:
            raise KeyError(f"message {message.ts} has no button {action_id!r}")
        block, button = found[0]
        action = {"action_id": action_id, "block_id": block.get("block_id", ""), "text": button.get("text"),
                  "type": button.get("type", "button"), "action_ts": f"{self._clock():.6f}"}
        for key in ("value", "style", "url"):
            if key in button:
                action[key] = button[key]
        container: dict[str, Any] = {"type": "message", "message_ts": stored.ts, "channel_id": stored.channel,
                                     "is_ephemeral": False}
        if stored.thread_ts:
            container["thread_ts"] = stored.thread_ts
        return {"type": "block_actions", "user": {"id": user_id, "username": user_name, "name": user_name,
                                                  "team_id": TEAM_ID},
                "api_app_id": APP_ID, "token": "legacy-verification-token", "container": container,
                "trigger_id": f"{next(self._ids)}.{TEAM_ID}.emulated", "team": {"id": TEAM_ID, "domain": "emulator"},
                "enterprise": None, "is_enterprise_install": False, "channel": {"id": stored.channel, "name": name},
                "message": body, "state": {"values": {}},
                "response_url": f"https://hooks.slack.test/actions/{TEAM_ID}/{stored.ts}", "actions": [action]}

    def press(self, message: Message, action_id: str, *, user_id: str = "U0PRESSER", user_name: str = "jane.doe",
              timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
        """The request Slack sends for a press: the form body and its signed headers (at the emulator's clock, or at
        ``timestamp``)."""
        body = interaction_body(self.block_actions(message, action_id, user_id=user_id, user_name=user_name))
        when = int(self._clock()) if timestamp is None else timestamp
        return body, sign_request(body, self.signing_secret, when)
    def rate_limited(self) -> dict[str, int]:
        """Channel id -> how many calls naming it were answered HTTP 429 (the enforced rate or a ``ratelimit``)."""
        with self._lock:
            counts: dict[str, int] = {}
            for call in self._calls:
                if call.status == 429 and call.channel is not None:
                    counts[call.channel] = counts.get(call.channel, 0) + 1
            return counts

    # -- serving one request ---------------------------------------------------------------------------------------

    def _serve(self, method: str, params: dict[str, Any], token: str | None) -> _Reply | None:
        """The answer to one call, or None to close the connection without one."""
        with self._lock:
            named = params.get("channel")
            channel = self._resolve(str(named)) if named and method in _CHANNEL_METHODS else None
            delays = [f for f in self._faults if f.kind == "delay" and f.matches(method, channel)]
            for fault in delays:
                fault.take()
            answer = next((f for f in self._faults if f.kind == "answer" and f.matches(method, channel)), None)
            if answer is not None:
                answer.take()
        delay = sum(f.seconds or 0.0 for f in delays)
        if delay:
            self._stopping.wait(delay)
        if answer is not None and answer.reply is not None:
            return self._record(method, params, channel, answer.reply)

        with self._lock:
            reply = self._check(method, params, channel, token)
            if reply is None:
                reply = self._dispatch(method, params, channel)
            crash = None
            if reply.ok:
                crash = next((f for f in self._faults if f.kind == "crash" and f.matches(method, channel)), None)
                if crash is not None:
                    crash.take()
            self._record(method, params, channel, reply, answered=crash is None)
        if crash is None:
            return reply
        self._stopping.wait(crash.seconds)
        return None

    def _check(self, method: str, params: dict[str, Any], channel: str | None, token: str | None) -> _Reply | None:
        """Slack's checks before the method itself: the token, the channel, the rate."""
        if not token:
            return _error("not_authed")
        if token != self.token:
            return _error("invalid_auth")
        if self._revoked:
            return _error(self._revoked)
        if method in _CHANNEL_METHODS:
            if channel is None:
                return _error("channel_not_found")
            if channel in self._channel_errors:
                return _error(self._channel_errors[channel])
        if self._rate is not None and channel is not None and method == self._rate[0]:
            wait = self._take_token(channel, self._rate[1], self._rate[2])
            if wait > 0:
                return _Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(math.ceil(wait))})
        return None

    def _take_token(self, channel: str, per_second: float, burst: int) -> float:
        now = time.monotonic()
        bucket = self._buckets.setdefault(channel, _Bucket(float(burst), now))
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * per_second)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / per_second

    def _record(self, method: str, params: dict[str, Any], channel: str | None, reply: _Reply, *,
                answered: bool = True) -> _Reply:
        with self._lock:
            self._calls.append(Call(method, params, reply.status, reply.ok, reply.error, time.time(), channel,
                                    answered))
        return reply

    # -- channels and messages -------------------------------------------------------------------------------------

    def _resolve(self, channel: str | None, *, create: bool | None = None) -> str | None:
        """A channel id for a name (``#name`` or ``name``) or an id; None when there is no such channel."""
        if not channel:
            return None
        if channel in self._channels.values():
            return channel
        name = channel.lstrip("#")
        if name in self._channels:
            return self._channels[name]
        if _CHANNEL_ID.fullmatch(channel) or not (self.auto_create if create is None else create):
            return None
        taken = set(self._channels.values())
        new_id = next(i for i in (f"C0{n:08d}" for n in self._ids) if i not in taken)
        self._channels[name] = new_id
        return new_id

    def _find(self, channel: str, ts: str) -> Message | None:
        return next((m for m in self._messages if m.channel == channel and m.ts == ts), None)

    def _root(self, channel: str, ts: str) -> Message | None:
        message = self._find(channel, ts)
        if message is not None and message.thread_ts:
            return self._find(channel, message.thread_ts)
        return message

    def _replies_of(self, root: Message) -> list[Message]:
        return [m for m in self._messages if m.channel == root.channel and m.thread_ts == root.ts]

    def _next_ts(self) -> str:
        self._last_us = max(round(self._clock() * 1_000_000), self._last_us + 1)
        return _format_ts(self._last_us)

    def _now_ts(self) -> str:
        return _format_ts(max(round(self._clock() * 1_000_000), self._last_us))

    def _slack(self, message: Message, *, with_metadata: bool) -> dict[str, Any]:
        root = self._find(message.channel, message.thread_ts) if message.thread_ts else None
        replies = None if message.thread_ts else self._replies_of(message)
        return message.as_slack(with_metadata=with_metadata, replies=replies, root=root)

    # -- the methods -----------------------------------------------------------------------------------------------

    def _dispatch(self, method: str, params: dict[str, Any], channel: str | None) -> _Reply:
        handlers: dict[str, Callable[[dict[str, Any], str], _Reply]] = {
            "auth.test": self._auth_test, "chat.postMessage": self._post, "chat.update": self._update,
            "conversations.history": self._history, "conversations.replies": self._replies,
            "conversations.list": self._list}
        handler = handlers.get(method)
        if handler is None:
            return _error("unknown_method", req_method=method)
        return handler(params, channel or "")

    def _auth_test(self, _params: dict[str, Any], _channel: str) -> _Reply:
        return _Reply(200, {"ok": True, "url": "https://emulator.slack.test/", "team": "Emulator",
                            "user": "retirewatch", "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID,
                            "is_enterprise_install": False})

    def _post(self, params: dict[str, Any], channel: str) -> _Reply:
        content = _content(params)
        if isinstance(content, _Reply):
            return content
        text, blocks, metadata = content
        if not text and not blocks and not params.get("attachments"):
            return _error("no_text")
        thread_ts = str(params.get("thread_ts") or "") or None
        if thread_ts:
            root = self._root(channel, thread_ts)
            if root is None:
                return _error("thread_not_found")
            thread_ts = root.ts  # a reply to a reply goes into the parent's thread, as in Slack
        known = {"channel", "text", "blocks", "metadata", "thread_ts", "reply_broadcast"}
        message = Message(channel=channel, ts=self._next_ts(), text=text or "", blocks=blocks or [],
                          metadata=metadata, thread_ts=thread_ts,
                          reply_broadcast=bool(thread_ts) and _truthy(params.get("reply_broadcast")),
                          options={k: v for k, v in params.items() if k not in known})
        self._messages.append(message)
        return _Reply(200, {"ok": True, "channel": channel, "ts": message.ts,
                            "message": self._slack(message, with_metadata=True)})

    def _update(self, params: dict[str, Any], channel: str) -> _Reply:
        message = self._find(channel, str(params.get("ts") or ""))
        if message is None:
            return _error("message_not_found")
        content = _content(params)
        if isinstance(content, _Reply):
            return content
        text, blocks, metadata = content
        if text is None and blocks is None and not params.get("attachments"):
            return _error("no_text")
        message.edits.append({"ts": self._now_ts(), "text": message.text, "blocks": copy.deepcopy(message.blocks),
                              "metadata": copy.deepcopy(message.metadata)})
        # Slack keeps what an update leaves out: blocks (an empty list clears them), metadata, text.
        if text is not None:
            message.text = text
        if blocks is not None:
            message.blocks = blocks
        if metadata is not None:
            message.metadata = metadata
        return _Reply(200, {"ok": True, "channel": channel, "ts": message.ts, "text": message.text,
                            "message": self._slack(message, with_metadata=True)})

    def _history(self, params: dict[str, Any], channel: str) -> _Reply:
        window = _window(params)
        if isinstance(window, _Reply):
            return window
        visible = [m for m in self._messages
                   if m.channel == channel and (not m.thread_ts or m.reply_broadcast) and window(m.ts)]
        visible.sort(key=lambda m: _micros(m.ts) or 0, reverse=True)
        page = self._page(visible, params, HISTORY_LIMIT_DEFAULT, HISTORY_LIMIT_MAX, newest_first=True)
        if isinstance(page, _Reply):
            return page
        messages, cursor = page
        with_metadata = _truthy(params.get("include_all_metadata"))
        return _Reply(200, {"ok": True, "messages": [self._slack(m, with_metadata=with_metadata) for m in messages],
                            "has_more": bool(cursor), "pin_count": 0, "channel_actions_ts": None,
                            "channel_actions_count": 0, "response_metadata": {"next_cursor": cursor}})

    def _replies(self, params: dict[str, Any], channel: str) -> _Reply:
        ts = str(params.get("ts") or "")
        root = self._root(channel, ts) if ts else None
        if root is None:
            return _error("thread_not_found")
        window = _window(params)
        if isinstance(window, _Reply):
            return window
        replies = [m for m in self._replies_of(root) if window(m.ts)]
        page = self._page(replies, params, REPLIES_LIMIT_DEFAULT, REPLIES_LIMIT_MAX, newest_first=False)
        if isinstance(page, _Reply):
            return page
        messages, cursor = page
        with_metadata = _truthy(params.get("include_all_metadata"))
        return _Reply(200, {"ok": True, "messages": [self._slack(m, with_metadata=with_metadata)
                                                     for m in [root, *messages]],
                            "has_more": bool(cursor), "response_metadata": {"next_cursor": cursor}})

    def _page(self, messages: list[Message], params: dict[str, Any], default: int, most: int, *,
              newest_first: bool) -> tuple[list[Message], str] | _Reply:
        """One page after the cursor (an opaque ``next_ts`` like Slack's, so posts between pages shift nothing)."""
        try:
            limit = int(params.get("limit") or default)
        except ValueError:
            return _error("invalid_limit")
        limit = max(1, min(limit, most, self._page_cap or most))
        cursor = params.get("cursor")
        if cursor:
            after = _decode_cursor(str(cursor))
            if after is None:
                return _error("invalid_cursor")
            messages = [m for m in messages
                        if ((_micros(m.ts) or 0) <= after if newest_first else (_micros(m.ts) or 0) >= after)]
        page, rest = messages[:limit], messages[limit:]
        return page, _encode_cursor(rest[0].ts) if rest else ""

    def _list(self, params: dict[str, Any], _channel: str) -> _Reply:
        channels = [{"id": cid, "name": name, "is_channel": True, "is_private": False, "is_archived": False,
                     "is_member": True} for name, cid in sorted(self._channels.items())]
        try:
            start = int(base64.b64decode(str(params.get("cursor") or "")).decode().removeprefix("offset:") or 0)
            limit = max(1, min(int(params.get("limit") or 100), 1000))
        except ValueError:
            return _error("invalid_cursor")
        more = start + limit < len(channels)
        cursor = base64.b64encode(f"offset:{start + limit}".encode()).decode() if more else ""
        return _Reply(200, {"ok": True, "channels": channels[start:start + limit],
                            "response_metadata": {"next_cursor": cursor}})


# -- decoding and checking arguments -----------------------------------------------------------------------------


def _content(params: dict[str, Any]) -> tuple[str | None, list[Any] | None, dict[str, Any] | None] | _Reply:
    """``text`` (cut at Slack's limit), ``blocks`` and ``metadata`` of a chat.* call, or the error Slack gives."""
    raw_text = params.get("text", params.get("markdown_text"))
    text = None if raw_text is None else str(raw_text)[:TEXT_LIMIT]
    blocks = params.get("blocks")
    if blocks is not None:
        problem = _block_problem(blocks)
        if problem:
            return _error("invalid_blocks", response_metadata={"messages": [f"[ERROR] {problem}"]})
    metadata = params.get("metadata")
    if metadata is not None and not (isinstance(metadata, dict) and isinstance(metadata.get("event_type"), str)
                                     and isinstance(metadata.get("event_payload", {}), dict)):
        return _error("invalid_metadata_format")
    return text, blocks, metadata


def _block_problem(blocks: Any) -> str | None:
    if not isinstance(blocks, list):
        return "blocks must be an array [json-pointer:/blocks]"
    if len(blocks) > MAX_BLOCKS:
        return f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]"
    for i, block in enumerate(blocks):
        where = f"[json-pointer:/blocks/{i}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            return f"missing required field: type {where}]"
        kind = block["type"]
        text = block.get("text")
        text_len = len(str(text.get("text", ""))) if isinstance(text, dict) else 0
        if kind == "section":
            fields = block.get("fields") or []
            if text_len > SECTION_TEXT_LIMIT:
                return f"must be less than {SECTION_TEXT_LIMIT + 1} characters {where}/text/text]"
            if not text and not fields:
                return f"must provide text or fields {where}]"
            if len(fields) > SECTION_FIELDS_MAX:
                return f"no more than {SECTION_FIELDS_MAX} items allowed {where}/fields]"
            for j, item in enumerate(fields):
                if isinstance(item, dict) and len(str(item.get("text", ""))) > SECTION_FIELD_LIMIT:
                    return f"must be less than {SECTION_FIELD_LIMIT + 1} characters {where}/fields/{j}/text]"
        elif kind == "header" and text_len > HEADER_TEXT_LIMIT:
            return f"must be less than {HEADER_TEXT_LIMIT + 1} characters {where}/text/text]"
        elif kind == "context" and len(block.get("elements") or []) > CONTEXT_ELEMENTS_MAX:
            return f"no more than {CONTEXT_ELEMENTS_MAX} items allowed {where}/elements]"
        elif kind == "actions":
            elements = block.get("elements") or []
            if len(elements) > ACTIONS_ELEMENTS_MAX:
                return f"no more than {ACTIONS_ELEMENTS_MAX} items allowed {where}/elements]"
            for j, element in enumerate(elements):
                problem = _button_problem(element, f"{where}/elements/{j}")
                if problem:
                    return problem
    ids = [e.get("action_id") for b in blocks if isinstance(b, dict) and b.get("type") == "actions"
           for e in b.get("elements") or [] if isinstance(e, dict) and e.get("action_id")]
    if len(ids) != len(set(ids)):
        return "action_id values must be unique within a message [json-pointer:/blocks]"
    return None


def _button_problem(element: Any, where: str) -> str | None:
    if not isinstance(element, dict) or element.get("type") != "button":
        return None
    text = element.get("text")
    if not isinstance(text, dict) or text.get("type") != "plain_text" or not str(text.get("text") or ""):
        return f"must provide a plain_text text {where}/text]"
    limits = (("text", len(str(text.get("text"))), BUTTON_TEXT_LIMIT),
              ("value", len(str(element.get("value", ""))), BUTTON_VALUE_LIMIT),
              ("url", len(str(element.get("url", ""))), BUTTON_URL_LIMIT),
              ("action_id", len(str(element.get("action_id", ""))), ACTION_ID_LIMIT))
    for name, length, limit in limits:
        if length > limit:
            return f"must be less than {limit + 1} characters {where}/{name}]"
    return None


def interaction_body(payload: dict[str, Any]) -> bytes:
    """The form body Slack POSTs for an interaction: one field, ``payload``, the JSON object."""
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def sign_request(body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    """Slack's request signing (v0): ``X-Slack-Signature`` = ``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": f"v0={digest}"}


def send_interaction(url: str, body: bytes, headers: dict[str, str], timeout: float = 10.0) -> tuple[int, str]:
    """POST an interaction request as Slack does; (HTTP status, body text)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _window(params: dict[str, Any]) -> Callable[[str], bool] | _Reply:
    """Whether a ts lies between ``oldest`` and ``latest`` (bounds excluded unless ``inclusive``)."""
    oldest, latest = params.get("oldest"), params.get("latest")
    low = _micros(str(oldest)) if oldest not in (None, "") else 0
    high = _micros(str(latest)) if latest not in (None, "") else None
    if low is None:
        return _error("invalid_ts_oldest")
    if latest not in (None, "") and high is None:
        return _error("invalid_ts_latest")
    inclusive = _truthy(params.get("inclusive"))

    def inside(ts: str) -> bool:
        value = _micros(ts) or 0
        above = value >= low if inclusive else value > low
        below = high is None or (value <= high if inclusive else value < high)
        return above and below

    return inside


def _micros(ts: str) -> int | None:
    try:
        value = Decimal(ts)
    except InvalidOperation:
        return None
    return int(value * 1_000_000) if value.is_finite() and value >= 0 else None


def _format_ts(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _encode_cursor(ts: str) -> str:
    return base64.b64encode(f"next_ts:{_micros(ts)}".encode()).decode()


def _decode_cursor(cursor: str) -> int | None:
    try:
        text = base64.b64decode(cursor, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    prefix, _, value = text.partition(":")
    return int(value) if prefix == "next_ts" and value.isdigit() else None


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def _decode(params: dict[str, Any]) -> dict[str, Any]:
    """Form fields that carry JSON (``blocks``, ``attachments``, ``metadata``) as JSON values, like a JSON body."""
    decoded = dict(params)
    for key in _JSON_FIELDS:
        value = decoded.get(key)
        if isinstance(value, str):
            try:
                decoded[key] = json.loads(value)
            except ValueError:
                decoded[key] = value  # left as is: the method answers invalid_blocks / invalid_metadata_format
    return decoded


def _handler(emulator: SlackEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            if not parts.path.startswith("/api/"):
                self._send(_Reply(404, "not found"))
                return
            method = parts.path.removeprefix("/api/")
            params: dict[str, Any] = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            content_type = self.headers.get("Content-Type") or ""
            json_body = "json" in content_type
            if raw and json_body:
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._send(_error("invalid_json"))
                    return
                if not isinstance(body, dict):
                    self._send(_error("invalid_json"))
                    return
                params.update(body)
            elif raw:
                params.update({k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode()).items()})
            # Slack takes the token from the header, or from a form field; a JSON body cannot carry it.
            field_token = params.pop("token", None)
            header = self.headers.get("Authorization") or ""
            token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None
            if token is None and not json_body and isinstance(field_token, str):
                token = field_token
            reply = emulator._serve(method, _decode(params), token)
            if reply is None:
                self.close_connection = True
                return
            self._send(reply)

        def _send(self, reply: _Reply) -> None:
            if isinstance(reply.body, str):
                data, content_type = reply.body.encode(), "text/html; charset=utf-8"
            else:
                data, content_type = json.dumps(reply.body).encode(), "application/json; charset=utf-8"
            self.send_response(reply.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = _serve
        do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
