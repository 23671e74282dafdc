"""The forecast end to end: a small estate through the real poll, then ``retirewatch forecast`` (the CLI and the
function) on SQLite and PostgreSQL; golden files for its JSON and its calendar; then the real ``notify``, day after
day against the Slack emulator, must send exactly what the forecast said."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from icalendar import Calendar
from prometheus_client import CollectorRegistry

from daemon.cli import main
from daemon.demo import DEMO_ROUTES
from daemon.emulators.arm import demo_estate
from daemon.emulators.scenario import catalog_models
from daemon.emulators.slack import Message
from daemon.forecast.ics import event_uid, to_ics
from daemon.forecast.plan import Forecast, ForecastItem
from daemon.forecast.run import build_forecast, channel_calendar
from daemon.notify.ack import acknowledge
from daemon.notify.slack import SlackClient
from daemon.service.http import HealthServer, health_app
from daemon.service.jobs import Work
from daemon.service.runner import Service
from daemon.service.schedule import Readiness
from tests.golden import check_golden
from tests.integration.world import (
    World,
    account_entry,
    at,
    catalog_entry,
    days,
    deployment_entry,
    estate,
    make_world,
)

TODAY = date(2026, 3, 1)
WINDOW = 40
REPEAT = 3  # overdue_repeat_days: the repeats land every third day


def scenario() -> dict[str, Any]:
    """#search: an outage in 12 days and two deployments force-upgraded in 25 (retirement in 30, lead time 5);
    #ml-platform (unowned): a tentative retirement in 80 days and an auto-upgrade window opening in 20 (retirement
    in 200); #ml-ops (by tag): nothing scheduled."""
    day = lambda n: f"{TODAY + timedelta(days=n)}T00:00:00Z"  # noqa: E731
    return estate([
        account_entry("search", {"team": "search"}, [
            deployment_entry("chat", "gpt-4o", "2024-05-13"),
            deployment_entry("mini", "gpt-4o-mini", "2024-07-18", option="OnceCurrentVersionExpired"),
            deployment_entry("mini-batch", "gpt-4o-mini", "2024-07-18", option="OnceCurrentVersionExpired")]),
        account_entry("lab", {}, [
            deployment_entry("tentative", "o1", "2024-12-17"),
            deployment_entry("auto", "gpt-4o", "2024-08-06", option="OnceNewDefaultVersionAvailable",
                             sku="GlobalStandard")]),
        account_entry("owned-by-tag", {"retirewatch-channel": "#ml-ops"}, [
            deployment_entry("safe", "gpt-5.1", "2025-11-13")]),
    ], [
        catalog_entry("gpt-4o", "2024-05-13", TODAY + timedelta(days=12)),
        catalog_entry("gpt-4o-mini", "2024-07-18", TODAY + timedelta(days=30), replacementConfig={
            "targetModelName": "gpt-4.1-mini", "targetModelVersion": "2025-04-14",
            "upgradeOnExpiryLeadTimeDays": 5}),
        catalog_entry("gpt-4.1-mini", "2025-04-14", None, default=True),
        catalog_entry("o1", "2024-12-17", TODAY + timedelta(days=80), status="Tentative"),
        catalog_entry("gpt-4o", "2024-08-06", TODAY + timedelta(days=200), replacementConfig={
            "targetModelName": "gpt-5.1", "targetModelVersion": "2025-11-13", "autoUpgradeStartDate": day(20)}),
        catalog_entry("gpt-5.1", "2025-11-13", None, default=True),
    ])


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with make_world(scenario(), database_url, TODAY, escalation={"overdue_repeat_days": REPEAT}) as made:
        made.poll()
        yield made


def config_file(world: World, tmp_path: Path) -> Path:
    slack = world.config.slack
    path = tmp_path / "retirewatch.toml"
    path.write_text(
        f'[database]\nurl = "{world.config.database.url}"\n'
        f'[escalation]\noverdue_repeat_days = {REPEAT}\n'
        f'[slack]\napi_url = "{slack.api_url}"\nca_bundle = "{slack.ca_bundle}"\ndefault_channel = "#ml-platform"\n'
        'fallback_channel = "#retirewatch-ops"\n'
        '[[routes]]\nchannel = "#search"\nmatch = { tags = { team = "search" } }\n')
    return path


def forecast(world: World, **kwargs: Any) -> Forecast:
    return build_forecast(world.config, world.clock, world.sessions, **kwargs)


def as_sent(item: ForecastItem) -> tuple[str, ...]:
    """A forecast item as the Slack message that tells it shows it (its metadata's words)."""
    return (item.day.isoformat(), item.channel, item.deployment_id, item.kind, item.stage or "",
            item.deadline.isoformat() if item.deadline else "")


def sent(world: World, messages: list[Message]) -> list[tuple[str, ...]]:
    """What notify actually told about deployments: day posted, channel, deployment, kind, stage, deadline."""
    names = {channel_id: f"#{name}" for name, channel_id in world.slack.channels().items()}
    told = []
    for message in messages:
        metadata = (message.edits[0]["metadata"] if message.edits else message.metadata) or {}  # as first posted
        facts = dict(metadata.get("event_payload") or {})
        if metadata.get("event_type") in ("model_retirement_alert", "model_retirement_resolved") \
                and facts.get("kind") != "acknowledged":
            day = datetime.fromtimestamp(float(message.ts), UTC).date()
            told.append((day.isoformat(), names[message.channel], facts["deployment_id"], facts["kind"],
                         facts["stage"], facts["deadline"]))
    return told


def summary(result: Forecast) -> list[tuple[str, str, str, str | None]]:
    return [(i.day.isoformat(), i.name, i.kind, i.step) for i in result.items]


# -- what it says --------------------------------------------------------------------------------------------------


def test_the_forecast_follows_the_policy_step_by_step(world: World) -> None:
    result = forecast(world, days=WINDOW)
    assert (result.start, result.end) == (TODAY, TODAY + timedelta(days=WINDOW - 1))
    by_name: dict[str, list[tuple[str, str, str | None]]] = {}
    for day, name, kind, step in summary(result):
        by_name.setdefault(name, []).append((day, kind, step))
    d = lambda n: (TODAY + timedelta(days=n)).isoformat()  # noqa: E731
    overdue = [(d(n), "stage", f"overdue@{d(n)}") for n in range(12, WINDOW, REPEAT)]
    assert by_name["search/chat"] == [(d(0), "stage", "urgent"), (d(5), "stage", "critical@7"),
                                      (d(11), "stage", "critical@1"), *overdue]
    mini = [(d(0), "stage", "warning"), (d(11), "stage", "urgent"), (d(18), "stage", "critical@7"),
            (d(24), "stage", "critical@1"), *[(d(n), "stage", f"overdue@{d(n)}") for n in range(25, WINDOW, REPEAT)]]
    assert by_name["search/mini"] == by_name["search/mini-batch"] == mini
    assert by_name["lab/tentative"] == [(d(0), "stage", "notice")], "warning is 50 days away: outside the window"
    # The auto-upgrade window opens on day 20; the day after, with nothing changed, Azure has not upgraded it:
    # the deadline is the retirement (day 200), beyond every threshold, and notify closes the thread.
    assert by_name["lab/auto"] == [(d(0), "stage", "warning"), (d(6), "stage", "urgent"),
                                   (d(13), "stage", "critical@7"), (d(19), "stage", "critical@1"),
                                   (d(20), "stage", f"overdue@{d(20)}"), (d(21), "resolved", None)]
    assert "owned-by-tag/safe" not in by_name
    channels = {i.name: i.channel for i in result.items}
    assert channels["search/chat"] == "#search" and channels["lab/auto"] == "#ml-platform"
    assert [i.day for i in result.items] == sorted(i.day for i in result.items)
    assert forecast(world, days=WINDOW, channel="search").items == tuple(
        i for i in result.items if i.channel == "#search")


def test_cli_json_and_ics_match_the_golden_files(world: World, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = str(config_file(world, tmp_path))
    now = ["--now", at(TODAY).isoformat(), "--config", config]
    assert main(["forecast", "--days", str(WINDOW), "--format", "json", *now]) == 0
    out = capsys.readouterr().out
    check_golden("forecast_small.json", out)
    items = json.loads(out)
    assert {"date", "deployment_id", "deployment", "channel", "stage", "consequence", "deadline"} <= set(items[0])
    assert items[0]["deployment"] == "lab/auto" and items[0]["deployment_id"].startswith("/subscriptions/")

    assert main(["forecast", "--days", str(WINDOW), "--channel", "#search", "--format", "ics", *now]) == 0
    feed = capsys.readouterr().out
    assert feed.startswith("BEGIN:VCALENDAR\r\n") and feed.endswith("END:VCALENDAR\r\n"), "RFC 5545: CRLF lines"
    check_golden("forecast_small_search.ics", feed.replace("\r\n", "\n"))

    assert main(["forecast", "--days", str(WINDOW), "--channel", "search", *now]) == 0
    table = capsys.readouterr().out
    assert "overdue, every 3 days to" in table and "search/mini, search/mini-batch" in table
    assert "#ml-platform" not in table
    assert main(["forecast", "--channel", "#nobody", *now]) == 2
    assert "no route, channel tag or default sends alerts to #nobody" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:
        main(["forecast", "--days", "0", *now])
    assert bad.value.code == 2 and "--days: 0: give 1 to 3660 days" in capsys.readouterr().err


def test_the_calendar_parses_back_with_stable_uids_and_all_day_events(world: World) -> None:
    feed = channel_calendar(world.config, world.clock, world.sessions, "search", WINDOW)
    assert feed is not None
    calendar = Calendar.from_ical(feed)
    events = list(calendar.walk("VEVENT"))
    assert [str(e["summary"]) for e in events] == [
        "Outage: gpt-4o 2024-05-13 (1 deployment)",
        "Forced upgrade: gpt-4o-mini 2024-07-18 → gpt-4.1-mini 2025-04-14 (2 deployments)"]
    outage, upgrade = events
    for event, strikes in ((outage, TODAY + timedelta(days=12)), (upgrade, TODAY + timedelta(days=25))):
        start, end = event["dtstart"].dt, event["dtend"].dt
        assert type(start) is date and start == strikes, "all-day: a DATE, not a DATE-TIME"
        assert end == strikes + timedelta(days=1)
        assert event["dtstamp"].dt == at(TODAY)
    assert upgrade["uid"] == event_uid("#search", TODAY + timedelta(days=25), "gpt-4o-mini", "2024-07-18",
                                       "forced-upgrade")
    description = str(upgrade["description"])
    assert "search/mini (moves to gpt-4.1-mini 2025-04-14" in description and "search/mini-batch" in description
    assert "the model retires on 2026-03-31" in description

    # A day later the same deadlines keep their UIDs (a re-import updates the events), and an ack shows.
    world.go_to(TODAY + timedelta(days=1))
    world.notify()
    with world.sessions.begin() as session:
        acknowledge(session, world.config, world.clock.now(), "search/mini", until=None, note=None)
    later = channel_calendar(world.config, world.clock, world.sessions, "#search", WINDOW)
    assert later is not None and later != feed
    again = list(Calendar.from_ical(later).walk("VEVENT"))
    assert [e["uid"] for e in again] == [e["uid"] for e in events]
    acked = "search/mini (moves to gpt-4.1-mini 2025-04-14; intermediate-version update; acknowledged: alerts silenced)"
    assert acked in str(again[1]["description"])
    assert channel_calendar(world.config, world.clock, world.sessions, "nobody", WINDOW) is None
    empty = channel_calendar(world.config, world.clock, world.sessions, "ml-ops", WINDOW)
    assert empty is not None and list(Calendar.from_ical(empty).walk("VEVENT")) == [], "known, nothing due"


# -- acks and alerts already sent ----------------------------------------------------------------------------------


def test_sent_alerts_do_not_reappear_and_an_ack_silences_as_notify_would(world: World) -> None:
    before = forecast(world, days=WINDOW)
    world.notify()
    after = forecast(world, days=WINDOW)
    today = [i for i in before.items if i.day == TODAY]
    assert sorted(i.name for i in today) == ["lab/auto", "lab/tentative", "search/chat", "search/mini",
                                             "search/mini-batch"]
    assert after.items == tuple(i for i in before.items if i.day != TODAY), "what was sent today is not foretold"

    with world.sessions.begin() as session:
        acknowledge(session, world.config, world.clock.now(), "search/mini", until=TODAY + timedelta(days=20),
                    note="moving in sprint 42")
    acked = forecast(world, days=WINDOW)
    mini = [(i.day - TODAY).days for i in acked.items if i.name == "search/mini"]
    # urgent (day 11) and critical@7 (day 18) fall inside the ack; on day 20 alerts resume with the stage it is
    # in (critical@7, not yet told), then critical@1 and the overdue repeats as before.
    assert mini == [20, 24, 25, 28, 31, 34, 37]
    assert next(i.step for i in acked.items if i.name == "search/mini") == "critical@7"
    others = [i for i in after.items if i.name != "search/mini"]
    assert [i for i in acked.items if i.name != "search/mini"] == others

    with world.sessions.begin() as session:
        acknowledge(session, world.config, world.clock.now(), "search/chat", until=None, note=None)
    chat = [(i.day - TODAY).days for i in forecast(world, days=WINDOW).items if i.name == "search/chat"]
    assert chat == list(range(12, WINDOW, REPEAT)), "an ack given before it struck does not mute overdue"


# -- it cannot drift: what notify then sends is what it said -------------------------------------------------------


def test_notify_sends_exactly_the_forecast_day_after_day(world: World) -> None:
    """Today's alerts sent, an ack until day 20, and the o1 date moved from day 80 to day 20 (the open thread is
    about the old date): then the real poll and notify once a day for 40 days send what the forecast said."""
    world.notify()
    with world.sessions.begin() as session:
        acknowledge(session, world.config, world.clock.now(), "search/mini", until=TODAY + timedelta(days=20),
                    note=None)
    with world.arm.update() as served:
        for model in catalog_models(served, "o1", "2024-12-17"):
            model["deprecation"]["inference"] = f"{TODAY + timedelta(days=20)}T00:00:00Z"
    world.poll()
    said = forecast(world, days=WINDOW)
    already = len(world.slack.messages())
    for day in days(TODAY, said.end):
        world.go_to(day)
        world.step()  # poll (nothing changed) and notify, as the service does
    told = sent(world, world.slack.messages()[already:])
    assert sorted(told) == sorted(as_sent(i) for i in said.items), "in one day, delivery order is Slack's pacing"
    assert len(told) > 20 and {t[3] for t in told} == {"stage", "resolved", "date_moved"}
    moved = [t for t in told if t[3] == "date_moved"]
    tentative = next(i.deployment_id for i in said.items if i.name == "lab/tentative")
    assert moved == [(TODAY.isoformat(), "#ml-platform", tentative, "date_moved", "warning", "2026-03-21")]


def test_notify_sends_exactly_the_forecast_for_the_demo_estate(tmp_path: Path) -> None:
    """The demo estate (fine-tunes, partner models, provisioned SKUs, a retired model, channel tags): two weeks."""
    start = date(2026, 11, 25)
    with make_world(demo_estate(start), f"sqlite:///{tmp_path / 'demo.sqlite'}", start, routes=DEMO_ROUTES) as demo:
        demo.poll()
        said = forecast(demo, days=14)
        check_golden("forecast_demo.ics", to_ics(forecast(demo), demo.clock.now()).decode().replace("\r\n", "\n"))
        for day in days(start, said.end):
            demo.go_to(day)
            demo.step()
        told = sent(demo, demo.slack.messages())
    assert sorted(told) == sorted(as_sent(i) for i in said.items)
    assert {t[3] for t in told} == {"stage", "resolved", "fine_tune_ends"}
    assert len({t[1] for t in told}) == 3


# -- the service: /calendar/{channel}.ics over HTTP ----------------------------------------------------------------


def get(port: int, path: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def test_the_service_serves_each_channels_calendar(world: World) -> None:
    service = Service(Work(config=world.config, clock=world.clock, sessions=world.sessions,
                           slack=SlackClient(world.config.slack, token=world.slack.token), may_send=True))
    server = HealthServer("127.0.0.1", 0, health_app(lambda: Readiness(True, "ok"), CollectorRegistry(),
                                                     calendar=service.calendar))
    server.start()
    try:
        status, kind, body = get(server.port, "/calendar/search.ics")
        assert (status, kind) == (200, "text/calendar; charset=utf-8")
        assert body == channel_calendar(world.config, world.clock, world.sessions, "#search")
        assert len(list(Calendar.from_ical(body).walk("VEVENT"))) == 2
        status, _, body = get(server.port, "/calendar/ml-platform.ics?days=10")
        summaries = [str(e["summary"]) for e in Calendar.from_ical(body).walk("VEVENT")]
        assert status == 200 and summaries == [  # the o1 outage is 80 days away, but its notice is sent today
            "Auto-upgrade: gpt-4o 2024-08-06 → gpt-5.1 2025-11-13 (1 deployment)",
            "Outage: o1 2024-12-17 (1 deployment)"]
        assert get(server.port, "/calendar/nobody.ics")[0] == 404
        assert get(server.port, "/calendar/search.ics?days=many")[0] == 400
        assert get(server.port, "/calendar/.ics")[0] == 404
        assert get(server.port, "/healthz")[0] == 200, "the other endpoints are untouched"
    finally:
        server.stop()
