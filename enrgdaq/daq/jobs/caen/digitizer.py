"""``DAQJobCAENDigitizer``: waveforms of a CAEN digitizer (or its simulation) to the stores.

The loop reads the device with a short timeout (0.1 s), turns each block of events into
waveform rows (:mod:`~enrgdaq.daq.jobs.caen.digitizer_events`) and sends them to
``waveform_store_config`` as Arrow tables through the job's ring (zero-copy for the stores),
one message when a slot's worth of rows is ready or at the latest one second after the first
row waiting. Once a second a stats row goes to ``stats_store_config``, also when nothing
triggered (a dead trigger shows as zeros).

A stop is seen within the read timeout; the acquisition is stopped and the device closed on
every way out, then the rows read so far are sent. A device error ends the run with a
:class:`~enrgdaq.errors.DeviceError`: ``enrgdaq status`` shows it and the job is restarted
with backoff, its worker untouched. Runs on the ``caen`` queue unless its TOML names another:
``celery -A enrgdaq worker -Q caen`` on the machine with the crate.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, ClassVar

import pyarrow as pa

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.channel import StoreChannel
from enrgdaq.daq.jobs.caen.digitizer_command import run_restart_command
from enrgdaq.daq.jobs.caen.digitizer_config import BaselinePosition, DAQJobCAENDigitizerConfig
from enrgdaq.daq.jobs.caen.digitizer_driver import DigitizerDriver, EventBlock, make_driver
from enrgdaq.daq.jobs.caen.digitizer_events import (
    WAVEFORM_ROW_BYTES,
    AcquisitionStats,
    Columns,
    WaveformProcessor,
    concat_columns,
    split_columns,
    waveform_table,
)
from enrgdaq.daq.stats import worth_a_line
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow

__all__ = ["BaselinePosition", "DAQJobCAENDigitizer", "DAQJobCAENDigitizerConfig"]

READ_TIMEOUT_SECONDS = 0.1
FLUSH_SECONDS = 1.0
STATS_SECONDS = 1.0
SLOT_HEADROOM_BYTES = 64 * 1024
"""Room left in a ring slot for the Arrow framing around a waveform block's rows."""
DEFAULT_SLOT_BYTES = 2**20


class DAQJobCAENDigitizer(DAQJob):
    """Waveform rows and once-a-second stats of a CAEN digitizer, or of a simulated one."""

    config_type = DAQJobCAENDigitizerConfig
    config: DAQJobCAENDigitizerConfig
    queue: ClassVar[str] = "caen"
    restart_offset = timedelta(seconds=5)

    def __init__(self, config: DAQJobCAENDigitizerConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._driver: DigitizerDriver | None = None
        self._processor = WaveformProcessor(
            config.filter_threshold_mv, config.event_filter_out_peak_threshold
        )
        self._pending: list[Columns] = []
        self._pending_rows = 0
        self._pending_since = 0.0
        self._window = AcquisitionStats()
        self._flushes = 0
        self._waveforms: StoreChannel | None = None  # made at the first flush (the routes are known then)
        self._lost_reported = 0
        self._stop_asked: float | None = None

    def new_driver(self) -> DigitizerDriver:
        """The device this job reads (tests replace it)."""
        return make_driver(self.config, self._logger)

    def start(self) -> None:
        driver = self._driver = self.new_driver()
        started = False
        try:
            if self.config.restart_driver_command and not self.config.simulated:
                self._logger.info("running restart_driver_command")
                if not run_restart_command(self.config.restart_driver_argv(), lambda: self._has_been_freed):
                    return
            driver.open()
            driver.configure()
            driver.start()
            started = True
            self._logger.info("acquisition started: %s", driver.describe())
            self._acquire(driver)
        finally:
            self._close_driver()
            if started:  # the rows and stats of the last moments
                self._flush()
                self._send_stats(driver)

    def request_stop(self) -> None:
        if self._stop_asked is None:
            self._stop_asked = time.monotonic()
        super().request_stop()

    def cleanup(self) -> None:
        self._close_driver()
        super().cleanup()

    def _acquire(self, driver: DigitizerDriver) -> None:
        next_stats = time.monotonic() + STATS_SECONDS
        while not self._has_been_freed:
            for block in driver.read(READ_TIMEOUT_SECONDS):
                self._take(block)
            now = time.monotonic()
            if self._pending_rows and (
                self._pending_rows >= self._max_rows() or now - self._pending_since >= FLUSH_SECONDS
            ):
                self._flush()
            if now >= next_stats:
                self._send_stats(driver)
                next_stats = now + STATS_SECONDS

    def _take(self, block: EventBlock) -> None:
        columns, stats = self._processor.process(block)
        self._window.add(stats)
        rows = len(columns["value_mv"])
        if self.config.waveform_store_config is None or rows == 0:
            return
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append(columns)
        self._pending_rows += rows

    def _max_rows(self) -> int:
        settings = self._data_plane
        slot = settings.slot_bytes if settings is not None else DEFAULT_SLOT_BYTES
        return max(1024, (slot - SLOT_HEADROOM_BYTES) // WAVEFORM_ROW_BYTES)

    def _flush(self) -> None:
        """Send the waiting waveform rows, a ring slot's worth per message."""
        store_config = self.config.waveform_store_config
        if not self._pending or store_config is None:
            return
        columns = concat_columns(self._pending)
        self._pending, self._pending_rows = [], 0
        if self._waveforms is None:  # the readout's path into the stores (see enrgdaq.daq.channel)
            self._waveforms = self.store_channel(store_config, tag="waveform")
        for part in split_columns(columns, self._max_rows()):
            self._waveforms.put(waveform_table(part))
            self._flushes += 1

    def _send_stats(self, driver: DigitizerDriver) -> None:
        device = driver.stats()
        dropped = device.events_lost - self._lost_reported
        self._lost_reported = device.events_lost
        if dropped and worth_a_line(device.events_lost - dropped, device.events_lost):
            self._logger.warning(
                "%d event(s) lost so far: the device's memory was full (the readout or the stores are "
                "too slow for the trigger rate)",
                device.events_lost,
            )
        window, self._window = self._window, AcquisitionStats()
        flushes, self._flushes = self._flushes, 0
        if self.config.stats_store_config is None:
            return
        row = window.row(int(time.time() * 1000), dropped, device.buffered_events, flushes)
        self._put_message_out(
            DAQJobMessageStorePyArrow(
                store_config=self.config.stats_store_config, tag="stats", table=pa.table(row)
            )
        )

    def _close_driver(self) -> None:
        driver, self._driver = self._driver, None
        if driver is None:
            return
        driver.close()
        if self._stop_asked is not None:
            self._logger.info(
                "acquisition stopped, device closed %.3f s after the stop request",
                time.monotonic() - self._stop_asked,
            )
        else:
            self._logger.info("device closed")
