"""Every error path a user can meet, through the real CLI (a subprocess, as a person or a scheduler runs it): one
line that says what happened and what to do, the exit code that means it, never a traceback; -v adds the detail."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select

from daemon.store import alerts, database
from daemon.store.schema import AlertRow
from tests.integration.test_notify import TODAY, scenario
from tests.integration.world import at, make_world, payload
from tests.postgres import _libpq

UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/retirewatch"


def cli(*args: str, url: str | None = None, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **(env or {})}
    environment.pop("RETIREWATCH_CONFIG", None)
    if url is not None:
        environment["RETIREWATCH_DATABASE_URL"] = url
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], env=environment, capture_output=True,
                          text=True, timeout=timeout)


def one_line(done: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("retirewatch: "), done.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def sqlite_url(tmp_path: Path, name: str = "rw.sqlite") -> str:
    return f"sqlite:///{tmp_path / name}"


def test_an_empty_now_is_an_error(tmp_path: Path) -> None:
    one_line(cli("status", "--now", "", url=sqlite_url(tmp_path)), 2, "--now", "empty")


@pytest.mark.parametrize("now", ["9999-12-31", "0001-01-01", "0001-01-01T00:00:00+01:00",
                                 "9999-12-31T23:59:59-05:00", "not-a-date"])
@pytest.mark.parametrize("command", [["status"], ["notify", "--dry-run"]])
def test_now_at_the_calendars_edge(tmp_path: Path, now: str, command: list[str]) -> None:
    one_line(cli(*command, "--now", now, url=sqlite_url(tmp_path)), 2, "--now")


def test_an_unsupported_database_url(tmp_path: Path) -> None:
    for command in (["status"], ["db", "current"], ["db", "upgrade"]):
        one_line(cli(*command, url="mysql://user@localhost/retirewatch"), 2, "unsupported database 'mysql'")


def test_verbose_shows_the_detail() -> None:
    done = cli("status", "-v", url=UNREACHABLE)
    assert done.returncode == 3
    assert done.stderr.startswith("retirewatch: ") and len(done.stderr.splitlines()) > 1
    assert "Connection refused" in done.stderr or "connection" in done.stderr.lower()


def test_a_corrupted_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "rw.sqlite"
    path.write_bytes(b"this is not a database" + os.urandom(8192))
    for command in (["status"], ["db", "current"], ["alerts"]):
        one_line(cli(*command, url=f"sqlite:///{path}"), 2, "not a usable SQLite database")


def test_a_read_only_sqlite_url(tmp_path: Path) -> None:
    path = tmp_path / "rw.sqlite"
    engine = database.make_engine(f"sqlite:///{path}")
    database.upgrade(engine, "0001")  # behind the code: opening it needs a write
    engine.dispose()
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    one_line(cli("status", url=read_only), 2, "read-only", "mode=ro")
    assert cli("db", "upgrade", url=f"sqlite:///{path}").returncode == 0
    done = cli("status", url=read_only)  # up to date: reading is fine
    assert done.returncode == 0 and "No poll has run yet" in done.stdout, done.stderr
    one_line(cli("status", url=f"sqlite:///file:{tmp_path / 'missing.sqlite'}?mode=ro&uri=true"), 2, "cannot open")


@pytest.mark.parametrize("command", [["status"], ["db", "upgrade"], ["db", "current"], ["alerts"]])
def test_an_unreachable_database_is_unavailable(command: list[str]) -> None:
    one_line(cli(*command, url=UNREACHABLE), 3, "unavailable", "run the command again")


def test_unknown_revisions(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    assert cli("db", "upgrade", url=url).returncode == 0
    one_line(cli("db", "upgrade", "nope", url=url), 2, "nope")
    one_line(cli("db", "downgrade", "nope", url=url), 2, "unknown revision 'nope'")


def test_downgrading_below_the_outbox_asks_for_yes(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    assert cli("db", "upgrade", url=url).returncode == 0
    one_line(cli("db", "downgrade", "0001", url=url), 2, "--yes", "outbox", "sends every current alert again")
    assert "(up to date)" in cli("db", "current", url=url).stdout, "nothing was dropped"
    done = cli("db", "downgrade", "0001", "--yes", url=url)
    assert done.returncode == 0 and "now at 0001" in done.stdout


def test_a_closed_pipe_is_a_clean_exit(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    sessions = database.session_factory(database.open_database(url))
    with sessions.begin() as session:
        for n in range(3000):
            alerts.enqueue(session, alerts.NewAlert(key=f"k{n}", kind="stage", channel="#c", message={"text": "x"}),
                           at(TODAY))
    environment = {**os.environ, "RETIREWATCH_DATABASE_URL": url}
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {sys.executable} -m daemon.cli alerts | head -1"],
                          env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and len(done.stdout.splitlines()) == 1


@pytest.mark.postgres
def test_a_database_outage_mid_run_exits_3_and_the_next_run_finishes(postgres_admin_url: str,
                                                                      postgres_database_url: str,
                                                                      tmp_path: Path) -> None:
    name = postgres_database_url.rsplit("/", 1)[-1]
    with make_world(scenario(), postgres_database_url, TODAY) as world:
        world.poll()
        slack = world.config.slack
        config = tmp_path / "retirewatch.toml"
        config.write_text(f'[database]\nurl = "{postgres_database_url}"\n[slack]\napi_url = "{slack.api_url}"\n'
                          f'ca_bundle = "{slack.ca_bundle}"\ndefault_channel = "#ml-platform"\n'
                          'fallback_channel = "#retirewatch-ops"\nmessages_per_second = 1000\n'
                          '[testing]\nallow_time_travel = true\n')
        env = {**os.environ, "SLACK_BOT_TOKEN": world.slack.token}
        world.slack.slow(3.0, "chat.postMessage", times=1)
        process = subprocess.Popen([sys.executable, "-m", "daemon.cli", "notify", "--config", str(config),
                                    "--now", at(TODAY).isoformat(), "--wait", "0"], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with world.sessions() as session:
                if session.scalar(select(AlertRow.id).where(AlertRow.status == "sending")) is not None:
                    break
            time.sleep(0.05)
        with psycopg.connect(_libpq(postgres_admin_url), autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            out, err = process.communicate(timeout=60)
        finally:
            with psycopg.connect(_libpq(postgres_admin_url), autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        assert process.returncode == 3, (out, err)
        assert "Traceback" not in err and len(err.splitlines()) == 1 and "nothing was lost" in err
        later = (at(TODAY) + timedelta(minutes=20)).isoformat()  # past the lease of the row it was sending
        done = cli("notify", "--config", str(config), "--now", later, "--wait", "0", env=env)
        assert done.returncode == 0, done.stderr
        keys = [payload(m)["alert_key"] for m in world.slack.messages()]
        assert len(keys) == 3 and len(set(keys)) == 3, "nothing lost, nothing repeated"
