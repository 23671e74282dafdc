"""Config: defaults, every documented key, and errors that name the file, the key and the problem (exit 2)."""

from __future__ import annotations

import itertools
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.cli import main
from daemon.config import (
    CONSEQUENCES,
    PUBLIC_CLOUD_ARM,
    SCOPES,
    STAGES,
    Config,
    ConfigError,
    load_config,
    parse_config,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "retirewatch.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "retirewatch.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    config = load_config(None, env={})
    assert config.azure.resource_manager_endpoint == PUBLIC_CLOUD_ARM
    assert config.azure.audience == PUBLIC_CLOUD_ARM
    assert config.azure.account_kinds == ("OpenAI", "AIServices")
    assert config.database.url.startswith("sqlite:///") and config.database.url.endswith("retirewatch.sqlite")


def test_the_example_file_is_valid_and_documents_every_key() -> None:
    config = load_config(EXAMPLE, env={})
    assert config.source == str(EXAMPLE)
    text = EXAMPLE.read_text()
    sections = (("database", config.database), ("azure", config.azure), ("escalation", config.escalation),
                ("slack", config.slack), ("[routes]", config.routes[0]), ("routes.match", config.routes[0].match),
                ("dates", config.dates), ("dates.rows", config.dates.rows[0]))
    for section_name, section in sections:
        assert f"[{section_name}]" in text or "." in section_name
        for key in type(section).model_fields:
            documented = (f"{key} =" in text or f"[{section_name}.{key}." in text
                          or f"[[{section_name}.{key}]]" in text)
            assert documented, f"{section_name}.{key} is not documented in the example config"
    assert "[update_scopes]" in text and "[escalation.consequence." in text and "[escalation.scope." in text


def test_environment_chooses_file_and_database(tmp_path: Path) -> None:
    path = write(tmp_path, '[azure]\nsubscriptions = ["a", "b"]\nresource_manager_endpoint = "https://x.test/"\n')
    config = load_config(None, env={"RETIREWATCH_CONFIG": str(path),
                                    "RETIREWATCH_DATABASE_URL": "postgresql+psycopg://u@h/db"})
    assert config.azure.subscriptions == ("a", "b")
    assert config.azure.resource_manager_endpoint == "https://x.test"
    assert config.azure.audience == "https://x.test"
    assert config.database.url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[azure]\nmax_concurency = 4\n", "azure.max_concurency: unknown key"),
        ("[azure]\nmax_concurrency = 'many'\n", "azure.max_concurrency: Input should be a valid integer"),
        ("[azure]\nmax_concurrency = 0\n", "azure.max_concurrency: Input should be greater than 0"),
        ("[azure]\nsubscriptions = 'abc'\n", "azure.subscriptions: Input should be a valid"),
        ("[azure]\nresource_manager_endpoint = 'http://plain'\n", "azure.resource_manager_endpoint: Value error, "
                                                                  "must be an https:// URL"),
        ("[databse]\nurl = 'x'\n", "databse: unknown key"),
        ("[azure\n", "not valid TOML"),
        ("[update_scopes]\n'gpt-4' = 'variant'\n", "update_scopes:"),
        ("[update_scopes]\n'gpt-4 -> x' = 'huge'\n", "update_scopes:"),
    ],
    ids=["unknown-key", "wrong-type", "out-of-range", "list-expected", "not-https", "unknown-section", "bad-toml",
         "scope-key-without-arrow", "unknown-scope"],
)
def test_bad_config_names_file_key_and_problem(tmp_path: Path, text: str, expected: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    assert str(path) in str(error.value)
    assert expected in str(error.value)
    assert main(["status", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("retirewatch: config error: ") and expected in err
    assert "Traceback" not in err


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    assert main(["--config", str(missing), "status"]) == 2
    assert f"{missing}: file not found" in capsys.readouterr().err


def test_config_is_immutable() -> None:
    config = Config()
    with pytest.raises(Exception, match="frozen"):
        config.azure.max_concurrency = 3  # type: ignore[misc]


def test_example_parses_as_plain_toml() -> None:
    assert "azure" in tomllib.loads(EXAMPLE.read_text())


# -- configs that would silently drop or misroute alerts ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key", "problem"),
    [
        ({"escalation": {"notice": 5, "warning": 30}}, "escalation:", "notice (5 days) must be more than warning"),
        ({"escalation": {"urgent": 7}}, "escalation:", "urgent (7 days) must be more than critical[0] (7 days)"),
        ({"escalation": {"critical": [1, 7]}}, "escalation.critical:", "strictly decreasing"),
        ({"escalation": {"consequence": {"outage": {"warning": 120}}}}, "escalation.consequence.outage:",
         "after merging with the defaults"),
        ({"escalation": {"consequence": {"outage": {"notice": 60}}, "scope": {"variant": {"warning": 70}}}},
         "escalation.consequence.outage with escalation.scope.variant:", "notice (60 days) must be more than warning"),
        ({"escalation": {"scope": {"major-version": {"critical": [3, 3]}}}}, "escalation.scope.major-version.critical",
         "strictly decreasing"),
        ({"escalation": {"unsilenceable": ["overdu"]}}, "escalation.unsilenceable:", "unknown stage 'overdu'"),
        ({"routes": [{"channel": "#a", "mentions": {"critcal": ["<!here>"]}}]}, "routes.0.mentions:",
         "unknown stage 'critcal'"),
        ({"escalation": {"consequence": {"outages": {"notice": 100}}}}, "escalation.consequence:",
         "unknown consequence 'outages'"),
        ({"escalation": {"scope": {"huge": {"notice": 100}}}}, "escalation.scope:", "unknown update scope 'huge'"),
        ({"update_scopes": {"a -> b": "huge"}}, "update_scopes:", "unknown scope 'huge'"),
        ({"slack": {"default_channel": ""}}, "slack.default_channel:", "cannot be blank"),
        ({"slack": {"default_channel": " # "}}, "slack.default_channel:", "cannot be blank"),
        ({"slack": {"fallback_channel": "  "}}, "slack.fallback_channel:", "cannot be blank"),
        ({"routes": [{"channel": "#"}]}, "routes.0.channel:", "cannot be blank"),
        ({"slack": {"allowed_channels": ["#ok", ""]}}, "slack.allowed_channels:", "empty pattern"),
        ({"slack": {"api_url": "http://slack.example.com/api/"}}, "slack.api_url:", "in clear"),
        ({"slack": {"api_url": "http://127.0.0.1.example.com/api/"}}, "slack.api_url:", "in clear"),
    ],
)
def test_what_would_drop_or_misroute_alerts_is_refused(raw: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(raw, "f.toml")
    line = next((line for line in str(error.value).splitlines() if f"f.toml: {key}" in line), None)
    assert line is not None, str(error.value)
    assert problem in line


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/api/", "http://127.8.9.10/api/", "http://[::1]:9/api/",
                                 "http://localhost:3000/api/", "https://slack.example.com/api/"])
def test_loopback_http_and_any_https_are_fine(url: str) -> None:
    assert parse_config({"slack": {"api_url": url}}, "f.toml").slack.api_url == url


def test_overrides_that_keep_the_order_are_fine() -> None:
    config = parse_config({"escalation": {
        "notice": 60, "warning": 20, "urgent": 10, "critical": [5, 2, 0],
        "consequence": {"outage": {"notice": 120, "critical": [8]}},
        "scope": {"model-change-general": {"notice": 180, "warning": 59}},
    }, "slack": {"allowed_channels": ["#team-*"]}, "routes": [{"channel": "#a", "mentions": {"overdue": ["x"]}}]},
        "f.toml")
    assert config.escalation.critical == (5, 2, 0)


# Each generator makes one kind of problem: (the raw fragment, the key a line must name, checked after pydantic?).
Problem = tuple[dict[str, Any], str, bool]
_days = st.integers(min_value=0, max_value=3650)
_junk = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_", min_size=1, max_size=12)


def _ordering() -> st.SearchStrategy[Problem]:
    return st.tuples(_days, _days).map(lambda p: ({"escalation": {"notice": min(p), "warning": max(p)}},
                                                  "escalation:", True))


def _critical() -> st.SearchStrategy[Problem]:
    return st.lists(_days, min_size=2, max_size=4).filter(
        lambda days: any(b >= a for a, b in itertools.pairwise(days))).map(
        lambda days: ({"escalation": {"critical": days}}, "escalation.critical", False))


def _merged() -> st.SearchStrategy[Problem]:
    return st.tuples(st.sampled_from(["outage", "forced-upgrade", "auto-upgrade"]), _days, _days).map(
        lambda p: ({"escalation": {"consequence": {p[0]: {"notice": min(p[1:]), "warning": max(p[1:])}}}},
                   f"escalation.consequence.{p[0]}", True))


def _unknown_stage() -> st.SearchStrategy[Problem]:
    return _junk.filter(lambda s: s not in STAGES).flatmap(lambda name: st.sampled_from([
        ({"escalation": {"unsilenceable": [name]}}, "escalation.unsilenceable", False),
        ({"routes": [{"channel": "#a", "mentions": {name: ["<!here>"]}}]}, "routes.0.mentions", False)]))


def _unknown_name() -> st.SearchStrategy[Problem]:
    return _junk.filter(lambda s: s not in CONSEQUENCES and s not in SCOPES).flatmap(lambda name: st.sampled_from([
        ({"escalation": {"consequence": {name: {"notice": 100}}}}, "escalation.consequence", False),
        ({"escalation": {"scope": {name: {"notice": 100}}}}, "escalation.scope", False),
        ({"update_scopes": {f"{name} -> x": name}}, "update_scopes", True)]))


def _blank_channel() -> st.SearchStrategy[Problem]:
    return st.sampled_from(["", " ", "#", " # ", "\t"]).flatmap(lambda blank: st.sampled_from([
        ({"slack": {"default_channel": blank}}, "slack.default_channel", False),
        ({"slack": {"fallback_channel": blank}}, "slack.fallback_channel", False),
        ({"routes": [{"channel": blank}]}, "routes.0.channel", False)]))


def _plain_http() -> st.SearchStrategy[Problem]:
    return st.sampled_from(["slack.com", "10.0.0.1", "example.internal", "127.0.0.1.nip.io", "[2001:db8::1]"]).map(
        lambda host: ({"slack": {"api_url": f"http://{host}/api/"}}, "slack.api_url", False))


_KINDS = [_ordering(), _critical(), _merged(), _unknown_stage(), _unknown_name(), _blank_channel(), _plain_http()]


def _merge(into: dict[str, Any], fragment: dict[str, Any]) -> None:
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif key not in into:
            into[key] = value


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"


def _toml(raw: dict[str, Any]) -> str:
    lines = [f"{key} = {_toml_value(value)}" for key, value in raw.items() if not isinstance(value, dict)]
    for section, values in raw.items():
        if isinstance(values, dict):
            lines.append(f"[{section}]")
            lines.extend(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in values.items())
    return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(problems=st.lists(st.one_of(*_KINDS), min_size=1, max_size=3,
                         unique_by=lambda p: "routes" if p[1].startswith("routes") else p[1]))
def test_generated_bad_configs_always_exit_2_with_one_line_per_problem(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], problems: list[Problem]) -> None:
    raw: dict[str, Any] = {}
    for fragment, _key, _late in problems:
        _merge(raw, fragment)
    path = tmp_path / "generated.toml"
    path.write_text(_toml(raw))
    capsys.readouterr()
    assert main(["status", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines and lines[0].startswith(f"retirewatch: config error: {path}: ")
    assert all(line.startswith(f"{path}: ") for line in lines[1:]), err
    assert all(": " in line.split(f"{path}: ", 1)[1] for line in lines), "every line names a key and a problem"
    # Problems pydantic finds are all reported together; the cross-field checks run once those are fixed.
    early = [key for _fragment, key, late in problems if not late]
    expected = early or [key for _fragment, key, _late in problems]
    for key in expected:
        assert any(f"{path}: {key}" in line for line in lines), (key, err)
