"""The status view: every deployment, what happens to it and when, as a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date

from daemon.lifecycle import Assessment, CatalogIndex, ScopeOverrides, assess
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


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def status_row(deployment: Deployment, assessment: Assessment) -> StatusRow:
    return StatusRow(
        deployment_id=deployment.id, subscription_id=deployment.subscription_id,
        resource_group=deployment.resource_group, account=deployment.account_name, deployment=deployment.name,
        location=deployment.location, model=deployment.model_name, version=deployment.model_version,
        sku=deployment.sku_name, upgrade_option=deployment.upgrade_option,
        retirement_date=_iso(assessment.retirement_date),
        date_source=assessment.date_source.value if assessment.date_source else None,
        date_status=assessment.date_status.value if assessment.date_status else None,
        date_model=assessment.date_model, lifecycle_status=assessment.lifecycle_status,
        lifecycle=assessment.lifecycle, consequence=assessment.consequence.value,
        strikes_on=_iso(assessment.strikes_on), days_left=assessment.days_left, struck=assessment.struck,
        date_pending=assessment.date_pending,
        replacement_model=assessment.replacement_model, replacement_version=assessment.replacement_version,
        update_scope=assessment.update_scope.value if assessment.update_scope else None,
        manual_migration=assessment.manual_migration, fine_tune_retirement=_iso(assessment.fine_tune_retirement),
        provisioning_state=deployment.provisioning_state, escalated=assessment.escalate, reason=assessment.reason,
    )


def status_rows(deployments: Iterable[Deployment], catalog: Iterable[CatalogModel], today: date,
                overrides: ScopeOverrides | None = None) -> list[StatusRow]:
    """Assess every deployment; soonest consequence first, deployments with nothing scheduled last."""
    index = CatalogIndex(catalog)
    rows = [status_row(d, assess(d, index, today, overrides)) for d in deployments]
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
    """The date, '?' when tentative, and the catalog's word for the model when it says a retirement is coming."""
    day = row.retirement_date + ("?" if row.date_status == "tentative" else "") if row.retirement_date else ""
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


def to_table(rows: Sequence[StatusRow]) -> str:
    headers = ("STRIKES", "WHEN", "WHAT HAPPENS", "ACCOUNT", "DEPLOYMENT", "MODEL", "SKU", "UPGRADE OPTION",
               "RETIRES", "REPLACEMENT (SCOPE)")
    body = [
        (row.strikes_on or "-", _when(row),
         _what_happens(row),
         row.account, row.deployment, f"{row.model or '?'} {row.version or '?'}", row.sku or "-",
         row.upgrade_option or "(default)", _retires(row), _replacement(row))
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
    return "\n".join(lines)
