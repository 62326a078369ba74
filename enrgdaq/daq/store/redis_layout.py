"""What the Redis store writes, as plain data: key names, values, and the commands of one write.

Kept apart from the job (:mod:`enrgdaq.daq.jobs.store.redis`) so that the layout can be read
(and tested) without a server. The key scheme is the original's:

* a column of a table: a list ``{key}[.{tag}].{column}``, with ``:YYYY-MM-DD`` appended when
  ``key_expiration_days`` is set (one list per day, which expires that many days after it
  was created);
* a column with ``use_timeseries``: a RedisTimeSeries series ``{key}[.{tag}].{column}``
  (retention ``key_expiration_days``), samples at the row's ``timestamp``;
* raw bytes: a string ``{key}[.{tag}]`` holding the latest payload, base64-encoded as the
  original's readers expect (the original ignored the tag).
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

import pyarrow as pa

DAY_SECONDS = 86400
TIMESTAMP_COLUMN = "timestamp"
"""With ``use_timeseries``: the column that holds each row's time (ms since the epoch)."""
PUSH_CHUNK = 10_000
"""Values per RPUSH / samples per TS.MADD: one write's commands stay of bounded size."""


def base_key(key: str, tag: str | None) -> str:
    return f"{key}.{tag}" if tag else key


def list_key(key: str, tag: str | None, column: str, day: date | None) -> str:
    """The list of one column; ``day`` is set when the lists expire (one list per day)."""
    name = f"{base_key(key, tag)}.{column}"
    return f"{name}:{day.isoformat()}" if day is not None else name


def redis_value(value: Any) -> bytes | str | int | float:
    """A column value as Redis stores it: numbers as their shortest exact text, text as UTF-8,
    bytes as they are, ``None`` as an empty string, booleans as ``1`` / ``0``, times as ISO 8601."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, int | float | str | bytes):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


@dataclass
class ListRows:
    """One message's columns, each pushed to its list; ``expire`` (seconds) set on new lists."""

    columns: list[tuple[str, list[Any]]]
    expire: int | None
    rows: int


@dataclass
class Snapshot:
    """Raw bytes: the latest payload under one key (base64), ``expire`` seconds."""

    key: str
    value: bytes
    expire: int | None
    rows: int = 1


@dataclass
class Samples:
    """One message's samples for RedisTimeSeries: per series, timestamps (ms) and values."""

    series: list[tuple[str, list[int], list[float]]]
    retention_ms: int | None
    labels: dict[str, str] = field(default_factory=dict)
    rows: int = 0


Item = ListRows | Snapshot | Samples


def list_rows(
    columns: dict[str, list[Any]], key: str, tag: str | None, expiration_days: int | None
) -> ListRows:
    """Columns (name -> values) as lists; the day is today's (lists roll over at midnight)."""
    day = date.today() if expiration_days else None
    pushed = [
        (list_key(key, tag, name, day), [redis_value(v) for v in values]) for name, values in columns.items()
    ]
    expire = expiration_days * DAY_SECONDS if expiration_days else None
    return ListRows(pushed, expire, max((len(v) for v in columns.values()), default=0))


def snapshot(data: bytes, key: str, tag: str | None, expiration_days: int | None) -> Snapshot:
    expire = expiration_days * DAY_SECONDS if expiration_days else None
    return Snapshot(base_key(key, tag), base64.b64encode(data), expire)


def samples(table: pa.Table, key: str, tag: str | None, expiration_days: int | None) -> Samples | str:
    """The table as time series samples, or why it cannot be (the message is then refused)."""
    if TIMESTAMP_COLUMN not in table.column_names:
        return f"use_timeseries needs a '{TIMESTAMP_COLUMN}' column (ms since the epoch)"
    times = table.column(TIMESTAMP_COLUMN)
    if pa.types.is_timestamp(times.type):
        times = times.cast(pa.timestamp("ms", times.type.tz), safe=False).cast(pa.int64())
    elif not pa.types.is_integer(times.type):
        return f"the '{TIMESTAMP_COLUMN}' column is {times.type}: use_timeseries needs ms as integers"
    stamps = times.to_pylist()
    series = []
    for name in table.column_names:
        if name == TIMESTAMP_COLUMN:
            continue
        column = table.column(name)
        if not (
            pa.types.is_integer(column.type)
            or pa.types.is_floating(column.type)
            or pa.types.is_boolean(column.type)
        ):
            return f"column '{name}' is {column.type}: a time series holds numbers"
        points = [
            (t, float(v))
            for t, v in zip(stamps, column.to_pylist(), strict=True)
            if t is not None and v is not None and not math.isnan(float(v))
        ]
        series.append((f"{base_key(key, tag)}.{name}", [p[0] for p in points], [p[1] for p in points]))
    labels = {"key": key, **({"tag": tag} if tag else {})}
    retention = expiration_days * DAY_SECONDS * 1000 if expiration_days else None
    return Samples(series, retention, labels, table.num_rows)


def keys_of(item: Item) -> dict[str, str]:
    """Every key an item writes, with the Redis type it must have (or not exist)."""
    if isinstance(item, ListRows):
        return {k: "list" for k, _ in item.columns}
    if isinstance(item, Snapshot):
        return {item.key: "string"}
    return {k: "TSDB-TYPE" for k, _, _ in item.series}


def commands(item: Item, new_keys: set[str]) -> list[tuple[Any, ...]]:
    """The commands that write ``item``; ``new_keys``: keys that do not exist yet (they get their
    expiry, or are created as series). A key is removed from it once created."""
    out: list[tuple[Any, ...]] = []
    if isinstance(item, ListRows):
        for k, values in item.columns:
            for i in range(0, len(values), PUSH_CHUNK):
                out.append(("RPUSH", k, *values[i : i + PUSH_CHUNK]))
            if k in new_keys and item.expire:
                out.append(("EXPIRE", k, item.expire))
            new_keys.discard(k)
    elif isinstance(item, Snapshot):
        out.append(("SET", item.key, item.value, *(("EX", item.expire) if item.expire else ())))
    else:
        for k, stamps, values in item.series:
            if k in new_keys:
                out.append(_ts_create(k, item.retention_ms, item.labels))
                new_keys.discard(k)
            for i in range(0, len(stamps), PUSH_CHUNK):
                args = [
                    a
                    for t, v in zip(stamps[i : i + PUSH_CHUNK], values[i : i + PUSH_CHUNK], strict=True)
                    for a in (k, t, v)
                ]
                if args:
                    out.append(("TS.MADD", *args))
    return out


def _ts_create(key: str, retention_ms: int | None, labels: dict[str, str]) -> tuple[Any, ...]:
    """A new series; DUPLICATE_POLICY LAST: a sample written again replaces itself."""
    retention = ("RETENTION", retention_ms) if retention_ms else ()
    label_args = [a for name, value in labels.items() for a in (name, value)]
    return ("TS.CREATE", key, *retention, "DUPLICATE_POLICY", "LAST", "LABELS", *label_args)
