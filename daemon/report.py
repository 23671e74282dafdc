"""The status view: every deployment, what happens to it and when, as a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date

from daemon.lifecycle import Assessment, CatalogIndex, CuratedDates, ScopeOverrides, assess
from daemon.lifecycle.usage import UsageIndex, UsageSummary, compact
from daemon.records import CatalogModel, Deployment


@dataclass(frozen=True)
class StatusRow:
    deployment_id: str
    subscription_id: str
    resource_group: str
    account: str
    deployment: str
    location: str
    model: str | None
    version: str | None
    sku: str | None
    upgrade_option: str | None
    retirement_date: str | None
    date_source: str | None
    date_status: str | None
    date_model: str | None
    date_conflict: str | None  # the catalog and a curated date disagree: "the catalog says ..., ... says ..."
    lifecycle_status: str | None
    lifecycle: str | None
    consequence: str
    strikes_on: str | None
    days_left: int | None
    struck: bool
    date_pending: bool
    replacement_model: str | None
    replacement_version: str | None
    update_scope: str | None
    manual_migration: bool
    fine_tune_retirement: str | None
    provisioning_state: str | None
    escalated: bool
    reason: str
    # Usage (Azure Monitor): None when it could not be read, never 0 for "unknown".
    requests_7d: int | None = None
    requests_30d: int | None = None
    last_used: str | None = None  # the last day with a request
    idle: bool = False  # no request in [usage] idle_days


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def status_row(deployment: Deployment, assessment: Assessment, usage: UsageSummary | None = None) -> StatusRow:
    return StatusRow(
        deployment_id=deployment.id, subscription_id=deployment.subscription_id,
        resource_group=deployment.resource_group, account=deployment.account_name, deployment=deployment.name,
        location=deployment.location, model=deployment.model_name, version=deployment.model_version,
        sku=deployment.sku_name, upgrade_option=deployment.upgrade_option,
        retirement_date=_iso(assessment.retirement_date),
        date_source=assessment.date_url or (assessment.date_source.value if assessment.date_source else None),
        date_status=assessment.date_status.value if assessment.date_status else None,
        date_model=assessment.date_model,
        date_conflict=assessment.date_conflict.words if assessment.date_conflict else None,
        lifecycle_status=assessment.lifecycle_status,
        lifecycle=assessment.lifecycle, consequence=assessment.consequence.value,
        strikes_on=_iso(assessment.strikes_on), days_left=assessment.days_left, struck=assessment.struck,
        date_pending=assessment.date_pending,
        replacement_model=assessment.replacement_model, replacement_version=assessment.replacement_version,
        update_scope=assessment.update_scope.value if assessment.update_scope else None,
        manual_migration=assessment.manual_migration, fine_tune_retirement=_iso(assessment.fine_tune_retirement),
        provisioning_state=deployment.provisioning_state, escalated=assessment.escalate, reason=assessment.reason,
        requests_7d=usage.requests_7d if usage else None, requests_30d=usage.requests_30d if usage else None,
        last_used=_iso(usage.last_used) if usage else None, idle=usage.idle if usage else False,
    )


def status_rows(deployments: Iterable[Deployment], catalog: Iterable[CatalogModel], today: date,
                overrides: ScopeOverrides | None = None, dates: CuratedDates | None = None,
                usage: UsageIndex | None = None) -> list[StatusRow]:
    """Assess every deployment; soonest consequence first, deployments with nothing scheduled last. ``dates``: the
    curated retirement dates beside the catalog's; ``usage``: each deployment's traffic."""
    index = CatalogIndex(catalog, dates)
    rows = [status_row(d, assess(d, index, today, overrides), usage.of(d) if usage else None) for d in deployments]
    rows.sort(key=lambda r: (not r.struck and r.strikes_on is None, r.strikes_on or "", r.account.casefold(),
                             r.deployment.casefold()))
    return rows


@dataclass(frozen=True)
class StatusFilter:
    """``retirewatch status --channel --model --version --deadline``: the rows that match every option given (names
    compared case-insensitively; the channel normalised as routing does, ``#name`` or an id). A grouped alert
    names the command that lists its group."""

    channel: str | None = None
    model: str | None = None
    version: str | None = None
    deadline: date | None = None

    @property
    def given(self) -> bool:
        return any(value is not None for value in (self.channel, self.model, self.version, self.deadline))

    def select(self, rows: Iterable[StatusRow], channel_of: Mapping[str, str]) -> list[StatusRow]:
        """``channel_of``: each deployment's channel, by deployment id (needed only with ``channel``)."""
        wanted = [row for row in rows
                  if (self.model is None or (row.model or "").casefold() == self.model.casefold())
                  and (self.version is None or (row.version or "").casefold() == self.version.casefold())
                  and (self.deadline is None or row.strikes_on == self.deadline.isoformat())]
        if self.channel is None:
            return wanted
        return [row for row in wanted if channel_of.get(row.deployment_id) == self.channel]


def to_json(rows: Sequence[StatusRow]) -> str:
    return json.dumps([asdict(row) for row in rows], indent=2)


def to_csv(rows: Sequence[StatusRow]) -> str:
    buffer = io.StringIO()
    fields = list(StatusRow.__dataclass_fields__)
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    return buffer.getvalue()


_CONSEQUENCE_WORDS = {
    "outage": "OUTAGE",
    "forced-upgrade": "forced upgrade",
    "auto-upgrade": "auto-upgrade",
    "none": "-",
}


def _when(row: StatusRow) -> str:
    if row.days_left is None:
        return "already" if row.struck else "pending" if row.date_pending else "-"
    if row.days_left < 0:
        return f"{-row.days_left}d ago"
    return "today" if row.days_left == 0 else f"in {row.days_left}d"


def _retires(row: StatusRow) -> str:
    """The date, '?' when tentative, '*' when curated, '!' when the catalog and a curated date disagree, and the
    catalog's word for the model when it says a retirement is coming."""
    mark = "?" if row.date_status == "tentative" else "*" if row.date_status == "published" else ""
    day = row.retirement_date + mark + ("!" if row.date_conflict else "") if row.retirement_date else ""
    if row.lifecycle in ("retired", "retiring", "legacy: retirement coming"):
        return f"{day} ({row.lifecycle})".strip() if day else row.lifecycle or ""
    return day or "no date"


def _what_happens(row: StatusRow) -> str:
    words = _CONSEQUENCE_WORDS.get(row.consequence, row.consequence) + (" (manual)" if row.manual_migration else "")
    if not row.escalated:
        words += f" [{row.provisioning_state}: not alerted]"
    return words


def _replacement(row: StatusRow) -> str:
    if not row.replacement_model:
        return "-"
    target = f"{row.replacement_model} {row.replacement_version or ''}".strip()
    return f"{target} ({row.update_scope})" if row.update_scope else target


def _requests(row: StatusRow) -> str:
    """Requests in the last 7 days: ``1.2M``, ``0``, ``idle``; ``?`` when usage could not be read."""
    if row.requests_7d is None:
        return "?"
    return "idle" if row.idle else compact(row.requests_7d)


def to_table(rows: Sequence[StatusRow]) -> str:
    headers = ("STRIKES", "WHEN", "WHAT HAPPENS", "ACCOUNT", "DEPLOYMENT", "MODEL", "SKU", "UPGRADE OPTION",
               "RETIRES", "REPLACEMENT (SCOPE)", "REQ 7D")
    body = [
        (row.strikes_on or "-", _when(row),
         _what_happens(row),
         row.account, row.deployment, f"{row.model or '?'} {row.version or '?'}", row.sku or "-",
         row.upgrade_option or "(default)", _retires(row), _replacement(row), _requests(row))
        for row in rows
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *body, strict=False)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
             for line in (headers, *body)]
    lines.insert(1, "  ".join("-" * width for width in widths))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.consequence] = counts.get(row.consequence, 0) + 1
    summary = ", ".join(f"{counts[kind]} {kind}" for kind in ("outage", "forced-upgrade", "auto-upgrade", "none")
                        if kind in counts)
    lines.append("")
    lines.append(f"{len(rows)} deployments: {summary or 'none'}. '?' after a date: Microsoft marks it tentative.")
    if any(row.date_status == "published" for row in rows):
        lines.append("'*': the date comes from a curated retirement table ([dates]), earlier than the catalog's or "
                     "where the catalog has none; `--format json` names its source.")
    conflicts: dict[str, list[StatusRow]] = {}
    for row in rows:
        if row.date_conflict:
            conflicts.setdefault(f"{row.model} {row.version}: {row.date_conflict}", []).append(row)
    if conflicts:
        lines.append("'!': the catalog and a curated date disagree (the earlier one is used):")
        for words, where in conflicts.items():
            names = ", ".join(f"{row.account}/{row.deployment}" for row in where[:3])
            more = f" and {len(where) - 3} more" if len(where) > 3 else ""
            lines.append(f"  {words}: {names}{more}")
    idle = sum(1 for row in rows if row.idle)
    if any(row.requests_7d is not None for row in rows):
        lines.append(f"REQ 7D: requests in the last 7 days ('?': usage could not be read). {idle} idle (no request "
                     "in [usage] idle_days): delete them instead of migrating.")
    return "\n".join(lines)
