"""The pure core stays pure: ``daemon.lifecycle`` imports nothing from config, collect, store, notify, digest or
service (they take its decisions; it takes plain values), and only ``daemon.service`` knows APScheduler.
``daemon.notify`` and ``daemon.digest`` issue no SQL of their own: they call ``daemon.store``, and know SQLAlchemy
only for the ``Session`` they pass along."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DAEMON = Path(__file__).resolve().parents[2] / "daemon"


QUERY_METHODS = frozenset({"query", "scalar", "scalars", "execute", "get", "get_one"})


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("path", sorted((DAEMON / "lifecycle").glob("*.py")), ids=lambda p: p.name)
def test_lifecycle_imports_only_records_and_itself(path: Path) -> None:
    outside = {name for name in imports(path) if name.startswith("daemon.")
               and not name.startswith(("daemon.lifecycle", "daemon.records"))}
    assert outside == set()


def test_only_the_service_knows_apscheduler() -> None:
    users = {path.relative_to(DAEMON).parts[0] for path in DAEMON.rglob("*.py")
             if any(name.startswith("apscheduler") for name in imports(path))}
    assert users <= {"service"}, users


def sql_built(source: str) -> set[str]:
    """Where ``source`` builds or runs a query itself: calls to ``select`` and ``session.<query method>(...)``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name == "select":
            found.add(f"line {node.lineno}: select(...)")
        elif (isinstance(func, ast.Attribute) and func.attr in QUERY_METHODS and isinstance(func.value, ast.Name)
              and func.value.id == "session"):
            found.add(f"line {node.lineno}: session.{func.attr}(...)")
    return found


SQL_FREE = sorted([*(DAEMON / "notify").glob("*.py"), *(DAEMON / "digest").glob("*.py"),
                   *(DAEMON / "forecast").glob("*.py")])


@pytest.mark.parametrize("path", SQL_FREE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notify_and_digest_import_only_the_orm_session_types(path: Path) -> None:
    sqlalchemy = {name for name in imports(path) if name == "sqlalchemy" or name.startswith("sqlalchemy.")}
    assert sqlalchemy <= {"sqlalchemy.orm"}, sqlalchemy


@pytest.mark.parametrize("path", SQL_FREE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notify_and_digest_build_no_queries(path: Path) -> None:
    assert sql_built(path.read_text(encoding="utf-8")) == set()


def test_the_query_check_sees_a_query() -> None:
    source = ("from sqlalchemy import select\n"
              "def f(session):\n"
              "    return session.scalars(select(Row).where(Row.id == 1)).all(), session.get(Row, 1)\n")
    assert sql_built(source) == {"line 3: select(...)", "line 3: session.scalars(...)", "line 3: session.get(...)"}
