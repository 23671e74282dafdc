"""insert_many stores exactly what SQLAlchemy's own executemany stores: the same rows, defaults and bytes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, text

from daemon.store import database
from daemon.store.bulk import insert_many
from daemon.store.schema import Base

CATALOG = Base.metadata.tables["catalog_models"]
USAGE = Base.metadata.tables["deployment_usage"]
EVENTS = Base.metadata.tables["events"]
NOW = datetime(2026, 11, 30, 6, 0, 0, 123456, tzinfo=UTC)
CET = timezone(timedelta(hours=1))


def catalog_row(i: int, **extra: Any) -> dict[str, Any]:
    return {"scope": f"/subscriptions/s/locations/loc-{i % 3}", "format_key": "openai", "name_key": f"m{i}",
            "version_key": "1", "format": "OpenAI", "name": f"M{i}", "version": "1", "publisher": None,
            "kinds": ["OpenAI", "AIServices"] if i % 2 else [], "lifecycle_status": "GenerallyAvailable",
            "inference_retirement": date(2027, 1, 1) + timedelta(days=i % 5), "fine_tune_retirement": None,
            "deprecation_status": None, "sku_retirements": [{"sku": "Standard", "date": "2027-01-01"}],
            "replacement_model": None, "replacement_version": None, "auto_upgrade_start": None,
            "upgrade_lead_days": i % 4 or None, "base_format": None, "base_name": None, "base_version": None,
            "first_seen": NOW, "last_seen": NOW if i % 2 else NOW.astimezone(CET), "missed_since": None, **extra}


def stored(engine: Engine, table: str) -> list[tuple[Any, ...]]:
    """The rows as the file holds them (the driver's values, no SQLAlchemy type in between)."""
    with engine.connect() as connection:
        return [tuple(row) for row in connection.exec_driver_sql(f"SELECT * FROM {table} ORDER BY 1, 2")]


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Engine, Engine]:
    engines = database.make_engine(f"sqlite:///{tmp_path / 'a.sqlite'}"), \
        database.make_engine(f"sqlite:///{tmp_path / 'b.sqlite'}")
    for engine in engines:
        Base.metadata.create_all(engine)
    return engines


@pytest.mark.parametrize(("table", "rows"), [
    (CATALOG, [catalog_row(i) for i in range(40)]),
    # columns left out: a scalar default (is_default_version) and a default made per row (kinds: a new list)
    (CATALOG, [{k: v for k, v in catalog_row(i).items() if k not in ("kinds", "is_default_version")}
               for i in range(10)]),
    (USAGE, [{"deployment_key": f"/subscriptions/s/accounts/a/deployments/d{d}", "day": date(2026, 11, 1 + n),
              "account_key": "/subscriptions/s/accounts/a", "requests": d * n, "tokens": None if d == 3 else d,
              "read_at": NOW} for d in range(5) for n in range(29)]),
    (EVENTS, [{"poll_id": None, "occurred_at": NOW + timedelta(microseconds=i), "subject_type": "deployment",
               "subject_key": f"k{i}", "kind": "deployment_added", "field": None, "old_value": None,
               "new_value": "é" * i} for i in range(20)]),
])
def test_the_same_bytes_as_sqlalchemys_executemany(pair: tuple[Engine, Engine], table: Any,
                                                   rows: list[dict[str, Any]]) -> None:
    ours, theirs = pair
    with ours.begin() as connection:
        insert_many(connection, table, rows)
    with theirs.begin() as connection:
        connection.execute(insert(table), rows)
    assert stored(ours, table.name) == stored(theirs, table.name)
    assert len(stored(ours, table.name)) == len(rows)


def test_values_that_compare_equal_are_stored_as_written(pair: tuple[Engine, Engine]) -> None:
    """True == 1 == 1.0, and one instant in two zones: a conversion remembered by value alone would mix them up."""
    ours, theirs = pair
    rows = [catalog_row(i, kinds=kinds, first_seen=seen)
            for i, (kinds, seen) in enumerate([(True, NOW), (1, NOW.astimezone(CET)), (1.0, NOW), ([1], NOW),
                                               ([True], NOW.astimezone(CET))])]
    for engine, write in ((ours, insert_many), (theirs, lambda c, t, r: c.execute(insert(t), r))):
        with engine.begin() as connection:
            write(connection, CATALOG, rows)
    assert stored(ours, "catalog_models") == stored(theirs, "catalog_models")
    with ours.connect() as connection:
        written = connection.execute(select(CATALOG.c.kinds, CATALOG.c.first_seen).order_by(CATALOG.c.id)).all()
    assert [kinds for kinds, _ in written] == [True, 1, 1.0, [1], [True]]
    assert len({seen for _, seen in written}) == 2, "two spellings of one instant, as SQLAlchemy stores them"


def test_postgresql_keeps_sqlalchemys_batching(postgres_database_url: str) -> None:
    engine = database.make_engine(postgres_database_url)
    Base.metadata.create_all(engine)
    rows = [catalog_row(i) for i in range(30)]
    with engine.begin() as connection:
        insert_many(connection, CATALOG, rows)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*), count(DISTINCT name) FROM catalog_models")).one() == (30, 30)
    engine.dispose()
