"""The MySQL store against a real MariaDB server (started by the test, random port, throwaway data
directory): tables created from the Arrow schema and read back with pymysql value by value; names
checked, raw bytes refused; a server that is down stalls the store and a restarted one is
reconnected to, every row once; a lost COMMIT reply and a store run again after a commit it never
released write nothing twice.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import os
import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pymysql
import pytest

from enrgdaq.daq.jobs.store.mysql import DAQJobStoreMySQL, DAQJobStoreMySQLConfig
from enrgdaq.daq.store.models import (
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreRaw,
    DAQJobMessageStoreTabular,
    DAQJobStoreConfig,
    DAQJobStoreConfigMySQL,
)
from enrgdaq.daq.store.retry import keep_in_ring
from enrgdaq.daq.types import JobTypeRegistry
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.data.writer import RingWriter
from enrgdaq.errors import MissingDependencyError
from tests.harness.mariadb_proc import DATABASE, USER, MariaDBServer, running_server
from tests.harness.waiting import wait_for
from tests.unit.test_store_write_errors import step

STORE = "store_mysql"


@pytest.fixture
def mariadb(tmp_path: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
    with running_server(tmp_path_factory, str(tmp_path / "mariadb")) as server:
        yield server


@pytest.fixture
def ring(tmp_path: Any) -> Iterator[tuple[DataPlaneSettings, RingWriter]]:
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    settings = DataPlaneSettings(run_dir=run_dir, ring_bytes=16 * 4096, slot_bytes=4096, block_timeout_s=0.05)
    writer = RingWriter("producer", settings)
    writer.ensure_consumers([STORE])
    try:
        yield settings, writer
    finally:
        writer.close()


def to(table_name: str) -> DAQJobStoreConfig:
    return DAQJobStoreConfig(mysql=DAQJobStoreConfigMySQL(table_name=table_name))


def numbered(n: int, table: str = "seq") -> DAQJobMessageStorePyArrow:
    return DAQJobMessageStorePyArrow(store_config=to(table), table=pa.table({"n": [n]}))


def mysql_store(server: MariaDBServer, settings: DataPlaneSettings) -> DAQJobStoreMySQL:
    store = DAQJobStoreMySQL(
        DAQJobStoreMySQLConfig(
            daq_job_type="DAQJobStoreMySQL",
            daq_job_unique_id=STORE,
            host="127.0.0.1",
            port=server.port,
            user=USER,
            password=server.password,
            database=DATABASE,
        )
    )
    store.configure_data_plane(settings)
    return store


def released(writer: RingWriter) -> int:
    gc.collect()
    return writer.ring.cursor(writer.ring.find_consumer(STORE))


def numbers(server: MariaDBServer, table: str = "seq") -> list[int]:
    return [int(row[0]) for row in server.rows(f"SELECT n FROM {table}")]


def test_a_table_is_created_from_the_arrow_schema_and_every_value_reads_back(
    mariadb: MariaDBServer, ring: tuple[DataPlaneSettings, RingWriter]
) -> None:
    settings, writer = ring
    store = mysql_store(mariadb, settings)
    when = dt.datetime(2025, 3, 2, 9, 14, 5, 123456)
    columns = {
        "i8": pa.array([-128, 127], pa.int8()),
        "i64": pa.array([-(2**63), 2**63 - 1], pa.int64()),
        "u64": pa.array([0, 2**64 - 1], pa.uint64()),
        "f32": pa.array([0.1, -2.5], pa.float32()),
        "f64": pa.array([0.1 + 0.2, float("nan")], pa.float64()),  # NaN: SQL has none, NULL
        "flag": pa.array([True, None], pa.bool_()),
        "txt": pa.array(["é; DROP TABLE x", None], pa.string()),
        "blob": pa.array([b"\x00\xff", b""], pa.binary()),
        "at": pa.array([when, None], pa.timestamp("us")),
        "at_ns": pa.array([np.datetime64("2025-03-02T09:14:05.123456789", "ns")] * 2, pa.timestamp("ns")),
        "at_utc": pa.array([when, when], pa.timestamp("us", tz="UTC")),
        "day": pa.array([dt.date(2025, 3, 2), None], pa.date32()),
        "amount": pa.array([Decimal("12.34"), Decimal("-0.01")], pa.decimal128(10, 2)),
        "kind": pa.array(["a", "b"]).dictionary_encode(),
    }
    try:
        writer.write(DAQJobMessageStorePyArrow(store_config=to("readout"), table=pa.table(columns)))
        writer.write(
            DAQJobMessageStoreTabular(store_config=to("rows"), keys=["n", "x"], data=[[1, 0.5], [2, 1.5]])
        )
        writer.write(DAQJobMessageStoreTabular(store_config=to("rows"), keys=["n"], data_columns={"n": [3]}))
        step(store)
        assert not store._writes.failing, store.counters.last_error

        types = dict(
            mariadb.rows(
                "SELECT column_name, column_type FROM information_schema.columns "
                f"WHERE table_schema = '{DATABASE}' AND table_name = 'readout'"
            )
        )
        assert types == {
            "i8": "tinyint(4)",
            "i64": "bigint(20)",
            "u64": "bigint(20) unsigned",
            "f32": "float",
            "f64": "double",
            "flag": "tinyint(1)",
            "txt": "longtext",
            "blob": "longblob",
            "at": "datetime(6)",
            "at_ns": "datetime(6)",
            "at_utc": "datetime(6)",
            "day": "date",
            "amount": "decimal(10,2)",
            "kind": "longtext",
        }
        got = mariadb.rows(f"SELECT {', '.join(f'`{c}`' for c in columns)} FROM readout")
        assert len(got) == 2
        first, second = (dict(zip(columns, row, strict=True)) for row in got)
        assert first["i8"] == -128 and second["i8"] == 127
        assert (first["i64"], second["i64"]) == (-(2**63), 2**63 - 1)
        assert (first["u64"], second["u64"]) == (0, 2**64 - 1)
        assert np.float32(first["f32"]) == np.float32(0.1) and second["f32"] == -2.5
        assert first["f64"] == 0.1 + 0.2 and second["f64"] is None
        assert (first["flag"], second["flag"]) == (1, None)
        assert (first["txt"], second["txt"]) == ("é; DROP TABLE x", None)
        assert (first["blob"], second["blob"]) == (b"\x00\xff", b"")
        assert (first["at"], second["at"]) == (when, None)
        assert first["at_ns"] == when  # nanoseconds cut to what DATETIME(6) keeps
        assert first["at_utc"] == when
        assert (first["day"], second["day"]) == (dt.date(2025, 3, 2), None)
        assert (first["amount"], second["amount"]) == (Decimal("12.34"), Decimal("-0.01"))
        assert (first["kind"], second["kind"]) == ("a", "b")
        assert mariadb.rows("SELECT n, x FROM `rows`") == [(1, 0.5), (2, 1.5), (3, None)]
        assert released(writer) == 3
    finally:
        store.free()


def test_a_later_message_with_a_new_column_adds_it(
    mariadb: MariaDBServer, ring: tuple[DataPlaneSettings, RingWriter]
) -> None:
    settings, writer = ring
    store = mysql_store(mariadb, settings)
    try:
        writer.write(numbered(1))
        step(store)
        writer.write(
            DAQJobMessageStorePyArrow(store_config=to("seq"), table=pa.table({"n": [2], "extra": [2.5]}))
        )
        step(store)
        assert mariadb.rows("SELECT n, extra FROM seq ORDER BY n") == [(1, None), (2, 2.5)]
    finally:
        store.free()


def test_raw_bytes_bad_names_and_unmapped_types_are_refused_once_and_nothing_else_is_lost(
    mariadb: MariaDBServer, ring: tuple[DataPlaneSettings, RingWriter], caplog: pytest.LogCaptureFixture
) -> None:
    settings, writer = ring
    store = mysql_store(mariadb, settings)
    caplog.set_level(logging.ERROR)
    try:
        writer.write(DAQJobMessageStoreRaw(store_config=to("seq"), data=b"frame"))
        writer.write(numbered(1, table="seq; DROP TABLE seq"))
        writer.write(numbered(1, table="enrgdaq_store_progress"))
        bad_column = pa.table({"n`; --": [1]})
        writer.write(DAQJobMessageStorePyArrow(store_config=to("seq"), table=bad_column))
        nested = pa.table({"n": [1], "hits": pa.array([[1, 2]], pa.list_(pa.int64()))})
        writer.write(DAQJobMessageStorePyArrow(store_config=to("seq"), table=nested))
        writer.write(numbered(2))
        step(store)

        # A table_name that is not a plain SQL name fails the config's own check where the slot
        # is read (enrgdaq check refuses it in a producer's file): counted as a corrupt slot.
        assert store.counters.unsupported == 4 and not store._writes.failing
        assert store._rings is not None and store._rings.corrupted == 1
        said = " | ".join(r.getMessage() for r in caplog.records)
        assert "DAQJobStoreMySQL stores DAQJobMessageStorePyArrow, DAQJobMessageStoreTabular" in said
        assert "is the store's own progress table" in said  # said once per producer and message type
        assert numbers(mariadb) == [2]
        tables = {row[0] for row in mariadb.rows("SHOW TABLES")}
        assert tables == {"seq", "enrgdaq_store_progress"}
        assert released(writer) == 6
    finally:
        store.free()


def test_a_server_that_is_down_stalls_the_store_and_every_row_arrives_once_when_it_is_back(
    mariadb: MariaDBServer, ring: tuple[DataPlaneSettings, RingWriter]
) -> None:
    settings, writer = ring
    store = mysql_store(mariadb, settings)
    try:
        writer.write(numbered(0))
        step(store)
        assert numbers(mariadb) == [0]

        mariadb.stop()
        for n in (1, 2, 3):
            writer.write(numbered(n))
        step(store)
        assert store._writes.failing
        error = store.counters.snapshot()["last_error"]
        assert f"mysql {USER}@127.0.0.1:{mariadb.port}/{DATABASE}" in error and "2003" in error, error
        assert mariadb.password not in error
        wait_for(lambda: (step(store), store.counters.write_errors >= 3)[1], 5, "two failed retries")
        assert released(writer) == 1

        mariadb.start()
        wait_for(lambda: (step(store), not store._writes.failing)[1], 10, "the retry once the server is back")
        assert numbers(mariadb) == [0, 1, 2, 3]
        assert released(writer) == 4 and store.counters.write_failing == 0
    finally:
        store.free()


def test_a_server_restarted_between_writes_is_reconnected_to_and_loses_nothing(
    mariadb: MariaDBServer, ring: tuple[DataPlaneSettings, RingWriter]
) -> None:
    settings, writer = ring
    store = mysql_store(mariadb, settings)
    try:
        for n in range(20):
            writer.write(numbered(n))
            step(store)
            if n == 9:
                mariadb.restart()  # the store's connection is dead now
        wait_for(lambda: (step(store), not store._writes.failing and numbers(mariadb))[1], 10, "the writes")
        assert numbers(mariadb) == list(range(20))
        assert store.counters.write_errors == 0, "a restart between writes is no failed write"
        assert released(writer) == 20
    finally:
        store.free()


def test_a_lost_commit_reply_does_not_write_the_rows_twice(
    mariadb: MariaDBServer, ring: tuple[DataPlaneSettings, RingWriter], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, writer = ring
    store = mysql_store(mariadb, settings)
    begin, commit = pymysql.connections.Connection.begin, pymysql.connections.Connection.commit
    in_write: list[bool] = []
    lost: list[bool] = []

    def begin_the_write(self: Any) -> None:
        in_write.append(True)
        begin(self)

    def commit_then_lose_the_reply(self: Any) -> None:
        commit(self)
        if in_write and not lost:  # the write's own COMMIT went through; its reply is lost
            lost.append(True)
            raise pymysql.err.OperationalError(2013, "Lost connection to server during query (test)")

    monkeypatch.setattr(pymysql.connections.Connection, "begin", begin_the_write)
    monkeypatch.setattr(pymysql.connections.Connection, "commit", commit_then_lose_the_reply)
    try:
        for n in range(3):
            writer.write(numbered(n))
        step(store)
        assert store._writes.failing and lost
        wait_for(lambda: (step(store), not store._writes.failing)[1], 5, "the retry")
        assert numbers(mariadb) == [0, 1, 2]
        assert released(writer) == 3
    finally:
        store.free()


def test_a_store_run_again_after_a_commit_it_never_released_skips_what_the_table_holds(
    mariadb: MariaDBServer, ring: tuple[DataPlaneSettings, RingWriter]
) -> None:
    settings, writer = ring
    first = mysql_store(mariadb, settings)
    for n in range(3):
        writer.write(numbered(n))
    first._poll_rings()
    first.store_loop()  # committed: rows and positions in one transaction ...
    keep_in_ring(first._unreleased)  # ... then "killed" before the release
    first._unreleased.clear()
    first.free()
    assert released(writer) == 0

    second = mysql_store(mariadb, settings)
    try:
        writer.write(numbered(3))
        step(second)
        assert numbers(mariadb) == [0, 1, 2, 3]
        assert released(writer) == 4
    finally:
        second.free()


def test_without_pymysql_the_store_is_a_config_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pymysql", None)
    monkeypatch.delitem(sys.modules, "enrgdaq.daq.jobs.store.mysql")
    with pytest.raises(MissingDependencyError, match=r"pip install 'enrgdaq\[mysql\]'"):
        JobTypeRegistry().get("DAQJobStoreMySQL")


def test_a_wrong_password_stalls_the_store_with_the_servers_word_and_never_shows_the_password(
    mariadb: MariaDBServer, ring: tuple[DataPlaneSettings, RingWriter], caplog: pytest.LogCaptureFixture
) -> None:
    settings, writer = ring
    store = mysql_store(mariadb, settings)
    wrong = "wrong-" + mariadb.password
    store.config.password = wrong
    caplog.set_level(logging.DEBUG)
    try:
        writer.write(numbered(0))
        step(store)
        assert store._writes.failing
        error = store.counters.snapshot()["last_error"]
        assert "1045" in error and "Access denied for user 'daq'" in error, error
        assert wrong not in error and wrong not in caplog.text
        assert released(writer) == 0
        store.config.password = mariadb.password
        wait_for(lambda: (step(store), not store._writes.failing)[1], 5, "the retry with the right password")
        assert numbers(mariadb) == [0] and released(writer) == 1
    finally:
        store.free()
