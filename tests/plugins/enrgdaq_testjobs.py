"""Jobs for the tests, loaded the way a lab's own jobs are: ``plugins = ["enrgdaq_testjobs"]``.

They are written against the original's public API only (``DAQJob``,
``config_type``, ``start()`` polling ``_has_been_freed``, ``_put_message_out``).
"""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pyarrow as pa

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.jobs.store.csv import DAQJobStoreCSV, DAQJobStoreCSVConfig
from enrgdaq.daq.models import DAQJobConfig, DAQJobMessage
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, StorableDAQJobConfig


class DAQJobSequenceConfig(StorableDAQJobConfig):
    rate_hz: float = 100.0
    rows_per_message: int = 1


class DAQJobSequence(DAQJob):
    """Sends rows ``seq, value`` with a sequence number that never repeats within a run."""

    config_type = DAQJobSequenceConfig

    def start(self) -> None:
        seq = 0
        period = 1.0 / self.config.rate_hz
        due = time.monotonic()
        n = self.config.rows_per_message
        while not self._has_been_freed:
            table = pa.table({"seq": list(range(seq, seq + n)), "value": [float(seq)] * n})
            self._put_message_out(
                DAQJobMessageStorePyArrow(store_config=self.config.store_config, table=table)
            )
            seq += n
            due += period
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)


class DAQJobLifeLogConfig(DAQJobConfig):
    """``log_dir``: where each instance marks its life: ``<pid>.alive`` while it runs."""

    log_dir: str
    crash_after_seconds: float | None = None


class DAQJobLifeLog(DAQJob):
    """Marks its life in files, so that a test can see whether two instances ever overlap."""

    config_type = DAQJobLifeLogConfig
    restart_offset = timedelta(seconds=2)

    def start(self) -> None:
        os.makedirs(self.config.log_dir, exist_ok=True)
        marker = os.path.join(self.config.log_dir, f"{os.getpid()}.alive")
        with open(os.path.join(self.config.log_dir, "events.log"), "a") as log:
            log.write(f"start {os.getpid()} {time.time():.6f}\n")
        open(marker, "w").close()
        started = time.monotonic()
        try:
            while not self._has_been_freed:
                crash = self.config.crash_after_seconds
                if crash is not None and time.monotonic() - started >= crash:
                    raise RuntimeError("DAQJobLifeLog crashed on purpose")
                time.sleep(0.01)
        finally:
            os.unlink(marker)
            with open(os.path.join(self.config.log_dir, "events.log"), "a") as log:
                log.write(f"stop {os.getpid()} {time.time():.6f}\n")


class DAQJobCrashLoop(DAQJob):
    """Crashes at once, every time: for the backoff tests (short offset)."""

    config_type = DAQJobConfig
    restart_offset = timedelta(seconds=0.3)

    def start(self) -> None:
        raise RuntimeError("DAQJobCrashLoop crashed on purpose")


class DAQJobSlowRestart(DAQJobLifeLog):
    """Like DAQJobLifeLog, with a long restart offset (a restart stays pending for a while)."""

    restart_offset = timedelta(seconds=6)


class DAQJobStoreSlowCSVConfig(DAQJobStoreCSVConfig):
    """``stall_after``: after this many messages, one write takes ``stall_seconds`` (a slow disk)."""

    stall_after: int = 50
    stall_seconds: float = 3.0


class DAQJobStoreSlowCSV(DAQJobStoreCSV):
    """A CSV store whose disk stalls once: the store stays alive but its loop is stuck for a while."""

    config_type = DAQJobStoreSlowCSVConfig

    def handle_message(self, message: DAQJobMessage) -> bool:
        self._handled = getattr(self, "_handled", 0) + 1
        if self._handled == self.config.stall_after:
            time.sleep(self.config.stall_seconds)
        return super().handle_message(message)


class DAQJobNeedsFileConfig(DAQJobConfig):
    """A job whose config is only found wrong when it starts (a calibration file that is missing)."""

    needs: str


class DAQJobNeedsFile(DAQJob):
    config_type = DAQJobNeedsFileConfig

    def start(self) -> None:
        from enrgdaq.errors import ConfigError

        if not os.path.exists(self.config.needs):
            raise ConfigError(f"calibration file {self.config.needs} does not exist", field="needs")
        while not self._has_been_freed:
            time.sleep(0.05)


class DAQJobStoreKilledAfterWriteConfig(DAQJobStoreCSVConfig):
    """``kill_after_rows``: once this many rows are in its files, the store kills itself (-9)
    right after a write, before it gives the ring slots back; ``marker``: a file made before the
    kill, so that the restarted store runs on."""

    kill_after_rows: int
    marker: str


class DAQJobStoreKilledAfterWrite(DAQJobStoreCSV):
    """The CSV store, killed in the worst moment for exactly-once: rows written, slots not released."""

    config_type = DAQJobStoreKilledAfterWriteConfig

    def store_loop(self) -> None:
        super().store_loop()
        written = sum(f.rows_written for f in self._files.values())
        if written >= self.config.kill_after_rows and not os.path.exists(self.config.marker):
            with open(self.config.marker, "w") as f:
                f.write(f"killed after {written} rows\n")
            os.kill(os.getpid(), signal.SIGKILL)


# -- server stores killed in the worst moment (tests/system/test_server_stores.py) -----------------
from enrgdaq.daq.jobs.store.mysql import DAQJobStoreMySQL, DAQJobStoreMySQLConfig  # noqa: E402
from enrgdaq.daq.jobs.store.redis import DAQJobStoreRedis, DAQJobStoreRedisConfig  # noqa: E402


def _kill_after_commit(rows_written: int, kill_after_rows: int, marker: str) -> None:
    """Once ``kill_after_rows`` rows are committed: mark it, then SIGKILL before any release."""
    if rows_written >= kill_after_rows and not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(f"killed after {rows_written} rows\n")
        os.kill(os.getpid(), signal.SIGKILL)


class DAQJobStoreRedisKilledAfterWriteConfig(DAQJobStoreRedisConfig):
    kill_after_rows: int
    marker: str


class DAQJobStoreRedisKilledAfterWrite(DAQJobStoreRedis):
    """The Redis store, killed right after an EXEC, before its ring slots are given back."""

    config_type = DAQJobStoreRedisKilledAfterWriteConfig

    def store_loop(self) -> None:
        super().store_loop()
        _kill_after_commit(self.rows_written, self.config.kill_after_rows, self.config.marker)


class DAQJobStoreMySQLKilledAfterWriteConfig(DAQJobStoreMySQLConfig):
    kill_after_rows: int
    marker: str


class DAQJobStoreMySQLKilledAfterWrite(DAQJobStoreMySQL):
    """The MySQL store, killed right after a COMMIT, before its ring slots are given back."""

    config_type = DAQJobStoreMySQLKilledAfterWriteConfig

    def store_loop(self) -> None:
        super().store_loop()
        _kill_after_commit(self.rows_written, self.config.kill_after_rows, self.config.marker)


# -- the file stores (Raw, Parquet, Memory) -------------------------------------------------------


class DAQJobRawSequence(DAQJob):
    """Sends raw bytes ``b"<seq>\\n"`` with a sequence number that never repeats within a run."""

    config_type = DAQJobSequenceConfig

    def start(self) -> None:
        from enrgdaq.daq.store.models import DAQJobMessageStoreRaw

        seq = 0
        period = 1.0 / self.config.rate_hz
        due = time.monotonic()
        while not self._has_been_freed:
            self._put_message_out(
                DAQJobMessageStoreRaw(store_config=self.config.store_config, data=b"%d\n" % seq)
            )
            seq += 1
            due += period
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)


def _kill_once(marker: str, why: str) -> None:
    """Make ``marker`` (so that the restarted store runs on), then SIGKILL this process."""
    with open(marker, "w") as f:
        f.write(why + "\n")
    os.kill(os.getpid(), signal.SIGKILL)


from enrgdaq.daq.jobs.store.memory import DAQJobStoreMemory, DAQJobStoreMemoryConfig  # noqa: E402
from enrgdaq.daq.jobs.store.parquet import DAQJobStoreParquet, DAQJobStoreParquetConfig  # noqa: E402
from enrgdaq.daq.jobs.store.raw import DAQJobStoreRaw, DAQJobStoreRawConfig  # noqa: E402


class DAQJobStoreRawKilledAfterWriteConfig(DAQJobStoreRawConfig):
    """As DAQJobStoreKilledAfterWriteConfig, for the Raw store."""

    kill_after_rows: int
    marker: str


class DAQJobStoreRawKilledAfterWrite(DAQJobStoreRaw):
    """The Raw store, killed once right after a write, before it gives the ring slots back."""

    config_type = DAQJobStoreRawKilledAfterWriteConfig

    def write_dirty(self) -> None:
        super().write_dirty()
        written = sum(f.rows_written for f in self._files.values())
        if written >= self.config.kill_after_rows and not os.path.exists(self.config.marker):
            _kill_once(self.config.marker, f"killed after {written} rows")


class DAQJobStoreParquetKilledConfig(DAQJobStoreParquetConfig):
    """``kill_after_rows``: killed once right after a write to a write-ahead file that brings it to
    this many rows (``marker``); then, in a later run, killed once right after rows were added to
    the Parquet file, before the write-ahead file is removed (``commit_marker``)."""

    kill_after_rows: int
    marker: str
    commit_marker: str


class DAQJobStoreParquetKilled(DAQJobStoreParquet):
    """The Parquet store, killed at its two worst moments (see its config)."""

    config_type = DAQJobStoreParquetKilledConfig

    def write_dirty(self) -> None:
        super().write_dirty()
        written = sum(f.rows_written for f in self._files.values())
        if written >= self.config.kill_after_rows and not os.path.exists(self.config.marker):
            _kill_once(self.config.marker, f"killed after {written} rows")

    def _committed(self) -> None:
        super()._committed()
        if os.path.exists(self.config.marker) and not os.path.exists(self.config.commit_marker):
            _kill_once(self.config.commit_marker, "killed right after rows went into the Parquet file")


class DAQJobStoreMemoryDumpConfig(DAQJobStoreMemoryConfig):
    """``dump_path``: where the store writes what it kept when it stops (read back by a test)."""

    dump_path: str


class DAQJobStoreMemoryDump(DAQJobStoreMemory):
    """The Memory store, which writes what it kept at its stop, read back through its own methods:
    its tables as an Arrow stream at ``dump_path``, its raw bytes at ``dump_path + ".bin"``."""

    config_type = DAQJobStoreMemoryDumpConfig

    def cleanup(self) -> None:
        super().cleanup()
        import pyarrow.ipc as ipc

        table = self.table()
        if table is not None:
            with ipc.new_stream(self.config.dump_path, table.schema) as writer:
                writer.write_table(table)
        with open(self.config.dump_path + ".bin", "wb") as f:
            f.write(b"".join(e.data for e in self.entries() if e.data is not None))
