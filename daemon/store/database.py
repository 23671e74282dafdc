"""Engines, sessions and the schema version: the embedded SQLite database upgrades itself, any other database must
be upgraded on purpose (``retirewatch db upgrade``) and every command refuses to run against one that is behind.

Every failure a person can meet becomes a :class:`DatabaseError` with one line saying what happened and what to
do: :class:`DatabaseUnavailable` (exit 3: down, unreachable, locked; nothing was lost, run again) or a problem
of the configuration or the file itself (exit 2: unsupported URL, read-only, not a database, unknown revision)."""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

SUPPORTED_BACKENDS = ("sqlite", "postgresql")
# The revision that creates the alerts outbox, threads and acks: going below it forgets what was sent.
OUTBOX_REVISION = "0002"
# The newest migration. Every command compares the database with it, so that a database at the head (the usual
# case) is opened without loading Alembic and its scripts; tests/integration/test_migrations.py checks that it is
# Alembic's head.
SCHEMA_HEAD = "0008"
VERSION_TABLE = "alembic_version"


class DatabaseError(Exception):
    """A database problem a person must act on (behind the code, unknown URL, read-only, not a database)."""

    exit_code = 2


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached or used right now; nothing was lost, and running again will do."""

    exit_code = 3


def explain(exc: BaseException, url: object = None, *, mid_run: bool = False) -> DatabaseError:
    """The one line a person reads for a driver or SQLAlchemy error (pure: looks at the message only)."""
    detail = first_line(getattr(exc, "orig", None) or exc)
    text = detail.casefold()
    where = f"database {url!r}" if url is not None else "the database"
    if type(exc).__name__ == "CommandError":  # Alembic's, without importing Alembic for every error
        return DatabaseError(f"{detail}: see the revisions with `retirewatch db current`")
    if "readonly" in text or "read-only" in text or "read only" in text:
        return DatabaseError(f"{where} is read-only ({detail}); retirewatch writes to it: drop mode=ro from the "
                             "URL or fix the file's permissions")
    if "file is not a database" in text or "malformed" in text or "not a database" in text:
        return DatabaseError(f"{where} is not a usable SQLite database ({detail}): restore it from a backup "
                             "or point database.url at another file")
    if "unable to open database file" in text:
        return DatabaseError(f"cannot open {where} ({detail}): check the path and its directory's permissions")
    if ("does not exist" in text and "database" in text) or "authentication failed" in text \
            or "password" in text:
        return DatabaseError(f"cannot use {where} ({detail}): check database.url / RETIREWATCH_DATABASE_URL")
    if "no such table" in text or "undefinedtable" in text or ("relation" in text and "does not exist" in text):
        return DatabaseError(f"{where} lacks retirewatch's tables ({detail}): run `retirewatch db upgrade`")
    if mid_run:
        return DatabaseUnavailable(f"the database connection failed mid-run ({detail}); nothing was lost "
                                   "(what was not committed is redone): run the command again once it is back")
    return DatabaseUnavailable(f"{where} is unavailable ({detail}); nothing was changed: check that it is up "
                               "and reachable, then run the command again")


@contextmanager
def explained(engine: Engine) -> Iterator[None]:
    """Turn the driver's and Alembic's errors inside the block into a :class:`DatabaseError` for ``engine``."""
    from alembic.util import CommandError

    try:
        yield
    except (SQLAlchemyError, CommandError) as exc:
        raise explain(exc, engine.url) from exc
    finally:
        engine.dispose()


def is_database_failure(exc: BaseException) -> bool:
    return isinstance(exc, SQLAlchemyError)


def make_engine(url: str, *, idle_transaction_seconds: float = 60.0) -> Engine:
    """``idle_transaction_seconds`` (PostgreSQL): the server ends a session left idle inside a transaction this
    long, so a process that froze mid-transaction (SIGSTOP, a partition) cannot hold row locks past its leases."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"database url is not a SQLAlchemy URL: {url!r}") from None
    if parsed.get_backend_name() not in SUPPORTED_BACKENDS:
        raise DatabaseError(f"unsupported database {parsed.get_backend_name()!r} in {parsed!r}: use "
                            "sqlite:///PATH or postgresql+psycopg://USER@HOST/DB")
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("psycopg2", "psycopg2cffi"):
        raise DatabaseError("use the psycopg 3 driver: postgresql+psycopg://...")
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        timeout_ms = max(1000, int(idle_transaction_seconds * 1000))
        return create_engine(parsed, pool_pre_ping=True, connect_args={
            "options": f"-c idle_in_transaction_session_timeout={timeout_ms}",
            "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3})
    except (ImportError, SQLAlchemyError) as exc:
        raise DatabaseError(f"cannot use {parsed!r}: {first_line(exc)}; use postgresql+psycopg://") from None


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    if not cursor.execute("PRAGMA query_only").fetchone()[0] and not _read_only(dbapi_connection):
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _read_only(dbapi_connection: object) -> bool:
    """Whether SQLite opened the main database read-only (``mode=ro``): WAL cannot be switched on then."""
    try:
        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
        rows = cursor.execute("PRAGMA database_list").fetchall()
        cursor.close()
        return bool(rows) and "mode=ro" in str(rows[0][2] or "")
    except Exception:
        return False


def alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    script_location = importlib.resources.files("daemon.migrations")
    config.set_main_option("script_location", str(script_location))
    # ConfigParser interpolates "%": a URL's %-escapes (sqlite:///file%3A...) must be doubled.
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def head_revision(engine: Engine) -> str:
    """Alembic's head, read from the migration scripts (:data:`SCHEMA_HEAD` is what every command compares)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None, "the package ships no migrations"
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision (None: no retirewatch schema), read as Alembic keeps it: one row in
    ``alembic_version``."""
    with engine.connect() as connection:
        return _revision(connection)


def _revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    versions = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(versions) > 1:  # branches: none of ours, but say it as Alembic would
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(connection).get_current_revision()
    return str(versions[0]) if versions else None


def create_schema(engine: Engine) -> None:
    """Build an empty database at the head in one step: the models' ``create_all``, then the version stamped, as
    Alembic advises for a database built from scratch (``test_migrations`` checks that it equals the migrated
    schema). Running every migration in turn costs a new SQLite file's first command about a tenth of a second."""
    from daemon.store.schema import Base

    with engine.begin() as connection:
        Base.metadata.create_all(connection)
        connection.execute(text(f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL, "
                                f"CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))"))
        connection.execute(text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (:head)"), {"head": SCHEMA_HEAD})


def _built_meanwhile(engine: Engine) -> bool:
    try:
        return current_revision(engine) == SCHEMA_HEAD
    except SQLAlchemyError:
        return False


def _empty(engine: Engine) -> bool:
    with engine.connect() as connection:
        return not inspect(connection).get_table_names()


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def revisions_undone(engine: Engine, current: str | None, target: str) -> list[str]:
    """The revisions a downgrade from ``current`` to ``target`` would undo, newest first."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    if current is None:
        return []
    script = ScriptDirectory.from_config(alembic_config(engine))
    try:
        lower = None if target == "base" else script.get_revision(target)
    except CommandError:
        raise DatabaseError(f"unknown revision {target!r}: see `retirewatch db current`") from None
    if target != "base" and lower is None:
        raise DatabaseError(f"unknown revision {target!r}: see `retirewatch db current`")
    undone = []
    for revision in script.iterate_revisions(current, "base"):
        if lower is not None and revision.revision == lower.revision:
            break
        undone.append(revision.revision)
    return undone


def open_database(url: str, *, idle_transaction_seconds: float = 60.0) -> Engine:
    """An engine whose schema matches the code, or a :class:`DatabaseError` that says what to do."""
    engine = make_engine(url, idle_transaction_seconds=idle_transaction_seconds)
    try:
        current = current_revision(engine)
    except Exception as exc:  # the driver's own errors: unreachable host, bad credentials, ...
        engine.dispose()
        raise explain(exc, engine.url) from None
    head = SCHEMA_HEAD
    if current == head:
        return engine
    if engine.dialect.name == "sqlite":
        try:
            if current is None and _empty(engine):
                create_schema(engine)
            else:
                upgrade(engine)
        except SQLAlchemyError as exc:
            if _built_meanwhile(engine):  # another command built the new file at the same moment
                return engine
            engine.dispose()
            raise explain(exc, engine.url) from None
        return engine
    engine.dispose()
    state = "has no retirewatch schema" if current is None else f"is at schema revision {current}"
    raise DatabaseError(
        f"database {engine.url!r} {state}; this retirewatch needs {head}. Run `retirewatch db upgrade` first."
    )


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory.begin() as session:
        yield session
