"""The service's schedule as pure functions of an injected instant: durations, the digest's crontab across daylight
saving changes, what is due after downtime, staleness and readiness; the offset clock; the config keys; logs
that are one line per event and never carry a token; the health endpoints over real HTTP."""

from __future__ import annotations

import io
import json
import logging
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry, Counter

from daemon.cli import main
from daemon.clock import OffsetClock
from daemon.config import load_config, parse_config
from daemon.service import schedule
from daemon.service.http import HealthServer, health_app
from daemon.service.logs import configure_logging, redact
from daemon.service.schedule import DigestDue, digest_due, digest_trigger, next_fire, parse_duration

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "retirewatch.example.toml"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def fires(crontab: str, zone: str, start: datetime, count: int) -> list[datetime]:
    trigger, found, at = digest_trigger(crontab, zone), [], start
    for _ in range(count):
        at = next_fire(trigger, at)
        found.append(at.astimezone(UTC))
    return found


# -- config ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [("30s", timedelta(seconds=30)), ("15m", timedelta(minutes=15)),
                                             ("6h", timedelta(hours=6)), ("1d", timedelta(days=1))])
def test_durations(text: str, value: timedelta) -> None:
    assert parse_duration(text) == value
    assert schedule.format_duration(value) == text


@pytest.mark.parametrize("text", ["6", "6 hours", "1w", "-1h", "0s", "1.5h", ""])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_schedule_and_service_defaults() -> None:
    config = load_config(None, env={})
    assert config.schedule.timezone == "UTC" and config.schedule.digest == "0 9 * * mon"
    assert (config.schedule.poll_every, config.schedule.deliver_every) == (timedelta(hours=6), timedelta(minutes=1))
    assert config.service.listen is None and config.service.address is None
    assert config.service.shutdown_grace_seconds == 30 and config.service.stale_after is None
    custom = parse_config({"schedule": {"poll_every": "15m"}, "service": {"listen": "[::1]:9464",
                                                                          "stale_after": "1h"}}, "<t>")
    assert custom.service.address == ("::1", 9464) and custom.service.stale_after == timedelta(hours=1)


def test_the_example_documents_every_schedule_and_service_key() -> None:
    config = load_config(EXAMPLE, env={})
    text = EXAMPLE.read_text()
    for name, section in (("schedule", config.schedule), ("service", config.service)):
        assert f"[{name}]" in text
        for key in type(section).model_fields:
            assert f"{key} =" in text, f"{name}.{key} is not documented in the example config"


@pytest.mark.parametrize(("text", "expected"), [
    ('[schedule]\ntimezone = "Europe/Berlinn"\n', "schedule.timezone: Value error, not an IANA time zone name"),
    ('[schedule]\npoll_every = "6 hours"\n', "schedule.poll_every: Value error, not a duration like"),
    ('[schedule]\ndeliver_every = 60\n', "schedule.deliver_every: Value error, not a duration like"),
    ('[schedule]\ndigest = "0 9 * *"\n', "schedule.digest: Value error, not a crontab line"),
    ('[schedule]\ndigest = "0 25 * * mon"\n', "schedule.digest: Value error, not a crontab line"),
    ('[service]\nlisten = "9464"\n', "service.listen: Value error, must be \"host:port\""),
    ('[service]\nshutdown_grace_seconds = 0\n', "service.shutdown_grace_seconds: Input should be greater than 0"),
    ('[service]\nstale_after = "soon"\n', "service.stale_after: Value error, not a duration like"),
    ('[service]\nlisten_on = "x:1"\n', "service.listen_on: unknown key"),
])
def test_bad_values_exit_2_naming_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                                               expected: str) -> None:
    path = tmp_path / "retirewatch.toml"
    path.write_text(text)
    assert main(["run", "--config", str(path)]) == 2
    assert f"{path}: {expected}" in capsys.readouterr().err


# -- the digest's crontab across daylight saving changes ---------------------------------------------------------


def test_berlin_monday_nine_stays_nine_local_across_both_changes() -> None:
    # CET -> CEST on Sunday 2026-03-29; CEST -> CET on Sunday 2026-10-25.
    assert fires("0 9 * * mon", "Europe/Berlin", utc(2026, 3, 20), 2) == [utc(2026, 3, 23, 8), utc(2026, 3, 30, 7)]
    assert fires("0 9 * * mon", "Europe/Berlin", utc(2026, 10, 20), 2) == [utc(2026, 10, 26, 8),
                                                                           utc(2026, 11, 2, 8)]
    assert fires("0 9 * * mon", "Europe/Berlin", utc(2026, 10, 15), 1) == [utc(2026, 10, 19, 7)]


def test_new_york_monday_nine_stays_nine_local_across_both_changes() -> None:
    # EST -> EDT on Sunday 2026-03-08; EDT -> EST on Sunday 2026-11-01.
    assert fires("0 9 * * mon", "America/New_York", utc(2026, 3, 1), 2) == [utc(2026, 3, 2, 14),
                                                                            utc(2026, 3, 9, 13)]
    assert fires("0 9 * * mon", "America/New_York", utc(2026, 10, 20), 2) == [utc(2026, 10, 26, 13),
                                                                              utc(2026, 11, 2, 14)]


def test_a_slot_in_the_skipped_hour_fires_once_that_day() -> None:
    # 02:30 does not exist in Berlin on 2026-03-29: the slot comes once, when the clock has jumped (03:30 CEST).
    assert fires("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), 2) == [utc(2026, 3, 29, 1, 30),
                                                                            utc(2026, 3, 30, 0, 30)]


def test_a_slot_in_the_repeated_hour_fires_once_not_twice() -> None:
    # 01:30 happens twice in New York on 2026-11-01 (EDT, then EST): one digest, not two.
    assert fires("30 1 * * *", "America/New_York", utc(2026, 10, 31, 12), 2) == [utc(2026, 11, 1, 5, 30),
                                                                                 utc(2026, 11, 2, 6, 30)]
    trigger, tz = digest_trigger("30 1 * * *", "America/New_York"), ZoneInfo("America/New_York")
    claimed = utc(2026, 11, 1, 5, 30)
    assert digest_due(utc(2026, 11, 1, 6, 45), claimed, trigger, tz) is None


# -- what is due -------------------------------------------------------------------------------------------------


MONDAY_NINE = digest_trigger("0 9 * * mon", "Europe/Berlin")
BERLIN = ZoneInfo("Europe/Berlin")
SLOT = utc(2026, 3, 30, 7)  # Monday 09:00 CEST


def test_the_digest_is_due_at_its_slot_and_not_a_second_before() -> None:
    assert digest_due(SLOT - timedelta(seconds=1), utc(2026, 3, 23, 8), MONDAY_NINE, BERLIN) is None
    assert digest_due(SLOT, utc(2026, 3, 23, 8), MONDAY_NINE, BERLIN) == DigestDue(SLOT, 0)
    assert digest_due(SLOT + timedelta(seconds=1), SLOT, MONDAY_NINE, BERLIN) is None, "claimed: done"


def test_a_digest_missed_while_down_runs_once_for_the_current_week_only() -> None:
    wednesday = utc(2026, 4, 1, 12)
    assert digest_due(wednesday, utc(2026, 3, 23, 8), MONDAY_NINE, BERLIN) == DigestDue(SLOT, 0)
    assert digest_due(wednesday, SLOT, MONDAY_NINE, BERLIN) is None
    # Down from Sunday to the next Monday 08:00: last week's slot is gone, this week's has not come.
    assert digest_due(utc(2026, 4, 6, 6), utc(2026, 3, 23, 8), MONDAY_NINE, BERLIN) is None
    # First start ever, mid-week: this week's digest once.
    assert digest_due(wednesday, None, MONDAY_NINE, BERLIN) == DigestDue(SLOT, 0)


def test_several_slots_missed_in_one_week_fold_into_one_run() -> None:
    daily = digest_trigger("0 9 * * *", "UTC")
    due = digest_due(utc(2026, 4, 2, 12), utc(2026, 3, 30, 9), daily, ZoneInfo("UTC"))
    assert due == DigestDue(utc(2026, 4, 2, 9), skipped=2)  # Tue and Wed were missed; Thu runs once


def test_the_iso_week_is_the_configured_zones() -> None:
    sunday_late_utc = utc(2026, 3, 22, 23, 30)  # already Monday in Berlin
    assert schedule.iso_week(sunday_late_utc, ZoneInfo("UTC")) == "2026-W12"
    assert schedule.iso_week(sunday_late_utc, BERLIN) == "2026-W13"
    assert schedule.week_start(sunday_late_utc, BERLIN) == datetime(2026, 3, 23, tzinfo=BERLIN)


def test_polls_are_due_by_the_last_good_poll_and_the_last_attempt() -> None:
    now, every = utc(2026, 3, 2, 12), timedelta(hours=6)
    assert schedule.poll_due(now, None, None, every), "never polled: at once"
    assert schedule.poll_due(now, now - timedelta(hours=6), None, every)
    assert not schedule.poll_due(now, now - timedelta(hours=5), None, every)
    assert not schedule.poll_due(now, now - timedelta(days=2), now - timedelta(hours=1), every), \
        "a failed attempt in this process waits its turn too"
    assert schedule.interval_due(now, None, timedelta(minutes=1))
    assert not schedule.interval_due(now, now - timedelta(seconds=59), timedelta(minutes=1))


def test_staleness_and_readiness() -> None:
    now, stale_after = utc(2026, 3, 2, 12), timedelta(hours=12)
    started = now - timedelta(hours=1)
    assert not schedule.is_stale(now, now - timedelta(days=3), started, stale_after), "down is not failing"
    assert schedule.is_stale(now, now - timedelta(days=3), now - timedelta(hours=13), stale_after)
    assert schedule.is_stale(now, None, now - timedelta(hours=13), stale_after)
    assert schedule.readiness(now, now - timedelta(hours=1), stale_after).ready
    late = schedule.readiness(now, now - timedelta(hours=13), stale_after)
    assert not late.ready and "older than stale_after 12h" in late.reason and "13h00m ago" in late.reason
    assert schedule.readiness(now, None, stale_after).reason == "no successful poll yet"
    down = schedule.readiness(now, now, stale_after, database_error="connection refused")
    assert not down.ready and down.reason == "database does not answer: connection refused"


def test_a_poll_that_read_the_estate_counts_even_if_some_subscriptions_refused() -> None:
    from daemon.store.watch import read_something

    assert read_something(subscriptions=3, unread_subscriptions=0, status="ok")
    assert read_something(subscriptions=3, unread_subscriptions=2, status="partial"), "403 on two of three"
    assert not read_something(subscriptions=3, unread_subscriptions=3, status="partial"), "read nothing"
    assert not read_something(subscriptions=0, unread_subscriptions=0, status="failed")
    assert not read_something(subscriptions=3, unread_subscriptions=0, status="stopped")


# -- the clock -----------------------------------------------------------------------------------------------------


def test_the_offset_clock_starts_at_now_and_runs_at_real_speed() -> None:
    ticks = iter([100.0, 100.0, 115.5])
    clock = OffsetClock(utc(2026, 3, 2, 8, 59, 45), monotonic=lambda: next(ticks))
    assert clock.now() == utc(2026, 3, 2, 8, 59, 45)
    assert clock.now() + timedelta(seconds=0.5) == utc(2026, 3, 2, 9, 0, 1)
    with pytest.raises(ValueError):
        OffsetClock(datetime(2026, 3, 2))


# -- logs ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def log_stream() -> io.StringIO:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    stream = io.StringIO()
    yield stream
    root.handlers[:] = saved
    root.setLevel(level)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_logs_are_one_line_per_event_and_never_carry_a_token(log_stream: io.StringIO, fmt: str) -> None:
    configure_logging(logging.INFO, fmt, log_stream)
    log = logging.getLogger("retirewatch.test")
    log.info("posting with %s", "xoxb-1234-5678-abcdef", extra={"event": "post", "header": "Bearer eyJ0.abc"})
    log.warning("request headers {'Authorization': 'Bearer eyJhbGciOi.secret'} token=xoxp-99-88")
    try:
        raise RuntimeError("failed with token xoxb-SECRET\nsecond line")
    except RuntimeError:
        log.error("job failed", exc_info=True)
    lines = log_stream.getvalue().splitlines()
    assert len(lines) == 3
    text = log_stream.getvalue()
    for secret in ("xoxb-1234", "xoxp-99", "eyJ0", "eyJhbGciOi", "xoxb-SECRET"):
        assert secret not in text
    assert "[redacted]" in lines[0] and "second line" in lines[2]
    if fmt == "json":
        events = [json.loads(line) for line in lines]
        assert events[0]["event"] == "post" and events[0]["level"] == "info"
        assert events[0]["message"] == "posting with [redacted]" and events[0]["header"] == "Bearer [redacted]"
        assert "RuntimeError" in events[2]["exception"]


def test_redact_keeps_what_is_not_a_secret() -> None:
    assert redact("poll 3: 4 deployments in 0.3s") == "poll 3: 4 deployments in 0.3s"
    assert redact("Authorization: Bearer abc.def") == "Authorization: Bearer [redacted]"
    assert redact('{"token": "xoxe-1-abc", "client_secret": "s3cr3t"}') == \
        '{"token": "[redacted]", "client_secret": "[redacted]"}'


# -- the endpoints over real HTTP ------------------------------------------------------------------------------------


def test_health_endpoints_over_http() -> None:
    registry = CollectorRegistry()
    Counter("retirewatch_example", "an example", registry=registry).inc()
    verdicts = iter([schedule.Readiness(True, "last successful poll 5m ago"),
                     schedule.Readiness(False, "no successful poll yet")])
    server = HealthServer("127.0.0.1", 0, health_app(lambda: next(verdicts), registry))
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"

        def get(path: str) -> tuple[int, str]:
            try:
                with urllib.request.urlopen(base + path, timeout=5) as response:
                    return response.status, response.read().decode()
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode()

        assert get("/healthz") == (200, "ok\n")
        assert get("/readyz") == (200, "ready: last successful poll 5m ago\n")
        assert get("/readyz") == (503, "not ready: no successful poll yet\n")
        status, body = get("/metrics")
        assert status == 200 and "retirewatch_example_total 1.0" in body
        assert get("/nope")[0] == 404
    finally:
        server.stop()
