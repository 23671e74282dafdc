"""The files in deploy/ agree with the code they deploy: endpoints, ports, env vars, config keys, the Azure actions
the collector really performs, the Slack methods the notifier really calls, the metrics the service really serves.

Tools that are not Python packages are used when the machine has them and skipped, saying so, when not: promtool
(Prometheus rule unit tests), systemd-analyze (unit verification and its security score), kubectl (kustomize
build) and a container engine (build the image, run `retirewatch demo` in it)."""

from __future__ import annotations

import ast
import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.identity import ManagedIdentityCredential
from prometheus_client import CollectorRegistry, generate_latest
from slack_sdk import WebClient

from daemon.cli import EXIT_USAGE
from daemon.clock import FixedClock
from daemon.config import ENV_CONFIG, ENV_DATABASE_URL, Config, load_config, parse_config
from daemon.emulators.arm import ArmEmulator, RecordedRequest, demo_estate
from daemon.notify.slack import ENV_TOKEN
from daemon.poll import run_poll
from daemon.service.http import HealthServer, health_app
from daemon.service.metrics import build_registry
from daemon.service.schedule import Readiness
from daemon.store import database
from tests.integration.world import sign_in_to

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
DOCKERFILE = DEPLOY / "container" / "Dockerfile"
UNIT = DEPLOY / "systemd" / "retirewatch.service"
ENV_EXAMPLE = DEPLOY / "systemd" / "retirewatch.env.example"
SLACK_MANIFEST = DEPLOY / "slack-app-manifest.yaml"
RULES = DEPLOY / "prometheus" / "retirewatch-rules.yaml"
RULE_TESTS = DEPLOY / "prometheus" / "retirewatch-rules.test.yaml"
ROLE = DEPLOY / "azure" / "role.json"
SIGNING_SECRET = "SLACK_SIGNING_SECRET"  # read by the /slack/interactions handler
INTERACTIONS_PATH = "/slack/interactions"


# -- helpers --------------------------------------------------------------------------------------------------------


def yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def k8s_objects() -> dict[str, list[dict[str, Any]]]:
    """kind -> the objects of that kind, from every manifest in deploy/kubernetes (kustomization aside)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml_documents(path):
            found.setdefault(doc["kind"], []).append(doc)
    return found


def one(kind: str) -> dict[str, Any]:
    objects = k8s_objects().get(kind, [])
    assert len(objects) == 1, f"expected one {kind} in deploy/kubernetes, found {len(objects)}"
    return objects[0]


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def configmap_config(name: str = "retirewatch.toml") -> Config:
    data = one("ConfigMap")["data"]
    return parse_config(tomllib.loads(data[name]), f"configmap.yaml:{name}")


def port_of(listen: str | None) -> int:
    assert listen is not None, "[service] listen must be set for the probes"
    return int(listen.rpartition(":")[2])


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfile(text: str | None = None) -> list[Instruction]:
    """Instructions (line continuations joined, comments dropped) of deploy/container/Dockerfile."""
    text = DOCKERFILE.read_text(encoding="utf-8") if text is None else text
    found: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        found.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    return found


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    starts = [i for i, instruction in enumerate(instructions) if instruction.keyword == "FROM"]
    assert starts, "the Dockerfile has no FROM"
    return instructions[starts[-1]:]


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(item, str) for item in value), arguments
    return value


def wsgi_status(app: Any, path: str) -> int:
    seen: list[str] = []
    b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda status, _headers: seen.append(status)))
    return int(seen[0].split()[0])


# -- everything parses ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("*.yaml")), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_file_parses(path: Path) -> None:
    documents = yaml_documents(path)
    assert documents and all(isinstance(doc, dict) for doc in documents)


def test_the_deploy_files_the_issue_asks_for_exist() -> None:
    for path in (UNIT, ENV_EXAMPLE, DOCKERFILE, ROOT / ".dockerignore", SLACK_MANIFEST, RULES, ROLE):
        assert path.is_file(), path
    kinds = set(k8s_objects())
    assert {"Deployment", "Service", "ConfigMap", "Secret", "ServiceAccount", "Job"} <= kinds, kinds


# -- Kubernetes -----------------------------------------------------------------------------------------------------


def test_manifests_are_namespace_agnostic_and_every_object_is_named() -> None:
    for kind, objects in k8s_objects().items():
        for obj in objects:
            metadata = obj["metadata"]
            assert "namespace" not in metadata, f"{kind} {metadata} names a namespace"
            assert metadata.get("name") or metadata.get("generateName"), f"{kind} has no name"
            assert obj["apiVersion"], kind


def test_deployment_runs_several_replicas_one_by_one_with_probes_on_the_service_endpoints() -> None:
    deployment = one("Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    main = container(deployment)
    assert main["args"][0] == "run" and "db" not in main["args"], "the service must not migrate on start"
    ports = {port["name"]: port["containerPort"] for port in main["ports"]}
    assert ports == {"http": port_of(configmap_config().service.listen)}, "containerPort != [service] listen"
    probes = {name: main[name]["httpGet"] for name in ("readinessProbe", "livenessProbe", "startupProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["startupProbe"]["path"] == "/healthz"
    assert {probe["port"] for probe in probes.values()} == {"http"}
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > configmap_config().service.shutdown_grace_seconds


def test_the_probe_paths_are_the_ones_the_service_answers() -> None:
    """The paths in the manifests, asked of the service's own WSGI app: liveness never depends on the database,
    readiness fails (503) when the watcher is stale, so Kubernetes takes such a replica out of the Service."""
    main = container(one("Deployment"))
    ready = health_app(lambda: Readiness(True, "fresh"), CollectorRegistry())
    stale = health_app(lambda: Readiness(False, "last successful poll 13h ago"), CollectorRegistry())
    assert wsgi_status(ready, main["livenessProbe"]["httpGet"]["path"]) == 200
    assert wsgi_status(stale, main["livenessProbe"]["httpGet"]["path"]) == 200
    assert wsgi_status(ready, main["readinessProbe"]["httpGet"]["path"]) == 200
    assert wsgi_status(stale, main["readinessProbe"]["httpGet"]["path"]) == 503
    assert wsgi_status(ready, one("Deployment")["spec"]["template"]["metadata"]["annotations"]
                       ["prometheus.io/path"]) == 200
    assert wsgi_status(ready, "/readiness") == 404  # a typo in a probe would not pass


def test_configmap_is_a_valid_config_and_the_secret_supplies_what_the_code_reads() -> None:
    deployment, secret = one("Deployment"), one("Secret")
    main = container(deployment)
    env = {item["name"]: item for item in main["env"]}
    config_path = Path(env[ENV_CONFIG]["value"])
    mounts = {mount["name"]: mount["mountPath"] for mount in main["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    config_volume = next(name for name, path in mounts.items() if Path(path) == config_path.parent)
    assert volumes[config_volume]["configMap"]["name"] == one("ConfigMap")["metadata"]["name"]
    assert config_path.name in one("ConfigMap")["data"]

    secret_keys = set(secret["stringData"])
    assert secret_keys == {ENV_TOKEN, SIGNING_SECRET, ENV_DATABASE_URL}
    for workload in (deployment, *k8s_objects()["Job"]):
        for item in container(workload)["env"]:
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret_keys, item
                assert item["name"] == ref["key"]
    assert {ENV_TOKEN, SIGNING_SECRET, ENV_DATABASE_URL} <= set(env)

    # Several replicas share one database: the URL the Secret gives wins over the file, and is PostgreSQL.
    config = load_config(None, env={ENV_CONFIG: str(ROOT / "deploy/container/retirewatch.toml"),
                                    ENV_DATABASE_URL: secret["stringData"][ENV_DATABASE_URL]})
    assert config.database.url.startswith("postgresql+psycopg://")


def test_service_pdb_and_ingress_select_the_deployments_pods_and_port() -> None:
    deployment = one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service, pdb, ingress = one("Service"), one("PodDisruptionBudget"), one("Ingress")
    for selector in (deployment["spec"]["selector"]["matchLabels"], service["spec"]["selector"],
                     pdb["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    paths = [path for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    assert [path["path"] for path in paths] == [INTERACTIONS_PATH], "expose only Slack's endpoint"
    backend = paths[0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] == service["spec"]["ports"][0]["name"]
    assert ingress["spec"]["tls"]
    # The migration Job's pods are not the service's: the Service and the PDB must not pick them.
    job_labels = one("Job")["spec"]["template"]["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= job_labels.items()


def test_workload_identity_wiring() -> None:
    deployment, account = one("Deployment"), one("ServiceAccount")
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert pod["spec"]["serviceAccountName"] == account["metadata"]["name"]
    assert "azure.workload.identity/client-id" in account["metadata"]["annotations"]
    env = {item["name"] for item in container(deployment)["env"]}
    # The webhook injects these; setting them by hand would fight it (and AZURE_CLIENT_SECRET would bypass it).
    assert not env & {"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_SECRET"}


def test_migration_job_runs_db_upgrade_with_the_same_image_and_database() -> None:
    job, deployment = one("Job"), one("Deployment")
    migrate, main = container(job), container(deployment)
    assert migrate["args"] == ["db", "upgrade"]
    assert migrate["image"] == main["image"], "migrate with the version you roll out"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert "generateName" in job["metadata"], "a Job's template is immutable: each run is a new Job"
    database_env = {item["name"]: item for item in migrate["env"]}[ENV_DATABASE_URL]
    assert database_env == {item["name"]: item for item in main["env"]}[ENV_DATABASE_URL]


def test_pods_run_as_the_images_non_root_user_with_a_read_only_root() -> None:
    user = next(i.arguments for i in final_stage(dockerfile()) if i.keyword == "USER")
    uid, _, gid = user.partition(":")
    for workload in (one("Deployment"), one("Job")):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert str(pod["securityContext"]["runAsUser"]) == uid
        assert str(pod["securityContext"]["runAsGroup"]) == gid
        assert pod["automountServiceAccountToken"] is False
        context = container(workload)["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]


def test_kustomization_lists_the_long_lived_objects_and_builds() -> None:
    kustomization = yaml_documents(K8S / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    assert {"deployment.yaml", "service.yaml", "configmap.yaml", "serviceaccount.yaml"} <= listed
    assert not listed & {"secret.example.yaml", "migrate-job.yaml", "ingress.example.yaml"}
    assert all((K8S / name).is_file() for name in listed)
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the kustomize build was not tried (the YAML was checked above)")
    built = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert built.returncode == 0, built.stderr
    kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(built.stdout) if doc)
    assert kinds == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"]


# -- container image ------------------------------------------------------------------------------------------------


def test_dockerfile_final_stage_is_slim_non_root_with_healthcheck_and_no_migration_on_start() -> None:
    instructions = dockerfile()
    arg_defaults = dict(i.arguments.split("=", 1) for i in instructions if i.keyword == "ARG" and "=" in i.arguments)
    stage = final_stage(instructions)
    base = stage[0].arguments.split()[0]
    base = re.sub(r"\$\{(\w+)\}", lambda m: arg_defaults[m.group(1)], base)
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", base), base
    keywords = [i.keyword for i in stage]
    users = [i.arguments for i in stage if i.keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}, "the image must run as a non-root user"
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    entrypoint = exec_form(next(i.arguments for i in stage if i.keyword == "ENTRYPOINT"))
    command = exec_form(next(i.arguments for i in stage if i.keyword == "CMD"))
    assert entrypoint == ["retirewatch"]
    assert command[0] == "run"
    assert "upgrade" not in entrypoint + command and "db" not in entrypoint + command
    assert not any("db upgrade" in i.arguments for i in stage if i.keyword == "RUN")
    healthcheck = next(i.arguments for i in stage if i.keyword == "HEALTHCHECK")
    assert "CMD" in healthcheck


def test_image_default_config_and_healthcheck_url_and_exposed_port_agree() -> None:
    stage = final_stage(dockerfile())
    env: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(instruction.arguments)))
    copied = [i.arguments.split()[-2:] for i in stage if i.keyword == "COPY" and "--from" not in i.arguments]
    config_source = next(source for source, target in copied if target == env[ENV_CONFIG])
    config = load_config(ROOT / config_source, env={})
    port = port_of(config.service.listen)
    exposed = {int(i.arguments.split("/")[0]) for i in stage if i.keyword == "EXPOSE"}
    assert exposed == {port}
    assert env["RETIREWATCH_HEALTHZ_URL"] == f"http://127.0.0.1:{port}/healthz"
    assert config.database.url.startswith("sqlite:///")  # no URL given: the default, under XDG_STATE_HOME


def healthcheck_command() -> list[str]:
    arguments = next(i.arguments for i in final_stage(dockerfile()) if i.keyword == "HEALTHCHECK")
    command = exec_form(arguments.split("CMD", 1)[1].strip())
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


def test_the_healthcheck_command_passes_on_a_live_healthz_and_fails_without_one() -> None:
    """The image's HEALTHCHECK, run as written (the slim image has no curl) against the service's HTTP server."""
    server = HealthServer("127.0.0.1", 0, health_app(lambda: Readiness(False, "stale"), CollectorRegistry()))
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/healthz"
        alive = subprocess.run(healthcheck_command(), env={**os.environ, "RETIREWATCH_HEALTHZ_URL": url},
                               capture_output=True, timeout=30)
        assert alive.returncode == 0, alive.stderr
        missing = subprocess.run(healthcheck_command(),
                                 env={**os.environ, "RETIREWATCH_HEALTHZ_URL": url.replace("/healthz", "/nope")},
                                 capture_output=True, timeout=30)
        assert missing.returncode != 0
    finally:
        server.stop()
    gone = subprocess.run(healthcheck_command(), env={**os.environ, "RETIREWATCH_HEALTHZ_URL": url},
                          capture_output=True, timeout=30)
    assert gone.returncode != 0


def test_dockerignore_keeps_what_the_build_copies_and_drops_local_state() -> None:
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert {".git", ".venv"} <= set(ignored)
    copied = [part for i in dockerfile() if i.keyword == "COPY" and "--from" not in i.arguments
              for part in i.arguments.split()[:-1]]
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not any(source == pattern or source.startswith(pattern.rstrip("/") + "/") for pattern in ignored), \
            f"{source} is copied but .dockerignore drops it"


def docker_ready(base: str) -> str:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no container engine: `docker` is not installed, the image was not built")
    info = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                          timeout=60)
    if info.returncode != 0:
        first = (info.stderr.strip().splitlines() or ["no answer"])[-1]
        pytest.skip(f"the docker client is installed but no engine answers ({first}): the image was not built")
    present = subprocess.run([docker, "image", "inspect", base], capture_output=True, timeout=60)
    if present.returncode != 0:
        pytest.skip(f"the base image {base} is not present locally (and only package registries are reachable; "
                    f"{BASE_IMAGE_ENV} names a local stand-in): the image was not built")
    return docker


BASE_IMAGE_ENV = "RETIREWATCH_TEST_PYTHON_IMAGE"


@pytest.mark.timeout(1800)
def test_the_image_builds_runs_the_demo_and_serves_healthz_as_non_root() -> None:
    """Build deploy/container/Dockerfile (base: its PYTHON_IMAGE, or $RETIREWATCH_TEST_PYTHON_IMAGE, a local image
    with python and venv), run `retirewatch demo` in it with a read-only root and no capabilities, then the
    service: its HEALTHCHECK must report healthy and SIGTERM must stop it with exit code 0."""
    default = next(i.arguments.split("=", 1)[1] for i in dockerfile() if i.keyword == "ARG"
                   and i.arguments.startswith("PYTHON_IMAGE="))
    base = os.environ.get(BASE_IMAGE_ENV) or default
    docker = docker_ready(base)
    env = dict(os.environ)
    if subprocess.run([docker, "buildx", "version"], capture_output=True, timeout=60).returncode != 0:
        env["DOCKER_BUILDKIT"] = "0"  # a client without the buildx plugin: the classic builder
    tag = f"retirewatch-test:{uuid.uuid4().hex[:12]}"
    build = subprocess.run([docker, "build", "--network", "host", "--build-arg", f"PYTHON_IMAGE={base}", "-f",
                            str(DOCKERFILE), "-t", tag, str(ROOT)], capture_output=True, text=True, timeout=1500,
                           env=env)
    assert build.returncode == 0, (build.stdout + build.stderr)[-4000:]
    locked = ["--network", "none", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL"]
    container_id = ""
    try:
        demo = subprocess.run([docker, "run", "--rm", *locked, tag, "demo"], capture_output=True, text=True,
                              timeout=300)
        assert demo.returncode == 0, demo.stderr[-4000:]
        assert "Simulated Azure estate" in demo.stdout
        inspected = json.loads(subprocess.run([docker, "image", "inspect", tag], capture_output=True, text=True,
                                              check=True).stdout)[0]["Config"]
        assert inspected["User"] == "10001:10001"
        assert inspected["Entrypoint"] == ["retirewatch"] and inspected["Cmd"][0] == "run"
        assert inspected["Healthcheck"]["Test"][0] == "CMD"

        started = subprocess.run([docker, "run", "-d", *locked, "-e", f"{ENV_TOKEN}=xoxb-test", "--health-interval",
                                  "2s", "--health-start-period", "1s", tag], capture_output=True, text=True,
                                 timeout=120, check=True)
        container_id = started.stdout.strip()
        health = ""
        for _ in range(60):
            health = subprocess.run([docker, "inspect", "-f", "{{.State.Health.Status}}", container_id],
                                    capture_output=True, text=True, timeout=60).stdout.strip()
            if health in {"healthy", "unhealthy"}:
                break
            time.sleep(1)
        assert health == "healthy"
        subprocess.run([docker, "stop", "-t", "45", container_id], capture_output=True, timeout=120, check=True)
        code = subprocess.run([docker, "inspect", "-f", "{{.State.ExitCode}}", container_id], capture_output=True,
                              text=True, timeout=60).stdout.strip()
        assert code == "0", "SIGTERM must end the service cleanly"
    finally:
        if container_id:
            subprocess.run([docker, "rm", "-f", container_id], capture_output=True, timeout=120)
        subprocess.run([docker, "image", "rm", "-f", tag], capture_output=True, timeout=120)


# -- systemd --------------------------------------------------------------------------------------------------------


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def test_systemd_unit_runs_as_its_own_user_restarts_on_failure_and_is_hardened() -> None:
    service = unit()["Service"]
    assert service["User"] not in {"", "root", "0"}
    assert service["Restart"] == "on-failure"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ProtectHome"] == "yes"
    assert service["PrivateTmp"] == "yes"
    assert service["CapabilityBoundingSet"] == ""
    # A config error (exit 2) needs a person, not a restart loop.
    assert str(EXIT_USAGE) in service["RestartPreventExitStatus"].split()
    command = shlex.split(service["ExecStart"])
    assert Path(command[0]).name == "retirewatch" and command[1] == "run"
    assert "ExecStartPre" not in service and "upgrade" not in service["ExecStart"]
    assert float(service["TimeoutStopSec"]) > Config().service.shutdown_grace_seconds
    environment = dict(line.split("=", 2)[1:] for line in UNIT.read_text().splitlines()
                       if line.startswith("Environment="))
    assert Path(environment[ENV_CONFIG]).name == "retirewatch.toml"
    # The default SQLite file lands in the state directory systemd creates for the user.
    assert f"{environment['XDG_STATE_HOME']}/{service['StateDirectory']}" == service["WorkingDirectory"]
    assert "Install" in unit() and unit()["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_env_example_names_every_secret_the_service_reads() -> None:
    keys = {line.split("=", 1)[0] for line in ENV_EXAMPLE.read_text().splitlines()
            if line and not line.startswith("#") and "=" in line}
    assert keys == {ENV_TOKEN, SIGNING_SECRET, ENV_DATABASE_URL}
    assert unit()["Service"]["EnvironmentFile"].lstrip("-").endswith("retirewatch.env")


def test_systemd_analyze_verifies_the_unit_and_scores_it_well(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the unit was checked as an INI file only")
    # verify wants ExecStart to exist: point it at this checkout's console script.
    installed = Path(sys.executable).with_name("retirewatch")
    if not installed.exists():
        pytest.skip(f"{installed} does not exist (pip install -e . first)")
    copy = tmp_path / "retirewatch.service"
    copy.write_text(UNIT.read_text().replace("/opt/retirewatch/bin/retirewatch", str(installed)))
    verified = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr
    security = subprocess.run([analyze, "security", "--offline=yes", str(copy)], capture_output=True, text=True,
                              timeout=60)
    if security.returncode != 0 and "offline" in security.stderr:
        pytest.skip(f"this systemd-analyze cannot score a unit offline: {security.stderr.strip()[:200]}")
    score = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
    assert score, security.stdout[-500:] + security.stderr
    assert float(score.group(1)) <= 2.0, security.stdout


# -- Azure: the role covers exactly what the collector reads ---------------------------------------------------------


def arm_action(method: str, path: str) -> str:
    """The Azure RBAC action an ARM request needs: the resource type path after the last ``providers`` segment
    (or Microsoft.Resources for /subscriptions...), then ``read`` for a GET or ``NAME/action`` for a POST."""
    segments = [segment for segment in path.split("/") if segment]
    lowered = [segment.casefold() for segment in segments]
    if "providers" in lowered:
        last = len(lowered) - 1 - lowered[::-1].index("providers")
        namespace, *rest = segments[last + 1:]
    else:
        namespace, rest = "Microsoft.Resources", segments
    if method == "GET":
        return "/".join([namespace, *rest[0::2], "read"])
    assert method == "POST", f"{method} {path}: the collector should only read"
    return "/".join([namespace, *rest[:-1][0::2], rest[-1], "action"])


@pytest.mark.parametrize(("method", "path", "action"), [
    ("GET", "/subscriptions", "Microsoft.Resources/subscriptions/read"),
    ("GET", "/subscriptions/s1/providers/Microsoft.CognitiveServices/accounts",
     "Microsoft.CognitiveServices/accounts/read"),
    ("GET", "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a1/deployments",
     "Microsoft.CognitiveServices/accounts/deployments/read"),
    ("GET", "/subscriptions/s1/providers/Microsoft.CognitiveServices/locations/eastus/models",
     "Microsoft.CognitiveServices/locations/models/read"),
    ("GET", "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a1/providers/"
     "Microsoft.Insights/metrics", "Microsoft.Insights/metrics/read"),
    ("POST", "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a1/listKeys",
     "Microsoft.CognitiveServices/accounts/listKeys/action"),
])
def test_arm_action_names(method: str, path: str, action: str) -> None:
    assert arm_action(method, path) == action


@dataclass
class DemoPoll:
    requests: list[RecordedRequest]
    exposition: str


@pytest.fixture(scope="module")
def demo_poll(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoPoll]:
    """One real poll of the demo estate through the ARM emulator, every subscription listed (none configured)."""
    now = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
    patch = pytest.MonkeyPatch()
    url = f"sqlite:///{tmp_path_factory.mktemp('deploy') / 'retirewatch.sqlite'}"
    try:
        with ArmEmulator(demo_estate(now.date())) as arm:
            sign_in_to(arm, patch)
            config = parse_config({"database": {"url": url},
                                   "azure": {"resource_manager_endpoint": arm.base_url,
                                             "ca_bundle": arm.ca_bundle_path}}, "<deploy test>")
            engine = database.open_database(url)
            sessions = database.session_factory(engine)
            clock = FixedClock(now)
            report = run_poll(config, clock, sessions, credential=ManagedIdentityCredential())
            assert report.ok, report.failures
            registry, _ = build_registry(config, clock, sessions)
            yield DemoPoll(arm.requests, generate_latest(registry).decode())
            engine.dispose()
    finally:
        patch.undo()


def test_the_role_grants_exactly_the_actions_a_poll_performs(demo_poll: DemoPoll) -> None:
    role = json.loads(ROLE.read_text())
    assert role["IsCustom"] is True
    assert role["NotActions"] == [] and role["DataActions"] == [] and role["NotDataActions"] == []
    assert role["AssignableScopes"]
    performed = {arm_action(request.method, request.path) for request in demo_poll.requests}
    # The demo estate exercises every kind of read the collector has (a fine-tune needs the account's model list).
    assert len(performed) >= 5, performed
    granted = {action.casefold() for action in role["Actions"]}
    missing = sorted(action for action in performed if action.casefold() not in granted)
    unused = sorted(action for action in role["Actions"] if action.casefold() not in
                    {performed_action.casefold() for performed_action in performed})
    assert not missing, f"deploy/azure/role.json lacks {missing}: a poll performs them (README: Operations)"
    assert not unused, f"deploy/azure/role.json grants {unused}, which no poll performs"
    assert all(not action.endswith(("/write", "/delete", "/action")) for action in role["Actions"])


def test_the_readme_names_every_action_the_role_grants() -> None:
    readme = (ROOT / "README.md").read_text()
    for action in json.loads(ROLE.read_text())["Actions"]:
        assert f"`{action}`" in readme, action


# -- Slack: the manifest's scopes are what the notifier calls -------------------------------------------------------

# Bot scopes each Web API method needs, for public and private channels alike (retirewatch posts to both).
SCOPES_FOR_METHOD = {
    "chat.postMessage": {"chat:write", "chat:write.public"},  # .public: post without being invited first
    "chat.update": {"chat:write"},
    "conversations.history": {"channels:history", "groups:history"},
    "conversations.replies": {"channels:history", "groups:history"},
    "conversations.list": {"channels:read", "groups:read"},
}


def slack_methods_called() -> set[str]:
    """Every Slack Web API method daemon/ calls through slack_sdk's WebClient (the emulators aside)."""
    api = {name for name in vars(WebClient) if not name.startswith("_")}
    methods: set[str] = set()
    for path in (ROOT / "daemon").rglob("*.py"):
        if "emulators" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr in api and node.func.attr != "api_call":
                methods.add(node.func.attr.replace("_", "."))
            elif node.func.attr == "api_call" and node.args and isinstance(node.args[0], ast.Constant):
                methods.add(str(node.args[0].value))
    return methods


def test_the_slack_manifest_grants_exactly_the_scopes_the_calls_need() -> None:
    methods = slack_methods_called()
    assert {"chat.postMessage", "conversations.history"} <= methods, methods  # the scan finds the real calls
    unknown = sorted(methods - set(SCOPES_FOR_METHOD))
    assert not unknown, (f"daemon/ calls Slack's {unknown}: add the bot scopes they need to SCOPES_FOR_METHOD and "
                         "to deploy/slack-app-manifest.yaml")
    needed = set().union(*(SCOPES_FOR_METHOD[method] for method in methods))
    manifest = yaml_documents(SLACK_MANIFEST)[0]
    granted = manifest["oauth_config"]["scopes"]["bot"]
    assert len(granted) == len(set(granted))
    assert set(granted) == needed, f"missing {sorted(needed - set(granted))}, unused {sorted(set(granted) - needed)}"
    assert "user" not in manifest["oauth_config"]["scopes"], "retirewatch acts as its bot only"
    readme = (ROOT / "README.md").read_text()
    assert all(f"`{scope}`" in readme for scope in needed)


def test_the_slack_manifest_enables_interactivity_on_the_services_endpoint() -> None:
    manifest = yaml_documents(SLACK_MANIFEST)[0]
    interactivity = manifest["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    url = interactivity["request_url"]
    assert url.startswith("https://") and url.endswith(INTERACTIONS_PATH)
    assert manifest["settings"]["token_rotation_enabled"] is False, "the service reads one static bot token"
    assert manifest["settings"]["socket_mode_enabled"] is False
    assert manifest["features"]["bot_user"]["display_name"]
    assert len(manifest["display_information"]["description"]) <= 140  # Slack's limit


def test_the_slack_manifest_documents_every_metadata_event_type() -> None:
    text = SLACK_MANIFEST.read_text()
    event_types: set[str] = set()
    for module in ("daemon/notify/render.py", "daemon/digest/render.py"):
        tree = ast.parse((ROOT / module).read_text())
        for node in tree.body:
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                    and any(isinstance(t, ast.Name) and t.id.startswith("EVENT_") for t in node.targets)):
                event_types.add(str(node.value.value))
    assert len(event_types) >= 4, event_types
    for event_type in event_types:
        assert event_type in text, event_type


# -- Prometheus -----------------------------------------------------------------------------------------------------


def exposed_names(exposition: str) -> set[str]:
    return {line.split()[2] for line in exposition.splitlines() if line.startswith("# TYPE ")} | {
        re.split(r"[{ ]", line, maxsplit=1)[0] for line in exposition.splitlines() if line and line[0] != "#"}


def test_the_rules_use_only_metrics_the_service_serves(demo_poll: DemoPoll) -> None:
    served = exposed_names(demo_poll.exposition)
    assert "retirewatch_last_successful_poll_timestamp_seconds" in served
    groups = yaml_documents(RULES)[0]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    alerts = {rule["alert"] for rule in rules}
    assert {"RetirewatchWatcherStale", "RetirewatchAlertsFailed"} <= alerts
    for rule in rules:
        used = set(re.findall(r"\bretirewatch_[a-z_]+", rule["expr"]))
        assert used, rule["alert"]
        assert used <= served | {name + "_total" for name in served}, (rule["alert"], used - served)
    stale = next(rule for rule in rules if rule["alert"] == "RetirewatchWatcherStale")
    assert "retirewatch_last_successful_poll_timestamp_seconds" in stale["expr"]
    failed = next(rule for rule in rules if rule["alert"] == "RetirewatchAlertsFailed")
    assert "retirewatch_alerts_failed_total" in failed["expr"]


def test_the_stale_rule_fires_after_the_deployments_stale_after() -> None:
    stale = next(rule for group in yaml_documents(RULES)[0]["groups"] for rule in group["rules"]
                 if rule["alert"] == "RetirewatchWatcherStale")
    threshold = re.search(r">\s*([\d\s*]+)$", stale["expr"].strip())
    assert threshold, stale["expr"]
    seconds = 1
    for factor in threshold.group(1).split("*"):
        seconds *= int(factor)
    config = configmap_config()
    stale_after = config.service.stale_after or 2 * config.schedule.poll_every
    assert timedelta(seconds=seconds) == stale_after


def promtool() -> str:
    found = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not found:
        pytest.skip("promtool is not installed (Debian: prometheus; or set PROMTOOL): the rules' unit tests did "
                    "not run")
    return found


def test_promtool_checks_the_rules_and_their_unit_tests_pass() -> None:
    tool = promtool()
    checked = subprocess.run([tool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([tool, "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent, capture_output=True,
                            text=True, timeout=120)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


# -- README ---------------------------------------------------------------------------------------------------------


def test_every_deploy_path_the_readme_names_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"\bdeploy/[\w./-]*[\w]", readme))
    assert len(named) >= 8, named
    for name in named:
        assert (ROOT / name).exists(), f"README names {name}, which does not exist"
