"""Shared fixtures: databases (SQLite file and a real PostgreSQL server), the ARM emulator, a clock."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from daemon.clock import FixedClock
from daemon.store import database
from tests import postgres

TODAY = date(2026, 11, 25)


def pytest_report_header(config: pytest.Config) -> str:
    return f"PostgreSQL tests: {os.environ.get('RETIREWATCH_TEST_POSTGRES_URL') or postgres.DEFAULT_ADMIN_URL}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Say the run ended normally: code under test that ends the process (``os._exit``) would otherwise end the
    run with status 0 and no summary. ``scripts/check`` fails when the word is missing."""
    finished = os.environ.get("RETIREWATCH_TEST_FINISHED_FILE")
    if finished:
        Path(finished).write_text(f"{int(exitstatus)}\n")


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    try:
        with postgres.admin_server() as url:
            yield url
    except RuntimeError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and no PostgreSQL server could be found or started: {exc}")
        pytest.skip(f"PostgreSQL tests SKIPPED: {exc}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind: every test that takes it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'retirewatch.sqlite'}"
        return
    admin = request.getfixturevalue("postgres_admin_url")
    with postgres.scratch_database(admin) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = database.make_engine(database_url)
    database.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return database.session_factory(engine)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(TODAY.year, TODAY.month, TODAY.day, 6, 0, tzinfo=UTC))


def deep_get(data: Any, *path: Any) -> Any:
    for part in path:
        data = data[part]
    return data


@pytest.fixture
def postgres_database_url(postgres_admin_url: str) -> Iterator[str]:
    with postgres.scratch_database(postgres_admin_url) as url:
        yield url
