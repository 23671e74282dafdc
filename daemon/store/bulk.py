"""Many rows into one table at the driver's speed.

SQLAlchemy's executemany sends every value of every row through its column type's bind processor and builds the
parameters row by row: on SQLite that costs more than the insert itself (about 6 µs a row). A first poll of a
large estate inserts tens of thousands of rows, and a first usage read hundreds of thousands. Here each column's
processor runs once per distinct value (dates, times and flags repeat; JSON values are converted one by one) and
the rows go to the DB-API cursor's ``executemany`` as tuples.

On PostgreSQL SQLAlchemy's own path is kept: its "insertmanyvalues" batching turns many rows into few statements,
which matters more there than the cost per row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Dialect, Table, insert

_Converter = tuple[int, Callable[[Any], Any], dict[Any, Any]]


def insert_many(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """``INSERT INTO table`` every row (a mapping of column key to value, as ``connection.execute(insert(table),
    rows)`` takes them): the same rows, the same column defaults, the same stored values."""
    if not rows:
        return
    if connection.dialect.name != "sqlite":
        connection.execute(insert(table), list(rows))
        return
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    for keys, group in groups.items():
        _insert_sqlite(connection, table, keys, group)


@dataclass(frozen=True)
class _Plan:
    """How rows with one set of keys go into one table: the statement, its parameter order, the column defaults
    the rows leave out, and the columns whose values need converting (index into the order, bind processor)."""

    sql: str
    order: tuple[str, ...]
    constants: dict[str, Any]
    converters: tuple[tuple[int, Callable[[Any], Any]], ...]


# dialect -> (table, keys) -> the plan, or None where SQLAlchemy's own executemany is needed. Compiling an INSERT
# costs about as much as storing a hundred rows: a poll stores one subscription at a time, each table every time.
_PLANS: WeakKeyDictionary[Dialect, dict[tuple[Table, tuple[str, ...]], _Plan | None]] = WeakKeyDictionary()


def _plan(dialect: Dialect, table: Table, keys: tuple[str, ...]) -> _Plan | None:
    plans = _PLANS.setdefault(dialect, {})
    try:
        return plans[table, keys]
    except KeyError:
        pass
    plan: _Plan | None = None
    missing = [c for c in table.columns if c.key not in keys and c.default is not None]
    if all(getattr(c.default, "is_scalar", False) for c in missing):  # else a default computed per row
        constants = {c.key: getattr(c.default, "arg", None) for c in missing}
        compiled = insert(table).compile(dialect=dialect, column_keys=[*keys, *constants])
        order = compiled.positiontup
        if order is not None and set(order) == {*keys, *constants}:  # a plain positional statement, else no chances
            converters = []
            for index, key in enumerate(order):
                bind = table.c[key].type.dialect_impl(dialect).bind_processor(dialect)
                if bind is not None:
                    converters.append((index, bind))
            plan = _Plan(compiled.string, tuple(order), constants, tuple(converters))
    plans[table, keys] = plan
    return plan


def _insert_sqlite(connection: Connection, table: Table, keys: tuple[str, ...],
                   rows: list[Mapping[str, Any]]) -> None:
    plan = _plan(connection.dialect, table, keys)
    if plan is None:
        connection.execute(insert(table), rows)
        return
    order, constants = plan.order, plan.constants
    converters: list[_Converter] = [(index, process, {}) for index, process in plan.converters]
    if constants:
        rows = [{**constants, **row} for row in rows]
    pick = itemgetter(*order)
    values: list[tuple[Any, ...]] = []
    for row in rows:
        line = list(pick(row)) if len(order) > 1 else [pick(row)]
        for index, process, seen in converters:
            value = line[index]
            # Keyed by type and zone too: True == 1, and equal instants in two zones are stored as written.
            memo = (value.__class__, value, getattr(value, "tzinfo", None))
            try:
                line[index] = seen[memo]
            except KeyError:
                line[index] = seen[memo] = process(value)
            except TypeError:  # unhashable: a JSON list or object
                line[index] = process(value)
        values.append(tuple(line))
    connection.exec_driver_sql(plan.sql, values)
