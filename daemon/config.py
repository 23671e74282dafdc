"""Load and validate the TOML configuration.

Every problem becomes a :class:`ConfigError` that names the file, the key and what is wrong; the CLI turns it into
exit code 2. Secrets never come from this file: the Slack token, the database URL override and Azure credentials
are read from the environment.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

import platformdirs
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from daemon.dates_file import DateRow, DatesFileError, read_dates_file
from daemon.lifecycle.curated import DEFAULT_CONFLICT_DAYS, CuratedDate, CuratedDates
from daemon.lifecycle.escalation import EscalationPolicy, Stage, Thresholds

ENV_CONFIG = "RETIREWATCH_CONFIG"
ENV_DATABASE_URL = "RETIREWATCH_DATABASE_URL"
# The Slack app's signing secret (Basic Information > App Credentials): verifies the requests Slack sends to
# POST /slack/interactions when someone presses Acknowledge or Snooze. Unset: that endpoint answers 503.
ENV_SIGNING_SECRET = "SLACK_SIGNING_SECRET"
PUBLIC_CLOUD_ARM = "https://management.azure.com"
STAGES = ("notice", "warning", "urgent", "critical", "overdue")
CONSEQUENCES = ("outage", "forced-upgrade", "auto-upgrade")
# The update scopes an [escalation.scope.NAME] section may name (daemon.lifecycle.scope.UpdateScope's values).
SCOPES = ("minor-version", "intermediate-version", "major-version", "variant", "generational",
          "model-change-general", "model-change-specialized", "deployment-option-change", "unknown")


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
    max_concurrency: PositiveInt = 32
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

    @field_validator("critical")
    @classmethod
    def _critical_decreasing(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        return _strictly_decreasing(value) if value is not None else None


class IdlePolicyConfig(_Section):
    """``[escalation.usage.idle]``: the whole policy for deployments with no traffic in ``[usage] idle_days``.

    Its own thresholds, not merged with ``[escalation]``: a stage left out is not told (default: one notice)."""

    notice: Days | None = 90
    warning: Days | None = None
    urgent: Days | None = None
    critical: tuple[Days, ...] | None = None
    overdue_repeat_days: Annotated[int, Field(ge=1, le=365)] = 30
    # Route mentions (@team) on alerts about idle deployments.
    mentions: bool = False

    @field_validator("critical")
    @classmethod
    def _critical_decreasing(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        return _strictly_decreasing(value) if value is not None else None


class UsageEscalationConfig(_Section):
    idle: IdlePolicyConfig = IdlePolicyConfig()


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
    # Deployments with no traffic (see [usage]) follow their own, gentler policy.
    usage: UsageEscalationConfig = UsageEscalationConfig()

    @field_validator("critical")
    @classmethod
    def _critical_decreasing(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        return _strictly_decreasing(value)

    @field_validator("unsilenceable")
    @classmethod
    def _known_stages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        _known("stage", value, STAGES)
        return value

    @field_validator("consequence")
    @classmethod
    def _known_consequences(cls, value: dict[str, StageThresholds]) -> dict[str, StageThresholds]:
        _known("consequence", value, CONSEQUENCES)
        return value

    @field_validator("scope")
    @classmethod
    def _known_scopes(cls, value: dict[str, StageThresholds]) -> dict[str, StageThresholds]:
        _known("update scope", value, SCOPES)
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
    # Channels delivered to at once, each paced at messages_per_second (one worker thread each).
    max_parallel_channels: Annotated[int, Field(ge=1, le=64)] = 20
    timeout_seconds: Annotated[float, Field(gt=0)] = 15.0
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 8
    # An alert still unsent this many minutes after it was queued is reported once as an operational problem.
    pending_alarm_minutes: Annotated[int, Field(ge=1, le=10080)] = 60
    ca_bundle: str | None = None
    # Channels an account tag (channel_tag) may name: globs such as "#team-*" or a channel id; absent: any.
    # A tag naming another channel is ignored (routes and the default channel apply) and reported once.
    allowed_channels: tuple[str, ...] | None = None
    # Grouped alerts: at least this many deployments routed to one channel that share model, version, consequence,
    # deadline and stage get one message (and one thread) listing them, not one each.
    group_min: Annotated[int, Field(ge=2, le=1_000_000)] = 5

    @field_validator("api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s):// URL")
        if value.startswith("http://") and not _is_loopback(value):
            raise ValueError("a plain http:// URL would send the bot token in clear: use https:// "
                             "(http:// is allowed only for loopback: 127.0.0.1, ::1, localhost)")
        return value if value.endswith("/") else value + "/"

    @field_validator("default_channel", "fallback_channel")
    @classmethod
    def _channel_named(cls, value: str | None) -> str | None:
        return _channel(value) if value is not None else None

    @field_validator("allowed_channels")
    @classmethod
    def _globs_named(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and any(not glob.strip().lstrip("#").strip() for glob in value):
            raise ValueError("an empty pattern matches no channel: remove it or name a channel glob")
        return value


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

    @field_validator("channel")
    @classmethod
    def _channel_named(cls, value: str) -> str:
        return _channel(value)

    @field_validator("mentions")
    @classmethod
    def _known_stages(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        _known("stage", value, STAGES)
        return value


class TestingConfig(_Section):
    # Lets --now far (more than 24 h) from the wall clock send and change alert state. For test rigs, the demo and
    # emulator setups only: a rehearsal against a real workspace must never post.
    allow_time_travel: bool = False


class DigestConfig(_Section):
    # The weekly digest lists what strikes within this many days (and what changed in the past week).
    horizon_days: Annotated[int, Field(ge=1, le=3650)] = 90


class UsageConfig(_Section):
    """``[usage]``: per-deployment traffic from Azure Monitor platform metrics, read with the same credential."""

    enabled: bool = True
    # "P1D": read each account's metrics at most once a UTC day ("P2D", ...: every N days); "poll": at every poll.
    every: str = "P1D"
    # A deployment with no request in this many days (up to Azure Monitor's 93 days of metrics) is idle.
    idle_days: Annotated[int, Field(ge=1, le=93)] = 30

    @field_validator("every")
    @classmethod
    def _every(cls, value: str) -> str:
        if value != "poll" and not re.fullmatch(r"P[1-9][0-9]{0,2}D", value):
            raise ValueError('must be "poll" or whole days as an ISO 8601 duration, e.g. "P1D"')
        return value

    @property
    def every_days(self) -> int | None:
        """Days between two reads of an account; None: every poll."""
        return None if self.every == "poll" else int(self.every[1:-1])


def _duration(value: Any) -> Any:
    from daemon.service.schedule import parse_duration

    return value if isinstance(value, timedelta) else parse_duration(value)


# Written "30s", "15m", "6h", "1d".
Duration = Annotated[timedelta, BeforeValidator(_duration)]


class ScheduleConfig(_Section):
    # IANA time zone the digest's crontab line is read in.
    timezone: str = "UTC"
    poll_every: Duration = timedelta(hours=6)
    # The retry pass over the outbox.
    deliver_every: Duration = timedelta(minutes=1)
    # Crontab line (minute hour day month day-of-week) in `timezone`.
    digest: str = "0 9 * * mon"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from daemon.service.schedule import zone

        zone(value)
        return value

    @field_validator("digest")
    @classmethod
    def _crontab(cls, value: str) -> str:
        from daemon.service.schedule import digest_trigger

        digest_trigger(value)
        return value


class ServiceConfig(_Section):
    # "host:port" for /healthz, /readyz and /metrics; absent: no HTTP endpoint.
    listen: str | None = None
    shutdown_grace_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    # How long the leader's lease and every claim (a poll unit, a message being sent) last: a replica that dies or
    # freezes delays its work by about this long. Renewed every third of it.
    lease_seconds: Annotated[float, Field(ge=3, le=3600)] = 30.0
    # Age of the last successful poll after which the service is not ready; default twice schedule.poll_every.
    stale_after: Duration | None = None

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be \"host:port\", e.g. \"0.0.0.0:9464\"")
        return value

    @property
    def address(self) -> tuple[str, int] | None:
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class DatesConfig(_Section):
    """Curated retirement dates (Microsoft's published retirement tables) beside the catalog's. TOML cannot hold
    ``[dates]`` and ``[[dates]]`` together, so the rows written in the config are ``[[dates.rows]]``."""

    # A CSV file (model,version,sku,region,retirement,source,note); relative to the config file's directory.
    dates_file: str | None = None
    # The catalog and a curated date further apart than this many days are a conflict, shown and told once.
    conflict_days: Annotated[int, Field(ge=0, le=3650)] = DEFAULT_CONFLICT_DAYS
    rows: tuple[DateRow, ...] = ()

    @field_validator("dates_file")
    @classmethod
    def _named(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("cannot be blank: name a CSV file, or leave the key out")
        return value


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    database: DatabaseConfig = DatabaseConfig()
    azure: AzureConfig = AzureConfig()
    update_scopes: dict[str, str] = Field(default_factory=dict)
    escalation: EscalationConfig = EscalationConfig()
    slack: SlackConfig = SlackConfig()
    routes: tuple[RouteConfig, ...] = ()
    testing: TestingConfig = TestingConfig()
    digest: DigestConfig = DigestConfig()
    usage: UsageConfig = UsageConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    service: ServiceConfig = ServiceConfig()
    dates: DatesConfig = DatesConfig()
    source: str = "<defaults>"
    # Filled in by parse_config from [dates]: the rows of dates_file, then [[dates.rows]]; never read from TOML.
    curated_dates: tuple[CuratedDate, ...] = ()


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


def _known(what: str, names: Any, known: tuple[str, ...]) -> None:
    unknown = sorted(set(names) - set(known))
    if unknown:
        listed = ", ".join(repr(name) for name in unknown)
        raise PydanticCustomError("unknown_name", "unknown {what} {listed}; use one of {known}",
                                  {"what": what + ("s" if len(unknown) > 1 else ""), "listed": listed,
                                   "known": ", ".join(known)})


def _strictly_decreasing(days: tuple[int, ...]) -> tuple[int, ...]:
    if any(later >= earlier for earlier, later in itertools.pairwise(days)):
        raise ValueError("critical days must be listed in strictly decreasing order, e.g. [7, 1]")
    return days


def _channel(value: str) -> str:
    if not value.strip().lstrip("#").strip():
        raise ValueError("a channel name cannot be blank: alerts sent there would be lost")
    return value


def _is_loopback(url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host.casefold() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_config(raw: Mapping[str, Any], source: str) -> Config:
    for internal in ("source", "curated_dates"):
        if internal in raw:
            raise ConfigError(f"{source}: {internal}: unknown key")
    try:
        config = Config.model_validate({**raw, "source": source})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
    problems = [*_scope_override_problems(config), *_threshold_problems(config.escalation),
                *_idle_threshold_problems(config.escalation.usage.idle)]
    if problems:
        raise ConfigError("\n".join(f"{source}: {problem}" for problem in problems))
    return config.model_copy(update={"curated_dates": _curated_rows(config.dates, source)})


def _curated_rows(dates: DatesConfig, source: str) -> tuple[CuratedDate, ...]:
    """The dates file's rows (its path relative to the config file's directory), then the config's own."""
    rows: tuple[CuratedDate, ...] = ()
    if dates.dates_file is not None:
        path = Path(dates.dates_file).expanduser()
        if not path.is_absolute():
            path = Path(source).parent / path
        try:
            rows = read_dates_file(path)
        except DatesFileError as exc:
            raise ConfigError("\n".join(f"{problem} (dates.dates_file in {source})" for problem in exc.problems)) \
                from None
    return rows + tuple(row.curated(f"{source} dates.rows[{i}]") for i, row in enumerate(dates.rows))


def curated_dates(config: Config) -> CuratedDates:
    """The curated retirement dates and the conflict threshold, as the pure core takes them."""
    return CuratedDates(config.curated_dates, config.dates.conflict_days)


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


def _scope_override_problems(config: Config) -> list[str]:
    from daemon.lifecycle.scope import parse_scope_overrides

    problems = []
    for key, value in config.update_scopes.items():  # one line per entry that is wrong
        try:
            parse_scope_overrides({key: value})
        except ValueError as exc:
            problems.append(f"update_scopes: {exc}")
    return problems


def _thresholds(section: StageThresholds) -> Thresholds:
    critical = tuple(section.critical) if section.critical is not None else None
    return Thresholds(section.notice, section.warning, section.urgent, critical)


def policy_from_config(config: EscalationConfig) -> EscalationPolicy:
    """The ``[escalation]`` section as the plain values the pure escalation policy takes."""
    return EscalationPolicy(
        base=Thresholds(config.notice, config.warning, config.urgent, tuple(config.critical)),
        by_consequence=MappingProxyType({k: _thresholds(v) for k, v in config.consequence.items()}),
        by_scope=MappingProxyType({k: _thresholds(v) for k, v in config.scope.items()}),
        overdue_repeat_days=config.overdue_repeat_days,
        unsilenceable=frozenset(Stage(name) for name in config.unsilenceable),
    )


def _threshold_problems(escalation: EscalationConfig) -> list[str]:
    """Thresholds must decrease strictly, notice > warning > urgent > critical[0] > critical[1] ..., in the
    defaults and wherever per-consequence and per-scope overrides merge with them: a stage that is not earlier
    than the next one would never be told."""
    policy = policy_from_config(escalation)
    problems: list[str] = []
    seen: set[tuple[str, int, str, int]] = set()
    for consequence in (None, *escalation.consequence):
        for scope in (None, *escalation.scope):
            merged = policy.thresholds_for(consequence or "", scope)
            where = " with ".join([f"escalation.consequence.{consequence}"] * bool(consequence)
                                  + [f"escalation.scope.{scope}"] * bool(scope)) or "escalation"
            ordered = [(name, days) for name, days in (("notice", merged.notice), ("warning", merged.warning),
                                                       ("urgent", merged.urgent)) if days is not None]
            ordered += [(f"critical[{i}]", days) for i, days in enumerate(merged.critical or ())]
            for (earlier, early_days), (later, late_days) in itertools.pairwise(ordered):
                if late_days < early_days:
                    continue
                key = (earlier, early_days, later, late_days)
                if key in seen:
                    continue  # the same clash, reached again through another combination
                seen.add(key)
                merged_note = "" if where == "escalation" else " (after merging with the defaults)"
                problems.append(f"{where}: {earlier} ({early_days} days) must be more than {later} "
                                f"({late_days} days){merged_note}: thresholds must decrease notice > warning > "
                                "urgent > critical, or a stage is never told")
    return problems


def signing_secret(env: Mapping[str, str] | None = None) -> str | None:
    """``SLACK_SIGNING_SECRET`` (surrounding blanks dropped), or None when it is unset or blank."""
    value = (os.environ if env is None else env).get(ENV_SIGNING_SECRET, "").strip()
    return value or None

def idle_policy_from_config(config: EscalationConfig) -> EscalationPolicy:
    """``[escalation.usage.idle]`` as a policy of its own (no per-consequence or per-scope overrides)."""
    idle = config.usage.idle
    return EscalationPolicy(
        base=Thresholds(idle.notice, idle.warning, idle.urgent, tuple(idle.critical) if idle.critical else None),
        overdue_repeat_days=idle.overdue_repeat_days,
        unsilenceable=frozenset(Stage(name) for name in config.unsilenceable),
    )


def _idle_threshold_problems(idle: IdlePolicyConfig) -> list[str]:
    ordered = [(name, days) for name, days in (("notice", idle.notice), ("warning", idle.warning),
                                               ("urgent", idle.urgent)) if days is not None]
    ordered += [(f"critical[{i}]", days) for i, days in enumerate(idle.critical or ())]
    return [f"escalation.usage.idle: {earlier} ({early} days) must be more than {later} ({late} days): thresholds "
            "must decrease notice > warning > urgent > critical, or a stage is never told"
            for (earlier, early), (later, late) in itertools.pairwise(ordered) if late >= early]


def _apply_environment(config: Config, env: Mapping[str, str]) -> Config:
    url = env.get(ENV_DATABASE_URL)
    if url:
        return config.model_copy(update={"database": DatabaseConfig(url=url)})
    return config
