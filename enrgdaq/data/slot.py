"""What a ring slot holds: a message's header and its payload.

::

    [u32 layout length][u32 header length][SlotLayout][message header][pad to 64]
    [payload: buffers, each 64-byte aligned, or one Arrow IPC message]

The layout (msgpack) says how the payload is laid out: the message type, the
schema, the row count and where the buffers sit; it repeats for every message
of the same shape, so both sides cache it by its bytes (the producer per table
object, the consumer per distinct layout). The message header (msgpack, the
message without its payload) is encoded per message.

A table of fixed-width columns without nulls is one Arrow IPC record-batch
message (``batch``), rebuilt with one zero-copy ``ipc.read_record_batch``;
other flat tables travel as their columns' raw buffers (validity, offsets,
data; ``columns``), rebuilt with ``Array.from_buffers``; nested columns as one
Arrow IPC stream (``ipc``); raw bytes as one buffer (``raw``). Every buffer of
a rebuilt table points into the mapping: no copy.

:mod:`enrgdaq.data.encoder` writes slots, :mod:`enrgdaq.data.decoder` reads them.
"""

from __future__ import annotations

import struct

import msgspec
import pyarrow as pa

ALIGN = 64
LENGTHS = struct.Struct("<II")
"""The slot's first 8 bytes: the lengths of the layout and of the message header."""


def align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def plain(dtype: pa.DataType) -> bool:
    """Types whose arrays are fully described by their own buffers (no children, dictionary, extension)."""
    t = pa.types
    return not isinstance(dtype, pa.ExtensionType) and (
        t.is_primitive(dtype)
        or t.is_string(dtype)
        or t.is_large_string(dtype)
        or t.is_binary(dtype)
        or t.is_large_binary(dtype)
        or t.is_fixed_size_binary(dtype)
        or t.is_decimal(dtype)
    )


class SlotLayout(msgspec.Struct, array_like=True):
    type_name: str
    schema: bytes | None = None
    num_rows: int = 0
    # per column: [null_count, offset, n_buffers, start0, length0, start1, length1, ...]; start -1: no buffer
    columns: list[list[int]] = []
    ipc: list[int] | None = None  # [start, length] of an IPC stream (nested types)
    batch: list[int] | None = None  # [start, length] of an IPC record-batch message (fixed-width, no nulls)
    raw: list[int] | None = None  # [start, length] of raw bytes
