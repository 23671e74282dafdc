"""The ARM emulator, driven by the real Azure SDK clients and a real azure-identity credential over HTTPS."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import requests
from azure.core.exceptions import (
    ClientAuthenticationError,
    DecodeError,
    DeserializationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceResponseError,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
from azure.mgmt.resource.subscriptions import SubscriptionClient

from daemon.emulators import scenario as estate_tools
from daemon.emulators.arm import ArmEmulator, ScenarioError, demo_estate, load_scenario
from tests.conftest import TODAY
from tests.integration.world import sign_in_to

SUB_A, SUB_B = "aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"


def entry(name: str, version: str, kind: str = "OpenAI", **model: Any) -> dict[str, Any]:
    return {"kind": kind, "skuName": "S0", "model": {"format": "OpenAI", "name": name, "version": version, **model}}


def deployment(name: str, model: str = "gpt-4o", version: str = "2024-05-13", **properties: Any) -> dict[str, Any]:
    return {"name": name, "sku": {"name": "Standard", "capacity": 10},
            "properties": {"model": {"format": "OpenAI", "name": model, "version": version}, **properties}}


ESTATE: dict[str, Any] = {
    "locationModels": {"eastus": [
        entry("gpt-4o", "2024-05-13", lifecycleStatus="GenerallyAvailable",
              deprecation={"inference": "{{today+200}}T00:00:00Z", "deprecationStatus": "Planned"},
              skus=[{"name": "Standard", "deprecationDate": "{{today+23}}T00:00:00Z"},
                    {"name": "provisioned", "deprecationDate": "2099-12-31T00:00:00Z"}],
              replacementConfig={"targetModelName": "gpt-5.1", "autoUpgradeStartDate": "{{today-4}}T07:00:00Z"}),
        entry("gpt-4o", "2024-05-13", kind="AIServices"),
        entry("gpt-5.1", "2025-11-13", isDefaultVersion=True),
        entry("o1", "2024-12-17"),
        entry("o3", "2025-04-16"),
    ]},
    "subscriptions": [
        {"subscriptionId": SUB_A, "displayName": "prod", "accounts": [
            {"name": "acct-a", "resourceGroup": "rg-a", "kind": "OpenAI", "location": "eastus",
             "tags": {"team": "search"},
             "deployments": [deployment(f"dep-{i}", versionUpgradeOption="NoAutoUpgrade") for i in range(5)],
             "models": [{"format": "OpenAI", "name": "gpt-4o.ft-1", "version": "1",
                         "deprecation": {"inference": "{{today}}T00:00:00Z"}}]},
            {"name": "acct-b", "resourceGroup": "rg-b", "kind": "AIServices", "location": "eastus",
             "deployments": [deployment("b1")]},
            {"name": "acct-c", "resourceGroup": "rg-b", "kind": "OpenAI", "location": "eastus", "deployments": []},
        ]},
        {"subscriptionId": SUB_B, "displayName": "staging", "accounts": [
            {"name": "acct-z", "resourceGroup": "rg-z", "kind": "OpenAI", "location": "eastus",
             "deployments": [deployment("z1", "o1", "2024-12-17")]}]},
    ],
}


@pytest.fixture(scope="module")
def running() -> Iterator[ArmEmulator]:
    with ArmEmulator(load_scenario(ESTATE, TODAY), page_size=2) as emulator:
        yield emulator


@pytest.fixture
def arm(running: ArmEmulator, monkeypatch: pytest.MonkeyPatch) -> ArmEmulator:
    """One emulator for the module (starting and stopping costs ~0.5 s), reset for every test."""
    running.scenario = load_scenario(ESTATE, TODAY)
    running.reset_faults()
    running.clear_requests()
    sign_in_to(running, monkeypatch)
    return running


def client_options(arm: ArmEmulator, **extra: Any) -> dict[str, Any]:
    """What a client needs to reach the emulator: its URL, the token scope for it, a transport trusting its CA
    (and, to keep tests fast, a short backoff between retries)."""
    transport = RequestsTransport(connection_verify=arm.ca_bundle_path,
                                  read_timeout=extra.pop("read_timeout", 10), connection_timeout=10)
    return {"base_url": arm.base_url, "credential_scopes": [arm.scope], "transport": transport,
            "retry_backoff_factor": 0.01, **extra}


def cognitive(arm: ArmEmulator, subscription_id: str = SUB_A, **extra: Any) -> CognitiveServicesManagementClient:
    return CognitiveServicesManagementClient(ManagedIdentityCredential(), subscription_id,
                                             **client_options(arm, **extra))


def token(arm: ArmEmulator) -> str:
    return ManagedIdentityCredential().get_token(arm.scope).token


def raw_get(arm: ArmEmulator, path: str, bearer: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return requests.get(f"{arm.base_url}{path}", headers=headers, verify=arm.ca_bundle_path, timeout=10)


# -- listing and paging ----------------------------------------------------------------------------------------------

def test_every_list_is_paged_and_every_item_comes_back(arm: ArmEmulator) -> None:
    subscriptions = list(SubscriptionClient(ManagedIdentityCredential(), **client_options(arm)).subscriptions.list())
    assert [(s.subscription_id, s.display_name, s.state) for s in subscriptions] == \
        [(SUB_A, "prod", "Enabled"), (SUB_B, "staging", "Enabled")]
    assert subscriptions[0].id == f"/subscriptions/{SUB_A}"

    client = cognitive(arm)
    accounts = list(client.accounts.list())
    assert [a.name for a in accounts] == ["acct-a", "acct-b", "acct-c"]  # two pages
    acct_a = accounts[0]
    assert acct_a.id == \
        f"/subscriptions/{SUB_A}/resourceGroups/rg-a/providers/Microsoft.CognitiveServices/accounts/acct-a"
    assert (acct_a.kind, acct_a.location, acct_a.tags, acct_a.type) == \
        ("OpenAI", "eastus", {"team": "search"}, "Microsoft.CognitiveServices/accounts")
    assert acct_a.properties.provisioning_state == "Succeeded" and acct_a.properties.endpoint
    assert accounts[1].tags is None, "an account without tags has none"

    deployments = list(client.deployments.list("rg-a", "acct-a"))
    assert [d.name for d in deployments] == [f"dep-{i}" for i in range(5)]  # three pages
    first = deployments[0]
    assert first.id == f"{acct_a.id}/deployments/dep-0"
    assert first.type == "Microsoft.CognitiveServices/accounts/deployments"
    assert (first.sku.name, first.sku.capacity) == ("Standard", 10)
    assert (first.properties.model.name, first.properties.model.version, first.properties.version_upgrade_option,
            first.properties.provisioning_state) == ("gpt-4o", "2024-05-13", "NoAutoUpgrade", "Succeeded")

    catalog = list(client.models.list("eastus"))
    assert [(m.kind, m.model.name) for m in catalog] == [(e["kind"], e["model"]["name"])
                                                        for e in ESTATE["locationModels"]["eastus"]]
    assert [m.name for m in client.accounts.list_models("rg-a", "acct-a")] == ["gpt-4o.ft-1"]
    assert list(client.models.list("westus")) == [], "a region without a catalog lists nothing"

    pages = [r for r in arm.requests if "$skipToken" in r.query]
    assert pages, "paging was not exercised"
    assert all(r.query["api-version"] == ["2025-09-01"] for r in pages if "CognitiveServices" in r.path), \
        "the SDK follows nextLink with its own api-version, once"
    assert arm.count("/accounts/acct-a/deployments") == 3
    assert arm.count("/subscriptions?api-version=2022-12-01") == 1, "two subscriptions: one page"


def test_paths_match_case_insensitively_and_unknown_resources_are_404(arm: ArmEmulator) -> None:
    bearer = token(arm)
    shouted = raw_get(arm, f"/SUBSCRIPTIONS/{SUB_A.upper()}/ResourceGroups/RG-A/PROVIDERS/microsoft.cognitiveservices"
                           "/Accounts/ACCT-A/Deployments?api-version=2025-09-01", bearer)
    assert shouted.status_code == 200 and [d["name"] for d in shouted.json()["value"]] == ["dep-0", "dep-1"]
    assert shouted.json()["nextLink"].startswith(f"{arm.base_url}/SUBSCRIPTIONS/")

    missing = raw_get(arm, "/subscriptions/ffffffff-0000-4000-8000-000000000000/providers/Microsoft.CognitiveServices"
                           "/accounts?api-version=2025-09-01", bearer)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "SubscriptionNotFound"
    no_version = raw_get(arm, f"/subscriptions/{SUB_A}/providers/Microsoft.CognitiveServices/accounts", bearer)
    assert no_version.status_code == 400 and no_version.json()["error"]["code"] == "MissingApiVersionParameter"

    with pytest.raises(ResourceNotFoundError) as raised:
        list(cognitive(arm).deployments.list("rg-a", "no-such-account"))
    assert raised.value.error is not None and raised.value.error.code == "ResourceNotFound"
    assert cognitive(arm).deployments.get("rg-a", "acct-a", "dep-3").name == "dep-3"


def test_relative_dates_resolve_against_the_day_given(arm: ArmEmulator) -> None:
    catalog = list(cognitive(arm).models.list("eastus"))
    gpt4o = catalog[0].model
    assert gpt4o.deprecation.inference == f"{TODAY + timedelta(days=200)}T00:00:00Z", "the SDK keeps this one a str"
    assert gpt4o.skus[0].deprecation_date.date() == TODAY + timedelta(days=23)
    assert gpt4o.skus[1].deprecation_date.date() == date(2099, 12, 31), "the sentinel is served as is"
    assert gpt4o.replacement_config.auto_upgrade_start_date == \
        datetime.combine(TODAY - timedelta(days=4), datetime.min.time(), UTC) + timedelta(hours=7)
    assert load_scenario(ESTATE, TODAY)["subscriptions"][0]["accounts"][0]["models"][0]["deprecation"] == \
        {"inference": f"{TODAY}T00:00:00Z"}
    assert "{{" in json.dumps(ESTATE), "loading never changes its source"
    with pytest.raises(ScenarioError, match="tomorrow"):
        load_scenario({"subscriptions": [], "locationModels": {"eastus": [entry("x", "1", note="{{tomorrow}}")]}},
                      TODAY)
    with pytest.raises(ScenarioError, match="subscriptionId"):
        load_scenario({"subscriptions": [{"displayName": "no id"}]}, TODAY)


# -- authentication --------------------------------------------------------------------------------------------------

def test_arm_answers_401_unless_the_token_was_issued_here_for_this_audience(arm: ArmEmulator) -> None:
    path = f"/subscriptions/{SUB_A}/providers/Microsoft.CognitiveServices/accounts?api-version=2025-09-01"
    nothing = raw_get(arm, path)
    assert nothing.status_code == 401 and nothing.json()["error"]["code"] == "AuthenticationFailed"
    assert nothing.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")
    forged = raw_get(arm, path, "eyJhbGciOi.forged.token")
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert raw_get(arm, path, token(arm)).status_code == 200

    # the SDK's default scope is https://management.azure.com/.default whatever base_url says
    default_scope = CognitiveServicesManagementClient(
        ManagedIdentityCredential(), SUB_A, base_url=arm.base_url,
        transport=RequestsTransport(connection_verify=arm.ca_bundle_path))
    with pytest.raises(ClientAuthenticationError) as raised:
        list(default_scope.accounts.list())
    assert raised.value.status_code == 401
    assert raised.value.error is not None and raised.value.error.code == "InvalidAuthenticationTokenAudience"
    assert arm.token_grants[-1].resource == "https://management.azure.com"

    client = cognitive(arm)
    assert len(list(client.accounts.list())) == 3
    arm.revoke_tokens()
    with pytest.raises(ClientAuthenticationError):
        list(client.accounts.list())


def test_token_endpoint_speaks_app_service_managed_identity(arm: ArmEmulator,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint, secret = arm.identity_env["IDENTITY_ENDPOINT"], arm.identity_env["IDENTITY_HEADER"]
    good = {"api-version": "2019-08-01", "resource": arm.base_url}
    assert requests.get(endpoint, params=good, timeout=5).status_code == 401, "X-IDENTITY-HEADER is required"
    wrong_version = requests.get(endpoint, params={**good, "api-version": "2017-09-01"},
                                 headers={"X-IDENTITY-HEADER": secret}, timeout=5)
    assert wrong_version.status_code == 400 and "statusCode" in wrong_version.json()
    answer = requests.get(endpoint, params=good, headers={"X-IDENTITY-HEADER": secret}, timeout=5).json()
    assert answer["resource"] == arm.base_url and answer["token_type"] == "Bearer"
    assert int(answer["expires_on"]) > time.time() + 3000
    issued = arm.tokens_issued
    assert arm.token_grants[-1].client_id is None, "no client_id: the system-assigned identity"

    user_assigned = "11111111-2222-4333-8444-555555555555"
    assert ManagedIdentityCredential(client_id=user_assigned).get_token(arm.scope).token
    assert arm.token_grants[-1].client_id == user_assigned and arm.token_grants[-1].resource == arm.base_url

    monkeypatch.setenv("AZURE_CLIENT_ID", user_assigned)  # DefaultAzureCredential's managed identity reads it
    credential = DefaultAzureCredential(exclude_cli_credential=True, exclude_powershell_credential=True,
                                        exclude_developer_cli_credential=True)
    client = CognitiveServicesManagementClient(credential, SUB_B, **client_options(arm))
    assert [d.name for d in client.deployments.list("rg-z", "acct-z")] == ["z1"]
    assert arm.tokens_issued == issued + 2 and arm.token_grants[-1].client_id == user_assigned
    list(client.deployments.list("rg-z", "acct-z"))
    assert arm.tokens_issued == issued + 2, "the credential caches its token"


# -- faults ----------------------------------------------------------------------------------------------------------

def test_throttling_is_retried_by_the_sdk_after_retry_after(arm: ArmEmulator) -> None:
    arm.faults.throttle("/deployments", times=2, retry_after=0.4)
    started = time.monotonic()
    assert len(list(cognitive(arm).deployments.list("rg-a", "acct-a"))) == 5
    assert time.monotonic() - started >= 0.8, "each Retry-After was slept"
    assert arm.count("/deployments", status=429) == 2 and arm.count("/deployments", status=200) == 3
    assert arm.faults.pending() == []

    bearer = token(arm)
    arm.faults.throttle(SUB_B, times=1, retry_after=7)
    throttled = raw_get(arm, f"/subscriptions/{SUB_B}/providers/Microsoft.CognitiveServices/accounts"
                             "?api-version=2025-09-01", bearer)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "7"
    assert throttled.json()["error"]["code"] == "SubscriptionRequestsThrottled"


def test_server_errors_and_dropped_connections_are_retried_until_the_budget_is_spent(arm: ArmEmulator) -> None:
    arm.faults.server_error("/accounts/acct-a/deployments", times=1, status=503)
    arm.faults.disconnect("/accounts/acct-a/deployments", times=1)
    assert len(list(cognitive(arm).deployments.list("rg-a", "acct-a"))) == 5
    assert arm.count("/accounts/acct-a/deployments", status=503) == 1
    assert arm.count("/accounts/acct-a/deployments", status=0) == 1

    arm.faults.server_error("/accounts/acct-b/deployments", times=None, status=500)
    with pytest.raises(HttpResponseError) as raised:
        list(cognitive(arm, retry_total=1).deployments.list("rg-b", "acct-b"))
    assert raised.value.status_code == 500
    assert arm.count("/accounts/acct-b/deployments", status=500) == 2, "the first try and one retry"


def test_a_forbidden_subscription_fails_alone(arm: ArmEmulator) -> None:
    arm.faults.forbid_subscription(SUB_B)
    with pytest.raises(HttpResponseError) as raised:
        list(cognitive(arm, SUB_B).accounts.list())
    assert raised.value.status_code == 403
    assert raised.value.error is not None and raised.value.error.code == "AuthorizationFailed"
    assert arm.count(SUB_B, status=403) == 1, "403 is not retried"
    assert len(list(cognitive(arm, SUB_A).accounts.list())) == 3


def test_malformed_bodies_raise(arm: ArmEmulator) -> None:
    client = cognitive(arm)
    arm.faults.malformed("/accounts/acct-a/deployments", times=1)
    with pytest.raises(DecodeError):
        list(client.deployments.list("rg-a", "acct-a"))

    arm.faults.wrong_value("/locations/eastus/models", ["value", 0, "model", "skus", 0, "deprecationDate"],
                           "next Tuesday", times=1)
    with pytest.raises(DeserializationError):
        list(client.models.list("eastus"))
    assert len(list(client.models.list("eastus"))) == 5, "times=1: the next answer is clean"

    def capacity_as_text(body: dict[str, Any]) -> None:
        body["value"][0]["sku"]["capacity"] = "lots"

    arm.faults.mangle("/accounts/acct-b/deployments", capacity_as_text)
    with pytest.raises(DeserializationError):
        list(client.deployments.list("rg-b", "acct-b"))


def test_slow_answers_meet_the_client_timeout(arm: ArmEmulator) -> None:
    arm.faults.slow("/accounts/acct-b/deployments", seconds=1.0, times=1)
    with pytest.raises(ServiceResponseError):
        list(cognitive(arm, retry_total=0, read_timeout=0.3).deployments.list("rg-b", "acct-b"))
    started = time.monotonic()
    assert [d.name for d in cognitive(arm).deployments.list("rg-b", "acct-b")] == ["b1"]
    assert time.monotonic() - started < 0.9


def test_a_client_frozen_mid_handshake_does_not_stall_the_others(arm: ArmEmulator) -> None:
    """A replica stopped with SIGSTOP can hold a connection whose TLS handshake never finishes."""
    port = int(arm.base_url.rsplit(":", 1)[1].split("/")[0])
    with socket.create_connection(("127.0.0.1", port)) as frozen:
        frozen.sendall(b"\x16\x03\x01")  # the first bytes of a ClientHello, and then nothing
        started = time.monotonic()
        assert raw_get(arm, f"/subscriptions/{SUB_A}/providers/Microsoft.CognitiveServices/accounts"
                            "?api-version=2024-10-01", token(arm)).status_code == 200
        assert time.monotonic() - started < 5


def test_faults_count_down_only_when_they_act(arm: ArmEmulator) -> None:
    bearer = token(arm)
    missing = f"/subscriptions/{SUB_A}/resourceGroups/rg-a/providers/Microsoft.CognitiveServices/accounts/nope/models"
    arm.faults.wrong_value("/models", ["value", 0, "name"], "renamed", times=1)
    assert raw_get(arm, f"{missing}?api-version=2025-09-01", bearer).status_code == 404
    listed = raw_get(arm, f"/subscriptions/{SUB_A}/resourceGroups/rg-a/providers/Microsoft.CognitiveServices"
                          "/accounts/acct-a/models?api-version=2025-09-01", bearer)
    assert listed.json()["value"][0]["name"] == "renamed", "the 404 did not use it up"
    assert arm.requests[-1].faults == ("wrong_value:value.0.name:/models",)

    arm.faults.throttle("", times=1, retry_after=0)
    arm.faults.server_error("", times=1)
    assert raw_get(arm, "/subscriptions?api-version=2022-12-01", bearer).status_code == 429
    assert raw_get(arm, "/subscriptions?api-version=2022-12-01", bearer).status_code == 500
    assert raw_get(arm, "/subscriptions?api-version=2022-12-01", bearer).status_code == 200
    arm.faults.server_error("", times=None)
    arm.reset_faults()
    assert raw_get(arm, "/subscriptions?api-version=2022-12-01", bearer).status_code == 200


# -- headers, read budget --------------------------------------------------------------------------------------------

def test_every_answer_carries_request_id_and_remaining_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    with ArmEmulator(load_scenario(ESTATE, TODAY), read_capacity=3, read_refill_per_second=0.5,
                     throttle_when_exhausted=True) as arm:
        sign_in_to(arm, monkeypatch)
        path = f"/subscriptions/{SUB_A}/providers/Microsoft.CognitiveServices/accounts?api-version=2025-09-01"
        unauthorized = raw_get(arm, path)
        assert unauthorized.headers["x-ms-request-id"] and "x-ms-ratelimit-remaining-subscription-reads" in \
            unauthorized.headers
        bearer = token(arm)
        answers = [raw_get(arm, path, bearer) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [a.headers["x-ms-ratelimit-remaining-subscription-reads"] for a in answers[:3]] == ["2", "1", "0"]
        assert int(answers[3].headers["Retry-After"]) >= 1
        assert len({a.headers["x-ms-request-id"] for a in answers}) == 4
        other = raw_get(arm, path.replace(SUB_A, SUB_B), bearer)
        assert other.status_code == 200, "each subscription has its own bucket"


# -- a living estate -------------------------------------------------------------------------------------------------

def test_the_estate_changes_between_polls(arm: ArmEmulator) -> None:
    client = cognitive(arm)
    assert len(list(client.deployments.list("rg-a", "acct-a"))) == 5
    with arm.update() as estate:
        estate_tools.deployment(estate, "acct-a", "dep-0")["properties"]["model"].update(name="gpt-5.1",
                                                                                       version="2025-11-13")
        estate_tools.remove_deployment(estate, "acct-a", "dep-4")
        estate_tools.add_deployment(estate, "acct-c", deployment("new-one", "o1", "2024-12-17"))
        estate_tools.remove_account(estate, "acct-b")
        for model in estate_tools.catalog_models(estate, "gpt-4o", "2024-05-13"):
            model["deprecation"] = {"inference": "2027-01-31T00:00:00Z", "deprecationStatus": "Tentative"}
    deployments = {d.name: d for d in client.deployments.list("rg-a", "acct-a")}
    assert sorted(deployments) == ["dep-0", "dep-1", "dep-2", "dep-3"]
    assert deployments["dep-0"].properties.model.version == "2025-11-13"
    assert [d.name for d in client.deployments.list("rg-b", "acct-c")] == ["new-one"]
    assert [a.name for a in client.accounts.list()] == ["acct-a", "acct-c"]
    with pytest.raises(ResourceNotFoundError):
        list(client.deployments.list("rg-b", "acct-b"))
    moved = [m.model for m in client.models.list("eastus") if m.model.name == "gpt-4o"]
    assert len(moved) == 2 and all(m.deprecation.deprecation_status == "Tentative" for m in moved)

    arm.scenario = {"subscriptions": [{"subscriptionId": SUB_A, "accounts": []}]}
    assert list(client.accounts.list()) == []
    with pytest.raises(ScenarioError), arm.update() as estate:
        estate["subscriptions"].append({"displayName": "no id"})


# -- the packaged demo estate ----------------------------------------------------------------------------------------

def test_the_demo_estate_is_dated_from_today_and_carries_the_traps() -> None:
    estate = demo_estate(TODAY)
    text = json.dumps(estate)
    assert "{{" not in text
    subscriptions = estate["subscriptions"]
    accounts = [a for _, a in estate_tools.iter_accounts(estate)]
    deployments = [d for a in accounts for d in a.get("deployments", [])]
    assert 3 <= len(subscriptions) <= 4 and 15 <= len(deployments) <= 25
    assert {a["location"] for a in accounts} >= {"eastus", "swedencentral", "westeurope"}
    assert {a["kind"] for a in accounts} >= {"OpenAI", "AIServices"}
    tags = [a.get("tags") for a in accounts]
    assert {"team": "search"}.items() <= next(t for t in tags if t and t.get("team") == "search").items()
    assert any(t and t.get("team") == "support-bot" for t in tags)
    assert any(t and t.get("retirewatch-channel") == "#ml-platform" for t in tags)
    assert any(not t for t in tags), "one account has no tags"

    options = {d["properties"].get("versionUpgradeOption") for d in deployments}
    assert {"NoAutoUpgrade", "OnceCurrentVersionExpired", "OnceNewDefaultVersionAvailable", None} < options, \
        "every option, the absent one and an unknown one"
    assert any("provisioned" in d["sku"]["name"].casefold() for d in deployments)

    models = [e["model"] for entries in estate["locationModels"].values() for e in entries]
    statuses = {m.get("lifecycleStatus") for m in models}
    assert {"Preview", "GenerallyAvailable", "Legacy", "Deprecating"} <= statuses
    assert statuses - {"Preview", "GenerallyAvailable", "Stable", "Legacy", "Deprecating", "Deprecated"}, \
        "an unknown lifecycleStatus"
    assert {m.get("deprecation", {}).get("deprecationStatus") for m in models} >= {"Planned", "Tentative"}
    assert "2099-12-31T00:00:00Z" in text
    assert any(s["name"] != s["name"].title() and s["name"].islower() for m in models for s in m.get("skus", []))
    assert any(m.get("capabilities", {}).get("chatCompletion") == "true" for m in models)
    kinds_of: dict[tuple[str, str], set[str]] = {}
    for entries in estate["locationModels"].values():
        for e in entries:
            kinds_of.setdefault((e["model"]["name"], e["model"]["version"]), set()).add(e["kind"])
    assert any(kinds == {"OpenAI", "AIServices"} for kinds in kinds_of.values())
    replacements = {m["replacementConfig"]["targetModelName"] for m in models if m.get("replacementConfig")}
    assert {"gpt-5.1", "gpt-4.1-mini", "o3", "o4-mini", "gpt-5.2-chat", "gpt-image-1-mini"} <= replacements
    assert all((name, version) in kinds_of for name, version in
               [("gpt-5.1", "2025-11-13"), ("o3", "2025-04-16"), ("gpt-4.1-mini", "2025-04-14")]), \
        "the replacements are in the catalog"
    dates = sorted({date.fromisoformat(v[:10]) for v in _strings(estate) if v[:4].isdigit() and v[4:5] == "-"
                    and not v.startswith("2099")})
    assert dates[0] < TODAY < dates[-1], "some dates are past, some to come"
    assert any(m.get("name", "").count(".ft-") for a in accounts for m in a.get("models", [])), \
        "a fine-tuned model only in an account's own list"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
