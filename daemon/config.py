"""Load and validate the TOML configuration.

Every problem becomes a :class:`ConfigError` that names the file, the key and what is wrong; the CLI turns it into
exit code 2. Secrets never come from this file: the Slack token, the database URL override and Azure credentials
are read from the environment.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_CONFIG = "RETIREWATCH_CONFIG"
ENV_DATABASE_URL = "RETIREWATCH_DATABASE_URL"
PUBLIC_CLOUD_ARM = "https://management.azure.com"


class ConfigError(Exception):
    """A configuration problem a person can fix: the message names the file and the key."""


def default_database_url() -> str:
    state_dir = Path(platformdirs.user_state_dir("retirewatch"))
    return f"sqlite:///{state_dir / 'retirewatch.sqlite'}"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(_Section):
    url: str = Field(default_factory=default_database_url)


PositiveInt = Annotated[int, Field(gt=0)]


class AzureConfig(_Section):
    subscriptions: tuple[str, ...] = ()
    resource_manager_endpoint: str = PUBLIC_CLOUD_ARM
    token_audience: str | None = None
    account_kinds: tuple[str, ...] = ("OpenAI", "AIServices")
    max_concurrency: PositiveInt = 16
    max_retries: Annotated[int, Field(ge=0, le=20)] = 4
    max_retry_after_seconds: Annotated[float, Field(ge=0)] = 60.0
    timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    managed_identity_client_id: str | None = None
    ca_bundle: str | None = None

    @field_validator("resource_manager_endpoint")
    @classmethod
    def _https_url(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("must be an https:// URL")
        return value.rstrip("/")

    @property
    def audience(self) -> str:
        """The token audience: ARM's audience is its own endpoint unless configured otherwise."""
        return (self.token_audience or self.resource_manager_endpoint).rstrip("/")


Days = Annotated[int, Field(ge=0, le=3650)]


class StageThresholds(_Section):
    """Days before the consequence strikes at which each stage starts; ``critical`` may fire more than once."""

    notice: Days | None = None
    warning: Days | None = None
    urgent: Days | None = None
    critical: tuple[Days, ...] | None = None


class EscalationConfig(_Section):
    notice: Days = 90
    warning: Days = 30
    urgent: Days = 14
    critical: tuple[Days, ...] = (7, 1)
    overdue_repeat_days: Annotated[int, Field(ge=1, le=365)] = 1
    unsilenceable: tuple[str, ...] = ("overdue",)
    # Overrides: by consequence (outage, forced-upgrade, auto-upgrade) and by update scope (minor-version, ...).
    # Where both name a stage, the earlier alert (more days) wins.
    consequence: dict[str, StageThresholds] = Field(default_factory=dict)
    scope: dict[str, StageThresholds] = Field(default_factory=dict)

    @field_validator("unsilenceable")
    @classmethod
    def _known_stages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - {"notice", "warning", "urgent", "critical", "overdue"})
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; stages are notice, warning, urgent, critical, overdue")
        return value

    @field_validator("consequence")
    @classmethod
    def _known_consequences(cls, value: dict[str, StageThresholds]) -> dict[str, StageThresholds]:
        unknown = sorted(set(value) - {"outage", "forced-upgrade", "auto-upgrade"})
        if unknown:
            raise ValueError(f"unknown consequence(s) {unknown}; use outage, forced-upgrade, auto-upgrade")
        return value


class SlackConfig(_Section):
    api_url: str = "https://slack.com/api/"
    default_channel: str = "#retirewatch"
    # Operational alerts (a channel that does not exist, Azure failing, ...) go here.
    fallback_channel: str | None = None
    # An account tag with this key names the owning channel directly.
    channel_tag: str = "retirewatch-channel"
    portal_url: str = "https://portal.azure.com"
    # Messages per second per channel (Slack allows about one, with short bursts).
    messages_per_second: Annotated[float, Field(gt=0, le=1000)] = 1.0
    timeout_seconds: Annotated[float, Field(gt=0)] = 15.0
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 8
    # An alert still unsent this many minutes after it was queued is reported once as an operational problem.
    pending_alarm_minutes: Annotated[int, Field(ge=1, le=10080)] = 60
    ca_bundle: str | None = None

    @field_validator("api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s):// URL")
        return value if value.endswith("/") else value + "/"


class RouteMatch(_Section):
    subscription: str | None = None
    resource_group: str | None = None
    account: str | None = None
    deployment: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class RouteConfig(_Section):
    name: str | None = None
    channel: str
    match: RouteMatch = RouteMatch()
    # Per-stage mentions, e.g. { critical = ["<!subteam^S0123>"], overdue = ["<!here>"] }.
    mentions: dict[str, tuple[str, ...]] = Field(default_factory=dict)


class TestingConfig(_Section):
    # Lets --now far (more than 24 h) from the wall clock send and change alert state. For test rigs, the demo and
    # emulator setups only: a rehearsal against a real workspace must never post.
    allow_time_travel: bool = False


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    database: DatabaseConfig = DatabaseConfig()
    azure: AzureConfig = AzureConfig()
    update_scopes: dict[str, str] = Field(default_factory=dict)
    escalation: EscalationConfig = EscalationConfig()
    slack: SlackConfig = SlackConfig()
    routes: tuple[RouteConfig, ...] = ()
    testing: TestingConfig = TestingConfig()
    source: str = "<defaults>"


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the config from ``path``, else ``$RETIREWATCH_CONFIG``, else use the defaults."""
    env = os.environ if env is None else env
    chosen = path if path is not None else env.get(ENV_CONFIG) or None
    raw: dict[str, Any] = {}
    source = "<defaults>"
    if chosen is not None:
        source = str(chosen)
        raw = _read_toml(Path(chosen))
    config = parse_config(raw, source)
    return _apply_environment(config, env)


def parse_config(raw: Mapping[str, Any], source: str) -> Config:
    if "source" in raw:
        raise ConfigError(f"{source}: source: unknown key")
    try:
        config = Config.model_validate({**raw, "source": source})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
    _check_scope_overrides(config)
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a TOML file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _describe(exc: ValidationError, source: str) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "<top level>"
        problem = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        if error["type"] != "extra_forbidden" and "input" in error and not isinstance(error["input"], dict):
            problem += f" (got {error['input']!r})"
        lines.append(f"{source}: {key}: {problem}")
    return "\n".join(lines)


def _check_scope_overrides(config: Config) -> None:
    from daemon.lifecycle.scope import parse_scope_overrides

    try:
        parse_scope_overrides(config.update_scopes)
    except ValueError as exc:
        raise ConfigError(f"{config.source}: update_scopes: {exc}") from None


def _apply_environment(config: Config, env: Mapping[str, str]) -> Config:
    url = env.get(ENV_DATABASE_URL)
    if url:
        return config.model_copy(update={"database": DatabaseConfig(url=url)})
    return config
