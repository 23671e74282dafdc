"""The Slack emulator through the real slack_sdk WebClient: shapes, paging, faults and what it records."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from daemon.emulators.slack import SlackEmulator
from daemon.emulators.tls import shared_ca

ALERTS = "C0ALERTS1"
TS = re.compile(r"\d{10}\.\d{6}")
SECTION = [{"type": "section", "text": {"type": "mrkdwn", "text": "*gpt-4o* retires"}}]
METADATA = {"event_type": "model_retirement_alert", "event_payload": {"alert_key": "k1", "stage": "notice"}}


@pytest.fixture(scope="module")
def running() -> Iterator[SlackEmulator]:
    with SlackEmulator({"#alerts": ALERTS}) as emulator:
        yield emulator


@pytest.fixture
def slack(running: SlackEmulator) -> SlackEmulator:
    running.reset()
    return running


def web(slack: SlackEmulator, token: str | None = "default", **kwargs: Any) -> WebClient:
    return WebClient(token=slack.token if token == "default" else token, base_url=slack.api_url,
                     ssl=shared_ca().client_context(), timeout=kwargs.pop("timeout", 5), **kwargs)


def error_of(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value


def test_auth_test(slack: SlackEmulator) -> None:
    answer = web(slack).auth_test()
    assert answer["ok"] and {"url", "team", "user", "team_id", "user_id", "bot_id"} <= set(answer.data)


def test_post_by_name_answers_the_channel_id_and_increasing_ts(slack: SlackEmulator) -> None:
    client = web(slack)
    first = client.chat_postMessage(channel="#alerts", text="one", blocks=SECTION, metadata=METADATA,
                                    unfurl_links=False)
    second = client.chat_postMessage(channel=ALERTS, text="two")
    third = client.chat_postMessage(channel="alerts", text="three")
    assert {first["channel"], second["channel"], third["channel"]} == {ALERTS}
    assert all(TS.fullmatch(a["ts"]) for a in (first, second, third))
    assert float(first["ts"]) < float(second["ts"]) < float(third["ts"])
    assert first["message"]["text"] == "one" and first["message"]["bot_id"]
    stored = slack.messages("#alerts")
    assert [m.text for m in stored] == ["one", "two", "three"]
    assert stored[0].blocks == SECTION and stored[0].metadata == METADATA
    assert stored[0].options["unfurl_links"] is False
    new = client.chat_postMessage(channel="#brand-new", text="hi")
    assert new["channel"] == slack.channel_id("#brand-new") != ALERTS


def test_ts_stays_unique_when_the_clock_stands_still() -> None:
    with SlackEmulator(clock=lambda: 1_800_000_000.0) as emulator:
        client = web(emulator)
        stamps = [client.chat_postMessage(channel="#x", text=str(i))["ts"] for i in range(3)]
    assert stamps == ["1800000000.000000", "1800000000.000001", "1800000000.000002"]


def test_thread_reply_broadcast_and_replies(slack: SlackEmulator) -> None:
    client = web(slack)
    parent = client.chat_postMessage(channel=ALERTS, text="parent")["ts"]
    quiet = client.chat_postMessage(channel=ALERTS, text="quiet reply", thread_ts=parent)["ts"]
    loud = client.chat_postMessage(channel=ALERTS, text="loud reply", thread_ts=parent, reply_broadcast=True)["ts"]
    nested = client.chat_postMessage(channel=ALERTS, text="reply to a reply", thread_ts=quiet)
    assert nested["message"]["thread_ts"] == parent, "Slack puts a reply to a reply into the parent's thread"

    history = client.conversations_history(channel=ALERTS)["messages"]
    assert [m["text"] for m in history] == ["loud reply", "parent"], "plain replies stay in the thread"
    assert history[0]["subtype"] == "thread_broadcast" and history[0]["thread_ts"] == parent
    assert (history[1]["thread_ts"], history[1]["reply_count"]) == (parent, 3)

    replies = client.conversations_replies(channel=ALERTS, ts=parent)["messages"]
    assert [m["ts"] for m in replies] == [parent, quiet, loud, nested["ts"]]
    assert [m.ts for m in slack.thread("#alerts", quiet)] == [parent, quiet, loud, nested["ts"]]
    stored = slack.messages(ALERTS)
    assert [(m.thread_ts, m.reply_broadcast) for m in stored] == \
        [(None, False), (parent, False), (parent, True), (parent, False)]
    assert error_of(lambda: client.chat_postMessage(channel=ALERTS, text="x", thread_ts="1.000001")) \
        .response["error"] == "thread_not_found"


def test_update_keeps_what_it_leaves_out_and_records_edits(slack: SlackEmulator) -> None:
    client = web(slack)
    ts = client.chat_postMessage(channel=ALERTS, text="v1", blocks=SECTION, metadata=METADATA)["ts"]
    later = {"event_type": "model_retirement_alert", "event_payload": {"alert_key": "k1", "stage": "urgent"}}
    answer = client.chat_update(channel=ALERTS, ts=ts, text="v2", metadata=later)
    assert (answer["channel"], answer["ts"], answer["text"]) == (ALERTS, ts, "v2")
    message = slack.messages(ALERTS)[0]
    assert (message.text, message.blocks, message.metadata) == ("v2", SECTION, later)
    assert [(e["text"], e["metadata"]) for e in message.edits] == [("v1", METADATA)]
    client.chat_update(channel=ALERTS, ts=ts, text="v3", blocks=[])
    assert slack.messages(ALERTS)[0].blocks == [], "an empty list clears the blocks"
    assert client.conversations_history(channel=ALERTS)["messages"][0]["edited"]["ts"]
    assert error_of(lambda: client.chat_update(channel=ALERTS, ts="1.000001", text="x")) \
        .response["error"] == "message_not_found"


def test_history_gives_metadata_only_when_asked(slack: SlackEmulator) -> None:
    client = web(slack)
    client.chat_postMessage(channel=ALERTS, text="with metadata", metadata=METADATA)
    plain = client.conversations_history(channel=ALERTS)["messages"][0]
    assert "metadata" not in plain
    rich = client.conversations_history(channel=ALERTS, include_all_metadata=True)["messages"][0]
    assert rich["metadata"] == METADATA
    assert client.conversations_replies(channel=ALERTS, ts=rich["ts"], include_all_metadata=True)["messages"][0][
        "metadata"] == METADATA


def test_history_pages_newest_first_by_cursor(slack: SlackEmulator) -> None:
    client = web(slack)
    stamps = [client.chat_postMessage(channel=ALERTS, text=f"m{i}")["ts"] for i in range(5)]
    first = client.conversations_history(channel=ALERTS, limit=2)
    assert [m["text"] for m in first["messages"]] == ["m4", "m3"] and first["has_more"]
    client.chat_postMessage(channel=ALERTS, text="posted between pages")
    seen = [m["text"] for m in first["messages"]]
    cursor = first["response_metadata"]["next_cursor"]
    while cursor:
        page = client.conversations_history(channel=ALERTS, limit=2, cursor=cursor)
        seen += [m["text"] for m in page["messages"]]
        cursor = page["response_metadata"]["next_cursor"]
    assert seen == ["m4", "m3", "m2", "m1", "m0"], "a post between pages shifts nothing"
    assert not page["has_more"]
    assert error_of(lambda: client.conversations_history(channel=ALERTS, cursor="bogus")) \
        .response["error"] == "invalid_cursor"

    between = client.conversations_history(channel=ALERTS, oldest=stamps[1], latest=stamps[3])["messages"]
    assert [m["text"] for m in between] == ["m2"], "bounds are exclusive by default"
    inclusive = client.conversations_history(channel=ALERTS, oldest=stamps[1], latest=stamps[3],
                                             inclusive=True)["messages"]
    assert [m["text"] for m in inclusive] == ["m3", "m2", "m1"]


def test_page_cap_models_a_non_marketplace_app() -> None:
    with SlackEmulator(page_cap=15) as emulator:
        client = web(emulator)
        for i in range(20):
            client.chat_postMessage(channel="#x", text=str(i))
        page = client.conversations_history(channel="#x", limit=200)
    assert len(page["messages"]) == 15 and page["response_metadata"]["next_cursor"]


def test_ratelimited_is_429_with_retry_after(slack: SlackEmulator) -> None:
    slack.ratelimit("chat.postMessage", times=1, retry_after=7)
    client = web(slack)
    error = error_of(lambda: client.chat_postMessage(channel="#alerts", text="x"))
    assert error.response.status_code == 429 and error.response["error"] == "ratelimited"
    assert error.response.headers["Retry-After"] == "7"
    assert client.chat_postMessage(channel="#alerts", text="x")["ok"], "times=1: the next call goes through"
    assert [(c.status, c.error) for c in slack.calls("chat.postMessage")] == [(429, "ratelimited"), (200, None)]
    assert len(slack.messages()) == 1


def test_ratelimit_of_one_channel_leaves_others(slack: SlackEmulator) -> None:
    slack.ratelimit(channel="#alerts", times=None, retry_after=3)
    client = web(slack)
    assert client.chat_postMessage(channel="#other", text="x")["ok"]
    assert error_of(lambda: client.chat_postMessage(channel=ALERTS, text="x")).response.status_code == 429


def test_enforced_rate_answers_429_beyond_the_burst(slack: SlackEmulator) -> None:
    slack.enforce_rate(1.0, burst=2)
    client = web(slack)
    assert client.chat_postMessage(channel=ALERTS, text="1")["ok"] and client.chat_postMessage(channel=ALERTS,
                                                                                                text="2")["ok"]
    error = error_of(lambda: client.chat_postMessage(channel=ALERTS, text="3"))
    assert error.response.status_code == 429 and error.response.headers["Retry-After"] == "1"
    assert client.chat_postMessage(channel="#elsewhere", text="1")["ok"], "the limit is per channel"


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_raise_with_the_status(slack: SlackEmulator, status: int) -> None:
    slack.server_error("chat.postMessage", status=status)
    error = error_of(lambda: web(slack).chat_postMessage(channel=ALERTS, text="x"))
    assert error.response.status_code == status
    assert slack.messages() == []


def test_a_non_json_server_error(slack: SlackEmulator) -> None:
    slack.server_error(status=502, html=True)
    error = error_of(lambda: web(slack).auth_test())
    assert error.response.status_code == 502 and "non-JSON" in error.response["error"]


def test_channel_not_found(slack: SlackEmulator) -> None:
    client = web(slack)
    assert error_of(lambda: client.chat_postMessage(channel="C0NOSUCH9", text="x")).response["error"] \
        == "channel_not_found"
    with SlackEmulator({"#alerts": ALERTS}, auto_create=False) as strict:
        assert error_of(lambda: web(strict).chat_postMessage(channel="#nope", text="x")).response["error"] \
            == "channel_not_found"
        assert web(strict).chat_postMessage(channel="#alerts", text="x")["channel"] == ALERTS


def test_failed_channel_is_sticky_until_cleared(slack: SlackEmulator) -> None:
    slack.fail_channel("#alerts", "not_in_channel")
    client = web(slack)
    for _ in range(2):
        assert error_of(lambda: client.chat_postMessage(channel=ALERTS, text="x")).response["error"] \
            == "not_in_channel"
    assert client.chat_postMessage(channel="#other", text="x")["ok"]
    slack.clear_channel("#alerts")
    assert client.chat_postMessage(channel=ALERTS, text="x")["ok"]


def test_invalid_auth_not_authed_and_revoked(slack: SlackEmulator) -> None:
    assert error_of(lambda: web(slack, token="xoxb-wrong").chat_postMessage(channel=ALERTS, text="x")) \
        .response["error"] == "invalid_auth"
    assert error_of(lambda: web(slack, token=None).auth_test()).response["error"] == "not_authed"
    slack.revoke_token()
    assert error_of(lambda: web(slack).auth_test()).response["error"] == "token_revoked"
    slack.reset_faults()
    assert web(slack).auth_test()["ok"]
    assert slack.messages() == []


def test_crash_after_accept_stores_but_never_answers(slack: SlackEmulator) -> None:
    slack.crash_after_accept("chat.postMessage", hang=None)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        web(slack, timeout=1).chat_postMessage(channel=ALERTS, text="x")
    assert time.monotonic() - started < 3
    assert [m.text for m in slack.messages(ALERTS)] == ["x"]
    call = slack.calls("chat.postMessage")[0]
    assert (call.ok, call.answered) == (True, False)


def test_a_dropped_connection_is_resent_by_slack_sdk_default_retry(slack: SlackEmulator) -> None:
    """slack_sdk's default ConnectionErrorRetryHandler resends a request whose connection closed without an answer
    (RemoteDisconnected): a post Slack accepted is posted twice. Without retry handlers the error reaches the
    caller and Slack holds one message."""
    slack.crash_after_accept("chat.postMessage", hang=0)
    assert web(slack).chat_postMessage(channel=ALERTS, text="x")["ok"]
    assert len(slack.messages(ALERTS)) == 2
    slack.crash_after_accept("chat.postMessage", hang=0)
    with pytest.raises(ConnectionError):
        web(slack, retry_handlers=[]).chat_postMessage(channel=ALERTS, text="y")
    assert [m.text for m in slack.messages(ALERTS)] == ["x", "x", "y"]


def test_slow_answers_late(slack: SlackEmulator) -> None:
    slack.slow(0.5, "auth.test", times=1)
    started = time.monotonic()
    assert web(slack).auth_test()["ok"]
    assert time.monotonic() - started >= 0.5
    started = time.monotonic()
    assert web(slack).auth_test()["ok"] and time.monotonic() - started < 0.5


def test_block_limits_and_text_cut(slack: SlackEmulator) -> None:
    client = web(slack)
    too_many = [{"type": "divider"}] * 51
    assert error_of(lambda: client.chat_postMessage(channel=ALERTS, text="x", blocks=too_many)) \
        .response["error"] == "invalid_blocks"
    long_section = [{"type": "section", "text": {"type": "mrkdwn", "text": "a" * 3001}}]
    error = error_of(lambda: client.chat_postMessage(channel=ALERTS, text="x", blocks=long_section))
    assert "3001" in error.response["response_metadata"]["messages"][0]
    assert error_of(lambda: client.chat_postMessage(channel=ALERTS, text="x", metadata={"event_payload": {}})) \
        .response["error"] == "invalid_metadata_format"
    client.chat_postMessage(channel=ALERTS, text="b" * 45_000)
    assert len(slack.messages(ALERTS)[0].text) == 40_000


def test_form_encoded_calls_and_what_is_recorded(slack: SlackEmulator) -> None:
    """Form bodies (as slack_sdk sends conversations.*) carry JSON fields as strings; the record has them decoded."""
    client = web(slack)
    client.api_call("chat.postMessage", params={"channel": ALERTS, "text": "form", "blocks": json.dumps(SECTION),
                                                "metadata": json.dumps(METADATA)})
    client.conversations_history(channel=ALERTS, include_all_metadata=True, limit=10)
    post, history = slack.calls()
    assert post.params["blocks"] == SECTION and post.params["metadata"] == METADATA
    assert "token" not in post.params and post.channel == ALERTS
    assert history.params == {"channel": ALERTS, "include_all_metadata": "1", "limit": "10"}
    assert slack.messages(ALERTS)[0].metadata == METADATA
    assert slack.calls(channel="#alerts") == [post, history] and slack.calls(channel="#nowhere") == []
