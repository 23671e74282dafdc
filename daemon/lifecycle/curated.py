"""Retirement dates copied from Microsoft's published retirement tables (or written by the people who run
retirewatch), beside the catalog's. Pure: rows and a deployment in, the matching date out.

A row names a model (compared case-insensitively), a version glob (``2024-*``, ``*``), and optionally a SKU and a
region. It applies to a deployment when all of those match; among the rows that apply the earliest date wins (the
first row listed on a tie). The deployment then takes the earlier of that date and the catalog's (the catalog on a
tie: the API is the authority), and when the two disagree by more than ``conflict_days`` the disagreement is kept so
a person can find out which one is right.

SKU: an exact deployment SKU name (``Standard``, ``GlobalProvisionedManaged``), a family word that stands for every
SKU of a family (``provisioned``, ``batch``, ``developer``; ``Standard`` is a SKU name, not the family), or a glob
(``Global*``). Region: the deployment's location (``eastus``; case and spaces ignored), or a glob (``usgov*``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from daemon.lifecycle.skus import SkuFamily, sku_family
from daemon.records import Deployment, sku_key

DEFAULT_CONFLICT_DAYS = 7
FAMILY_WORDS = {"provisioned": SkuFamily.PROVISIONED, "batch": SkuFamily.BATCH, "developer": SkuFamily.DEVELOPER}


@dataclass(frozen=True, slots=True)
class CuratedDate:
    """One row of a retirement table: where the date applies, the date, and where it was read."""

    model: str
    version: str  # a glob; "*" for every version
    retirement: date
    source: str  # the URL of the table the date was copied from
    sku: str | None = None
    region: str | None = None
    note: str | None = None
    origin: str = ""  # where the row was written: "retirement-dates.csv line 12", "retirewatch.toml dates.rows[0]"

    def applies_to(self, deployment: Deployment) -> bool:
        return (self.model.casefold() == (deployment.model_name or "").casefold()
                and fnmatchcase((deployment.model_version or "").casefold(), self.version.casefold())
                and (self.sku is None or sku_matches(self.sku, deployment.sku_name))
                and (self.region is None or fnmatchcase(region_key(deployment.location), region_key(self.region))))


def region_key(region: str | None) -> str:
    """Azure writes regions as ``eastus``; people write ``East US``."""
    return (region or "").replace(" ", "").casefold()


def sku_matches(wanted: str, sku_name: str | None) -> bool:
    key, name = sku_key(wanted), sku_key(sku_name)
    if key == name:
        return True
    family = FAMILY_WORDS.get(key)
    if family is not None:
        return sku_family(sku_name) is family
    return any(mark in key for mark in "*?[") and bool(name) and fnmatchcase(name, key)


@dataclass(frozen=True, slots=True)
class DateConflict:
    """The catalog and a curated row disagree by more than the allowed number of days."""

    catalog_date: date
    catalog_source: str  # "sku", "sku-family", "inference"
    curated: CuratedDate

    @property
    def days(self) -> int:
        return abs((self.curated.retirement - self.catalog_date).days)

    @property
    def words(self) -> str:
        """``the catalog says 2026-12-31, Microsoft's retirement table says 2026-06-30 (https://...)``"""
        return (f"the catalog says {self.catalog_date}, {table_name(self.curated.source)} says "
                f"{self.curated.retirement} ({self.curated.source})")


def table_name(source: str) -> str:
    host = (urlsplit(source).hostname or "").casefold()
    if host == "microsoft.com" or host.endswith(".microsoft.com"):
        return "Microsoft's retirement table"
    return "the retirement table"


@dataclass(frozen=True, slots=True)
class Dated:
    """The date a deployment gets from the catalog and the curated rows together."""

    day: date | None
    curated: CuratedDate | None  # the curated row, when its date is the one taken
    conflict: DateConflict | None
    catalog_day: date | None = None  # the catalog's own date


class CuratedDates:
    """The rows, indexed by model name; ``conflict_days`` is the disagreement that is worth telling."""

    def __init__(self, rows: Iterable[CuratedDate] = (), conflict_days: int = DEFAULT_CONFLICT_DAYS) -> None:
        self.rows: tuple[CuratedDate, ...] = tuple(rows)
        self.conflict_days = conflict_days
        self._by_model: dict[str, list[CuratedDate]] = defaultdict(list)
        for row in self.rows:
            self._by_model[row.model.casefold()].append(row)

    def __len__(self) -> int:
        return len(self.rows)

    def matching(self, deployment: Deployment) -> list[CuratedDate]:
        """Every row that applies to the deployment, in the order they were written."""
        return [row for row in self._by_model.get((deployment.model_name or "").casefold(), ())
                if row.applies_to(deployment)]

    def earliest(self, deployment: Deployment) -> CuratedDate | None:
        return earliest(self.matching(deployment))

    def combine(self, deployment: Deployment, catalog_date: date | None, catalog_source: str | None) -> Dated:
        return combine(catalog_date, catalog_source, self.earliest(deployment), self.conflict_days)


def earliest(rows: Sequence[CuratedDate]) -> CuratedDate | None:
    """The row with the earliest date; the first written on a tie."""
    return min(rows, key=lambda row: row.retirement, default=None)


def combine(catalog_date: date | None, catalog_source: str | None, curated: CuratedDate | None,
            conflict_days: int = DEFAULT_CONFLICT_DAYS) -> Dated:
    """The earlier of the catalog's date and the curated one (the catalog's on a tie), and whether they disagree by
    more than ``conflict_days``."""
    if curated is None:
        return Dated(catalog_date, None, None, catalog_date)
    if catalog_date is None:
        return Dated(curated.retirement, curated, None, None)
    conflict = None
    if abs((curated.retirement - catalog_date).days) > conflict_days:
        conflict = DateConflict(catalog_date, catalog_source or "catalog", curated)
    if curated.retirement < catalog_date:
        return Dated(curated.retirement, curated, conflict, catalog_date)
    return Dated(catalog_date, None, conflict, catalog_date)
