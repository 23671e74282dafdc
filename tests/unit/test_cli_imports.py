"""The CLI starts before the heavy machinery loads: `retirewatch poll` begins reading Azure while SQLAlchemy,
Alembic and the store load, and `--help` or a config error answers at once. A module-level import of the store,
the Azure SDK or Slack in the CLI's import chain would undo that (it once cost half a second of every start)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("sqlalchemy", "alembic", "azure", "slack_sdk", "apscheduler", "requests", "icalendar")


def test_importing_the_cli_loads_none_of_the_heavy_packages() -> None:
    probe = ("import json, sys; import daemon.cli; "
             "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                                           text=True).stdout))
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_the_storing_side_of_a_poll_loads_no_azure_sdk() -> None:
    """`retirewatch poll` forks its reading process before anything imports the Azure SDK: the reading process
    imports it while this one loads SQLAlchemy and opens the database, on the other core, and this process stays
    about 20 MB smaller. What the storing process imports must therefore not pull the SDK in."""
    storing = ("daemon.cli", "daemon.poll", "daemon.store.database", "daemon.store.inventory", "daemon.store.poll_lock",
               "daemon.usage", "daemon.notify.ops")
    probe = (f"import json, sys; [__import__(m) for m in {storing!r}]; "
             "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                                           text=True).stdout))
    assert loaded.isdisjoint({"azure", "msal", "requests"}), sorted(loaded & {"azure", "msal", "requests"})
