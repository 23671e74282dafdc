"""Azure Monitor platform metrics of an Azure OpenAI account, as the ARM emulator serves them::

    GET {account id}/providers/Microsoft.Insights/metrics?api-version=...&metricnames=AzureOpenAIRequests,...
        &aggregation=Total&interval=P1D&timespan=START/END&$filter=ModelDeploymentName eq '*'&top=N

The answer has Microsoft's documented shape (``Response`` of Metrics_List, e.g. the spec's GetMetric.json):
``{cost, timespan, interval, value: [{id, type, name {value, localizedValue}, displayDescription, unit,
timeseries: [{metadatavalues: [{name {value, localizedValue}, value}], data: [{timeStamp, total}]}],
errorCode}], namespace, resourceregion}``. Like Azure: the dimension's name comes back in lower case, only
deployments with traffic in the timespan have a time series, ``top`` (default 10) cuts the time series of each
metric silently, and an unknown metric, interval or filter is a 400.

Traffic comes from each deployment's ``usage`` in the scenario: ``{"requests": [...], "tokens": [...],
"last_day": "YYYY-MM-DD"}``, one number per day, the last one for ``last_day`` (earlier days counted back; days
before the list, and after ``last_day``, had none), so the same day reads the same whatever the timespan. Without
``last_day`` the last number is for the day the timespan ends on: a steady pattern that moves with the clock.
``{"requests": []}`` is a deployment nobody calls. A deployment without ``usage`` has
:data:`DEFAULT_REQUESTS` requests (and :data:`DEFAULT_TOKENS` prompt tokens) every day: the steady traffic of a
deployment in use, so estates written before usage existed keep meaning what they meant.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

DEFAULT_REQUESTS = 1_200
DEFAULT_TOKENS = 480_000
DEFAULT_TOP = 10
DIMENSION = "ModelDeploymentName"
METRICS: Mapping[str, tuple[str, str, str]] = {  # name -> (scenario key, localized name, description)
    "azureopenairequests": ("requests", "Azure OpenAI Requests",
                            "Number of calls made to the Azure OpenAI API over a period of time."),
    "processedprompttokens": ("tokens", "Processed Inference Tokens",
                              "Number of prompt tokens processed (input) on an Azure OpenAI model."),
}
CANONICAL = {"azureopenairequests": "AzureOpenAIRequests", "processedprompttokens": "ProcessedPromptTokens"}

Answer = tuple[int, dict[str, str], bytes]


def _bad_request(message: str) -> Answer:
    return 400, {}, json.dumps({"error": {"code": "BadRequest", "message": message}}).encode()


def _one(query: Mapping[str, Sequence[str]], name: str) -> str | None:
    for key, values in query.items():
        if key.casefold() == name.casefold() and values:
            return values[0]
    return None


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def daily(values: Sequence[int], last_day: date, day: date) -> int:
    """The figure of ``day`` in a list whose last element is ``last_day``."""
    back = (last_day - day).days
    return values[len(values) - 1 - back] if 0 <= back < len(values) else 0


def metrics_answer(account: Mapping[str, Any], account_id: str, query: Mapping[str, Sequence[str]]) -> Answer:
    """The metrics of one scenario account (its ``deployments`` and their ``usage``)."""
    names = [n.strip() for n in (_one(query, "metricnames") or "").split(",") if n.strip()]
    if not names:
        return _bad_request("metricnames is required by this emulator (Azure would pick the namespace default)")
    unknown = [n for n in names if n.casefold() not in METRICS]
    if unknown:
        return _bad_request(f"Failed to find metric configuration for provider: Microsoft.CognitiveServices, "
                            f"resource Type: accounts, metric: {unknown[0]}, Valid metrics: "
                            + ",".join(CANONICAL.values()))
    interval = _one(query, "interval") or "PT1M"
    if interval.upper() != "P1D":
        return _bad_request(f"The emulator serves interval P1D only, not {interval}")
    aggregations = {a.strip().casefold() for a in (_one(query, "aggregation") or "average").split(",")}
    timespan = _one(query, "timespan")
    try:
        start_text, end_text = (timespan or "").split("/")
        start, end = _moment(start_text), _moment(end_text)
    except ValueError:
        return _bad_request(f"timespan {timespan!r} is not START/END in ISO 8601")
    if end <= start:
        return _bad_request(f"timespan {timespan!r} ends before it starts")
    split = _split(_one(query, "$filter"))
    if isinstance(split, tuple):
        return split
    top_text = _one(query, "top") or str(DEFAULT_TOP)
    if not top_text.isdigit() or int(top_text) < 1:
        return _bad_request(f"Detected invalid TopN value {top_text}")
    top = int(top_text)
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    value = []
    for name in names:
        key, localized, description = METRICS[name.casefold()]
        figures = {d["name"]: [_figure(d, key, last, day) for day in days] for d in account.get("deployments", [])
                   if split in ("*", None) or d["name"].casefold() == str(split).casefold()}
        if split is None:
            totals = [sum(column) for column in zip(*figures.values(), strict=True)] if figures else [0] * len(days)
            series = [_series([], days, totals, aggregations)]
        else:
            series = [_series([{"name": {"value": DIMENSION.casefold(), "localizedValue": DIMENSION.casefold()},
                                "value": deployment}], days, counts, aggregations)
                      for deployment, counts in figures.items() if any(counts)][:top]
        canonical = CANONICAL[name.casefold()]
        value.append({"id": f"{account_id}/providers/Microsoft.Insights/metrics/{canonical}",
                      "type": "Microsoft.Insights/metrics", "name": {"value": canonical, "localizedValue": localized},
                      "displayDescription": description, "unit": "Count", "timeseries": series,
                      "errorCode": "Success"})
    body = {"cost": len(days) * len(names), "timespan": timespan, "interval": "P1D", "value": value,
            "namespace": "microsoft.cognitiveservices/accounts",
            "resourceregion": str(account.get("location", "eastus")).casefold().replace(" ", "")}
    return 200, {}, json.dumps(body).encode()


def _split(expression: str | None) -> str | Answer | None:
    """``ModelDeploymentName eq '*'`` -> ``"*"``; ``... eq 'chat'`` -> ``"chat"``; no filter -> None."""
    if expression is None or not expression.strip():
        return None
    parts = expression.strip().split(None, 2)
    if len(parts) != 3 or parts[0].casefold() != DIMENSION.casefold() or parts[1].casefold() != "eq" \
            or not (parts[2].startswith("'") and parts[2].endswith("'") and len(parts[2]) >= 2):
        return _bad_request(f"The emulator understands $filter={DIMENSION} eq '<name or *>' only, not {expression!r}")
    return parts[2][1:-1]


def _figure(deployment: Mapping[str, Any], key: str, last: date, day: date) -> int:
    usage = deployment.get("usage")
    if usage is None:
        return DEFAULT_REQUESTS if key == "requests" else DEFAULT_TOKENS
    anchor = date.fromisoformat(usage["last_day"]) if usage.get("last_day") else last
    return daily(usage.get(key) or [], anchor, day)


def _series(metadata: list[dict[str, Any]], days: Sequence[date], counts: Sequence[int], aggregations: set[str]
            ) -> dict[str, Any]:
    data = []
    for day, count in zip(days, counts, strict=True):
        point: dict[str, Any] = {"timeStamp": f"{day.isoformat()}T00:00:00Z"}
        if "total" in aggregations:
            point["total"] = float(count)
        if "count" in aggregations:
            point["count"] = float(count)
        if "average" in aggregations:
            point["average"] = float(count)
        data.append(point)
    return {"metadatavalues": metadata, "data": data}
