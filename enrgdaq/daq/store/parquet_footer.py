"""Parquet footers: where a file's footer starts, and row groups moved to another place in a file.

pyarrow's Parquet writer only starts a file at byte 0 ("Appending to file not
implemented"), and its metadata objects are read-only. To add row groups to an
existing file, the Parquet store has the writer make a standalone file in
memory, puts that file's row-group bytes where the existing file's footer
began, and shifts the byte offsets in that file's footer by the distance they
moved (:func:`shifted_footer`). pyarrow then joins the two footers
(``FileMetaData.append_row_groups``).

A footer is a ``FileMetaData`` in Thrift's compact protocol (parquet.thrift).
Only the offset fields listed below change (and the row groups' ordinals, which
count on from the file's); everything else is copied byte for byte.
"""

from __future__ import annotations

import struct
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from enrgdaq.errors import StoreWriteError

MAGIC = b"PAR1"
TAIL = 8
"""A Parquet file ends with the footer's length (4 bytes, little endian) and ``PAR1``."""

# Compact protocol types.
_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT, _UUID = range(14)
_FIXED = {_BYTE: 1, _DOUBLE: 8, _UUID: 16}

SHIFT = "shift"
"""An i64 byte offset into the file (0 or absent: not set, left alone)."""
ORDINAL = "ordinal"
_COLUMN_META = {9: SHIFT, 10: SHIFT, 11: SHIFT, 14: SHIFT}  # data, index, dictionary page; bloom filter
_COLUMN_CHUNK = {2: SHIFT, 3: _COLUMN_META, 4: SHIFT, 6: SHIFT}  # file, offset index, column index
_ROW_GROUP = {1: [_COLUMN_CHUNK], 5: SHIFT, 7: ORDINAL}  # columns, file offset, ordinal
_FILE_META = {4: [_ROW_GROUP]}  # row groups
_I16_MAX = 32767


def footer_at(size: int, tail: bytes) -> int:
    """Where the footer of a file of ``size`` bytes starts, from its last 8 bytes (StoreWriteError when
    they are not a Parquet file's end)."""
    if len(tail) != TAIL or tail[4:] != MAGIC:
        raise StoreWriteError("not the end of a Parquet file")
    length = struct.unpack("<I", tail[:4])[0]
    start = size - TAIL - length
    if start < len(MAGIC):
        raise StoreWriteError("a Parquet footer longer than its file")
    return start


def split_file(data: Any) -> tuple[memoryview, bytes]:
    """A standalone Parquet file (bytes-like) as (its row groups' bytes, its footer)."""
    view = memoryview(data).cast("B")
    start = footer_at(view.nbytes, bytes(view[-TAIL:]))
    return view[len(MAGIC) : start], bytes(view[start:-TAIL])


def metadata_of(footer: bytes) -> Any:
    """A footer as ``pyarrow.parquet.FileMetaData``."""
    standalone = MAGIC + footer + struct.pack("<I", len(footer)) + MAGIC
    return pq.read_metadata(pa.BufferReader(standalone))


def footer_of(metadata: Any) -> bytes:
    """``FileMetaData`` as the bytes that end a file: footer, its length, ``PAR1``."""
    sink = pa.BufferOutputStream()
    metadata.write_metadata_file(sink)  # PAR1, footer, length, PAR1
    return bytes(sink.getvalue().to_pybytes()[len(MAGIC) :])


def shifted_footer(footer: bytes, delta: int, first_ordinal: int) -> bytes:
    """``footer`` with every byte offset moved by ``delta`` and row-group ordinals counted on from
    ``first_ordinal``."""
    rewriter = _Rewriter(footer, delta, first_ordinal)
    rewriter.struct(_FILE_META)
    if rewriter.pos != len(footer):
        raise StoreWriteError(f"Parquet footer not read to its end ({rewriter.pos} of {len(footer)} bytes)")
    return bytes(rewriter.out)


class _Rewriter:
    """Copies a compact-protocol struct, changing the fields its spec names."""

    def __init__(self, data: bytes, delta: int, first_ordinal: int) -> None:
        self.data = data
        self.pos = 0
        self.out = bytearray()
        self.delta = delta
        self.first_ordinal = first_ordinal

    def struct(self, spec: dict[int, Any]) -> None:
        field_id = 0
        while True:
            start = self.pos
            header = self._byte()
            kind = header & 0x0F
            if kind == _STOP:
                self.out.append(header)
                return
            field_id = field_id + (header >> 4) if header >> 4 else _unzigzag(self._varint())
            self.out += self.data[start : self.pos]
            self._value(spec.get(field_id), kind)

    def _value(self, rule: Any, kind: int) -> None:
        if rule == SHIFT and kind == _I64:
            value = _unzigzag(self._varint())
            self._put_varint(_zigzag(value + self.delta if value > 0 else value))
        elif rule == ORDINAL and kind == _I16:
            value = _unzigzag(self._varint())
            moved = value + self.first_ordinal
            self._put_varint(_zigzag(moved if moved <= _I16_MAX else value))
        elif isinstance(rule, dict) and kind == _STRUCT:
            self.struct(rule)
        elif isinstance(rule, list) and kind == _LIST:
            start = self.pos
            count, element = self._collection_header()
            self.out += self.data[start : self.pos]
            for _ in range(count):
                if element != _STRUCT:
                    raise StoreWriteError("a Parquet footer list (row groups, columns) that holds no structs")
                self.struct(rule[0])
        else:
            start = self.pos
            self._skip(kind)
            self.out += self.data[start : self.pos]

    def _skip(self, kind: int) -> None:
        if kind in (_TRUE, _FALSE):
            return  # a field's boolean is in its header
        if kind in _FIXED:
            self.pos += _FIXED[kind]
        elif kind in (_I16, _I32, _I64):
            self._varint()
        elif kind == _BINARY:
            length = self._varint()  # (not "self.pos += ...": that adds to the position before it)
            self.pos += length
        elif kind in (_LIST, _SET):
            count, element = self._collection_header()
            for _ in range(count):
                self._skip_element(element)
        elif kind == _MAP:
            self._skip_map()
        elif kind == _STRUCT:
            self._skip_struct()
        else:
            raise StoreWriteError(f"unknown Thrift compact type {kind} in a Parquet footer")

    def _skip_element(self, kind: int) -> None:
        if kind in (_TRUE, _FALSE):
            self.pos += 1  # in a collection a boolean is a byte
        else:
            self._skip(kind)

    def _skip_map(self) -> None:
        count = self._varint()
        if count:
            kinds = self._byte()
            for _ in range(count):
                self._skip_element(kinds >> 4)
                self._skip_element(kinds & 0x0F)

    def _skip_struct(self) -> None:
        while True:
            header = self._byte()
            if header & 0x0F == _STOP:
                return
            if not header >> 4:
                self._varint()
            self._skip(header & 0x0F)

    def _collection_header(self) -> tuple[int, int]:
        header = self._byte()
        count = header >> 4
        return (self._varint() if count == 15 else count), header & 0x0F

    def _byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def _varint(self) -> int:
        result = shift = 0
        while True:
            byte = self._byte()
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def _put_varint(self, value: int) -> None:
        while value > 0x7F:
            self.out.append((value & 0x7F) | 0x80)
            value >>= 7
        self.out.append(value)


def _zigzag(value: int) -> int:
    return (value << 1) ^ (value >> 63)


def _unzigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)
