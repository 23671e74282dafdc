"""The one module that talks to Slack. Every call returns a verdict: sent, retry after N seconds, failed for good,
or unavailable (Slack refuses the app itself: a revoked token, a missing scope; nothing can be sent until a person
fixes it, so the run stops and every message stays pending).

slack_sdk's ``WebClient`` raises on a 429 at once and retries only connection errors; the waiting belongs to the
durable outbox (which reschedules the row), not to a sleeping thread, so nothing here sleeps.
"""

from __future__ import annotations

import logging
import os
import ssl
import urllib.error
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from daemon.config import SlackConfig

log = logging.getLogger(__name__)

ENV_TOKEN = "SLACK_BOT_TOKEN"
# Errors about the app, not the message: every call would fail the same way. The run stops, nothing is marked
# failed, no attempt is counted, and the next run tries again once a person has fixed the token or its scopes.
APP_ERRORS = frozenset({
    "invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive", "missing_scope",
})
# Errors that retrying this message cannot heal: the alert is marked failed and an operational alert raised.
PERMANENT_ERRORS = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "msg_too_long", "invalid_blocks",
    "invalid_metadata_format", "invalid_metadata_schema", "restricted_action", "no_permission",
    "channel_is_archived", "invalid_arguments", "message_not_found", "cant_update_message", "edit_window_closed",
    "no_text", "too_many_attachments", "team_access_not_granted", "ekm_access_denied", "org_login_required",
})
_APP_ADVICE = {
    "invalid_auth": "the bot token is not valid: set SLACK_BOT_TOKEN to the app's current bot token (xoxb-...)",
    "not_authed": "no bot token reached Slack: set SLACK_BOT_TOKEN",
    "token_revoked": "the bot token was revoked: reinstall the Slack app and set SLACK_BOT_TOKEN to its new token",
    "token_expired": "the bot token expired: set SLACK_BOT_TOKEN to a fresh token",
    "account_inactive": "the bot's account is deactivated: reactivate or reinstall the Slack app",
    "missing_scope": "the bot token lacks a scope: add chat:write, chat:write.public, channels:history, "
                     "groups:history, channels:read and groups:read, reinstall the app",
}
BACKOFF_BASE_SECONDS = 5.0
CLOCK_SKEW_SECONDS = 300.0  # look this much further back than our own clock says the attempt began
BACKOFF_MAX_SECONDS = 3600.0


class Verdict(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    UNAVAILABLE = "unavailable"  # Slack refuses the app itself (APP_ERRORS): stop, keep every message pending


def app_problem(error: str) -> str:
    """One line for a person: what Slack said about the app and what to do."""
    advice = _APP_ADVICE.get(error.split(" ", 1)[0], "fix the Slack app's token or scopes")
    return f"Slack refuses the app ({error}): {advice}"


@dataclass(frozen=True)
class SlackResult:
    verdict: Verdict
    channel_id: str | None = None
    ts: str | None = None
    retry_after: float | None = None
    error: str | None = None
    uncertain: bool = False  # the request may have reached Slack (timeout, dropped connection): look before resending


@dataclass(frozen=True)
class SlackMessage:
    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any]


def backoff_seconds(attempts: int) -> float:
    return float(min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1)))


class SlackClient:
    def __init__(self, config: SlackConfig, token: str | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        token = token if token is not None else os.environ.get(ENV_TOKEN)
        if ssl_context is None and config.ca_bundle:
            ssl_context = ssl.create_default_context(cafile=config.ca_bundle)
        # No retry handlers: slack_sdk's default re-sends a post whose connection dropped after Slack may have
        # accepted it (a duplicate). The outbox retries instead, looking for the message first.
        self._client = WebClient(token=token, base_url=config.api_url, timeout=int(config.timeout_seconds),
                                 ssl=ssl_context, retry_handlers=[])
        self.has_token = bool(token)

    # -- writes --------------------------------------------------------------------------------------------------

    def post(self, channel: str, message: SlackMessage, *, thread_ts: str | None = None,
             broadcast: bool = False) -> SlackResult:
        return self._call("chat.postMessage", lambda: self._client.chat_postMessage(
            channel=channel, text=message.text, blocks=message.blocks, metadata=message.metadata,
            thread_ts=thread_ts, reply_broadcast=broadcast if thread_ts else None, unfurl_links=False,
            unfurl_media=False))

    def update(self, channel_id: str, ts: str, message: SlackMessage) -> SlackResult:
        return self._call("chat.update", lambda: self._client.chat_update(
            channel=channel_id, ts=ts, text=message.text, blocks=message.blocks, metadata=message.metadata))

    # -- recovery after an uncertain send ------------------------------------------------------------------------

    def find_own_message(self, channel_id: str, alert_key: str, *, since: datetime,
                         thread_ts: str | None = None) -> SlackResult | None:
        """Look for a message this service posted for ``alert_key`` since ``since`` (its metadata names the key).

        Returns a SENT result when found, None when Slack says it is not there, or a RETRY/FAILED result when
        Slack could not be asked (then the caller must not send blindly)."""
        try:
            for message in self._history(channel_id, since, thread_ts):
                payload = (message.get("metadata") or {}).get("event_payload") or {}
                if payload.get("alert_key") == alert_key:
                    return SlackResult(Verdict.SENT, channel_id=channel_id, ts=message.get("ts"))
        except SlackApiError as exc:
            return api_error(exc)
        except (SlackClientError, urllib.error.URLError, OSError) as exc:
            return SlackResult(Verdict.RETRY, error=f"{type(exc).__name__}: {exc}")
        return None

    def _history(self, channel_id: str, since: datetime, thread_ts: str | None) -> Iterator[Mapping[str, Any]]:
        oldest = f"{since.timestamp() - CLOCK_SKEW_SECONDS:.6f}"
        cursor: str | None = None
        while True:
            if thread_ts:
                response = self._client.conversations_replies(channel=channel_id, ts=thread_ts, oldest=oldest,
                                                              include_all_metadata=True, cursor=cursor, limit=200)
            else:
                response = self._client.conversations_history(channel=channel_id, oldest=oldest,
                                                              include_all_metadata=True, cursor=cursor, limit=200)
            yield from response.get("messages") or []
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return

    def channel_id(self, channel: str) -> str | None:
        """Resolve ``#name`` to an id (only needed to recover a first post whose answer was lost)."""
        if not channel.startswith("#"):
            return channel
        name, cursor = channel[1:], None
        while True:
            response = self._client.conversations_list(cursor=cursor, limit=1000, exclude_archived=True,
                                                       types="public_channel,private_channel")
            for item in response.get("channels") or []:
                if item.get("name") == name:
                    return str(item["id"])
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return None

    def _call(self, method: str, call: Any) -> SlackResult:
        try:
            response = call()
        except SlackApiError as exc:
            result = api_error(exc)
            log.warning("slack %s: %s (%s)", method, result.error, result.verdict)
            return result
        except (SlackClientError, urllib.error.URLError, TimeoutError, OSError) as exc:
            log.warning("slack %s: %s", method, exc)
            return SlackResult(Verdict.RETRY, error=f"{type(exc).__name__}: {exc}", uncertain=True)
        return SlackResult(Verdict.SENT, channel_id=response.get("channel"), ts=response.get("ts"))


def api_error(exc: SlackApiError) -> SlackResult:
    response = exc.response
    status = getattr(response, "status_code", None)
    error = str((response.data or {}).get("error") if isinstance(response.data, dict) else "") or f"http {status}"
    if status == 429 or error == "ratelimited":
        retry_after = _retry_after(response.headers)
        return SlackResult(Verdict.RETRY, retry_after=retry_after, error="ratelimited")
    if error in APP_ERRORS:
        data = response.data if isinstance(response.data, dict) else {}
        needed = f" (needed: {data['needed']})" if error == "missing_scope" and data.get("needed") else ""
        return SlackResult(Verdict.UNAVAILABLE, error=error + needed)
    if error in PERMANENT_ERRORS:
        return SlackResult(Verdict.FAILED, error=error)
    return SlackResult(Verdict.RETRY, error=error)


def _retry_after(headers: Mapping[str, Any] | None) -> float:
    for key, value in (headers or {}).items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value if not isinstance(value, list) else value[0]))
            except (TypeError, ValueError):
                break
    return 30.0
