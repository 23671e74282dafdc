"""The forecast as a table (one row per day, channel and message, naming its deployments) or JSON (one object per
message per deployment)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from datetime import date
from typing import Any

from daemon.forecast.plan import DATE_MOVED, FINE_TUNE_ENDS, RESOLVED, STAGE, Forecast, ForecastItem
from daemon.lifecycle.escalation import Stage

MAX_NAMES = 6  # deployments named in one table row; the rest are counted


def item_json(item: ForecastItem) -> dict[str, Any]:
    return {
        "date": item.day.isoformat(), "deployment_id": item.deployment_id, "deployment": item.name,
        "channel": item.channel, "stage": item.stage, "consequence": item.consequence,
        "deadline": item.deadline.isoformat() if item.deadline else None, "kind": item.kind, "step": item.step,
        "days_left": item.days_left, "model": item.model, "version": item.version,
        "replacement_model": item.replacement_model, "replacement_version": item.replacement_version,
        "update_scope": item.update_scope,
        "fine_tune_ends": item.fine_tune_ends.isoformat() if item.fine_tune_ends else None,
    }


def to_json(forecast: Forecast) -> str:
    return json.dumps([item_json(item) for item in forecast.items], indent=2)


def what(item: ForecastItem) -> str:
    if item.kind == DATE_MOVED:
        return f"date moved ({item.stage})"
    if item.kind == RESOLVED:
        return "resolved"
    if item.kind == FINE_TUNE_ENDS:
        return f"fine-tuning ends {item.fine_tune_ends}"
    return item.stage or "-"


def _when(deadline: date | None, day: date) -> str:
    if deadline is None:
        return "-"
    left = (deadline - day).days
    relative = "today" if left == 0 else f"in {left}d" if left > 0 else f"{-left}d ago"
    return f"{deadline} ({relative})"


def _names(names: Sequence[str]) -> str:
    ordered = sorted(set(names))
    shown = ", ".join(ordered[:MAX_NAMES])
    return shown + (f" and {len(ordered) - MAX_NAMES} more" if len(ordered) > MAX_NAMES else "")


def _repeats(days: Sequence[date]) -> str:
    """An overdue deadline's repeats in a few words: ``overdue, daily to 2027-02-22 (90)``."""
    if len(days) == 1:
        return "overdue"
    gaps = {(later - earlier).days for earlier, later in itertools.pairwise(days)}
    every = ("daily" if gaps == {1} else f"every {gaps.pop()} days") if len(gaps) == 1 else "repeated"
    return f"overdue, {every} to {days[-1]} ({len(days)})"


def _rows(forecast: Forecast) -> list[tuple[Any, ...]]:
    """One entry per message, except a deadline's overdue repeats, which are one entry from the first."""
    runs: dict[tuple[str, str, date | None], list[ForecastItem]] = {}
    entries: list[tuple[Any, ...]] = []
    for item in forecast.items:
        if item.kind == STAGE and item.stage == Stage.OVERDUE.value:
            runs.setdefault((item.deployment_key, item.channel, item.deadline), []).append(item)
        else:
            entries.append((item.day, item.channel, item.deadline or date.min, what(item), item))
    for run in runs.values():
        entries.append((run[0].day, run[0].channel, run[0].deadline or date.min, _repeats([i.day for i in run]),
                        run[0]))
    return sorted(entries, key=lambda e: e[:4])


def to_table(forecast: Forecast) -> str:
    groups: dict[tuple[Any, ...], list[str]] = {}
    for day, channel, _, alert, item in _rows(forecast):
        key = (day, channel, alert, item.consequence, item.deadline, item.model, item.version)
        groups.setdefault(key, []).append(item.name)
    headers = ("DATE", "CHANNEL", "ALERT", "CONSEQUENCE", "DEADLINE", "MODEL", "DEPLOYMENTS")
    body = [(day.isoformat(), channel, alert, consequence, _when(deadline, day), f"{model or '?'} {version or '?'}",
             _names(names))
            for (day, channel, alert, consequence, deadline, model, version), names in groups.items()]
    span = f"{forecast.start} to {forecast.end} ({forecast.days} days)"
    if not forecast.channels:
        return "No deployments are known: run `retirewatch poll` first."
    if not body:
        return f"Nothing will be sent from {span}, if nothing changes."
    widths = [max(len(cell) for cell in column) for column in zip(headers, *body, strict=False)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
             for line in (headers, *body)]
    lines.insert(1, "  ".join("-" * width for width in widths))
    channels = {item.channel for item in forecast.items}
    deployments = {item.deployment_key for item in forecast.items}
    lines += ["", f"{len(forecast.items)} messages about {len(deployments)} deployments to {len(channels)} "
              f"channel(s) from {span}, if nothing changes (the inventory as last polled, no new acks, notify at "
              "least daily). Acks and alerts already sent are taken into account."]
    return "\n".join(lines)
