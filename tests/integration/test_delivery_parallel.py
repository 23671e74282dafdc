"""Delivery over many channels at once, through the real WebClient, against the Slack emulator enforcing Slack's
per-channel rate (HTTP 429 with Retry-After beyond it), on SQLite and PostgreSQL: every channel is paced, all of
them in parallel, nothing lost, nothing doubled, replies after their first message, and a 429 holds its channel."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from itertools import pairwise

import pytest
from sqlalchemy.orm import Session, sessionmaker

from daemon.clock import FixedClock
from daemon.config import ConfigError, SlackConfig, parse_config
from daemon.emulators.slack import Message, SlackEmulator
from daemon.notify.deliver import Deliverer, DeliveryReport, lanes_of
from daemon.notify.run import deliver_outbox
from daemon.notify.slack import SlackClient
from daemon.store import alerts
from tests.integration.outbox import Queued, channel_name, fill_outbox

CHANNELS, PER_CHANNEL = 6, 20
RATE = 4.0  # messages per second per channel: the pacing bound is PER_CHANNEL / RATE = 5 s
# The bench (bench/deliver.py) shows the real ratio; a loaded 2-core machine gets some slack here.
MARGIN = 1.5


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    with SlackEmulator() as emulator:
        emulator.enforce_rate(RATE)
        yield emulator


def deliverer(sessions: sessionmaker[Session], slack: SlackEmulator, clock: FixedClock, *, rate: float = RATE,
              lanes: int = 16) -> Deliverer:
    config = SlackConfig(api_url=slack.api_url, ca_bundle=slack.ca_bundle_path)
    return Deliverer(sessions, SlackClient(config, token=slack.token), clock, messages_per_second=rate,
                     max_parallel_channels=lanes)


def timed(run: Callable[[], DeliveryReport]) -> tuple[DeliveryReport, float]:
    started = time.monotonic()
    report = run()
    return report, time.monotonic() - started


def key_of(message: Message) -> str:
    return str(((message.metadata or {}).get("event_payload") or {}).get("alert_key"))


def check_delivered(slack: SlackEmulator, sessions: sessionmaker[Session], queued: list[Queued]) -> None:
    """Each message posted once, in its channel, in queue order there, each reply in its first message's thread."""
    posted = slack.messages()
    keys = [key_of(m) for m in posted]
    assert len(keys) == len(set(keys)), "a message was posted twice"
    assert sorted(keys) == sorted(q.key for q in queued), "a message was lost"
    by_key = {key_of(m): m for m in posted}
    for name in {q.channel for q in queued}:
        mine = [q.key for q in queued if q.channel == name]
        assert [key_of(m) for m in slack.messages(name)] == mine, f"{name} got its messages out of order"
    for q in queued:
        message = by_key[q.key]
        if q.parent is None:
            assert message.thread_ts is None, q.key
        else:
            assert message.thread_ts == by_key[q.parent].ts, f"{q.key} is not in its first message's thread"
    with sessions() as session:
        rows = alerts.list_alerts(session)
        assert {row.status for row in rows} == {alerts.SENT}
        assert {row.key: row.ts for row in rows} == {key: m.ts for key, m in by_key.items()}


def test_channels_are_delivered_in_parallel_each_at_its_pace(sessions: sessionmaker[Session], clock: FixedClock,
                                                             slack: SlackEmulator) -> None:
    queued = fill_outbox(sessions, clock.now(), channels=CHANNELS, per_channel=PER_CHANNEL)
    report, wall = timed(deliverer(sessions, slack, clock).run)

    bound = PER_CHANNEL / RATE  # what one channel alone needs at Slack's pace; all of them at once need no more
    assert report.sent == CHANNELS * PER_CHANNEL and report.failed == report.retried == 0, report
    check_delivered(slack, sessions, queued)
    assert all(count <= 1 for count in slack.rate_limited().values()), f"429s: {slack.rate_limited()}"
    assert (PER_CHANNEL - 1) / RATE <= wall <= MARGIN * bound, f"{wall:.2f}s for a {bound:.1f}s bound"
    for name in {q.channel for q in queued}:
        posts = [call.at for call in slack.calls("chat.postMessage", name) if call.ok]
        gaps = [later - earlier for earlier, later in pairwise(posts)]
        assert min(gaps) >= 0.9 / RATE, f"{name} was not paced: {min(gaps):.3f}s"
    with sessions() as session:
        assert {row.attempts for row in alerts.list_alerts(session)} == {1}


def test_a_429_holds_its_channel_until_retry_after_then_keeps_the_order(
        sessions: sessionmaker[Session], clock: FixedClock, slack: SlackEmulator) -> None:
    queued = fill_outbox(sessions, clock.now(), channels=CHANNELS, per_channel=PER_CHANNEL // 2, interleaved=True)
    for index in (0, 3):  # Slack throttles two channels once, for a second
        slack.ratelimit("chat.postMessage", channel_name(index), times=1, retry_after=1)
    report, wall = timed(lambda: deliverer(sessions, slack, clock).run(wait_seconds=10))

    assert report.sent == len(queued) and report.retried == 2 and report.failed == 0, report
    check_delivered(slack, sessions, queued)  # the throttled message went first again: order and threads kept
    throttled = {slack.channel_id(channel_name(index)) for index in (0, 3)}
    assert slack.rate_limited() == dict.fromkeys(throttled, 1), "a 429 after the first in a channel"
    for index in (0, 3):
        calls = slack.calls("chat.postMessage", channel_name(index))
        assert calls[0].status == 429 and calls[1].ok and calls[1].at - calls[0].at >= 1.0, "Retry-After honoured"
    bound = PER_CHANNEL / 2 / RATE + 1.0  # the throttled channels lose a second
    assert wall <= MARGIN * bound, f"{wall:.2f}s for a {bound:.1f}s bound"


def test_a_429_beyond_the_wait_leaves_that_channel_to_the_next_run(
        sessions: sessionmaker[Session], clock: FixedClock, slack: SlackEmulator) -> None:
    queued = fill_outbox(sessions, clock.now(), channels=3, per_channel=4)
    slack.ratelimit("chat.postMessage", channel_name(1), times=1, retry_after=30)
    report, wall = timed(lambda: deliverer(sessions, slack, clock).run(wait_seconds=0))

    assert wall < 10, "the run does not sleep through a Retry-After beyond its wait"
    assert report.sent == 8 and report.retried == 1, report
    assert [key_of(m) for m in slack.messages(channel_name(1))] == []
    with sessions() as session:
        held = [row for row in alerts.list_alerts(session) if row.channel == channel_name(1)]
    assert {row.status for row in held} == {alerts.PENDING}, "the throttled channel waits whole"
    assert [row.attempts for row in held] == [1, 0, 0, 0], "only the throttled message was tried"

    clock.set(clock.now() + timedelta(seconds=31))
    again = deliverer(sessions, slack, clock).run()
    assert again.sent == 4
    check_delivered(slack, sessions, queued)


def test_lanes_are_bounded_by_max_parallel_channels(sessions: sessionmaker[Session], clock: FixedClock,
                                                    slack: SlackEmulator) -> None:
    per_channel, rate = 5, 10.0
    slack.enforce_rate(rate)
    queued = fill_outbox(sessions, clock.now(), channels=CHANNELS, per_channel=per_channel)
    config = parse_config({"slack": {"api_url": slack.api_url, "ca_bundle": slack.ca_bundle_path,
                                     "messages_per_second": rate, "max_parallel_channels": 2}}, "<test>")
    client = SlackClient(config.slack, token=slack.token)
    report, wall = timed(lambda: deliver_outbox(config, clock, sessions, client))  # as notify and the service do

    assert report.sent == len(queued)
    check_delivered(slack, sessions, queued)
    spans = []
    for index in range(CHANNELS):
        posts = [call.at for call in slack.calls("chat.postMessage", channel_name(index))]
        spans.append((min(posts), max(posts)))
    busiest = max(sum(1 for start, end in spans if start <= moment <= end) for moment, _ in spans)
    assert busiest <= 2, f"{busiest} channels were being delivered at once"
    assert wall >= CHANNELS / 2 * (per_channel - 1) / rate, "three rounds of two channels"


def test_should_stop_ends_every_lane_after_its_message(sessions: sessionmaker[Session], clock: FixedClock,
                                                       slack: SlackEmulator) -> None:
    queued = fill_outbox(sessions, clock.now(), channels=CHANNELS, per_channel=PER_CHANNEL)
    stop_at = time.monotonic() + 1.0
    report, wall = timed(lambda: deliverer(sessions, slack, clock).run(should_stop=lambda: time.monotonic() > stop_at))

    assert wall < 2.5, f"stopping took {wall - 1:.2f}s"
    with sessions() as session:
        statuses = [row.status for row in alerts.list_alerts(session)]
    assert alerts.SENDING not in statuses, "a lane left a message claimed"
    assert 0 < report.sent == statuses.count(alerts.SENT) == len(slack.messages()) < len(queued)
    assert len({m.channel for m in slack.messages()}) == CHANNELS, "every channel had started"


@pytest.mark.parametrize("lanes", [0, 65, "many"])
def test_max_parallel_channels_is_checked(lanes: object) -> None:
    assert parse_config({}, "<test>").slack.max_parallel_channels == 20
    with pytest.raises(ConfigError, match=r"slack\.max_parallel_channels"):
        parse_config({"slack": {"max_parallel_channels": lanes}}, "<test>")


def test_one_slack_channel_queued_under_two_spellings_is_one_lane() -> None:
    assert lanes_of(["#Team-A", "#b", "team-a", "C0123ABCD"]) == {
        "#team-a": ["#Team-A", "team-a"], "#b": ["#b"], "C0123ABCD": ["C0123ABCD"]}
