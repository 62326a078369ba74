"""MySQL / MariaDB store (pymysql): tables and tabular rows to SQL tables.

A producer's ``[store_config.mysql] table_name`` names the table; the store creates it from the
message's Arrow schema (:mod:`enrgdaq.daq.store.sql_schema`: types mapped, names checked) and adds
columns that later messages bring. Each write is one transaction: multi-row INSERTs for every
buffered message, and the ring positions the write covers in a progress table, so that after a
kill -9 every row is in the table exactly once (:mod:`enrgdaq.daq.store.server`). A server that
is down or restarting stalls the store; its rows wait in the ring and are written once it is back.
Raw bytes are refused (counted as ``unsupported``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import pyarrow as pa
import pymysql

from enrgdaq.daq.models import DAQJobMessage
from enrgdaq.daq.store.config import StoreJobConfig
from enrgdaq.daq.store.journal import RingPositions
from enrgdaq.daq.store.models import (
    DAQJobMessageStore,
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreTabular,
    DAQJobStoreConfigBase,
    DAQJobStoreConfigMySQL,
)
from enrgdaq.daq.store.server import DAQJobServerStore, Pending, tabular_columns
from enrgdaq.daq.store.sql_schema import (
    PROGRESS_SQL,
    READ_PROGRESS_SQL,
    WRITE_PROGRESS_SQL,
    Column,
    Rows,
    add_column_sql,
    create_table_sql,
    insert_sql,
    quote,
    table_rows,
)
from enrgdaq.errors import MessageError
from enrgdaq.models import Port

CONNECT_TIMEOUT_SECONDS = 5
IO_TIMEOUT_SECONDS = 60
"""A server that stops answering in the middle of a write fails it after this long (retried)."""


class DAQJobStoreMySQLConfig(StoreJobConfig, kw_only=True):
    """The original's fields: ``host``, ``user``, ``password``, ``database`` (required), ``port``;
    and ``flush_interval`` (see StoreJobConfig; durability is the server's: InnoDB commits)."""

    host: str
    user: str
    password: str
    database: str
    port: Port = 3306


class DAQJobStoreMySQL(DAQJobServerStore[Rows]):
    config_type = DAQJobStoreMySQLConfig
    config: DAQJobStoreMySQLConfig
    allowed_store_config_types: ClassVar[list[type[DAQJobStoreConfigBase]]] = [DAQJobStoreConfigMySQL]
    allowed_message_in_types: list[type[DAQJobMessage]] = [
        DAQJobMessageStorePyArrow,
        DAQJobMessageStoreTabular,
    ]
    server_errors: ClassVar[tuple[type[BaseException], ...]] = (pymysql.err.Error,)

    def __init__(self, config: DAQJobStoreMySQLConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._conn: Any = None  # a pymysql Connection
        self._tables: dict[str, set[str]] = {}  # table -> its columns (lower case), this connection

    def server_name(self) -> str:
        c = self.config
        return f"mysql {c.user}@{c.host}:{c.port}/{c.database}"

    def handle_message(self, message: DAQJobMessage) -> bool:
        """Convert the message's rows for SQL and buffer them (no I/O: ``store_loop`` writes)."""
        super().handle_message(message)
        assert isinstance(message, DAQJobMessageStore)
        target = message.store_config.mysql
        if target is None:
            return True
        rows = _convert(message, target.table_name)
        if isinstance(rows, str):
            self.refuse(message, rows)
        elif rows.rows:
            self._buffer(message, rows)
        return True

    # -- the server ----------------------------------------------------------------------
    def _connection(self) -> Any:
        """The open connection; a new one (and the progress table) when there is none or the
        old one does not answer (a server restarted since the last write)."""
        if self._conn is not None:
            try:
                self._conn.ping(reconnect=False)
            except pymysql.err.Error:
                self._disconnect()
                self._written = None  # a new connection reads the positions again
        if self._conn is None:
            c = self.config
            self._conn = pymysql.connect(
                host=c.host,
                port=c.port,
                user=c.user,
                password=c.password,
                database=c.database,
                autocommit=False,
                charset="utf8mb4",
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                read_timeout=IO_TIMEOUT_SECONDS,
                write_timeout=IO_TIMEOUT_SECONDS,
            )
            self._tables = {}
            with self._conn.cursor() as cursor:
                cursor.execute(PROGRESS_SQL)
            self._conn.commit()
        return self._conn

    def _read_written(self) -> RingPositions:
        conn = self._connection()
        with conn.cursor() as cursor:
            cursor.execute(READ_PROGRESS_SQL, (self.store_key,))
            found = cursor.fetchall()
        conn.commit()  # end the read's transaction: the writes see the newest data
        return {str(ring): (int(inode), int(seq)) for ring, inode, seq in found}

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        self._tables = {}
        if conn is not None:
            try:
                conn.close()
            except pymysql.err.Error as exc:  # already broken: nothing to keep
                self._logger.debug("closing the connection to %s: %s", self.server_name(), exc)

    def _write(self, pending: list[Pending[Rows]], positions: RingPositions) -> int:
        """Tables first (DDL commits by itself in MySQL), then one transaction: the rows of every
        buffered message, grouped into multi-row INSERTs, and the ring positions."""
        conn = self._connection()
        for p in pending:
            self._ensure_table(conn, p.item.table, p.item.columns)
        conn.begin()
        with conn.cursor() as cursor:
            for table, names, rows in _groups([p.item for p in pending]):
                cursor.executemany(insert_sql(table, names), rows)
            cursor.executemany(
                WRITE_PROGRESS_SQL,
                [(self.store_key, ring, inode, seq) for ring, (inode, seq) in positions.items()],
            )
        conn.commit()
        return sum(len(p.item.rows) for p in pending)

    def _ensure_table(self, conn: Any, table: str, columns: tuple[Column, ...]) -> None:
        """Create the table, or add the columns it lacks (nullable: older rows hold NULL)."""
        known = self._tables.get(table)
        if known is not None and all(c.name.lower() in known for c in columns):
            return
        with conn.cursor() as cursor:
            if known is None:
                cursor.execute(create_table_sql(table, columns))
                cursor.execute(f"SHOW COLUMNS FROM {quote(table)}")
                known = {str(row[0]).lower() for row in cursor.fetchall()}
            for column in columns:
                if column.name.lower() not in known:
                    self._logger.info("adding column %s %s to table %s", column.name, column.sql_type, table)
                    cursor.execute(add_column_sql(table, column))
                    known.add(column.name.lower())
        conn.commit()
        self._tables[table] = known


def _convert(message: DAQJobMessageStore, table_name: str) -> Rows | str:
    """The message's rows, or why they cannot be stored."""
    try:
        if isinstance(message, DAQJobMessageStorePyArrow):
            return table_rows(message.get_table(), table_name)
        assert isinstance(message, DAQJobMessageStoreTabular)
        return table_rows(pa.table(tabular_columns(message)), table_name)
    except (ValueError, MessageError, pa.ArrowException) as exc:
        return f"not rows an SQL table can hold: {exc}"


def _groups(items: list[Rows]) -> list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]:
    """Consecutive messages for one table with the same columns: one ``executemany`` each."""
    groups: list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]] = []
    for item in items:
        names = tuple(c.name for c in item.columns)
        if groups and groups[-1][0] == item.table and groups[-1][1] == names:
            groups[-1][2].extend(item.rows)
        else:
            groups.append((item.table, names, list(item.rows)))
    return groups
