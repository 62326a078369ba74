"""From raw ADC records to the waveform rows the original stored, a block of events at a time.

Per event and channel (as the original's consumer did, vectorised with numpy here):

* baseline: the mean of the first 10 % of the record's samples;
* ``value_mv = (sample - baseline) * 1000 / 1024`` (10-bit ADC, 1 Vpp), truncated to an int16;
* only samples with ``|value_mv| >= filter_threshold_mv`` are kept, and with
  ``event_filter_out_peak_threshold`` > 0 only events whose largest ``|value_mv|`` reaches it;
* ``real_ns_timestamp``: the trigger time tag (31 bits of 8 ns ticks) extended over its roll-over
  (every 2^31 x 8 ns = 17.18 s), in ns, plus the sample index (1 ns per sample at 1 GS/s).

The roll-over count is state: one :class:`WaveformProcessor` per acquisition, fed in order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from enrgdaq.daq.jobs.caen.digitizer_driver import TRIGGER_TIME_TAG_MASK, EventBlock

WAVEFORM_SCHEMA = pa.schema(
    [
        ("real_ns_timestamp", pa.uint64()),
        ("event_counter", pa.uint32()),
        ("channel", pa.uint8()),
        ("sample_index", pa.uint16()),
        ("value_mv", pa.int16()),
    ]
)
"""The original's waveform columns."""
WAVEFORM_ROW_BYTES = 8 + 4 + 1 + 2 + 2
TTT_TICK_NS = 8
TTT_ROLLOVER = TRIGGER_TIME_TAG_MASK + 1
SAMPLE_PERIOD_NS = 1
BASELINE_FRACTION = 0.1
MV_PER_LSB = 1000 / 1024

Columns = dict[str, npt.NDArray[Any]]


@dataclass
class AcquisitionStats:
    """The original's stats columns, summed over the events of one interval."""

    acq_events: int = 0
    acq_samples: int = 0
    sum_value_mv: int = 0
    sum_value_mv_squared: int = 0
    min_value_mv: int | None = None
    max_value_mv: int | None = None
    samples_filtered_out: int = 0
    total_samples_raw: int = 0
    processing_time_ns: int = 0

    def add(self, other: AcquisitionStats) -> None:
        for f in fields(self):
            if f.name in ("min_value_mv", "max_value_mv"):
                continue
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        if other.min_value_mv is not None:
            mine = self.min_value_mv
            self.min_value_mv = other.min_value_mv if mine is None else min(mine, other.min_value_mv)
        if other.max_value_mv is not None:
            mine = self.max_value_mv
            self.max_value_mv = other.max_value_mv if mine is None else max(mine, other.max_value_mv)

    def row(
        self, timestamp_ms: int, events_dropped: int, queue_depth: int, buffer_flush_count: int
    ) -> dict[str, list[Any]]:
        """One row of the stats table, in the original's column order."""
        mean = self.sum_value_mv / self.acq_samples if self.acq_samples else 0.0
        return {
            "timestamp": [timestamp_ms],
            "acq_events": [self.acq_events],
            "acq_samples": [self.acq_samples],
            "mean_value_mv": [float(mean)],
            "sum_value_mv_squared": [self.sum_value_mv_squared],
            "min_value_mv": [self.min_value_mv or 0],
            "max_value_mv": [self.max_value_mv or 0],
            "samples_filtered_out": [self.samples_filtered_out],
            "total_samples_raw": [self.total_samples_raw],
            "events_dropped": [events_dropped],
            "queue_depth": [queue_depth],
            "processing_time_us": [self.processing_time_ns // 1000],
            "buffer_flush_count": [buffer_flush_count],
        }


class WaveformProcessor:
    def __init__(self, filter_threshold_mv: int, event_peak_threshold_mv: int = 0) -> None:
        self.filter_threshold_mv = filter_threshold_mv
        self.event_peak_threshold_mv = event_peak_threshold_mv
        self._last_ttt: int | None = None
        self._rollovers = 0

    def event_times_ns(self, trigger_time_tag: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint64]:
        """Trigger times in ns since the acquisition started, over the time tag's roll-overs."""
        ttt = trigger_time_tag.astype(np.int64) & TRIGGER_TIME_TAG_MASK
        if ttt.size == 0:
            return np.zeros(0, dtype=np.uint64)
        previous = np.empty_like(ttt)
        previous[0] = ttt[0] if self._last_ttt is None else self._last_ttt
        previous[1:] = ttt[:-1]
        wraps = np.cumsum(ttt < previous) + self._rollovers
        self._rollovers = int(wraps[-1])
        self._last_ttt = int(ttt[-1])
        return ((ttt + wraps * TTT_ROLLOVER) * TTT_TICK_NS).astype(np.uint64)

    def process(self, block: EventBlock) -> tuple[Columns, AcquisitionStats]:
        """The rows kept from ``block`` (columns of :data:`WAVEFORM_SCHEMA`) and its stats."""
        started = time.perf_counter_ns()
        samples = block.samples
        events, _, length = samples.shape
        if samples.size == 0:  # no channel enabled: events count, rows there are none
            samples = np.zeros((events, 0, 1), dtype=np.uint16)
            length = 1
        head = max(1, int(length * BASELINE_FRACTION))
        baseline = samples[:, :, :head].mean(axis=2, dtype=np.float32)
        scaled = np.subtract(samples, baseline[:, :, None], dtype=np.float32)
        scaled *= np.float32(MV_PER_LSB)
        value_mv = scaled.astype(np.int16)  # truncated toward zero, as the original's C
        magnitude = np.abs(value_mv)
        keep = magnitude >= self.filter_threshold_mv
        if self.event_peak_threshold_mv > 0 and magnitude.size:
            loud = magnitude.max(axis=(1, 2)) >= self.event_peak_threshold_mv
            keep &= loud[:, None, None]
        event_idx, channel_idx, sample_idx = np.nonzero(keep)
        values = value_mv[keep]
        times = self.event_times_ns(block.trigger_time_tag)
        columns: Columns = {
            "real_ns_timestamp": times[event_idx] + sample_idx.astype(np.uint64) * SAMPLE_PERIOD_NS,
            "event_counter": block.event_counter[event_idx].astype(np.uint32),
            "channel": block.channels[channel_idx].astype(np.uint8),
            "sample_index": sample_idx.astype(np.uint16),
            "value_mv": values,
        }
        wide = values.astype(np.int64)
        stats = AcquisitionStats(
            acq_events=events,
            acq_samples=int(values.size),
            sum_value_mv=int(wide.sum()),
            sum_value_mv_squared=int((wide * wide).sum()),
            min_value_mv=int(values.min()) if values.size else None,
            max_value_mv=int(values.max()) if values.size else None,
            samples_filtered_out=int(block.samples.size - values.size),
            total_samples_raw=int(block.samples.size),
        )
        stats.processing_time_ns = time.perf_counter_ns() - started
        return columns, stats


def waveform_table(columns: Columns) -> pa.Table:
    """An Arrow table of waveform columns (wrapping the arrays, no copy)."""
    return pa.table([pa.array(columns[f.name], type=f.type) for f in WAVEFORM_SCHEMA], schema=WAVEFORM_SCHEMA)


def concat_columns(parts: list[Columns]) -> Columns:
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([p[name] for p in parts]) for name in WAVEFORM_SCHEMA.names}


def split_columns(columns: Columns, max_rows: int) -> list[Columns]:
    """Slices of at most ``max_rows`` rows (views), so that each message fits a ring slot."""
    rows = len(columns["value_mv"])
    return [{k: v[i : i + max_rows] for k, v in columns.items()} for i in range(0, rows, max_rows)]
