"""Which deployments matter: each account's traffic per deployment, from Azure Monitor platform metrics.

One request per account, through the same ARM pipeline (credential, transport, capped retries) and the same worker
pool as the inventory::

    GET {account id}/providers/Microsoft.Insights/metrics?api-version=2024-02-01
        &metricnames=AzureOpenAIRequests,ProcessedPromptTokens&aggregation=Total&interval=P1D
        &timespan={first day}T00:00:00Z/{now}&$filter=ModelDeploymentName eq '*'&top=1000

The answer (Microsoft's ``Response`` shape: ``value[]`` per metric, ``timeseries[]`` per deployment named in
``metadatavalues``, ``data[{timeStamp, total}]`` per day) is read field by field. A deployment absent from it had no
traffic. An answer whose request counts cannot be trusted (an error code on the metric, a day that is not a day, a
count that is not a count) is a failure of the whole account: its usage is unknown, never zero, because "no traffic:
delete it" said of a busy deployment would be worse than saying nothing. The token figures are secondary: when they
cannot be read the request counts still stand and the problem is reported.

Reader on the account is enough (``Microsoft.Insights/metrics/read``).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from daemon.records import AccountUsage, DailyUsage

if TYPE_CHECKING:  # the storing side plans usage without loading the Azure SDK (the reading side has it)
    from daemon.collect.azure import ArmReader

log = logging.getLogger(__name__)

API_VERSION = "2024-02-01"  # Microsoft.Insights/metrics
REQUESTS_METRIC = "AzureOpenAIRequests"
TOKENS_METRIC = "ProcessedPromptTokens"
DIMENSION = "ModelDeploymentName"
METRIC_NAMESPACE = "Microsoft.CognitiveServices/accounts"
# Time series per metric. Azure's default is 10 and it drops the rest silently: an account with an eleventh
# deployment would report that one as idle.
TOP = 1000
WINDOW_DAYS = 30  # the issue's "last 30 days"; longer when [usage] idle_days asks for more
OVERLAP_DAYS = 1  # a later read also re-reads the day before its last one (metrics arrive a few minutes late)
USAGE_OPERATION = "read-usage"


class UsageError(ValueError):
    """An answer whose request counts cannot be trusted; the message starts with "malformed response:"."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"malformed response: {problem}")


# -- the request ------------------------------------------------------------------------------------------------------


def metrics_path(account_id: str) -> str:
    return f"{account_id.rstrip('/')}/providers/Microsoft.Insights/metrics"


def metrics_query(first_day: date, now: datetime) -> dict[str, str]:
    """The query of one account's request: daily totals from ``first_day`` 00:00 UTC up to ``now``."""
    end = now.astimezone(UTC).replace(microsecond=0)
    return {
        "api-version": API_VERSION,
        "metricnames": f"{REQUESTS_METRIC},{TOKENS_METRIC}",
        "metricnamespace": METRIC_NAMESPACE,
        "aggregation": "Total",
        "interval": "P1D",
        "timespan": f"{first_day.isoformat()}T00:00:00Z/{end:%Y-%m-%dT%H:%M:%SZ}",
        "$filter": f"{DIMENSION} eq '*'",
        "top": str(TOP),
    }


def first_day_to_read(today: date, window_days: int, last_read: date | None) -> date:
    """The first day a read asks for: the whole window the first time, then from just before the last read (the
    days before it are stored and final)."""
    earliest = today - timedelta(days=window_days - 1)
    if last_read is None:
        return earliest
    return max(earliest, min(today, last_read - timedelta(days=OVERLAP_DAYS)))


@dataclass(frozen=True)
class UsagePlan:
    """Which accounts this poll reads, and from which day. ``last_reads``: account key (the ARM id case-folded) ->
    the day of its last successful read. ``every_days``: None reads at every poll."""

    now: datetime
    window_days: int
    every_days: int | None
    last_reads: Mapping[str, date]

    @property
    def today(self) -> date:
        return self.now.astimezone(UTC).date()

    def due(self, account_id: str) -> bool:
        last = self.last_reads.get(account_id.casefold())
        return last is None or self.every_days is None or (self.today - last).days >= self.every_days

    maybe_due = due  # known at once (see DeferredUsagePlan)

    def read(self, reader: ArmReader, account_id: str) -> list[AccountUsage]:
        """The account's request (one ``GET``), parsed. Raises what the reader raises, or :class:`UsageError`."""
        first = first_day_to_read(self.today, self.window_days, self.last_reads.get(account_id.casefold()))
        body = reader.get(metrics_path(account_id), metrics_query(first, self.now))
        return [parse_metrics(body, account_id, first, self.today)]


# -- the answer: Microsoft's shape, field by field ------------------------------------------------------------------


class MetricPoint(NamedTuple):
    """One data point of one time series: the dimension's value (``None``: the series is not split), the bucket's
    start, and the aggregation asked for (``None``: Azure left it out, the bucket had no data)."""

    series: str | None
    at: datetime
    value: float | None


def metrics_by_name(body: Any) -> dict[str, Mapping[str, Any]]:
    """The metrics of an answer (``value[]``), by ``name.value`` case-folded. Raises :class:`UsageError`."""
    if not isinstance(body, Mapping):
        raise UsageError("the metrics answer is not a JSON object")
    metrics = body.get("value")
    if not isinstance(metrics, list):
        raise UsageError("'value' is not a list of metrics")
    found: dict[str, Mapping[str, Any]] = {}
    for i, metric in enumerate(metrics):
        name = _text(_get(metric, "name", "value"))
        if name is None or not isinstance(metric, Mapping):
            raise UsageError(f"value[{i}] has no name.value")
        found.setdefault(name.casefold(), metric)
    return found


def metric_points(metric: Mapping[str, Any], dimension: str | None, aggregation: str) -> list[MetricPoint]:
    """Every point of one metric: ``errorCode`` other than Success, a series without the ``dimension`` in its
    ``metadatavalues``, a ``timeStamp`` that is not a date and time or an ``aggregation`` value that is not a number
    raise :class:`UsageError`."""
    label = _text(_get(metric, "name", "value")) or "metric"
    code = _text(metric.get("errorCode"))
    if code is not None and code.casefold() != "success":
        message = _text(metric.get("errorMessage")) or "no message"
        raise UsageError(f"{label}: {code}: {message[:200]}")
    series = metric.get("timeseries")
    if not isinstance(series, list):
        raise UsageError(f"{label}: 'timeseries' is not a list")
    points: list[MetricPoint] = []
    moments: dict[str, datetime] = {}  # a 30-day answer names 30 instants, thousands of times over
    for i, element in enumerate(series):
        where = f"{label}.timeseries[{i}]"
        if not isinstance(element, Mapping):
            raise UsageError(f"{where} is not an object")
        name = _dimension_value(element.get("metadatavalues"), dimension, where) if dimension else None
        data = element.get("data", [])
        if not isinstance(data, list):
            raise UsageError(f"{where}.data is not a list")
        for j, point in enumerate(data):
            if type(point) is dict:  # the fast path: a known instant and a plain number (or no value)
                stamp = point.get("timeStamp")
                moment = moments.get(stamp) if type(stamp) is str else None
                if moment is not None:
                    value = point.get(aggregation)
                    if value is None:
                        points.append(MetricPoint(name, moment, None))
                        continue
                    kind = type(value)
                    if kind is int or (kind is float and math.isfinite(value)):
                        points.append(MetricPoint(name, moment, float(value)))
                        continue
            checked = _point(point, name, aggregation, f"{where}.data[{j}]")  # checks all, says what is wrong
            moments[point["timeStamp"]] = checked.at
            points.append(checked)
    return points


def _dimension_value(values: Any, dimension: str, where: str) -> str:
    if not isinstance(values, list):
        raise UsageError(f"{where}.metadatavalues is not a list")
    for value in values:
        name = _text(_get(value, "name", "value"))
        if name is not None and name.casefold() == dimension.casefold():  # Azure answers in lower case
            found = _text(value.get("value"))
            if not found:
                raise UsageError(f"{where}: {dimension} has no value")
            return found
    raise UsageError(f"{where} is not split by {dimension}")


def _point(point: Any, series: str | None, aggregation: str, where: str) -> MetricPoint:
    if not isinstance(point, Mapping):
        raise UsageError(f"{where} is not an object")
    stamp = point.get("timeStamp")
    if not isinstance(stamp, str):
        raise UsageError(f"{where}.timeStamp is missing")
    try:
        moment = datetime.fromisoformat(stamp.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"{where}.timeStamp {stamp[:40]!r} is not a date and time") from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    value = point.get(aggregation)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                              or not math.isfinite(value)):
        raise UsageError(f"{where}.{aggregation} {str(value)[:40]!r} is not a number")
    return MetricPoint(series, moment, None if value is None else float(value))


# -- the answer: daily counts per deployment -------------------------------------------------------------------------


def parse_metrics(body: Any, account_id: str, first_day: date, last_day: date) -> AccountUsage:
    """One account's daily figures per deployment from a metrics answer covering ``first_day`` .. ``last_day``.

    Raises :class:`UsageError` when the request counts cannot be trusted; token problems become ``issues``."""
    interval = body.get("interval") if isinstance(body, Mapping) else None
    if interval is not None and (not isinstance(interval, str) or interval.upper() != "P1D"):
        raise UsageError(f"interval is {str(interval)[:40]!r}, not the daily P1D asked for")
    found = metrics_by_name(body)
    requests_metric = found.get(REQUESTS_METRIC.casefold())
    if requests_metric is None:
        raise UsageError(f"the answer has no {REQUESTS_METRIC} metric")
    requests = _daily_counts(requests_metric, first_day, last_day)
    tokens: dict[tuple[str, date], int] | None = None
    issues: list[str] = []
    tokens_metric = found.get(TOKENS_METRIC.casefold())
    if tokens_metric is None:
        issues.append(f"the answer has no {TOKENS_METRIC} metric: token figures unknown")
    else:
        try:
            tokens = _daily_counts(tokens_metric, first_day, last_day)
        except UsageError as exc:
            issues.append(f"{exc}: token figures unknown")
    keys = sorted(set(requests) | set(tokens or {}), key=lambda k: (k[0].casefold(), k[1]))
    days = tuple(
        DailyUsage(deployment=name, day=day, requests=requests.get((name, day), 0),
                   tokens=None if tokens is None else tokens.get((name, day), 0))
        for name, day in keys if requests.get((name, day), 0) or (tokens or {}).get((name, day), 0))
    return AccountUsage(account_id=account_id, first_day=first_day, last_day=last_day, days=_merged(days),
                        issues=tuple(issues))


def _daily_counts(metric: Mapping[str, Any], first_day: date, last_day: date) -> dict[tuple[str, date], int]:
    """``(deployment, day) -> total`` for one metric; a deployment listed twice is added up."""
    totals: dict[tuple[str, date], int] = {}
    days: dict[datetime, date] = {}
    for point in metric_points(metric, DIMENSION, "total"):
        day = days.get(point.at)
        if day is None:
            if point.at.time() != time(0):
                raise UsageError(f"{point.series}: timeStamp {point.at.isoformat()} does not start a UTC day "
                                 "(P1D buckets do)")
            day = days[point.at] = point.at.date()
        if point.value is not None and point.value < 0:
            raise UsageError(f"{point.series}: total {point.value:g} on {day} is not a count")
        if point.series is None or day < first_day or day > last_day:
            continue  # outside what was asked: not ours to store
        key = (point.series, day)
        totals[key] = totals.get(key, 0) + round(point.value or 0)
    return totals


def _merged(days: tuple[DailyUsage, ...]) -> tuple[DailyUsage, ...]:
    """One figure per deployment and day, whatever the case Azure spelled the name in."""
    merged: dict[tuple[str, date], DailyUsage] = {}
    for item in days:
        key = (item.deployment.casefold(), item.day)
        before = merged.get(key)
        if before is None:
            merged[key] = item
            continue
        tokens = None if before.tokens is None or item.tokens is None else before.tokens + item.tokens
        merged[key] = DailyUsage(before.deployment, item.day, before.requests + item.requests, tokens)
    return tuple(merged.values())


def _get(value: Any, *path: str) -> Any:
    for step in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(step)
    return value


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


class DeferredUsagePlan:
    """A :class:`UsagePlan` still being worked out by the storing side (it needs the database, which opens while the
    estate is already being read). :meth:`maybe_due` never waits; :meth:`due`, asked on a reading worker, waits for
    :meth:`settle`. ``None`` (the plan could not be worked out, or the poll ended first) reads no usage this poll:
    usage stays as stored."""

    def __init__(self) -> None:
        self._plan: UsagePlan | None = None
        self._ready = threading.Event()

    def settle(self, plan: UsagePlan | None) -> None:
        if not self._ready.is_set():
            self._plan = plan
            self._ready.set()

    def maybe_due(self, account_id: str) -> bool:
        if not self._ready.is_set():
            return True
        return self._plan is not None and self._plan.due(account_id)

    def due(self, account_id: str) -> bool:
        self._ready.wait()
        return self._plan is not None and self._plan.due(account_id)

    def read(self, reader: ArmReader, account_id: str) -> list[AccountUsage]:
        assert self._plan is not None
        return self._plan.read(reader, account_id)


AnyUsagePlan = UsagePlan | DeferredUsagePlan


def read_if_due(plan: AnyUsagePlan, reader: ArmReader, account_id: str) -> list[AccountUsage]:
    """The account's usage when the plan says it is due (asked on a reading worker: it may wait for the plan)."""
    return plan.read(reader, account_id) if plan.due(account_id) else []
