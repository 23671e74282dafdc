"""Usage, which deployments matter: Azure Monitor metrics read through the real azure-core pipeline (the ARM
emulator's metrics endpoint, in Microsoft's documented shape), stored per deployment and day, shown by ``status``,
said by the alerts and the digest; an account whose metrics cannot be read has unknown usage, never 0."""

from __future__ import annotations

import copy
import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.identity import ManagedIdentityCredential
from sqlalchemy import select

from daemon.cli import main
from daemon.collect.azure import AzureClients
from daemon.collect.usage import (
    DIMENSION,
    USAGE_OPERATION,
    UsageError,
    first_day_to_read,
    metric_points,
    metrics_by_name,
    metrics_path,
    metrics_query,
    parse_metrics,
)
from daemon.config import ConfigError, parse_config
from daemon.digest import run_digest
from daemon.emulators.metrics import DEFAULT_REQUESTS
from daemon.emulators.scenario import ScenarioError, deployment, validate
from daemon.lifecycle.usage import UsageSummary, compact, summarise, usage_sentence
from daemon.poll import PollReport, run_poll
from daemon.store.schema import DeploymentUsageRow, UsageReadRow
from tests.integration.world import (
    SUB,
    World,
    account_entry,
    at,
    catalog_entry,
    deployment_entry,
    estate,
    make_world,
    payload,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "azure-examples"
TODAY = date(2026, 11, 25)
BUSY = 171_000  # requests a day: 1,197,000 in 7 days, "1.2M"
METRICS = "/providers/microsoft.insights/metrics"


def account_id(name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/rg-{name}/providers/Microsoft.CognitiveServices/accounts/{name}"


def with_usage(entry: dict[str, Any], requests: list[int]) -> dict[str, Any]:
    return {**entry, "usage": {"last_day": TODAY.isoformat(), "requests": requests,
                               "tokens": [n * 300 for n in requests]}}


def scenario() -> dict[str, Any]:
    """gpt-4o 2024-05-13 strikes in 5 days (critical) on a busy, an idle, a quiet and a steady deployment of the
    search team, and on one in an account whose metrics cannot be read; twelve deployments in a third account."""
    catalog = [catalog_entry("gpt-4o", "2024-05-13", TODAY + timedelta(days=5)),
               catalog_entry("gpt-4.1", "2025-04-14", None, default=True)]
    search = [
        with_usage(deployment_entry("chat", "gpt-4o", "2024-05-13"), [BUSY] * 30),
        with_usage(deployment_entry("old-chat", "gpt-4o", "2024-05-13"), []),
        with_usage(deployment_entry("quiet-chat", "gpt-4o", "2024-05-13"), [50] * 20 + [0] * 10),
        deployment_entry("steady", "gpt-4o", "2024-05-13"),  # no usage in the scenario: the emulator's steady 1,200
    ]
    many = [with_usage(deployment_entry(f"svc-{i:02d}", "gpt-4.1", "2025-04-14"), [i + 1] * 30) for i in range(12)]
    return estate([account_entry("search-aoai", {"team": "search"}, search),
                   account_entry("billing-aoai", {"team": "search"},
                                 [deployment_entry("chat", "gpt-4o", "2024-05-13")]),
                   account_entry("many-aoai", {"team": "platform"}, many)], catalog)


def forbid_billing_metrics(world: World) -> None:
    world.arm.faults.fail(f"/accounts/billing-aoai{METRICS}", status=403, code="AuthorizationFailed", times=None,
                          message="The client does not have authorization to perform action "
                                  "'Microsoft.Insights/metrics/read' over scope 'billing-aoai'.")


def poll(world: World) -> PollReport:
    return run_poll(world.config, world.clock, world.sessions, credential=ManagedIdentityCredential())


def status(world: World, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> str:
    config = tmp_path / "retirewatch.toml"
    config.write_text(f'[database]\nurl = "{world.config.database.url}"\n')
    capsys.readouterr()
    assert main(["status", "--config", str(config), "--now", world.clock.now().isoformat(), "--format", fmt]) == 0
    return capsys.readouterr().out


def rows_by_name(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    rows = json.loads(status(world, tmp_path, "json", capsys))
    return {f"{row['account']}/{row['deployment']}": row for row in rows}


def usage_of(row: dict[str, Any]) -> tuple[Any, ...]:
    return row["requests_7d"], row["requests_30d"], row["last_used"], row["idle"]


# -- Microsoft's documented shape ----------------------------------------------------------------------------------


def example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def test_the_shape_reader_reads_microsofts_example_field_by_field() -> None:
    metrics = metrics_by_name(example("GetMetric.response.json"))
    assert set(metrics) == {"blobcount", "blobcapacity"}
    points = metric_points(metrics["blobcount"], "Tier", "average")  # Azure answers the dimension as "tier"
    assert len(points) == 25
    by_tier = {(p.series, p.at.hour): p.value for p in points}
    assert by_tier[("Hot", 9)] == 7.0 and by_tier[("Standard", 13)] == 2.0 and by_tier[("Archive", 11)] == 0.0
    assert all(p.at.tzinfo is not None and p.at.date() == date(2021, 4, 20) for p in points)
    capacity = metric_points(metrics["blobcapacity"], "tier", "average")
    assert {p.series: p.value for p in capacity}["Standard"] == 621492.0
    assert {p.value for p in metric_points(metrics["blobcount"], "tier", "total")} == {None}, \
        "an aggregation the answer does not carry is no data, not 0"
    with pytest.raises(UsageError, match="is not split by ModelDeploymentName"):
        metric_points(metrics["blobcount"], DIMENSION, "total")
    with pytest.raises(UsageError, match="interval is 'PT1H', not the daily P1D"):
        parse_metrics(example("GetMetric.response.json"), "acct", date(2021, 4, 1), date(2021, 4, 30))


def test_a_metric_that_failed_inside_a_200_answer_is_an_error_not_an_empty_series() -> None:
    metrics = metrics_by_name(example("GetMetricError.response.json"))
    with pytest.raises(UsageError, match="MongoRequestsCount: InvalidSamplingType: Sampling type is not found"):
        metric_points(metrics["mongorequestscount"], None, "average")
    (point,) = metric_points(metrics["mongorequests"], None, "average")
    assert (point.series, point.at, point.value) == (None, datetime(2021, 6, 7, 21, 51, tzinfo=UTC), 0.0)


def test_the_emulator_answers_in_microsofts_shape_through_the_real_pipeline(tmp_path: Path) -> None:
    with make_world(scenario(), f"sqlite:///{tmp_path / 'u.sqlite'}", TODAY) as world:
        clients = AzureClients(world.config.azure, ManagedIdentityCredential())
        try:
            reader = clients.arm()
            first = TODAY - timedelta(days=29)
            body = reader.get(metrics_path(account_id("search-aoai")), metrics_query(first, at(TODAY)))
            listed = reader.list(f"{account_id('search-aoai')}/deployments")
        finally:
            clients.close()
    ours, theirs = body, example("GetMetric.response.json")
    assert set(ours) == set(theirs) and ours["interval"] == "P1D"
    assert set(ours["value"][0]) == set(theirs["value"][0])
    assert set(ours["value"][0]["timeseries"][0]) == set(theirs["value"][0]["timeseries"][0])
    assert ours["value"][0]["timeseries"][0]["metadatavalues"][0]["name"] == {
        "value": "modeldeploymentname", "localizedValue": "modeldeploymentname"}, "lower case, like Azure"
    assert set(ours["value"][0]["timeseries"][0]["data"][0]) == {"timeStamp", "total"}
    assert [m["name"]["value"] for m in ours["value"]] == ["AzureOpenAIRequests", "ProcessedPromptTokens"]
    series = {s["metadatavalues"][0]["value"]: s["data"] for s in ours["value"][0]["timeseries"]}
    assert set(series) == {"chat", "quiet-chat", "steady"}, "a deployment without traffic has no time series"
    assert len(series["chat"]) == 30 and series["chat"][-1] == {"timeStamp": f"{TODAY}T00:00:00Z", "total": BUSY}
    assert all("usage" not in item for item in listed), "the scenario's traffic is not part of the deployment"
    usage = parse_metrics(body, account_id("search-aoai"), first, TODAY)
    assert usage.issues == () and {d.deployment for d in usage.days} == {"chat", "quiet-chat", "steady"}
    assert sum(d.requests for d in usage.days if d.deployment == "steady") == 30 * DEFAULT_REQUESTS


# -- a poll reads usage, status shows it ---------------------------------------------------------------------------


def test_usage_through_the_poll_and_status(database_url: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with make_world(scenario(), database_url, TODAY) as world:
        forbid_billing_metrics(world)
        report = poll(world)
        assert report.deployments == 17 and report.accounts == 3, "the rest of the poll went on"
        assert [(f.operation, f.target, f.status_code) for f in report.failures] == [
            (USAGE_OPERATION, account_id("billing-aoai"), 403)]
        assert "Microsoft.Insights/metrics/read" in report.failures[0].error
        assert world.arm.count(METRICS) == 3, "one request per account"
        assert world.arm.count(METRICS, status=200) == 2
        request = next(r for r in world.arm.requests if "search-aoai" in r.path and METRICS in r.path.casefold())
        assert {k: v[0] for k, v in request.query.items()} == {
            "api-version": "2024-02-01", "metricnames": "AzureOpenAIRequests,ProcessedPromptTokens",
            "metricnamespace": "Microsoft.CognitiveServices/accounts", "aggregation": "Total", "interval": "P1D",
            "timespan": f"{TODAY - timedelta(days=29)}T00:00:00Z/{TODAY}T06:00:00Z",
            "$filter": "ModelDeploymentName eq '*'", "top": "1000"}

        rows = rows_by_name(world, tmp_path, capsys)
        assert usage_of(rows["search-aoai/chat"]) == (7 * BUSY, 30 * BUSY, TODAY.isoformat(), False)
        assert usage_of(rows["search-aoai/old-chat"]) == (0, 0, None, True), "absent from the answer: no traffic"
        assert usage_of(rows["search-aoai/quiet-chat"]) == (0, 1000, (TODAY - timedelta(days=10)).isoformat(),
                                                            False)
        assert usage_of(rows["search-aoai/steady"])[:2] == (7 * DEFAULT_REQUESTS, 30 * DEFAULT_REQUESTS)
        assert usage_of(rows["billing-aoai/chat"]) == (None, None, None, False), "unknown is null, not 0"
        assert all(rows[f"many-aoai/svc-{i:02d}"]["requests_7d"] == 7 * (i + 1) for i in range(12)), \
            "twelve deployments in one account: all of them (Azure returns 10 series unless asked for more)"

        table = status(world, tmp_path, "table", capsys)
        line = {tuple(row.split()[4:6]): row for row in table.splitlines()
                if row.startswith(str(TODAY + timedelta(days=5)))}
        assert line[("search-aoai", "chat")].endswith(" 1.2M") and line[("search-aoai", "old-chat")].endswith(" idle")
        assert line[("billing-aoai", "chat")].endswith(" ?")
        assert "REQ 7D" in table.splitlines()[0] and "1 idle" in table
        exported = list(csv.DictReader(io.StringIO(status(world, tmp_path, "csv", capsys))))
        chat = next(r for r in exported if r["account"] == "search-aoai" and r["deployment"] == "chat")
        assert (chat["requests_7d"], chat["requests_30d"], chat["last_used"], chat["idle"]) == (
            str(7 * BUSY), str(30 * BUSY), TODAY.isoformat(), "False")
        billing = next(r for r in exported if r["account"] == "billing-aoai")
        assert billing["requests_7d"] == "" and billing["idle"] == "False"

        with world.sessions() as session:
            stored = session.scalars(select(DeploymentUsageRow).where(
                DeploymentUsageRow.deployment_key == f"{account_id('search-aoai')}/deployments/chat".casefold())).all()
            assert len(stored) == 30 and {r.requests for r in stored} == {BUSY} and {r.tokens for r in stored} == {
                BUSY * 300}
            reads = {r.account_key: r for r in session.scalars(select(UsageReadRow))}
            assert reads[account_id("billing-aoai").casefold()].last_error.startswith("403 AuthorizationFailed")


def test_daily_figures_are_read_once_a_day_and_stored_not_read_again(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with make_world(scenario(), f"sqlite:///{tmp_path / 'u.sqlite'}", TODAY) as world:
        world.poll()
        world.poll()
        assert world.arm.count(METRICS) == 3, "every = P1D: the second poll of the day reads no metrics"
        with world.arm.update() as served:  # Azure now says something else about an old day: it is not asked
            deployment(served, "search-aoai", "chat")["usage"]["requests"][20] = 1
            served_usage = deployment(served, "search-aoai", "chat")["usage"]
            served_usage["requests"][-1] = served_usage["tokens"][-1] = 0  # TODAY is no longer in the answer
        world.go_to(TODAY + timedelta(days=1))
        world.poll()
        assert world.arm.count(METRICS) == 6
        latest = [r for r in world.arm.requests if METRICS in r.path.casefold()][-3:]
        assert {r.query["timespan"][0].split("/")[0] for r in latest} == {f"{TODAY - timedelta(days=1)}T00:00:00Z"}, \
            "from the day before the last read: the days before it are stored"
        rows = rows_by_name(world, tmp_path, capsys)
        assert rows["search-aoai/chat"]["requests_30d"] == 28 * BUSY, "day 20 as stored; today re-read as 0"
        assert rows["search-aoai/chat"]["last_used"] == (TODAY - timedelta(days=1)).isoformat()


def test_every_poll_when_configured(tmp_path: Path) -> None:
    with make_world(scenario(), f"sqlite:///{tmp_path / 'u.sqlite'}", TODAY, usage={"every": "poll"}) as world:
        world.poll()
        world.poll()
        assert world.arm.count(METRICS) == 6
    with make_world(scenario(), f"sqlite:///{tmp_path / 'v.sqlite'}", TODAY, usage={"enabled": False}) as world:
        world.poll()
        assert world.arm.count(METRICS) == 0


def test_a_malformed_answer_costs_that_accounts_usage_and_is_reported(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with make_world(scenario(), f"sqlite:///{tmp_path / 'u.sqlite'}", TODAY) as world:
        world.arm.faults.wrong_value(f"/accounts/many-aoai{METRICS}",
                                     ["value", 0, "timeseries", 0, "data", 2, "total"], "lots")

        def tokens_failed(body: Any) -> None:
            body["value"][1].update(timeseries=[], errorCode="InvalidSamplingType", errorMessage="no tokens today")

        world.arm.faults.mangle(f"/accounts/search-aoai{METRICS}", tokens_failed)
        world.arm.faults.malformed(f"/accounts/billing-aoai{METRICS}")
        report = poll(world)
        assert report.deployments == 17
        failures = {(f.operation, f.target): f.error for f in report.failures}
        assert set(failures) == {(USAGE_OPERATION, account_id("many-aoai")),
                                 (USAGE_OPERATION, account_id("billing-aoai")),
                                 ("parse-field", account_id("search-aoai"))}
        assert failures[(USAGE_OPERATION, account_id("many-aoai"))] == (
            "malformed response: AzureOpenAIRequests.timeseries[0].data[2].total 'lots' is not a number")
        assert failures[(USAGE_OPERATION, account_id("billing-aoai"))].startswith("malformed response: not JSON")
        assert "ProcessedPromptTokens: InvalidSamplingType: no tokens today" in failures[
            ("parse-field", account_id("search-aoai"))]
        rows = rows_by_name(world, tmp_path, capsys)
        assert all(usage_of(rows[f"many-aoai/svc-{i:02d}"]) == (None, None, None, False) for i in range(12))
        assert usage_of(rows["search-aoai/chat"])[:2] == (7 * BUSY, 30 * BUSY), "the request counts stand"
        with world.sessions() as session:
            assert {r.tokens for r in session.scalars(select(DeploymentUsageRow))} == {None}


def test_a_failed_read_after_a_good_one_makes_usage_unknown_until_the_next_good_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with make_world(scenario(), f"sqlite:///{tmp_path / 'u.sqlite'}", TODAY) as world:
        world.poll()
        world.go_to(TODAY + timedelta(days=1))
        world.arm.faults.server_error(f"/accounts/search-aoai{METRICS}", times=None, status=503)
        assert [f.operation for f in poll(world).failures] == [USAGE_OPERATION]
        assert usage_of(rows_by_name(world, tmp_path, capsys)["search-aoai/old-chat"]) == (None, None, None, False), \
            "not idle on yesterday's word when today's read failed"
        world.arm.reset_faults()
        world.clock.set(at(TODAY + timedelta(days=1)) + timedelta(hours=6))
        world.poll()
        assert usage_of(rows_by_name(world, tmp_path, capsys)["search-aoai/old-chat"]) == (0, 0, None, True)


# -- alerts and the digest say it -------------------------------------------------------------------------------


def test_alerts_say_how_much_a_deployment_is_used_and_idle_ones_follow_the_gentler_policy(tmp_path: Path) -> None:
    with make_world(scenario(), f"sqlite:///{tmp_path / 'u.sqlite'}", TODAY) as world:
        forbid_billing_metrics(world)
        poll(world)
        world.notify()
        by_deployment = {(payload(m)["deployment_id"].split("/")[-3], payload(m)["deployment_id"].rsplit("/", 1)[-1]):
                         m.text for m in world.slack.messages("#search")}
        busy = by_deployment[("search-aoai", "chat")]
        assert busy.startswith("<!subteam^S0SEARCH> Critical: outage in 5 days")
        assert "Usage: 1.2M requests in the last 7 days." in busy
        idle = by_deployment[("search-aoai", "old-chat")]
        assert idle.startswith("Notice: outage in 5 days"), "[escalation.usage.idle]: notice only, no mentions"
        assert "Usage: no traffic in 30 days: delete it instead of migrating." in idle
        quiet = by_deployment[("search-aoai", "quiet-chat")]
        assert quiet.startswith("<!subteam^S0SEARCH> Critical") and \
            f"Usage: no traffic in the last 7 days, last used {TODAY - timedelta(days=10)}." in quiet
        unknown = by_deployment[("billing-aoai", "chat")]
        assert unknown.startswith("<!subteam^S0SEARCH> Critical") and "Usage:" not in unknown, \
            "usage that could not be read is not said, and the usual policy applies"

        world.arm.reset_faults()
        world.go_to(TODAY + timedelta(days=4))  # critical@1 for the busy ones; nothing more for the idle one
        before = len(world.slack.messages("#search"))
        world.step()
        later = [payload(m) for m in world.slack.messages("#search")[before:]]
        told = {(p["deployment_id"].rsplit("/", 1)[-1], p["stage"]) for p in later if p.get("kind") == "stage"}
        assert ("chat", "critical") in told and not any(name == "old-chat" for name, _ in told)


def test_the_digest_lists_busy_deployments_first(tmp_path: Path) -> None:
    with make_world(scenario(), f"sqlite:///{tmp_path / 'u.sqlite'}", TODAY,
                    routes=[{"channel": "#search", "match": {"tags": {"team": "search"}}}]) as world:
        forbid_billing_metrics(world)
        poll(world)
        report = run_digest(world.config, world.clock, world.sessions, None, dry_run=True, channel="#search")
        (item,) = report.channels
        text = item.preview or ""
        group = next(line for line in text.splitlines() if "gpt-4o 2024-05-13" in line and "deployments:" in line)
        assert group.split("deployments: ", 1)[1].startswith(
            "search-aoai/chat (1.2M req/7d), search-aoai/steady (8.4K req/7d), billing-aoai/chat, "
            "search-aoai/quiet-chat (0 req/7d)")
        idle = next(line for line in text.splitlines() if "search-aoai/old-chat" in line and line.startswith("•"))
        assert "no traffic in 30 days: delete it instead of migrating" in idle
        assert text.index("search-aoai/chat") < text.index("search-aoai/old-chat")
        assert "1 idle (no traffic: delete instead of migrating)" in text


# -- the pure parts and the config -----------------------------------------------------------------------------


def test_summaries_and_words() -> None:
    days = {TODAY - timedelta(days=n): 10 for n in range(3, 40)}
    summary = summarise(days, TODAY, 30, covered_from=TODAY - timedelta(days=40))
    assert summary == UsageSummary(40, 270, TODAY - timedelta(days=3), False, 30)
    assert summarise({}, TODAY, 30, covered_from=TODAY - timedelta(days=29)).idle
    assert not summarise({}, TODAY, 30, covered_from=TODAY - timedelta(days=5)).idle, \
        "a week of reads cannot see a month of silence"
    assert summarise({}, TODAY, 30, covered_from=None) == UsageSummary(None, None, None, False, 30)
    assert [compact(n) for n in (0, 950, 1000, 12_500, 1_197_000, 3_000_000_000)] == [
        "0", "950", "1K", "12.5K", "1.2M", "3B"]
    assert usage_sentence(UsageSummary(1, 1, TODAY, False, 30)) == "1 request in the last 7 days"
    assert usage_sentence(UsageSummary(None, None, None, False, 30)) is None
    assert first_day_to_read(TODAY, 30, None) == TODAY - timedelta(days=29)
    assert first_day_to_read(TODAY, 30, TODAY - timedelta(days=2)) == TODAY - timedelta(days=3)
    assert first_day_to_read(TODAY, 30, TODAY - timedelta(days=90)) == TODAY - timedelta(days=29)


@pytest.mark.parametrize(("raw", "message"), [
    ({"usage": {"every": "daily"}}, 'usage.every: Value error, must be "poll" or whole days'),
    ({"usage": {"idle_days": 120}}, "usage.idle_days: Input should be less than or equal to 93"),
    ({"usage": {"enabled": "sometimes"}}, "usage.enabled: Input should be a valid boolean"),
    ({"escalation": {"usage": {"idle": {"notice": 10, "warning": 20}}}},
     "escalation.usage.idle: notice (10 days) must be more than warning (20 days)"),
    ({"escalation": {"usage": {"idle": {"mentions": "yes please"}}}}, "escalation.usage.idle.mentions"),
    ({"escalation": {"usage": {"busy": {}}}}, "escalation.usage.busy: unknown key"),
])
def test_config_errors_name_the_file_and_the_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, "/etc/retirewatch.toml")
    assert str(caught.value).startswith("/etc/retirewatch.toml: ") and message in str(caught.value)


def test_the_scenario_says_what_is_wrong_with_usage() -> None:
    broken = copy.deepcopy(scenario())
    broken["subscriptions"][0]["accounts"][0]["deployments"][0]["usage"] = {"requests": [1, -2]}
    with pytest.raises(ScenarioError, match=r"deployments\[0\]\.usage\.requests: expected a list of counts"):
        validate(broken)
    broken["subscriptions"][0]["accounts"][0]["deployments"][0]["usage"] = {"calls": [1]}
    with pytest.raises(ScenarioError, match="unknown key 'calls'"):
        validate(broken)
