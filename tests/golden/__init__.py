"""Golden files: rendered output checked in, compared byte for byte.

``RETIREWATCH_UPDATE_GOLDEN=1 pytest ...`` writes them from the code; then read every changed file and check it says
what it should before committing (a golden that mirrors a bug is a bug)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).resolve().parent


def check_golden(name: str, actual: str | dict[str, Any] | list[Any]) -> None:
    text = actual if isinstance(actual, str) else json.dumps(actual, indent=1, ensure_ascii=False) + "\n"
    path = GOLDEN / name
    if os.environ.get("RETIREWATCH_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing: run with RETIREWATCH_UPDATE_GOLDEN=1, then read and commit it"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{name} differs from the golden file (RETIREWATCH_UPDATE_GOLDEN=1 rewrites it)"
