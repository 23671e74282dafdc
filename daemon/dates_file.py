"""Read curated retirement dates: one row of a retirement table per line of a CSV file, or per ``[[dates.rows]]``
entry in the config. Every problem names the file, the line (or the key) and what is wrong.

The CSV file has a header line naming its columns (``model,version,sku,region,retirement,source,note``; ``sku``,
``region`` and ``note`` may be left out), then one row per line. Lines starting with ``#`` are comments: say there
where the rows were copied from and when. Encoding UTF-8 (a byte-order mark is allowed).
"""

from __future__ import annotations

import csv
import re
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from daemon.lifecycle.curated import CuratedDate

COLUMNS = ("model", "version", "sku", "region", "retirement", "source", "note")
REQUIRED = ("model", "version", "retirement", "source")
NO_DATE_FROM_YEAR = 2099  # Azure's "no date" (2099-12-31) is no retirement date
MAX_PROBLEMS = 20
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class DatesFileError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        raise ValueError("a day is wanted, not a time: write YYYY-MM-DD")
    if isinstance(value, str) and _DAY.fullmatch(value.strip()):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"no such day: {value.strip()}") from None
    if not isinstance(value, date):
        raise ValueError("not a date: write YYYY-MM-DD")
    if value.year >= NO_DATE_FROM_YEAR:
        raise ValueError(f"{value} is Azure's way of saying 'no date': leave the row out")
    return value


def _text(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _optional(value: Any) -> Any:
    value = _text(value)
    return None if value == "" else value


def _required(value: Any) -> Any:
    value = _text(value)
    if value == "":
        raise ValueError("cannot be empty")
    return value


def _version(value: Any) -> Any:
    value = _text(value)
    if value == "":
        raise ValueError("cannot be empty: write * for every version")
    return value


def _url(value: Any) -> Any:
    value = _text(value)
    if isinstance(value, str):
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be the URL of the table the date was copied from (https://...)")
    return value


class DateRow(BaseModel):
    """One curated retirement date, as written in the config or the dates file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Annotated[str, BeforeValidator(_required)]
    version: Annotated[str, BeforeValidator(_version)]
    sku: Annotated[str | None, BeforeValidator(_optional)] = None
    region: Annotated[str | None, BeforeValidator(_optional)] = None
    retirement: Annotated[date, BeforeValidator(_day)]
    source: Annotated[str, BeforeValidator(_url)]
    note: Annotated[str | None, BeforeValidator(_optional)] = None

    def curated(self, origin: str) -> CuratedDate:
        return CuratedDate(model=self.model, version=self.version, retirement=self.retirement, source=self.source,
                           sku=self.sku, region=self.region, note=self.note, origin=origin)


def read_dates_file(path: Path) -> tuple[CuratedDate, ...]:
    """The rows of a dates file; :class:`DatesFileError` lists what is wrong with it (the first problems)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatesFileError([f"{path}: file not found"]) from None
    except IsADirectoryError:
        raise DatesFileError([f"{path}: is a directory, not a CSV file"]) from None
    except PermissionError:
        raise DatesFileError([f"{path}: permission denied"]) from None
    except UnicodeDecodeError as exc:
        raise DatesFileError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    return parse_dates_csv(text, str(path))


def parse_dates_csv(text: str, name: str) -> tuple[CuratedDate, ...]:
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise DatesFileError([f"{name}: no header line; the first line that is not a comment names the columns: "
                              + ",".join(COLUMNS)])
    header_line, header_text = lines[0]
    header = [column.strip().casefold() for column in next(csv.reader([header_text]))]
    problems = _header_problems(header)
    if problems:
        raise DatesFileError([f"{name}: line {header_line}: {problem}" for problem in problems])
    rows: list[CuratedDate] = []
    problems = []
    for number, line in lines[1:]:
        fields = next(csv.reader([line]))
        if len(fields) > len(header):
            problems.append(f"{name}: line {number}: {len(fields)} fields, the header names {len(header)} "
                            "(quote a field that holds a comma)")
            continue
        values = dict(zip(header, [*fields, *[""] * (len(header) - len(fields))], strict=True))
        try:
            rows.append(DateRow.model_validate(values).curated(f"{name} line {number}"))
        except ValidationError as exc:
            problems.extend(f"{name}: line {number}: {problem}" for problem in describe(exc))
        if len(problems) >= MAX_PROBLEMS:
            problems.append(f"{name}: stopped after {MAX_PROBLEMS} problems")
            break
    if problems:
        raise DatesFileError(problems)
    return tuple(rows)


def _header_problems(header: list[str]) -> list[str]:
    problems = []
    unknown = [column for column in header if column not in COLUMNS]
    if unknown:
        problems.append(f"unknown column(s) {', '.join(repr(c) for c in unknown)}; the columns are "
                        + ",".join(COLUMNS))
    twice = sorted({column for column in header if header.count(column) > 1})
    if twice:
        problems.append(f"column(s) named twice: {', '.join(twice)}")
    missing = [column for column in REQUIRED if column not in header]
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)} (is the first line the header? "
                        f"it must name the columns: {','.join(COLUMNS)})")
    return problems


def describe(exc: ValidationError) -> list[str]:
    """``retirement: not a date: write YYYY-MM-DD (got '30/06/2026')``, one line per problem."""
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "row"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "missing"
        elif error["type"] == "extra_forbidden":
            message = "unknown key"
        elif "input" in error and not isinstance(error["input"], dict):
            message += f" (got {error['input']!r})"
        lines.append(f"{key}: {message}")
    return lines
