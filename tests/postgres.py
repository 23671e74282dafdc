"""Find a PostgreSQL server for the test run, or start a throwaway one from the installed binaries.

Order: ``RETIREWATCH_TEST_POSTGRES_URL`` (an admin URL), then 127.0.0.1:5432 as ``postgres`` (trust auth), then a
temporary cluster made with ``initdb``/``pg_ctl`` on a free port. Each test run gets its own database, dropped at
the end. Without any of these the PostgreSQL tests are skipped with a clear reason, except under ``CI=true``, where
they fail: CI must never pass by skipping them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(_libpq(url), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _throwaway_cluster() -> Iterator[str]:
    installed = sorted(str(path) for path in Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    binaries = installed or [shutil.which("initdb") or ""]
    initdb = binaries[-1]
    if not initdb or not Path(initdb).exists():
        raise RuntimeError("no PostgreSQL server reachable and no initdb installed")
    bindir = Path(initdb).parent
    workdir = tempfile.mkdtemp(prefix="retirewatch-pg-")
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(workdir, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    data = f"{workdir}/data"
    subprocess.run([*run_as, str(bindir / "initdb"), "-D", data, "-U", "postgres", "--auth=trust"],
                   check=True, capture_output=True)
    subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", data, "-w", "-l", f"{workdir}/log", "-o",
                    f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", data, "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def admin_server() -> Iterator[str]:
    """Yield an admin URL of a running server, or raise RuntimeError saying why there is none."""
    explicit = os.environ.get("RETIREWATCH_TEST_POSTGRES_URL")
    if explicit:
        if not _reachable(explicit):
            raise RuntimeError(f"RETIREWATCH_TEST_POSTGRES_URL is set but unreachable: {explicit}")
        yield explicit
        return
    if _reachable(DEFAULT_ADMIN_URL):
        yield DEFAULT_ADMIN_URL
        return
    with _throwaway_cluster() as url:
        yield url


@contextlib.contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server for one test (or run); dropped afterwards."""
    name = f"retirewatch_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
