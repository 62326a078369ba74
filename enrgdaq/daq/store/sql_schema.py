"""Arrow tables as SQL rows for the MySQL / MariaDB store: names, column types, values, statements.

Table and column names are checked against :data:`IDENTIFIER` (letters, digits, ``_``, at most
64 characters, not starting with a digit) and always quoted; a name that does not pass is
refused, never changed or interpolated: SQL is built only from checked names and the fixed
type names of :func:`sql_type`. Values always travel as parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from enrgdaq.errors import MessageError

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
PROGRESS_TABLE = "enrgdaq_store_progress"
"""Per store and ring: how far the store's writes reached (written in the same transaction)."""

_INTEGERS = {8: "TINYINT", 16: "SMALLINT", 32: "INT", 64: "BIGINT"}


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str


@dataclass
class Rows:
    """One message's rows for one table."""

    table: str
    columns: tuple[Column, ...]
    rows: list[tuple[Any, ...]]


def name_problem(name: str, what: str) -> str | None:
    """Why ``name`` cannot be a table or column name (None: it can)."""
    if not IDENTIFIER.match(name):
        return (
            f"{what} {name!r} is not a plain SQL name (letters, digits and _, at most 64, "
            "not starting with a digit)"
        )
    if name.lower() == PROGRESS_TABLE:
        return f"{what} {name!r} is the store's own progress table"
    return None


def quote(name: str) -> str:
    """A checked name in backquotes (raises MessageError for a name that was not checked)."""
    if not IDENTIFIER.match(name):
        raise MessageError(f"not a checked SQL name: {name!r}")
    return f"`{name}`"


def sql_type(t: pa.DataType) -> str | None:
    """The MariaDB / MySQL column type for an Arrow type (None: not mapped)."""
    if pa.types.is_dictionary(t):
        return sql_type(t.value_type)
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        base = _INTEGERS[t.bit_width]
        return f"{base} UNSIGNED" if pa.types.is_unsigned_integer(t) else base
    if pa.types.is_floating(t):
        return "DOUBLE" if t.bit_width == 64 else "FLOAT"
    if pa.types.is_decimal(t) and t.precision <= 65 and t.scale <= 30:
        return f"DECIMAL({t.precision},{t.scale})"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "LONGTEXT"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "LONGBLOB"
    if pa.types.is_timestamp(t):
        return "DATETIME(6)"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_time(t):
        return "TIME(6)"
    return None


def table_rows(table: pa.Table, table_name: str) -> Rows | str:
    """The table's rows for ``table_name``, or why it cannot be stored (a name or a type)."""
    problem = name_problem(table_name, "table_name")
    if problem:
        return problem
    columns = []
    seen: set[str] = set()
    for field in table.schema:
        problem = name_problem(field.name, "column")
        if problem:
            return problem
        if field.name.lower() in seen:
            return f"column {field.name!r} repeats (SQL names ignore case)"
        seen.add(field.name.lower())
        mapped = sql_type(field.type)
        if mapped is None:
            return f"column {field.name!r} is {field.type}, which has no SQL column type here"
        columns.append(Column(field.name, mapped))
    values = [python_values(table.column(i)) for i in range(table.num_columns)]
    return Rows(table_name, tuple(columns), list(zip(*values, strict=True)))


def python_values(column: pa.ChunkedArray) -> list[Any]:
    """Values as the driver sends them: NaN and infinities as NULL (SQL has neither), times with
    microseconds (what DATETIME(6) keeps; time zones as UTC), dictionaries decoded."""
    t = column.type
    if pa.types.is_dictionary(t):
        column, t = column.cast(t.value_type), t.value_type
    if pa.types.is_floating(t):
        column = pc.if_else(pc.is_finite(column), column, pa.scalar(None, t))
    elif pa.types.is_timestamp(t) and t.unit == "ns":
        column = column.cast(pa.timestamp("us"), safe=False)
    elif pa.types.is_timestamp(t) and t.tz is not None:
        column = column.cast(pa.timestamp(t.unit))
    elif pa.types.is_time64(t) and t.unit == "ns":
        column = column.cast(pa.time64("us"), safe=False)
    return column.to_pylist()


def create_table_sql(table: str, columns: tuple[Column, ...]) -> str:
    body = ", ".join(f"{quote(c.name)} {c.sql_type} NULL" for c in columns)
    return f"CREATE TABLE IF NOT EXISTS {quote(table)} ({body}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"


def add_column_sql(table: str, column: Column) -> str:
    return f"ALTER TABLE {quote(table)} ADD COLUMN {quote(column.name)} {column.sql_type} NULL"


def insert_sql(table: str, names: tuple[str, ...]) -> str:
    """A statement for ``executemany``, which sends the rows as multi-row INSERTs."""
    listed = ", ".join(quote(n) for n in names)
    marks = ", ".join(["%s"] * len(names))
    return f"INSERT INTO {quote(table)} ({listed}) VALUES ({marks})"


PROGRESS_SQL = (
    f"CREATE TABLE IF NOT EXISTS {quote(PROGRESS_TABLE)} ("
    "`store` VARCHAR(255) NOT NULL, `ring` VARCHAR(255) NOT NULL, "
    "`inode` BIGINT UNSIGNED NOT NULL, `seq` BIGINT UNSIGNED NOT NULL, "
    "PRIMARY KEY (`store`, `ring`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
)
READ_PROGRESS_SQL = f"SELECT `ring`, `inode`, `seq` FROM {quote(PROGRESS_TABLE)} WHERE `store` = %s"
WRITE_PROGRESS_SQL = (
    f"INSERT INTO {quote(PROGRESS_TABLE)} (`store`, `ring`, `inode`, `seq`) VALUES (%s, %s, %s, %s) "
    "ON DUPLICATE KEY UPDATE `inode` = VALUES(`inode`), `seq` = VALUES(`seq`)"
)
