"""Tell once when the catalog and a curated retirement date disagree (``[dates] conflict_days``).

The disagreement is about the data, not about one deployment: it goes to the operational channel (whoever keeps
the dates file), one message per model version and pair of dates, listing the deployments it touches. The outbox
key holds the model version and both dates, so it is told once; when either date moves, the new pair is told.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime

from sqlalchemy.orm import Session

from daemon.config import Config
from daemon.lifecycle import Assessment, DateConflict
from daemon.notify import ops
from daemon.records import Deployment

MAX_LISTED = 10

_Key = tuple[str, str, date, date, str]


def conflict_groups(assessed: Iterable[tuple[Deployment, Assessment]]) -> dict[_Key, list[tuple[Deployment,
                                                                                                  DateConflict]]]:
    """Deployments whose dates conflict, grouped by model version, both dates and the curated row's source."""
    groups: dict[_Key, list[tuple[Deployment, DateConflict]]] = {}
    for deployment, assessment in assessed:
        conflict = assessment.date_conflict
        if conflict is None:
            continue
        key = ((deployment.model_name or "").casefold(), (deployment.model_version or "").casefold(),
               conflict.catalog_date, conflict.curated.retirement, conflict.curated.source)
        groups.setdefault(key, []).append((deployment, conflict))
    return groups


def report_date_conflicts(session: Session, config: Config, now: datetime,
                          assessed: Iterable[tuple[Deployment, Assessment]],
                          count: Callable[[str], None] | None = None) -> int:
    """Queue one operational message per conflict not told before; how many were queued."""
    channel = config.slack.fallback_channel or config.slack.default_channel
    queued = 0
    for (name, version, catalog_day, curated_day, _), members in conflict_groups(assessed).items():
        first, conflict = members[0]
        model = f"{first.model_name} {first.model_version or ''}".strip()
        used = min(catalog_day, curated_day)
        lines = [conflict.words,
                 f"retirewatch uses the earlier date, {used}, for alerts and `status`",
                 f"the curated row: {conflict.curated.origin}" + (f" ({conflict.curated.note})"
                                                                  if conflict.curated.note else ""),
                 *[f"{d.account_name}/{d.name} ({d.sku_name or 'no SKU'}, {d.location})"
                   for d, _ in members[:MAX_LISTED]]]
        if len(members) > MAX_LISTED:
            lines.append(f"and {len(members) - MAX_LISTED} more deployment(s)")
        lines.append("check both; correct or remove the row in the dates file, or raise [dates] conflict_days")
        problem = f"date-conflict|{name}|{version}|catalog {catalog_day}|curated {curated_day}"
        title = (f"Retirement dates disagree for {model} by {conflict.days} days "
                 f"({len(members)} deployment(s))")
        if ops.raise_operational(session, channel, now, problem, title, lines, daily=False):
            queued += 1
            if count is not None:
                count(ops.OPERATIONAL)
    return queued
