"""The migrations create exactly what the models describe, go up and down, and a database behind the code stops
every command with a clear message."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

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


def test_the_head_every_command_compares_is_alembics_head(tmp_path: Path) -> None:
    engine = database.make_engine(f"sqlite:///{tmp_path / 'head.sqlite'}")
    assert database.head_revision(engine) == database.SCHEMA_HEAD, "a new migration: set SCHEMA_HEAD to it"
    engine.dispose()


def schema_of(engine: Engine) -> dict[str, Any]:
    """Everything the inspector sees of every table, in a form two databases can be compared by."""
    found: dict[str, Any] = {}
    with engine.connect() as connection:
        seen = inspect(connection)
        for table in sorted(seen.get_table_names()):
            found[table] = {
                # By name: a column a migration added comes last in its table (nothing reads columns by position)
                "columns": sorted((c["name"], str(c["type"]), c["nullable"], c.get("default"))
                                  for c in seen.get_columns(table)),
                "primary_key": seen.get_pk_constraint(table)["constrained_columns"],
                "foreign_keys": sorted((tuple(f["constrained_columns"]), f["referred_table"],
                                        tuple(f["referred_columns"]), str(sorted(f.get("options", {}).items())))
                                       for f in seen.get_foreign_keys(table)),
                "indexes": sorted((i["name"], tuple(str(c) for c in i["column_names"]), bool(i["unique"]),
                                   str(sorted((k, " ".join(str(v).split()))
                                              for k, v in (i.get("dialect_options") or {}).items())))
                                  for i in seen.get_indexes(table)),
                "unique": sorted((u["name"], tuple(u["column_names"])) for u in seen.get_unique_constraints(table)),
                "checks": sorted((c["name"], " ".join(c["sqltext"].split()))
                                 for c in seen.get_check_constraints(table)),
            }
    return found


def test_a_new_sqlite_file_is_built_in_one_step_exactly_as_the_migrations_build_it(tmp_path: Path) -> None:
    migrated = database.make_engine(f"sqlite:///{tmp_path / 'migrated.sqlite'}")
    database.upgrade(migrated)
    built = database.open_database(f"sqlite:///{tmp_path / 'built.sqlite'}")
    assert database.current_revision(built) == database.head_revision(built)
    assert schema_of(built) == schema_of(migrated)
    with built.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    database.downgrade(built, "base")  # the migrations take a built database down and up again
    database.upgrade(built)
    assert schema_of(built) == schema_of(migrated)
    migrated.dispose()
    built.dispose()


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
