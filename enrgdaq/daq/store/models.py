"""Store configuration carried by producer messages, and the store messages.

A producer's ``[store_config.csv]`` table decides where its data goes: the
message's topics are ``store.<StoreClass>`` for every store class that
accepts that kind of config (see :mod:`enrgdaq.daq.store.routing`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
import pyarrow as pa

from enrgdaq.daq.models import DAQJobConfig, DAQJobMessage
from enrgdaq.daq.store.routing import store_topics  # (imports no store module at run time)
from enrgdaq.data.codec import SlotCodec, install_codec
from enrgdaq.errors import MessageError

__all__ = [
    "DAQJobMessageStore",
    "DAQJobMessageStorePyArrow",
    "DAQJobMessageStoreRaw",
    "DAQJobMessageStoreTabular",
    "DAQJobStoreConfig",
    "DAQJobStoreConfigBase",
    "DAQJobStoreConfigCSV",
    "DAQJobStoreConfigHDF5",
    "DAQJobStoreConfigMemory",
    "DAQJobStoreConfigMySQL",
    "DAQJobStoreConfigParquet",
    "DAQJobStoreConfigROOT",
    "DAQJobStoreConfigRaw",
    "DAQJobStoreConfigRedis",
    "RingBufferHandle",
    "StorableDAQJobConfig",
]


class DAQJobStoreConfigBase(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class DAQJobStoreConfigCSV(DAQJobStoreConfigBase, kw_only=True):
    """``file_path`` is joined to the store's ``out_dir``; ``add_date`` prefixes ``YYYY-MM-DD_``."""

    file_path: str
    add_date: bool = False
    overwrite: bool = False
    use_zstd: bool = False


class DAQJobStoreConfigRaw(DAQJobStoreConfigBase, kw_only=True):
    file_path: str
    add_date: bool = False
    overwrite: bool = True


class DAQJobStoreConfigMySQL(DAQJobStoreConfigBase, kw_only=True):
    """``table_name``: a plain SQL name (letters, digits, ``_``), checked by ``enrgdaq check``."""

    table_name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]


class DAQJobStoreConfigRedis(DAQJobStoreConfigBase, kw_only=True):
    key: str
    key_expiration_days: Annotated[int, msgspec.Meta(ge=1, le=36500)] | None = None
    use_timeseries: bool | None = None


class DAQJobStoreConfigROOT(DAQJobStoreConfigBase, kw_only=True):
    file_path: str
    add_date: bool
    tree_name: str
    compression_type: Literal["ZSTD", "LZ4", "ZLIB", "LZMA"] = "ZSTD"
    compression_level: Annotated[int, msgspec.Meta(ge=0, le=22)] = 5


class DAQJobStoreConfigHDF5(DAQJobStoreConfigBase, kw_only=True):
    file_path: str
    add_date: bool
    dataset_name: str


class DAQJobStoreConfigMemory(DAQJobStoreConfigBase, kw_only=True):
    pass


class DAQJobStoreConfigParquet(DAQJobStoreConfigBase, kw_only=True):
    """*New*: Arrow tables to Parquet files. ``file_path``, ``add_date`` and ``overwrite`` as for
    CSV; ``compression``: a codec pyarrow's Parquet writer knows; a row group is closed every
    ``row_group_rows`` rows or at the store's flush."""

    file_path: str
    add_date: bool = False
    overwrite: bool = False
    compression: Literal["zstd", "snappy", "gzip", "brotli", "lz4", "none"] = "zstd"
    row_group_rows: Annotated[int, msgspec.Meta(ge=1, le=100_000_000)] = 1_000_000


class DAQJobStoreConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    csv: DAQJobStoreConfigCSV | None = None
    root: DAQJobStoreConfigROOT | None = None
    hdf5: DAQJobStoreConfigHDF5 | None = None
    mysql: DAQJobStoreConfigMySQL | None = None
    redis: DAQJobStoreConfigRedis | None = None
    raw: DAQJobStoreConfigRaw | None = None
    memory: DAQJobStoreConfigMemory | None = None
    parquet: DAQJobStoreConfigParquet | None = None
    target_local_supervisor: bool = False

    @property
    def store_types(self) -> set[type[DAQJobStoreConfigBase]]:
        """The kinds of store this config sends to (computed, not a TOML key)."""
        return {type(v) for v in self.configured().values()}

    def configured(self) -> dict[str, DAQJobStoreConfigBase]:
        """Configured sub-configs by their TOML key."""
        found = {}
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if isinstance(value, DAQJobStoreConfigBase):
                found[name] = value
        return found

    def has_store_config(self, store_type: type[DAQJobStoreConfigBase]) -> bool:
        return store_type in self.store_types

    def get_store_config(self, store_type: type[DAQJobStoreConfigBase]) -> Any:
        for value in self.configured().values():
            if isinstance(value, store_type):
                return value
        return None


class StorableDAQJobConfig(DAQJobConfig, kw_only=True):
    store_config: DAQJobStoreConfig


class RingBufferHandle(msgspec.Struct, kw_only=True):
    """Where a payload sits in a shared-memory ring (used by the data plane)."""

    buffer_name: str
    slot_index: int
    data_size: int
    is_pyarrow: bool = True
    total_size: int = 256 * 1024 * 1024
    slot_size: int = 10 * 1024 * 1024


class DAQJobMessageStore(DAQJobMessage, kw_only=True, dict=True):
    store_config: DAQJobStoreConfig
    tag: str | None = None
    target_local_supervisor: bool = False

    def __post_init__(self) -> None:
        self.target_local_supervisor = (
            self.target_local_supervisor or self.store_config.target_local_supervisor
        )

    def pre_send(self) -> None:
        self.topics.update(store_topics(self))

    def release(self) -> None:
        """Done with the message: the ring slot it came from (if any) is free once no view of its
        payload is left. Stores call it once what the message held is written out."""
        self.__dict__.pop("_ring_guard", None)


class DAQJobMessageStoreTabular(DAQJobMessageStore, kw_only=True):
    """Deprecated in the original, still accepted: rows or columns of plain values."""

    keys: list[str]
    data: list[list[Any]] | None = None
    data_columns: dict[str, list[Any]] | None = None


class DAQJobMessageStorePyArrow(DAQJobMessageStore, kw_only=True):
    """An Arrow table for the stores.

    On receipt ``table`` is a zero-copy view of the received frame; call
    :meth:`get_table` to read it and :meth:`release` when done with it.
    """

    table: pa.Table | None = None
    handle: RingBufferHandle | None = None

    def get_table(self) -> pa.Table:
        """The table. From a ring it is a zero-copy view of the slot, valid until :meth:`release`.

        Keeping it longer is safe: the slot stays held (the producer waits) until
        the last reference to the table is gone, so it is never overwritten
        underneath; a store that keeps tables for long should keep copies
        (:meth:`copy_table`) so as not to hold the producer back.
        """
        if self.table is None:
            raise MessageError("message carries no table (already released?)")
        return self.table

    def copy_table(self) -> pa.Table:
        """A copy of the table that holds no ring slot."""
        table = self.get_table()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return pa.ipc.open_stream(sink.getvalue()).read_all()

    def release(self) -> None:
        """Done with the payload: its ring slot is free once no view of it is left."""
        self.table = None
        super().release()


class DAQJobMessageStoreRaw(DAQJobMessageStore, kw_only=True):
    """Raw bytes for the stores (camera frames, digitizer blocks)."""

    data: bytes


def _slot_codec() -> SlotCodec:
    """The data plane's codec for store messages (imported here, once the classes above exist)."""
    from enrgdaq.daq.store.slot_codec import StoreSlotCodec

    return StoreSlotCodec()


install_codec(_slot_codec)
