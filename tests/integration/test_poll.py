"""A poll end to end: the real azure-mgmt-cognitiveservices client and DefaultAzureCredential over HTTPS against
the ARM emulator, into a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daemon.cli import main
from daemon.clock import FixedClock
from daemon.config import Config, parse_config
from daemon.emulators.arm import ArmEmulator, load_scenario
from daemon.lifecycle import CatalogIndex, assess
from daemon.poll import run_poll
from daemon.store import queries
from daemon.store.schema import CatalogModelRow, DeploymentRow, EventRow, PollRow, SubscriptionRow
from tests.conftest import TODAY
from tests.integration.world import behind_proxy, sign_in_to

SUB_A, SUB_B, SUB_C = ("aaaaaaaa-0000-0000-0000-000000000001", "bbbbbbbb-0000-0000-0000-000000000002",
                       "cccccccc-0000-0000-0000-000000000003")


def model(name: str, version: str, kind: str = "OpenAI", **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "skuName": "S0", "model": {"format": "OpenAI", "name": name, "version": version, **extra}}


def deployment(name: str, model_name: str, version: str, sku: str = "Standard",
               option: str | None = "NoAutoUpgrade") -> dict[str, Any]:
    properties: dict[str, Any] = {"model": {"format": "OpenAI", "name": model_name, "version": version},
                                  "provisioningState": "Succeeded"}
    if option:
        properties["versionUpgradeOption"] = option
    return {"name": name, "sku": {"name": sku, "capacity": 10}, "properties": properties}


ESTATE: dict[str, Any] = {
    "locationModels": {"eastus": [
        model("gpt-4o", "2024-05-13", lifecycleStatus="GenerallyAvailable",
              deprecation={"inference": "{{today+200}}T00:00:00Z", "deprecationStatus": "Planned"},
              skus=[{"name": "Standard", "deprecationDate": "{{today+30}}T00:00:00Z"},
                    {"name": "GlobalStandard", "deprecationDate": "2099-12-31T00:00:00Z"}],
              replacementConfig={"targetModelName": "gpt-5.1"}),
        model("gpt-4o", "2024-05-13", kind="AIServices",
              skus=[{"name": "provisionedmanaged", "deprecationDate": "{{today+90}}T00:00:00Z"}]),
        model("gpt-5.1", "2025-11-13", isDefaultVersion=True),
        model("gpt-x", "1", lifecycleStatus="Sunsetting", deprecation={"inference": "{{today+10}}T00:00:00Z"}),
        model("old", "1", deprecation={"inference": "2099-12-31T00:00:00Z"}),
    ]},
    "subscriptions": [
        {"subscriptionId": SUB_A, "displayName": "prod", "accounts": [
            {"name": "acct-a", "resourceGroup": "rg-a", "kind": "OpenAI", "location": "East US",
             "tags": {"team": "search"},
             "deployments": [deployment("chat", "gpt-4o", "2024-05-13"),
                             deployment("global", "gpt-4o", "2024-05-13", sku="GlobalStandard"),
                             deployment("ptu", "gpt-4o", "2024-05-13", sku="ProvisionedManaged",
                                        option="OnceCurrentVersionExpired"),
                             deployment("odd", "gpt-x", "1", option="EveryFullMoon"),
                             deployment("ft", "gpt-4o.ft-1", "1"),
                             deployment("nodate", "old", "1")],
             "models": [{"format": "OpenAI", "name": "gpt-4o.ft-1", "version": "1",
                         "deprecation": {"inference": "{{today+45}}T00:00:00Z"}}]},
            {"name": "speech", "resourceGroup": "rg-a", "kind": "SpeechServices", "location": "eastus",
             "deployments": []}]},
        {"subscriptionId": SUB_B, "displayName": "staging", "accounts": [
            {"name": "acct-b", "resourceGroup": "rg-b", "kind": "AIServices", "location": "eastus",
             "deployments": [deployment("b1", "gpt-4o", "2024-05-13")]}]},
        {"subscriptionId": SUB_C, "displayName": "sandbox", "accounts": [
            {"name": "acct-c", "resourceGroup": "rg-c", "kind": "OpenAI", "location": "eastus",
             "deployments": [deployment("c1", "gpt-5.1", "2025-11-13")]}]},
    ],
}


@pytest.fixture
def arm(monkeypatch: pytest.MonkeyPatch) -> Iterator[ArmEmulator]:
    with ArmEmulator(load_scenario(ESTATE, TODAY), page_size=2) as emulator:
        sign_in_to(emulator, monkeypatch)
        yield emulator


def config_for(arm: ArmEmulator, url: str, **azure: Any) -> Config:
    settings = {"resource_manager_endpoint": arm.base_url, "ca_bundle": arm.ca_bundle_path, "max_retries": 2,
                "max_retry_after_seconds": 1, "timeout_seconds": 10, **azure}
    return parse_config({"database": {"url": url}, "azure": settings}, "<test>")


def status_by_name(sessions: sessionmaker[Session], today: date = TODAY) -> dict[str, Any]:
    with sessions() as session:
        index = CatalogIndex(queries.catalog(session))
        return {d.name: assess(d, index, today) for d in queries.current_deployments(session)}


def test_poll_reads_every_page_and_every_rule(arm: ArmEmulator, sessions: sessionmaker[Session],
                                              database_url: str, clock: FixedClock) -> None:
    report = run_poll(config_for(arm, database_url), clock, sessions)
    assert report.ok, report.failures
    assert (report.subscriptions, report.accounts, report.deployments) == (3, 3, 8)
    assert arm.tokens_issued >= 1
    assert arm.count("skipToken") > 0, "paging was not exercised"
    with sessions() as session:
        states = set(session.scalars(select(SubscriptionRow.state)))
    assert states == {"Enabled"}, "Azure's spelling of the state, not the SDK enum's repr"
    # location models once per (subscription, location); account models only where a model was missing
    assert arm.count(f"{SUB_A}/providers/Microsoft.CognitiveServices/locations/eastus/models".lower()) >= 1
    assert arm.count("/accounts/acct-a/models") == 1 and arm.count("/accounts/acct-b/models") == 0
    assert arm.count("/accounts/speech/deployments") == 0, "kinds outside account_kinds are not listed"

    found = status_by_name(sessions)
    assert found["chat"].retirement_date == TODAY + timedelta(days=30)  # the Standard SKU's own date
    assert found["chat"].consequence.value == "outage"
    assert found["global"].retirement_date == TODAY + timedelta(days=200)  # sentinel on its SKU: model date
    assert found["ptu"].retirement_date == TODAY + timedelta(days=90)  # lower-case SKU, listed under another kind
    assert found["ptu"].manual_migration and found["ptu"].consequence.value == "outage"
    assert found["odd"].lifecycle_status == "Sunsetting" and not found["odd"].upgrade_option_known
    assert found["ft"].retirement_date == TODAY + timedelta(days=45)  # from the account's own model list
    assert found["nodate"].consequence.value == "none" and found["nodate"].retirement_date is None
    assert (found["chat"].replacement_model, found["chat"].replacement_version) == ("gpt-5.1", "2025-11-13")
    with sessions() as session:
        kinds = session.scalars(select(CatalogModelRow.kinds).where(CatalogModelRow.name == "gpt-4o")).all()
        assert sorted(kinds[0]) == ["AIServices", "OpenAI"], "one model under two kinds is one row"


def test_second_poll_without_changes_writes_no_events_then_changes_are_history(
        arm: ArmEmulator, sessions: sessionmaker[Session], database_url: str, clock: FixedClock) -> None:
    config = config_for(arm, database_url)
    run_poll(config, clock, sessions)
    assert run_poll(config, clock, sessions).events == 0
    with arm.update() as estate:
        account = estate["subscriptions"][0]["accounts"][0]
        account["deployments"][0]["properties"]["model"]["version"] = "2025-11-13"
        account["deployments"][0]["properties"]["model"]["name"] = "gpt-5.1"
        del account["deployments"][1]
        standard = estate["locationModels"]["eastus"][0]["model"]["skus"][0]
        standard["deprecationDate"] = f"{TODAY + timedelta(days=60)}T00:00:00Z"
    report = run_poll(config, clock, sessions)
    with sessions() as session:
        rows = session.scalars(select(EventRow).where(EventRow.poll_id == report.poll_id,
                                                      EventRow.subject_type == "deployment")).all()
        happened = {(r.subject_key.rsplit("/", 1)[-1], r.kind, r.old_value, r.new_value) for r in rows}
    assert ("chat", "model_version_changed", "2024-05-13", "2025-11-13") in happened
    assert ("global", "deployment_removed", "2024-05-13", None) in happened
    assert ("b1", "retirement_date_changed", str(TODAY + timedelta(days=30)),
            str(TODAY + timedelta(days=60))) in happened


def test_one_failing_subscription_does_not_stop_the_others(arm: ArmEmulator, sessions: sessionmaker[Session],
                                                           database_url: str, clock: FixedClock) -> None:
    config = config_for(arm, database_url)
    run_poll(config, clock, sessions)
    arm.faults.forbid_subscription(SUB_B)
    arm.faults.server_error("/accounts/acct-c/deployments", times=None, status=503)
    report = run_poll(config, clock, sessions)
    assert not report.ok
    failed = {(f.operation, f.status_code) for f in report.failures}
    assert failed == {("list-accounts", 403), ("list-deployments", 503)}
    assert report.subscriptions == 3
    with sessions() as session:
        alive = {row.name for row in session.scalars(select(DeploymentRow).where(DeploymentRow.removed_at.is_(None)))}
    assert {"b1", "c1", "chat"} <= alive, "what could not be read keeps its last known state"


def test_a_redirect_is_a_failure_of_that_list_and_is_not_followed(arm: ArmEmulator, sessions: sessionmaker[Session],
                                                                   database_url: str, clock: FixedClock) -> None:
    config = config_for(arm, database_url)
    run_poll(config, clock, sessions)
    moved = f"{arm.base_url}/subscriptions/{SUB_C}/moved-elsewhere"
    arm.faults.fail("/accounts/acct-c/deployments", times=None, status=302, code="Moved", headers={"Location": moved})
    report = run_poll(config, clock, sessions)
    assert {(f.operation, f.status_code) for f in report.failures} == {("list-deployments", 302)}
    assert arm.count("/moved-elsewhere") == 0, "the bearer token goes to no address an answer names"
    assert arm.count("/accounts/acct-c/deployments", status=302) == 1, "a redirect is not retried either"
    with sessions() as session:
        alive = {row.name for row in session.scalars(select(DeploymentRow).where(DeploymentRow.removed_at.is_(None)))}
    assert "c1" in alive, "what could not be read keeps its last known state"


def test_requests_are_logged_only_at_debug_verbosity(arm: ArmEmulator, tmp_path: Any) -> None:
    import subprocess

    logged: dict[str, str] = {}
    for verbosity in ("-v", "-vv"):
        _, poll = poll_process(arm, tmp_path, verbosity, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, logged[verbosity] = poll.communicate(timeout=60)
        assert poll.returncode == 0, logged[verbosity]
    assert "Request URL" not in logged["-v"]
    assert f"Request URL: '{arm.base_url}/subscriptions/{SUB_A}/providers/Microsoft.CognitiveServices/accounts" \
        in logged["-vv"]
    assert "x-ms-client-request-id" in logged["-vv"], "each request carries an id to quote to Microsoft"


def test_an_https_proxy_from_the_environment_carries_every_read(arm: ArmEmulator, sessions: sessionmaker[Session],
                                                                database_url: str, clock: FixedClock,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from daemon.emulators.proxy import ProxyEmulator
    from daemon.emulators.tls import PROXIED_HOST

    port = arm.base_url.rsplit(":", 1)[1]
    # ARM under a name only the proxy resolves: a read that did not go through the proxy fails
    config = config_for(arm, database_url, resource_manager_endpoint=f"https://{PROXIED_HOST}:{port}",
                        token_audience=arm.base_url)
    with ProxyEmulator(credentials=("egress", "s3cret")) as proxy:
        behind_proxy(monkeypatch, proxy.url_with("egress", "s3cret"))
        report = run_poll(config, clock, sessions)
        tunnels = [t for t in proxy.tunnels if t.target == f"{PROXIED_HOST}:{port}"]
        refused = proxy.refused
    assert report.ok, report.failures
    assert (report.subscriptions, report.accounts, report.deployments) == (3, 3, 8)
    assert tunnels and {t.user for t in tunnels} == {"egress"} and refused == 0
    assert len(tunnels) < arm.count() / 2, "tunnels are kept open and reused, not one per request"


def test_no_proxy_sends_reads_past_the_proxy(arm: ArmEmulator, sessions: sessionmaker[Session], database_url: str,
                                            clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> None:
    from daemon.emulators.proxy import ProxyEmulator

    with ProxyEmulator() as proxy:
        behind_proxy(monkeypatch, proxy.url, no_proxy="127.0.0.1")
        report = run_poll(config_for(arm, database_url), clock, sessions)
        assert report.ok and report.deployments == 8, report.failures
        assert proxy.tunnels == []


def test_throttling_is_retried_after_retry_after(arm: ArmEmulator, sessions: sessionmaker[Session],
                                                 database_url: str, clock: FixedClock) -> None:
    arm.faults.throttle("/deployments", times=2, retry_after=0.2)
    report = run_poll(config_for(arm, database_url), clock, sessions)
    assert report.ok, report.failures
    assert arm.count("/deployments", status=429) == 2
    assert report.deployments == 8


def test_malformed_bodies_are_failures_not_crashes(arm: ArmEmulator, sessions: sessionmaker[Session],
                                                   database_url: str, clock: FixedClock) -> None:
    listed = copy.deepcopy(load_scenario(ESTATE, TODAY)["locationModels"]["eastus"])
    listed[0]["model"]["skus"][0]["deprecationDate"] = "not-a-date"  # the SDK's models failed the whole page on this
    listed.append({"kind": "OpenAI", "model": {"format": "OpenAI", "version": "1"}})  # no name: cannot be identified
    arm.faults.malformed("/accounts/acct-b/deployments")  # not even JSON
    arm.faults.malformed("/locations/eastus/models", body=json.dumps({"value": listed}).encode())
    report = run_poll(config_for(arm, database_url, subscriptions=[SUB_A, SUB_B]), clock, sessions)
    by_operation = {f.operation: f for f in report.failures}
    assert sorted(f.operation for f in report.failures) == ["list-deployments", "parse-field",
                                                            "parse-location-models"], \
        "the regional catalog is read once per subscription; its malformed parts are reported once per poll"
    assert by_operation["parse-field"].target == ("/providers/Microsoft.CognitiveServices/locations/eastus/models "
                                                  "(gpt-4o 2024-05-13): skus[0].deprecationDate")
    assert by_operation["parse-field"].error == "not a date: 'not-a-date'"
    assert by_operation["parse-location-models"].target.endswith("/locations/eastus/models (item)")
    assert by_operation["list-deployments"].error.startswith("malformed response: not JSON")
    assert report.subscriptions == 2 and report.deployments == 6
    with sessions() as session:
        rows = {row.name: row for row in session.scalars(select(CatalogModelRow))}
    assert {"gpt-4o", "gpt-5.1", "gpt-x", "old"} <= set(rows), "the readable catalog entries are kept"
    assert rows["gpt-4o"].sku_retirements == [
        {"sku": "GlobalStandard", "date": None},
        {"sku": "provisionedmanaged", "date": str(TODAY + timedelta(days=90))},
        {"sku": "Standard", "date": None},
    ], "the malformed date costs that date only"
    assert rows["gpt-4o"].inference_retirement == TODAY + timedelta(days=200)


def test_a_malformed_field_is_reported_but_does_not_stop_removal(arm: ArmEmulator, sessions: sessionmaker[Session],
                                                                 database_url: str, clock: FixedClock) -> None:
    config = config_for(arm, database_url, subscriptions=[SUB_A])
    assert run_poll(config, clock, sessions).ok
    with arm.update() as estate:
        deployments = estate["subscriptions"][0]["accounts"][0]["deployments"]
        deployments[0]["sku"]["capacity"] = "lots"
        deployments[1]["properties"]["versionUpgradeOption"] = 7
        del deployments[2]  # ptu
    report = run_poll(config, clock, sessions)
    assert sorted((f.operation, f.target.rsplit("/", 1)[-1], f.error) for f in report.failures) == [
        ("parse-field", "deployments (chat): sku.capacity", "not a whole number: 'lots'"),
        ("parse-field", "deployments (global): properties.versionUpgradeOption", "not text: 7"),
    ]
    with sessions() as session:
        rows = {row.name: row for row in session.scalars(select(DeploymentRow))}
    assert rows["ptu"].removed_at is not None, "a list with a malformed field is still complete"
    assert rows["chat"].removed_at is None and rows["chat"].sku_capacity is None and rows["chat"].sku_name == "Standard"
    assert rows["global"].upgrade_option is None and rows["global"].model_version == "2024-05-13"


def test_an_unidentifiable_deployment_keeps_the_rest_and_removes_nothing(
        arm: ArmEmulator, sessions: sessionmaker[Session], database_url: str, clock: FixedClock) -> None:
    config = config_for(arm, database_url, subscriptions=[SUB_A])
    assert run_poll(config, clock, sessions).ok
    with arm.update() as estate:
        deployments = estate["subscriptions"][0]["accounts"][0]["deployments"]
        del deployments[2]  # ptu
    arm.faults.mangle("/accounts/acct-a/deployments", lambda page: page["value"].append({"sku": {"name": "S"}}),
                      times=1)
    report = run_poll(config, clock, sessions)
    assert [(f.operation, f.error) for f in report.failures] == [
        ("parse-deployments", "malformed item skipped: no name or id")]
    with sessions() as session:
        rows = {row.name: row for row in session.scalars(select(DeploymentRow))}
    assert rows["ptu"].removed_at is None, "a list with an unreadable item cannot tell what is gone"
    assert all(row.removed_at is None for row in rows.values())


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (lambda page: page.update(nextLink="https://elsewhere.example/subscriptions?$skipToken=2"),
         "malformed response: nextLink leaves https://127.0.0.1:"),
        (lambda page: page.update(value={"name": "chat"}), "malformed response: 'value' is not a list"),
        (lambda page: page.update(nextLink=7), "malformed response: nextLink is not a URL"),
    ],
    ids=["next-link-to-another-host", "value-not-a-list", "next-link-not-text"],
)
def test_a_list_page_of_the_wrong_shape_fails_that_list(arm: ArmEmulator, sessions: sessionmaker[Session],
                                                        database_url: str, clock: FixedClock, edit: Any,
                                                        error: str) -> None:
    arm.faults.mangle("/accounts/acct-a/deployments", edit, times=1)
    report = run_poll(config_for(arm, database_url, subscriptions=[SUB_A]), clock, sessions)
    assert [(f.operation, f.target.rsplit("/", 1)[-1]) for f in report.failures] == [("list-deployments", "acct-a")]
    assert report.failures[0].error.startswith(error)
    assert not any("elsewhere" in r.target for r in arm.requests)


def test_a_repeating_next_link_ends_the_list_as_a_failure(arm: ArmEmulator, sessions: sessionmaker[Session],
                                                          database_url: str, clock: FixedClock) -> None:
    def loop(page: dict[str, Any]) -> None:
        if "nextLink" in page:
            page["nextLink"] = page["nextLink"].replace("skipToken=4", "skipToken=2")
    arm.faults.mangle("/accounts/acct-a/deployments", loop)
    report = run_poll(config_for(arm, database_url, subscriptions=[SUB_A]), clock, sessions)
    assert [(f.operation, f.error) for f in report.failures] == [
        ("list-deployments", f"malformed response: nextLink repeats in /subscriptions/{SUB_A}/resourceGroups/rg-a/"
                             "providers/Microsoft.CognitiveServices/accounts/acct-a/deployments")]


def test_poll_and_status_commands(arm: ArmEmulator, database_url: str, monkeypatch: pytest.MonkeyPatch,
                                  tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "retirewatch.toml"
    config.write_text(f'[database]\nurl = "{database_url}"\n[azure]\nresource_manager_endpoint = "{arm.base_url}"\n'
                      f'ca_bundle = "{arm.ca_bundle_path}"\nmax_retries = 1\nmax_retry_after_seconds = 1\n')
    if not database_url.startswith("sqlite"):
        assert main(["db", "upgrade", "--config", str(config)]) == 0
    now = ["--now", TODAY.isoformat(), "--config", str(config)]
    assert main(["poll", *now]) == 0
    out = capsys.readouterr().out
    assert "3 subscriptions, 3 accounts, 8 deployments" in out
    assert arm.count("/Microsoft.Insights/metrics", status=200) == 3, \
        "the first poll reads every account's usage, also into a database it creates"
    assert main(["status", "--format", "json", *now]) == 0
    rows = json.loads(capsys.readouterr().out)
    keys = {"deployment_id", "account", "deployment", "model", "version", "sku", "upgrade_option", "retirement_date",
            "consequence", "strikes_on", "days_left", "date_status", "replacement_model", "replacement_version",
            "update_scope"}
    assert all(keys <= set(row) for row in rows)
    chat = next(row for row in rows if row["deployment"] == "chat")
    assert chat["requests_7d"] is not None and chat["requests_30d"] is not None
    assert chat["deployment_id"].endswith("/resourceGroups/rg-a/providers/Microsoft.CognitiveServices/accounts/"
                                          "acct-a/deployments/chat")
    assert (chat["retirement_date"], chat["days_left"], chat["consequence"]) == \
        ((TODAY + timedelta(days=30)).isoformat(), 30, "outage")
    strikes = [row["strikes_on"] for row in rows if row["strikes_on"]]
    assert strikes == sorted(strikes) and rows[-1]["strikes_on"] is None
    assert main(["status", "--format", "csv", *now]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("deployment_id,")

    arm.faults.forbid_subscription(SUB_C)
    assert main(["poll", *now]) == 1
    assert "AuthorizationFailed" in capsys.readouterr().out


def test_dropped_connections_and_slow_answers_are_retried(arm: ArmEmulator, sessions: sessionmaker[Session],
                                                         database_url: str, clock: FixedClock) -> None:
    run_poll(config_for(arm, database_url, timeout_seconds=1), clock, sessions)
    baseline = len(arm.requests) - arm.count("/Microsoft.Insights/metrics")  # usage is read once a day
    arm.clear_requests()
    arm.faults.disconnect("/accounts/acct-a/deployments", times=2)  # closed without an answer, twice
    arm.faults.slow("/accounts/acct-b/deployments", seconds=2.5, times=1)  # longer than the read timeout
    report = run_poll(config_for(arm, database_url, timeout_seconds=1), clock, sessions)
    assert report.ok, report.failures
    assert report.deployments == 8 and report.events == 0
    assert arm.count("/accounts/acct-a/deployments", status=0) == 2
    assert report.requests == baseline + 3, "each failed attempt is retried once more, nothing else is"
    assert not arm.faults.pending()


def test_a_poll_waiting_for_the_lock_reads_again_once_it_holds_it(
        arm: ArmEmulator, sessions: sessionmaker[Session], database_url: str, clock: FixedClock) -> None:
    import threading

    from daemon.poll import run_poll_reading_first
    from daemon.store.poll_lock import poll_lock

    config = config_for(arm, database_url)
    run_poll(config, clock, sessions)
    with poll_lock(sessions.kw["bind"], 5) as held:  # another poll is running
        assert held
        result: list[Any] = []
        waiting = threading.Thread(target=lambda: result.append(
            run_poll_reading_first(config, clock, lambda: sessions, lock_wait_seconds=30)))
        waiting.start()
        deadline = time.monotonic() + 20
        while arm.count("/accounts/acct-c/deployments") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # the waiting poll has read the estate before it got the lock
        with arm.update() as estate:  # ... and the other poll sees (and stores) a change meanwhile
            estate["subscriptions"][2]["accounts"][0]["deployments"].append(deployment("c2", "gpt-5.1", "2025-11-13"))
    waiting.join(60)
    assert result and result[0].ok, result
    assert result[0].events == 1, "what was read before the lock was dropped and read again"
    with sessions() as session:
        assert session.scalars(select(DeploymentRow.name).where(DeploymentRow.name == "c2")).one() == "c2"


@pytest.mark.parametrize("reader", ["auto", "thread"], ids=["reading-process", "reading-thread"])
def test_the_reader_reads_usage_as_the_database_says_once_it_is_open(
        arm: ArmEmulator, tmp_path: Any, clock: FixedClock, reader: str) -> None:
    """`retirewatch poll` reads before the database is open; which accounts' usage is due is known only then, and
    is handed to the reader (a forked process: the CLI runs no other thread; or a thread) by the storing side."""
    import os
    import subprocess
    import sys

    from sqlalchemy import create_engine

    from daemon.store.schema import UsageReadRow

    database = tmp_path / "new.sqlite"
    config = tmp_path / "retirewatch.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{database}"\n[azure]\nresource_manager_endpoint = '
                      f'"{arm.base_url}"\nca_bundle = "{arm.ca_bundle_path}"\n[testing]\nallow_time_travel = true\n')

    def poll(hours: int) -> None:
        done = subprocess.run([sys.executable, "-m", "daemon.cli", "poll", "--config", str(config), "--now",
                               (clock.now() + timedelta(hours=hours)).isoformat()],
                              env=dict(os.environ, RETIREWATCH_POLL_READER=reader), capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr

    poll(0)
    assert arm.count("/Microsoft.Insights/metrics", status=200) == 3, "a new database: every account is due"
    poll(6)
    assert arm.count("/Microsoft.Insights/metrics") == 3, "read today already: no metrics request"
    with arm.update() as estate:  # a new account appears: only its usage is due
        estate["subscriptions"][0]["accounts"].append({**copy.deepcopy(estate["subscriptions"][0]["accounts"][0]),
                                                       "name": "acct-new"})
    poll(7)
    assert arm.count("/Microsoft.Insights/metrics", status=200) == 4
    engine = create_engine(f"sqlite:///{database}")
    with Session(engine) as session:
        assert len(session.scalars(select(UsageReadRow)).all()) == 4
    engine.dispose()


def test_an_unchanged_poll_writes_nothing_and_still_knows_what_it_saw(
        arm: ArmEmulator, sessions: sessionmaker[Session], database_url: str, clock: FixedClock) -> None:
    from daemon.store.schema import AccountRow

    config = config_for(arm, database_url)
    run_poll(config, clock, sessions)

    def stored() -> list[Any]:
        with sessions() as session:
            return [session.execute(select(model.__table__)).all()
                    for model in (SubscriptionRow, AccountRow, DeploymentRow, CatalogModelRow, EventRow)]

    before = stored()
    later = FixedClock(clock.now() + timedelta(hours=1))
    report = run_poll(config, later, sessions)
    assert report.ok and report.events == 0
    assert stored() == before
    with sessions() as session:
        seen = queries.deployments_last_seen(session)
    assert len(seen) == 8 and set(seen.values()) == {later.now()}


def poll_process(arm: ArmEmulator, tmp_path: Any, *options: str, **popen: Any) -> tuple[Any, Any]:
    """`retirewatch poll` in a process of its own (its config file, and the process), as a user runs it: reading
    in a forked child, into ``tmp_path/rw.sqlite``. ``options``: more of the command line (``-vv``)."""
    import os
    import subprocess
    import sys

    config = tmp_path / "retirewatch.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/rw.sqlite"\n[azure]\nresource_manager_endpoint = '
                      f'"{arm.base_url}"\nca_bundle = "{arm.ca_bundle_path}"\n')
    return config, subprocess.Popen(
        [sys.executable, "-m", "daemon.cli", "poll", "--config", str(config), *options],
        env={k: v for k, v in os.environ.items() if k != "RETIREWATCH_POLL_READER"}, **popen)


def test_the_reading_process_dies_with_a_killed_poll(arm: ArmEmulator, tmp_path: Any) -> None:
    import signal
    from pathlib import Path

    arm.faults.slow("/deployments", seconds=5)  # the poll is still reading when it is killed
    config, poll = poll_process(arm, tmp_path)

    def readers() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and entry.name != str(poll.pid):
                try:
                    if str(config).encode() in (entry / "cmdline").read_bytes():
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    deadline = time.monotonic() + 30
    while not (arm.count("/deployments") and readers()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert readers(), "the poll reads in a child process"
    poll.send_signal(signal.SIGKILL)
    poll.wait(10)
    deadline = time.monotonic() + 10
    while readers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert readers() == [], "the reading process outlived its poll"
    arm.faults.reset()


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_an_interrupted_poll_is_closed_as_stopped_keeping_what_it_stored(arm: ArmEmulator, tmp_path: Any,
                                                                         stop: str) -> None:
    """Ctrl-C in a terminal (SIGINT to the process group, the reading process included) or SIGTERM from a
    scheduler's timeout: the subscriptions stored so far stay, the poll is recorded as stopped rather than left
    running (the next poll would report it as died to the ops channel), and the exit code says which signal."""
    import os
    import signal
    import subprocess

    arm.faults.slow(SUB_B, seconds=8)  # A and C are stored, B is still being read
    _, poll = poll_process(arm, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    url = f"sqlite:///{tmp_path}/rw.sqlite"
    from daemon.store import database

    engine = database.open_database(url)
    sessions = database.session_factory(engine)
    try:
        deadline = time.monotonic() + 30
        stored: set[str] = set()
        while stored != {SUB_A, SUB_C} and time.monotonic() < deadline and poll.poll() is None:
            time.sleep(0.05)
            with sessions() as session:
                stored = set(session.scalars(select(SubscriptionRow.subscription_id)))
        assert stored == {SUB_A, SUB_C}
        if stop == "ctrl-c":
            os.killpg(poll.pid, signal.SIGINT)
        else:
            poll.send_signal(signal.SIGTERM)
        _, err = poll.communicate(timeout=30)
        assert poll.returncode == (130 if stop == "ctrl-c" else 143), err
        assert "interrupted: poll 1 stopped after 2 of 3 subscriptions" in err
        assert "Traceback" not in err
        with sessions() as session:
            assert [(row.status, row.subscriptions) for row in session.scalars(select(PollRow))] == [("stopped", 2)]
            assert {row.name for row in session.scalars(select(DeploymentRow))} >= {"chat", "c1"}
    finally:
        engine.dispose()
        if poll.poll() is None:
            poll.kill()
        arm.faults.reset()
