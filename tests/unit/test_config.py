"""Config: defaults, every documented key, and errors that name the file, the key and the problem (exit 2)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.config import PUBLIC_CLOUD_ARM, Config, ConfigError, load_config

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
                ("slack", config.slack), ("[routes]", config.routes[0]), ("routes.match", config.routes[0].match))
    for section_name, section in sections:
        assert f"[{section_name}]" in text or "." in section_name
        for key in type(section).model_fields:
            documented = f"{key} =" in text or f"[{section_name}.{key}." in text
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
