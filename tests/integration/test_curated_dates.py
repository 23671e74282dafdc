"""Curated retirement dates end to end: an estate polled through the ARM emulator, dates from a CSV file and from
[[dates.rows]], `retirewatch status --format json`, alerts and the once-only conflict report through the Slack
emulator, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.cli import main
from daemon.config import parse_config
from tests.integration.world import (
    World,
    account_entry,
    catalog_entry,
    deployment_entry,
    estate,
    make_world,
    payload,
)

TODAY = date(2026, 3, 1)
TABLE = "https://learn.microsoft.com/en-us/azure/foundry/openai/concepts/model-retirement-schedule"
OPS = "#retirewatch-ops"


def scenario() -> dict[str, Any]:
    return estate([
        account_entry("search", {"team": "search"}, [
            deployment_entry("silent", "gpt-4o-mini", "2024-07-18"),  # the catalog gives no date
            deployment_entry("earlier", "gpt-4o", "2024-05-13"),  # the table's date is 280 days earlier
            deployment_entry("close", "o1", "2024-12-17"),  # catalog and table 5 days apart: no conflict
            deployment_entry("later", "o3-mini", "2025-01-31", sku="GlobalStandard"),  # the catalog's is earlier
            deployment_entry("untouched", "gpt-5.1", "2025-11-13"),  # no row, no catalog date
        ]),
    ], [
        catalog_entry("gpt-4o-mini", "2024-07-18", None),
        catalog_entry("gpt-4o", "2024-05-13", date(2026, 12, 31)),
        catalog_entry("o1", "2024-12-17", date(2026, 5, 15)),
        catalog_entry("o3-mini", "2025-01-31", date(2026, 4, 1)),
        catalog_entry("gpt-5.1", "2025-11-13", None, default=True),
    ])


def dates_csv(earlier: date = date(2026, 3, 26)) -> str:
    return ("# copied 2026-09-02 from Microsoft's retirement schedule\n"
            "model,version,sku,region,retirement,source,note\n"
            f"gpt-4o-mini,2024-07-*,,,2026-03-20,{TABLE},Deprecated; copied 2026-09-02\n"
            f"GPT-4O,2024-05-13,Standard,eastus,{earlier},{TABLE},Deprecated; copied 2026-09-02\n"
            f"gpt-4o,2024-05-13,provisioned,,2026-03-02,{TABLE},does not apply to a Standard deployment\n"
            f"o1,2024-12-17,,,2026-05-20,{TABLE},\n")


LATER_ROW = {"model": "o3-mini", "version": "*", "sku": "Global*", "retirement": "2026-10-01", "source": TABLE,
             "note": "copied 2026-09-02"}


def dates_section(path: Path) -> dict[str, Any]:
    return {"dates_file": str(path), "conflict_days": 7, "rows": [LATER_ROW]}


@pytest.fixture
def dates_file(tmp_path: Path) -> Path:
    path = tmp_path / "retirement-dates.csv"
    path.write_text(dates_csv())
    return path


@pytest.fixture
def world(database_url: str, dates_file: Path) -> Iterator[World]:
    with make_world(scenario(), database_url, TODAY, dates=dates_section(dates_file)) as made:
        made.poll()
        yield made


def status_json(world: World, tmp_path: Path, dates_file: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    config = tmp_path / "status.toml"
    config.write_text(f"""[database]
url = "{world.config.database.url}"

[dates]
dates_file = "{dates_file.name}"

[[dates.rows]]
model = "o3-mini"
version = "*"
sku = "Global*"
retirement = 2026-10-01
source = "{TABLE}"
""")
    capsys.readouterr()
    assert main(["status", "--format", "json", "--config", str(config), "--now", f"{TODAY}T06:00:00Z"]) == 0
    return {row["deployment"]: row for row in json.loads(capsys.readouterr().out)}


def test_status_shows_the_date_its_source_and_conflicts(world: World, tmp_path: Path, dates_file: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    rows = status_json(world, tmp_path, dates_file, capsys)
    silent, earlier, close, later = rows["silent"], rows["earlier"], rows["close"], rows["later"]
    # Fills in where the catalog is silent.
    assert (silent["retirement_date"], silent["date_source"], silent["date_status"]) == (
        "2026-03-20", TABLE, "published")
    assert (silent["consequence"], silent["days_left"], silent["date_conflict"]) == ("outage", 19, None)
    # Wins where it is earlier, and the disagreement is shown.
    assert (earlier["retirement_date"], earlier["strikes_on"], earlier["date_source"]) == (
        "2026-03-26", "2026-03-26", TABLE)
    assert earlier["date_conflict"] == (f"the catalog says 2026-12-31, Microsoft's retirement table says 2026-03-26 "
                                        f"({TABLE})")
    # Within conflict_days: the catalog's earlier date, nothing to tell.
    assert (close["retirement_date"], close["date_source"], close["date_conflict"]) == ("2026-05-15", "inference",
                                                                                        None)
    # The catalog's date is earlier: it stays, and the conflict is shown.
    assert (later["retirement_date"], later["date_source"], later["date_status"]) == ("2026-04-01", "inference",
                                                                                      "confirmed")
    assert later["date_conflict"] == (f"the catalog says 2026-04-01, Microsoft's retirement table says 2026-10-01 "
                                      f"({TABLE})")
    untouched = rows["untouched"]
    assert (untouched["retirement_date"], untouched["date_source"], untouched["date_conflict"]) == (None, None, None)


def test_the_table_view_marks_curated_dates_and_lists_conflicts(world: World, tmp_path: Path, dates_file: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    status_json(world, tmp_path, dates_file, capsys)  # writes status.toml
    assert main(["status", "--config", str(tmp_path / "status.toml"), "--now", f"{TODAY}T06:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert "2026-03-20*" in out and "2026-03-26*!" in out and "2026-04-01!" in out
    assert "gpt-4o 2024-05-13: the catalog says 2026-12-31, Microsoft's retirement table says 2026-03-26" in out
    assert "search/earlier" in out and "search/later" in out


def test_alerts_use_the_curated_date_and_a_conflict_is_reported_once(world: World, dates_file: Path) -> None:
    report = world.notify()
    assert report.delivery is not None and report.delivery.failed == 0
    alerts = {payload(m)["deployment_id"].rsplit("/", 1)[-1]: m for m in world.slack.messages("#search")}
    assert payload(alerts["silent"])["deadline"] == "2026-03-20"
    assert "stops answering on 2026-03-20" in alerts["silent"].text
    assert payload(alerts["earlier"])["deadline"] == "2026-03-26", "the table's earlier date, not the catalog's"
    assert payload(alerts["later"])["deadline"] == "2026-04-01"
    conflicts = world.slack.messages(OPS)
    assert len(conflicts) == 2, [m.text for m in conflicts]
    texts = sorted(m.text for m in conflicts)
    assert "the catalog says 2026-12-31, Microsoft's retirement table says 2026-03-26" in texts[0]
    assert "search/earlier" in texts[0] and f"{dates_file} line 4" in texts[0]
    assert "the catalog says 2026-04-01, Microsoft's retirement table says 2026-10-01" in texts[1]
    assert "dates.rows[0]" in texts[1] and "search/later" in texts[1]
    for message in conflicts:
        assert (message.metadata or {}).get("event_type") == "retirewatch_operational"
        assert payload(message)["problem"].startswith("date-conflict|")

    world.poll()
    again = world.notify()
    assert again.plan.queued.get("operational", 0) == 0
    assert len(world.slack.messages(OPS)) == 2, "told once, not once per run"

    # The table's date moves: a new pair of dates is a new disagreement, told once more.
    dates_file.write_text(dates_csv(earlier=date(2026, 3, 27)))
    world.config = parse_config({**world.config.model_dump(include={"database", "azure", "slack", "routes",
                                                                     "testing"}),
                                 "dates": dates_section(dates_file)}, "<world>")
    world.notify()
    moved = world.slack.messages(OPS)
    assert len(moved) == 3 and "table says 2026-03-27" in moved[-1].text
    world.notify()
    assert len(world.slack.messages(OPS)) == 3


def test_no_dates_no_conflict_messages(database_url: str) -> None:
    with make_world(scenario(), database_url, TODAY) as plain:
        plain.poll()
        plain.notify()
        assert plain.slack.messages(OPS) == []
        deadlines = {payload(m)["deployment_id"].rsplit("/", 1)[-1]: payload(m)["deadline"]
                     for m in plain.slack.messages("#search")}
        assert "silent" not in deadlines and "earlier" not in deadlines, "without the table they have no near date"
        assert deadlines["later"] == "2026-04-01"


def test_a_bad_dates_file_stops_the_poll_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "retirement-dates.csv").write_text(dates_csv() + f"gpt-4o,2024-08-06,,,2026-10-01,{TABLE}\n"
                                                   f"o3,2025-04-16,,,2026-02-30,{TABLE},\n")
    config = tmp_path / "retirewatch.toml"
    config.write_text('[dates]\ndates_file = "retirement-dates.csv"\n')
    assert main(["poll", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'retirement-dates.csv'}: line 8: retirement: no such day: 2026-02-30" in err
    assert "line 7" not in err, "a row with the note left out is fine"
    assert f"(dates.dates_file in {config})" in err


def test_rows_past_today_make_a_struck_outage(database_url: str, tmp_path: Path) -> None:
    past = tmp_path / "past.csv"
    past.write_text("model,version,retirement,source\n"
                    f"gpt-4o-mini,2024-07-18,{TODAY - timedelta(days=3)},{TABLE}\n")
    with make_world(scenario(), database_url, TODAY, dates={"dates_file": str(past)}) as made:
        made.poll()
        made.notify()
        silent = [m for m in made.slack.messages("#search") if payload(m)["deployment_id"].endswith("/silent")]
        assert len(silent) == 1
        assert (payload(silent[0])["stage"], payload(silent[0])["deadline"]) == ("overdue", "2026-02-26")
