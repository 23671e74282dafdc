"""Every command has --help and is documented in the README (the habit of sqlite-utils' test_docs.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from daemon.cli import build_parser, main

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def commands() -> list[str]:
    parser = build_parser()
    found: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
                if nested:
                    found.extend(f"{name} {child}" for n in nested for child in n.choices)
                if not nested or not all(n.required for n in nested):  # `alerts` is a command and has `retry`
                    found.append(name)
    return found


@pytest.mark.parametrize("command", commands())
def test_every_command_has_help_and_is_documented(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*command.split(), "--help"])
    assert exit_.value.code == 0
    assert "usage: retirewatch" in capsys.readouterr().out
    assert f"`retirewatch {command}" in README, f"`retirewatch {command}` is missing from the README"


def test_the_commands_the_issues_name_exist() -> None:
    assert {"poll", "status", "demo", "notify", "alerts", "ack", "db upgrade", "db current"} <= set(commands())
