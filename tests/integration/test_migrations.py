"""The migrations create exactly what the models describe, go up and down, and a database behind the code stops
every command with a clear message."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from daemon.cli import main
from daemon.store import database
from daemon.store.schema import Base

ROOT = Path(__file__).resolve().parents[2]


def test_models_and_migrations_do_not_drift(database_url: str) -> None:
    engine = database.make_engine(database_url)
    database.upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ; write a migration: {diff}"


def test_upgrade_then_downgrade_to_base_and_back(database_url: str) -> None:
    engine = database.make_engine(database_url)
    database.upgrade(engine)
    assert database.current_revision(engine) == database.head_revision(engine)
    assert {"deployments", "events", "catalog_models", "polls"} <= set(inspect(engine).get_table_names())
    database.downgrade(engine, "base")
    assert database.current_revision(engine) is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    database.upgrade(engine)
    assert database.current_revision(engine) == database.head_revision(engine)
    engine.dispose()


def test_embedded_sqlite_upgrades_itself(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'state.sqlite'}"
    engine = database.open_database(url)
    assert database.current_revision(engine) == database.head_revision(engine)


@pytest.mark.postgres
def test_postgres_behind_the_code_stops_every_command(postgres_database_url: str,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETIREWATCH_DATABASE_URL", postgres_database_url)
    with pytest.raises(database.DatabaseError, match="retirewatch db upgrade"):
        database.open_database(postgres_database_url)
    assert main(["status"]) == 2
    assert "Run `retirewatch db upgrade` first" in capsys.readouterr().err
    assert main(["db", "current"]) == 1
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "current"]) == 0
    assert main(["status", "--format", "json"]) == 0


def test_wheel_ships_the_migrations(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", "build", "*.egg-info", ".git", "__pycache__",
                                                                 ".*_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(source)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("retirewatch-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "daemon/migrations/env.py" in names
    assert "daemon/migrations/script.py.mako" in names
    assert any(name.startswith("daemon/migrations/versions/0001_") for name in names)
    assert "daemon/emulators/estates/demo.json" in names
