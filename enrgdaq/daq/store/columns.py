"""Arrow tables (and the original's tabular rows) as numpy columns, for the HDF5 and ROOT stores.

Both libraries write numpy arrays. Numbers and booleans pass as they are (zero-copy where Arrow
allows it); times, dates and durations become int64 in their Arrow unit (the unit is kept in
:func:`arrow_type_text`). A null becomes the column's fill value (:func:`fill_value`: NaN for
floats, 0 for integers and times, False for booleans, "" for text), since neither file format
has nulls in a plain column. Text is passed only to a store that says it takes it (ROOT);
anything else (nested lists, structs, binary) is an :class:`UnsupportedColumn`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from enrgdaq.daq.store.models import DAQJobMessageStore, DAQJobMessageStorePyArrow, DAQJobMessageStoreTabular

Columns = dict[str, np.ndarray]


class UnsupportedColumn(ValueError):
    """A column the file format cannot hold as a plain column (the message is refused)."""


def tabular_table(message: DAQJobMessageStoreTabular) -> pa.Table:
    """The original's tabular message (``keys`` with ``data`` rows or ``data_columns``) as a table."""
    if message.data is not None:
        columns = [list(values) for values in zip(*message.data, strict=False)] if message.data else []
        data = {key: columns[i] if i < len(columns) else [] for i, key in enumerate(message.keys)}
    else:
        given = message.data_columns or {}
        data = {key: list(given.get(key, [])) for key in message.keys}
    return pa.table(data)


def message_table(message: DAQJobMessageStore) -> pa.Table:
    """The rows of a table or tabular message as an Arrow table (a table message's is a view of
    its ring slot, given back after the write)."""
    if isinstance(message, DAQJobMessageStorePyArrow):
        return message.get_table()
    assert isinstance(message, DAQJobMessageStoreTabular)
    return tabular_table(message)


def numpy_columns(table: pa.Table, text: bool = False) -> Columns:
    """Every column of ``table`` as a 1-D numpy array; raises :class:`UnsupportedColumn`."""
    return {name: _column(name, table.column(name), text) for name in table.column_names}


def _column(name: str, column: pa.ChunkedArray, text: bool) -> np.ndarray:
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_temporal(kind):
        column = column.cast(pa.int64())
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if not text:
            raise UnsupportedColumn(f"column '{name}' holds text ({kind})")
        return np.asarray(column.fill_null("").to_pylist(), dtype=object)
    elif not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        raise UnsupportedColumn(f"column '{name}' is {kind}: only numbers, booleans and times are stored")
    if column.null_count:
        column = pc.fill_null(column, fill_value(np.dtype(column.type.to_pandas_dtype())))
    values = column.to_numpy()
    if values.dtype == np.float16:
        values = values.astype(np.float32)
    return values


def arrow_type_text(table: pa.Table, name: str) -> str | None:
    """The Arrow type of a column stored as int64 (times), to be kept beside it; else None."""
    kind = table.schema.field(name).type
    return str(kind) if pa.types.is_temporal(kind) else None


def fill_value(dtype: np.dtype) -> Any:
    """What stands for a null, or for a row that lacks the column."""
    if dtype.kind == "f":
        return np.nan
    if dtype.kind == "b":
        return False
    if dtype.kind in "OUS":
        return ""
    return 0


def fits(values: np.ndarray, dtype: np.dtype) -> bool:
    """Whether ``values`` go into a column of ``dtype`` without losing anything (numpy's safe cast)."""
    if dtype.kind == "O" or values.dtype.kind == "O":
        return dtype.kind == values.dtype.kind
    return bool(np.can_cast(values.dtype, dtype, "safe"))
