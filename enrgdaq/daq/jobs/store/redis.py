"""Redis store: tables, tabular rows and raw bytes to a Redis server, in the original's key scheme.

Columns go to lists (``RPUSH``), or to RedisTimeSeries series with ``use_timeseries``; raw bytes
to a string key (:mod:`enrgdaq.daq.store.redis_layout` has the layout). Each write is one
``MULTI``/``EXEC`` transaction that also records the ring positions it covers in a hash, so that
a store killed after the ``EXEC`` writes nothing twice when it runs again
(:mod:`enrgdaq.daq.store.server`). A server that is down or restarting stalls the store: its rows
wait in the ring and are written, once, when the server is back.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec
import pyarrow as pa
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from enrgdaq.daq.models import DAQJobMessage
from enrgdaq.daq.store.config import StoreJobConfig
from enrgdaq.daq.store.journal import RingPositions
from enrgdaq.daq.store.models import (
    DAQJobMessageStore,
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreRaw,
    DAQJobMessageStoreTabular,
    DAQJobStoreConfigBase,
    DAQJobStoreConfigRedis,
)
from enrgdaq.daq.store.redis_layout import (
    Item,
    Samples,
    commands,
    keys_of,
    list_rows,
    samples,
    snapshot,
)
from enrgdaq.daq.store.server import DAQJobServerStore, Pending, tabular_columns
from enrgdaq.errors import MessageError, StoreWriteError
from enrgdaq.models import Port

POSITIONS_KEY = "enrgdaq:store-written:{store}"
"""A hash per store: ring file name -> ``inode:sequence`` the last write reached."""
SOCKET_TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 5.0


class DAQJobStoreRedisConfig(StoreJobConfig, kw_only=True):
    """The original's fields: ``host`` (required), ``port``, ``db``, ``password``; and
    ``flush_interval`` (see StoreJobConfig; ``fsync`` is the server's business: its AOF)."""

    host: str
    port: Port = 6379
    db: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 0
    password: str | None = None


class DAQJobStoreRedis(DAQJobServerStore[Item]):
    config_type = DAQJobStoreRedisConfig
    config: DAQJobStoreRedisConfig
    allowed_store_config_types: ClassVar[list[type[DAQJobStoreConfigBase]]] = [DAQJobStoreConfigRedis]
    allowed_message_in_types: list[type[DAQJobMessage]] = [
        DAQJobMessageStorePyArrow,
        DAQJobMessageStoreTabular,
        DAQJobMessageStoreRaw,
    ]
    server_errors: ClassVar[tuple[type[BaseException], ...]] = (redis.RedisError,)

    def __init__(self, config: DAQJobStoreRedisConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._client: redis.Redis | None = None
        self._has_timeseries: bool | None = None  # asked once per connection

    def server_name(self) -> str:
        return f"redis {self.config.host}:{self.config.port} db {self.config.db}"

    def handle_message(self, message: DAQJobMessage) -> bool:
        """Convert the message for Redis and buffer it (no I/O: ``store_loop`` writes)."""
        super().handle_message(message)
        assert isinstance(message, DAQJobMessageStore)
        target = message.store_config.redis
        if target is None:
            return True
        item = _convert(message, target)
        if isinstance(item, str):
            self.refuse(message, item)
        else:
            self._buffer(message, item)
        return True

    # -- the server ----------------------------------------------------------------------
    def _connection(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis(
                host=self.config.host,
                port=self.config.port,
                db=self.config.db,
                password=self.config.password,
                socket_timeout=SOCKET_TIMEOUT_SECONDS,
                socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                # No silent retries: a transaction sent again after a lost reply could be applied
                # twice. A failed write is retried by the store, after reading its positions.
                retry=Retry(NoBackoff(), 0),
            )
            self._has_timeseries = None
        return self._client

    def _read_written(self) -> RingPositions:
        raw = self._connection().hgetall(self._positions_key)
        written: RingPositions = {}
        for name, value in raw.items():
            inode, _, seq = _text(value).partition(":")
            written[_text(name)] = (int(inode), int(seq))
        return written

    @property
    def _positions_key(self) -> str:
        return POSITIONS_KEY.format(store=self.store_key)

    def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except redis.RedisError as exc:  # closing a broken connection: nothing to keep
                self._logger.debug("closing the connection to %s: %s", self.server_name(), exc)

    def _write(self, pending: list[Pending[Item]], positions: RingPositions) -> int:
        """One MULTI/EXEC: every buffered item, then the ring positions it covers."""
        client = self._connection()
        items = self._without_timeseries_if_missing(client, pending)
        new_keys = self._check_key_types(client, items)
        pipe = client.pipeline(transaction=True)
        for item in items:
            for command in commands(item, new_keys):
                pipe.execute_command(*command)
        if positions:
            pipe.hset(self._positions_key, mapping={n: f"{i}:{s}" for n, (i, s) in positions.items()})
        pipe.execute()
        return sum(item.rows for item in items)

    def _without_timeseries_if_missing(self, client: redis.Redis, pending: list[Pending[Item]]) -> list[Item]:
        """The items to write; time series are refused (once per producer) by a server without
        the RedisTimeSeries module: the producer's config asks for what this server cannot do."""
        if not any(isinstance(p.item, Samples) for p in pending):
            return [p.item for p in pending]
        if self._has_timeseries is None:
            self._has_timeseries = _has_timeseries(client)
        if self._has_timeseries:
            return [p.item for p in pending]
        why = (
            f"use_timeseries = true, but {self.server_name()} has no RedisTimeSeries module "
            "(TS.* commands unknown): load the module or set use_timeseries = false"
        )
        for p in pending:
            if isinstance(p.item, Samples):
                self.refuse(p.message, why)
        return [p.item for p in pending if not isinstance(p.item, Samples)]

    def _check_key_types(self, client: redis.Redis, items: list[Item]) -> set[str]:
        """The keys the write creates; a key of another type stalls the store with an error
        naming it (pushing to it would fail half-way through the transaction)."""
        wanted: dict[str, str] = {}
        for item in items:
            wanted.update(keys_of(item))
        if not wanted:
            return set()
        pipe = client.pipeline(transaction=False)
        for key in wanted:
            pipe.type(key)
        found = [_text(t) for t in pipe.execute()]
        new = set()
        for (key, kind), actual in zip(wanted.items(), found, strict=True):
            if actual == "none":
                new.add(key)
            elif actual != kind:
                raise StoreWriteError(
                    f"{self.server_name()}: key '{key}' holds a {actual}, not a {kind}: "
                    "rename or delete it (the store waits, its data stays in the ring)"
                )
        return new


def _convert(message: DAQJobMessageStore, target: DAQJobStoreConfigRedis) -> Item | str:
    """The message as a Redis item, or why it cannot be stored."""
    days = target.key_expiration_days
    if isinstance(message, DAQJobMessageStoreRaw):
        return snapshot(bytes(message.data), target.key, message.tag, days)
    try:
        if isinstance(message, DAQJobMessageStorePyArrow):
            table = message.get_table()
            if target.use_timeseries:
                return samples(table, target.key, message.tag, days)
            return list_rows(table.to_pydict(), target.key, message.tag, days)
        assert isinstance(message, DAQJobMessageStoreTabular)
        columns = tabular_columns(message)
        if target.use_timeseries:
            return samples(pa.table(columns), target.key, message.tag, days)
        return list_rows(columns, target.key, message.tag, days)
    except (ValueError, MessageError, pa.ArrowException) as exc:
        return f"not a table Redis can hold: {exc}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _has_timeseries(client: redis.Redis) -> bool:
    """Whether the server knows the TS.* commands (an unknown command says it does not)."""
    try:
        client.execute_command("TS.INFO", "enrgdaq:probe-timeseries")
    except redis.ResponseError as exc:
        return "unknown command" not in str(exc).lower()
    return True
