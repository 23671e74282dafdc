"""One poll at a time per database, and a lock that dies with its holder.

PostgreSQL: a session-level advisory lock on a connection held for the whole poll. SQLite: an exclusive ``flock``
on a file beside the database. Either is released by the operating system or the server the moment the process
ends, SIGKILL included, so a poll that holds the lock knows that any other poll still marked ``running`` died.
A second poll started meanwhile waits for the first to finish, then reads everything again itself.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

log = logging.getLogger(__name__)
ADVISORY_KEY = 0x72657469726501  # "retire" + 1: the poll
POLL_INTERVAL = 0.2


@contextmanager
def poll_lock(engine: Engine, wait_seconds: float, *,
              sleep: Callable[[float], None] = time.sleep) -> Iterator[bool]:
    """Hold the poll lock for the block; yields False when another poll kept it for ``wait_seconds``."""
    if engine.dialect.name == "postgresql":
        with _advisory(engine, wait_seconds, sleep) as held:
            yield held
        return
    path = _sqlite_file(engine)
    if path is None:  # an in-memory database lives in one process: nobody to share it with
        yield True
        return
    with _flock(path.with_name(path.name + ".poll-lock"), wait_seconds, sleep) as held:
        yield held


def _sqlite_file(engine: Engine) -> Path | None:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()


@contextmanager
def _advisory(engine: Engine, wait_seconds: float, sleep: Callable[[float], None]) -> Iterator[bool]:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if not _until(lambda: bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"),
                                                     {"key": ADVISORY_KEY})), wait_seconds, sleep):
            yield False
            return
        try:
            yield True
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})


@contextmanager
def _flock(path: Path, wait_seconds: float, sleep: Callable[[float], None]) -> Iterator[bool]:
    with path.open("a") as handle:
        def take() -> bool:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        if not _until(take, wait_seconds, sleep):
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _until(take: Callable[[], bool], wait_seconds: float, sleep: Callable[[float], None]) -> bool:
    deadline = time.monotonic() + wait_seconds
    told = False
    while not take():
        if time.monotonic() >= deadline:
            return False
        if not told:
            log.info("another poll is running: waiting for it to finish (at most %.0f s)", wait_seconds)
            told = True
        sleep(POLL_INTERVAL)
    return True


class ServiceAlreadyRunning(Exception):
    """A second ``retirewatch run`` on one SQLite file: SQLite has no leases that work across processes here."""


@contextmanager
def service_lock(engine: Engine) -> Iterator[None]:
    """One ``retirewatch run`` per SQLite file (PostgreSQL: any number, coordinated by the leader lease). The lock
    is an ``flock`` the operating system drops when the process ends, however it ends; the file names the holder."""
    if engine.dialect.name == "postgresql":
        yield
        return
    path = _sqlite_file(engine)
    if path is None:
        yield
        return
    lock_path = path.with_name(path.name + ".service-lock")
    with lock_path.open("a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ServiceAlreadyRunning(
                f"another `retirewatch run` ({holder}) already uses the SQLite database {path}: one service per "
                f"SQLite file; to run several replicas, point [database] url at PostgreSQL") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
