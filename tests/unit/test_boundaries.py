"""The pure core stays pure: ``daemon.lifecycle`` imports nothing from config, collect, store, notify, digest or
service (they take its decisions; it takes plain values), and only ``daemon.service`` knows APScheduler."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DAEMON = Path(__file__).resolve().parents[2] / "daemon"


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
