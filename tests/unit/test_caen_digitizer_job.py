"""The digitizer job in one process (no message plane: its messages collect in ``message_out``):
what it sends, how fast it stops, that the device is closed on a device error, and that
``restart_driver_command`` runs as a program, never through a shell."""

from __future__ import annotations

import pathlib
import threading
import time
from typing import Any

import pyarrow as pa
import pytest

from enrgdaq.config.decode import decode
from enrgdaq.daq.jobs.caen.digitizer import DAQJobCAENDigitizer
from enrgdaq.daq.jobs.caen.digitizer_config import DAQJobCAENDigitizerConfig
from enrgdaq.daq.jobs.caen.digitizer_driver import EventBlock
from enrgdaq.daq.jobs.caen.digitizer_events import WAVEFORM_SCHEMA
from enrgdaq.daq.jobs.caen.digitizer_sim import SimulatedDigitizer
from enrgdaq.errors import DeviceError, DeviceLibraryMissingError
from tests.harness.waiting import wait_for

STATS_COLUMNS = [
    "timestamp",
    "acq_events",
    "acq_samples",
    "mean_value_mv",
    "sum_value_mv_squared",
    "min_value_mv",
    "max_value_mv",
    "samples_filtered_out",
    "total_samples_raw",
    "events_dropped",
    "queue_depth",
    "processing_time_us",
    "buffer_flush_count",
]
STORES = "[waveform_store_config.memory]\n[stats_store_config.memory]\n"


def job(extra: str) -> DAQJobCAENDigitizer:
    text = f'daq_job_type = "DAQJobCAENDigitizer"\ndaq_job_unique_id = "dig"\n{extra}\n{STORES}'
    return DAQJobCAENDigitizer(decode(text, DAQJobCAENDigitizerConfig, "dig.toml"))


def tagged(j: DAQJobCAENDigitizer, tag: str) -> list[pa.Table]:
    return [m.table for m in list(j.message_out) if m.tag == tag]


def test_simulated_waveforms_and_stats_go_out_and_a_stop_ends_it_within_a_second() -> None:
    j = job(
        'connection_type = "SIMULATED"\nchannel_enable_mask = 0b11\nchannel_self_trigger_channel_mask = 1\n'
        "trigger_polarity = 1\nsimulated_trigger_rate_hz = 400\nmax_num_events_blt = 50"
    )
    runner = threading.Thread(target=j.start)
    runner.start()
    try:
        wait_for(lambda: len(tagged(j, "stats")) >= 2, 10, "two stats rows")
    finally:
        asked = time.monotonic()
        j.request_stop()
        runner.join(5)
    assert not runner.is_alive() and time.monotonic() - asked < 1.0
    assert j._driver is None  # closed

    waves = pa.concat_tables(tagged(j, "waveform"))
    assert waves.schema == WAVEFORM_SCHEMA and waves.num_rows > 1000
    assert set(waves.column("channel").to_pylist()) == {0, 1}
    values = waves.column("value_mv").to_numpy()
    assert values.min() >= -1000 and values.max() <= 0 and (abs(values) >= 50).all()  # TOP: pulses go down
    stats = pa.concat_tables(tagged(j, "stats"))
    assert stats.column_names == STATS_COLUMNS
    rows = stats.to_pylist()
    assert sum(r["acq_samples"] for r in rows) == waves.num_rows
    assert sum(r["buffer_flush_count"] for r in rows) == len(tagged(j, "waveform"))
    assert all(r["events_dropped"] == 0 for r in rows)
    assert all(r["total_samples_raw"] == r["acq_events"] * 2 * 1024 for r in rows)


class FailingDevice(SimulatedDigitizer):
    """The simulated device whose read fails, as a cable pulled out would, once two reads have
    returned events (on a loaded machine a read may return none)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.reads_with_events = 0
        self.closed = 0

    def read(self, timeout_s: float) -> list[EventBlock]:
        if self.reads_with_events == 2:
            raise DeviceError("simulated digitizer: reading events failed: COMM_ERROR")
        blocks = super().read(timeout_s)
        self.reads_with_events += bool(blocks)
        return blocks

    def close(self) -> None:
        self.closed += 1
        super().close()


def test_a_device_error_ends_the_run_with_it_after_closing_the_device() -> None:
    # Every sample kept (filter_threshold_mv = 0): each event read makes rows, whatever its pulse's
    # height (with the default 50 mV two reads of small pulses can make none: it failed once in CI).
    j = job(
        'connection_type = "SIMULATED"\nsw_trigger_mode = 1\nsimulated_trigger_rate_hz = 1000\n'
        "filter_threshold_mv = 0"
    )
    device = FailingDevice(j.config)
    j.new_driver = lambda: device  # type: ignore[method-assign]
    with pytest.raises(DeviceError, match="COMM_ERROR"):
        j.start()
    assert device.closed == 1
    assert tagged(j, "waveform"), "the rows read before the error are sent"
    j.free()


def test_restart_driver_command_runs_as_a_program_without_a_shell(tmp_path: pathlib.Path) -> None:
    ran, never = tmp_path / "ran", tmp_path / "never"
    real = 'connection_type = "USB"\nlink_number = "0"\n'

    # It runs (then the real device needs CAEN's library, which this machine lacks).
    with pytest.raises(DeviceLibraryMissingError):
        job(f"{real}restart_driver_command = 'touch {ran}'").start()
    assert ran.exists()

    # `;` is an argument of echo, not a shell's separator: the second command never runs.
    with pytest.raises(DeviceLibraryMissingError):
        job(f"{real}restart_driver_command = 'echo reloading; touch {never}'").start()
    assert not never.exists()

    with pytest.raises(DeviceError, match="'false' exited with status 1"):
        job(f"{real}restart_driver_command = 'false'").start()
    with pytest.raises(DeviceError, match="cannot run 'no-such-program-here'"):
        job(f"{real}restart_driver_command = 'no-such-program-here --now'").start()
