"""Which deployments matter (pure): a deployment's daily traffic summed up, said in words, and the escalation
policy it follows.

A busy deployment's retirement is a migration to plan; an idle one's is a deletion to make. So alerts and the
digest say which it is ("1.2M requests in the last 7 days", "no traffic in 30 days: delete it instead of
migrating"), and an idle deployment follows its own, gentler policy. Usage that could not be read is unknown:
never zero, never idle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from daemon.lifecycle.escalation import EscalationPolicy
from daemon.records import Deployment

BUSY_DAYS = 7
MONTH_DAYS = 30


@dataclass(frozen=True)
class UsageSummary:
    """One deployment's traffic as of ``today``. ``requests_7d`` and ``requests_30d`` are None when its account's
    metrics could not be read (then ``idle`` is False and ``last_used`` None: nothing is known)."""

    requests_7d: int | None
    requests_30d: int | None
    last_used: date | None  # the last day with a request (within what was read)
    idle: bool  # no request in ``idle_days``
    idle_days: int

    @property
    def known(self) -> bool:
        return self.requests_7d is not None


def unknown_usage(idle_days: int) -> UsageSummary:
    return UsageSummary(None, None, None, False, idle_days)


def summarise(requests_by_day: Mapping[date, int], today: date, idle_days: int, covered_from: date | None
              ) -> UsageSummary:
    """The summary of one deployment's stored daily request counts; ``covered_from``: the first day its account's
    reads cover without a gap (None: never read, so unknown). Days after ``today`` do not count."""
    if covered_from is None:
        return unknown_usage(idle_days)

    def within(days: int) -> int:
        first = today - timedelta(days=days - 1)
        return sum(count for day, count in requests_by_day.items() if first <= day <= today)

    used = [day for day, count in requests_by_day.items() if count > 0 and day <= today]
    idle_since = today - timedelta(days=idle_days - 1)
    # Idle only when the reads reach back over the whole idle window: a month of silence cannot be seen in a week.
    idle = within(idle_days) == 0 and covered_from <= idle_since
    return UsageSummary(within(BUSY_DAYS), within(MONTH_DAYS), max(used, default=None), idle, idle_days)


def compact(count: int) -> str:
    """``950``, ``12.5K``, ``1.2M``, ``3B``: a count as people read it at a glance."""
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if count >= size:
            figure = f"{count / size:.1f}".removesuffix(".0")
            return figure + suffix
    return str(count)


def usage_sentence(usage: UsageSummary | None) -> str | None:
    """What the usage says, for an alert or a digest line; None when it is unknown."""
    if usage is None or not usage.known or usage.requests_7d is None:
        return None
    if usage.idle:
        return f"no traffic in {usage.idle_days} days: delete it instead of migrating"
    if usage.requests_7d > 0:
        return f"{compact(usage.requests_7d)} {'request' if usage.requests_7d == 1 else 'requests'} in the last " \
               f"{BUSY_DAYS} days"
    last = f", last used {usage.last_used.isoformat()}" if usage.last_used else ""
    return f"no traffic in the last {BUSY_DAYS} days{last}"


def usage_words(usage: UsageSummary | None) -> str | None:
    """The short form, for a list of many deployments: ``1.2M req/7d``, ``0 req/7d``, ``idle``."""
    if usage is None or not usage.known or usage.requests_7d is None:
        return None
    return "idle" if usage.idle else f"{compact(usage.requests_7d)} req/{BUSY_DAYS}d"


def busy_first(usage: UsageSummary | None) -> tuple[int, int]:
    """A sort key: busiest first; then the unknown (which may be busy), the quiet, and the idle last."""
    if usage is None or not usage.known or usage.requests_7d is None:
        return (1, 0)
    if usage.idle:
        return (3, 0)
    return (0, -usage.requests_7d) if usage.requests_7d > 0 else (2, 0)


def policy_for(usage: UsageSummary | None, policy: EscalationPolicy, idle_policy: EscalationPolicy
               ) -> EscalationPolicy:
    """The policy a deployment's deadline follows: the idle one when it had no traffic, else the usual one."""
    return idle_policy if usage is not None and usage.idle else policy


@dataclass(frozen=True)
class UsageIndex:
    """Every deployment's usage as of ``today``, from the stored daily figures. ``coverage``: account key -> the
    first day its reads cover without a gap, for the accounts whose usage is known now (read recently, and the last
    read did not fail); ``requests``: deployment key -> day -> requests (days without traffic are absent)."""

    today: date
    idle_days: int
    coverage: Mapping[str, date]
    requests: Mapping[str, Mapping[date, int]]

    def of(self, deployment: Deployment) -> UsageSummary:
        """The deployment's usage. ``AzureOpenAIRequests`` is certain to count Azure OpenAI models only: a model of
        another format (Meta, Mistral, ...) that the metric never mentions has unknown usage, not none."""
        requests = self.requests.get(deployment.id.casefold(), {})
        if not requests and (deployment.model_format or "").casefold() != "openai":
            return unknown_usage(self.idle_days)
        return summarise(requests, self.today, self.idle_days, self.coverage.get(deployment.account_id.casefold()))


def no_usage(today: date, idle_days: int) -> UsageIndex:
    """The index when usage is not read at all: every deployment's usage unknown."""
    return UsageIndex(today, idle_days, {}, {})
