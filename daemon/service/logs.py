"""Logging: one line per event, as text or JSON (for log shippers), and never a token.

:class:`RedactingFilter` sits on the handler, so whatever logs (our code, slack_sdk, azure-core, urllib3) passes
through it: Slack tokens (``xoxb-``, ``xoxp-``, ...) and ``Bearer`` credentials are replaced before formatting.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

_SECRETS = (
    re.compile(r"\bxox[abeoprs]-[A-Za-z0-9-]+"),
    re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)([\"']?(?:authorization|token|client_secret|identity_header|x-identity-header)[\"']?\s*[:=]\s*"
               r"[\"']?)(?!\[redacted\]|bearer\b)[^\s\"',}]+"),
)
REDACTED = "[redacted]"
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def redact(text: str) -> str:
    text = _SECRETS[0].sub(REDACTED, text)
    text = _SECRETS[1].sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _SECRETS[2].sub(lambda m: f"{m.group(1)}{REDACTED}", text)


class RedactingFilter(logging.Filter):
    """Renders the message, removes secrets from it and from any traceback, and hands on the cleaned record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        record.exc_info = None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redact(value))
        return True


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...``; a traceback stays on the same line."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{key}={_scalar(value)}" for key, value in _extras(record).items())
        exc_text, record.exc_text = record.exc_text, None
        line = super().format(record) + (f" {extra}" if extra else "")
        record.exc_text = exc_text
        if exc_text:
            line += " | " + exc_text.replace("\n", " | ")
        return line.replace("\n", " | ")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, any ``extra=`` fields, ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
        }
        data.update(_extras(record))
        if record.exc_text:
            data["exception"] = record.exc_text
        return json.dumps(data, default=str)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD and not key.startswith("_")}


def _scalar(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c.isspace() or c in "\"=" for c in text) else text


def configure_logging(level: int, fmt: str = "text", stream: TextIO | None = None) -> None:
    """Replace the root logger's handlers with one that redacts and writes ``fmt`` (text or json)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
