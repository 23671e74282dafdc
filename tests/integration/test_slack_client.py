"""notify/slack.py through the real slack_sdk WebClient against the Slack emulator: every answer becomes a verdict."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from daemon.config import SlackConfig
from daemon.emulators.slack import SlackEmulator
from daemon.notify.slack import SlackClient, SlackMessage, Verdict, app_problem
from tests.integration.world import behind_proxy


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    with SlackEmulator({"#alerts": "C0ALERTS1"}) as emulator:
        yield emulator


def client(slack: SlackEmulator, token: str | None = None, timeout: float = 5) -> SlackClient:
    config = SlackConfig(api_url=slack.api_url, ca_bundle=slack.ca_bundle_path, timeout_seconds=timeout)
    return SlackClient(config, token=token or slack.token)


def message(key: str) -> SlackMessage:
    return SlackMessage(text=f"text {key}", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": key}}],
                        metadata={"event_type": "model_retirement_alert", "event_payload": {"alert_key": key}})


def test_post_reply_update_and_find_by_metadata(slack: SlackEmulator) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    api = client(slack)
    first = api.post("#alerts", message("k1"))
    assert (first.verdict, first.channel_id) == (Verdict.SENT, "C0ALERTS1") and first.ts
    reply = api.post("C0ALERTS1", message("k2"), thread_ts=first.ts, broadcast=True)
    assert reply.verdict is Verdict.SENT
    assert api.update("C0ALERTS1", first.ts, message("k1-updated")).verdict is Verdict.SENT
    stored = slack.messages("#alerts")
    assert [m.thread_ts for m in stored] == [None, first.ts] and stored[1].reply_broadcast
    assert stored[0].text == "text k1-updated" and stored[0].metadata == message("k1-updated").metadata
    found = api.find_own_message("C0ALERTS1", "k2", since=since, thread_ts=first.ts)
    assert found is not None and found.ts == reply.ts
    assert api.find_own_message("C0ALERTS1", "nope", since=since) is None
    history = slack.calls("conversations.history")
    assert history and history[-1].params.get("include_all_metadata") in ("1", 1, True, "true")
    assert api.channel_id("#alerts") == "C0ALERTS1"


def test_ratelimit_is_retry_after_the_header(slack: SlackEmulator) -> None:
    slack.ratelimit("chat.postMessage", times=1, retry_after=7)
    result = client(slack).post("#alerts", message("k"))
    assert (result.verdict, result.retry_after, result.error) == (Verdict.RETRY, 7.0, "ratelimited")
    assert not result.uncertain
    assert client(slack).post("#alerts", message("k")).verdict is Verdict.SENT


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried(slack: SlackEmulator, status: int) -> None:
    slack.server_error("chat.postMessage", status=status)
    result = client(slack).post("#alerts", message("k"))
    assert result.verdict is Verdict.RETRY and result.retry_after is None


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "is_archived"])
def test_permanent_channel_errors_fail(slack: SlackEmulator, error: str) -> None:
    slack.fail_channel("#alerts", error)
    result = client(slack).post("#alerts", message("k"))
    assert (result.verdict, result.error) == (Verdict.FAILED, error)


def test_a_bad_token_is_the_app_unavailable_not_a_failed_message(slack: SlackEmulator) -> None:
    result = client(slack, token="xoxb-wrong").post("#alerts", message("k"))
    assert (result.verdict, result.error) == (Verdict.UNAVAILABLE, "invalid_auth")
    assert "SLACK_BOT_TOKEN" in app_problem(result.error or "")


@pytest.mark.parametrize("error", ["token_revoked", "invalid_auth", "not_authed", "account_inactive",
                                   "missing_scope"])
def test_app_wide_errors_are_unavailable(slack: SlackEmulator, error: str) -> None:
    slack.revoke_token(error)
    api = client(slack)
    for result in (api.post("#alerts", message("k")), api.update("C0ALERTS1", "1.0", message("k")),
                   api.find_own_message("C0ALERTS1", "k", since=datetime.now(UTC))):
        assert result is not None and (result.verdict, result.error) == (Verdict.UNAVAILABLE, error)
    assert slack.messages() == []
    slack.reset_faults()
    assert api.post("#alerts", message("k")).verdict is Verdict.SENT


def test_a_lost_answer_is_uncertain(slack: SlackEmulator) -> None:
    slack.crash_after_accept("chat.postMessage", hang=2)
    result = client(slack, timeout=1).post("#alerts", message("k"))
    assert result.verdict is Verdict.RETRY and result.uncertain
    assert len(slack.messages("#alerts")) == 1, "Slack accepted it even though the client never heard back"


def test_a_dropped_connection_is_not_resent_by_the_client(slack: SlackEmulator) -> None:
    slack.crash_after_accept("chat.postMessage", hang=0.2)
    result = client(slack).post("#alerts", message("k"))
    assert result.verdict is Verdict.RETRY and result.uncertain
    assert len(slack.messages("#alerts")) == 1, "slack_sdk's default retry would have posted it twice"


@pytest.mark.parametrize("bypassed", [False, True], ids=["https_proxy", "no_proxy"])
def test_slack_is_reached_through_the_environments_proxy_unless_no_proxy_exempts_it(
        slack: SlackEmulator, monkeypatch: pytest.MonkeyPatch, bypassed: bool) -> None:
    from daemon.emulators.proxy import ProxyEmulator
    from daemon.emulators.tls import PROXIED_HOST

    port = slack.api_url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
    with ProxyEmulator(credentials=("egress", "s3cret")) as proxy:
        behind_proxy(monkeypatch, proxy.url_with("egress", "s3cret"),
                     no_proxy="localhost,127.0.0.1" if bypassed else None)
        # bypassed: the address the client's own network reaches; else a name only the proxy resolves
        api_url = slack.api_url if bypassed else slack.api_url.replace("127.0.0.1", PROXIED_HOST)
        config = SlackConfig(api_url=api_url, ca_bundle=slack.ca_bundle_path, timeout_seconds=5)
        sent = SlackClient(config, token=slack.token).post("#alerts", message("k1"))
        tunnels = proxy.tunnels
    assert sent.verdict is Verdict.SENT, sent
    assert [m.text for m in slack.messages("#alerts")] == ["text k1"]
    expected = [] if bypassed else [f"{PROXIED_HOST}:{port}"]
    assert [t.target for t in tunnels] == expected
