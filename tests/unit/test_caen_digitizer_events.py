"""The digitizer's event processing (baseline, mV, filters, timestamps over the time tag's
roll-over) and its config (the original's file decodes; bad values are errors naming the field)."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest

from enrgdaq.config.decode import decode
from enrgdaq.daq.jobs.caen.digitizer_config import DAQJobCAENDigitizerConfig, TriggerMode
from enrgdaq.daq.jobs.caen.digitizer_driver import EventBlock, counter_gaps
from enrgdaq.daq.jobs.caen.digitizer_events import WAVEFORM_SCHEMA, WaveformProcessor, waveform_table
from enrgdaq.errors import ConfigError

UPSTREAM = os.path.join(os.path.dirname(os.path.dirname(__file__)), "upstream_configs", "caen_digitizer.toml")


def block(
    samples: list[list[list[int]]], counters: list[int], tags: list[int], channels: list[int]
) -> EventBlock:
    return EventBlock(
        samples=np.array(samples, dtype=np.uint16),
        channels=np.array(channels, dtype=np.uint8),
        event_counter=np.array(counters, dtype=np.uint32),
        trigger_time_tag=np.array(tags, dtype=np.uint32),
    )


def rows(columns: dict[str, np.ndarray]) -> list[tuple[int, ...]]:
    return list(zip(*(columns[name].tolist() for name in WAVEFORM_SCHEMA.names), strict=True))


def test_baseline_is_the_mean_of_the_first_tenth_and_values_are_truncated_millivolts() -> None:
    # 20 samples: the first 2 (10 %) at 1000 and 1002 -> baseline 1001; the rest would pull a
    # whole-record mean far lower.
    record = [1000, 1002] + [1001] * 8 + [801, 700, 1001, 1001, 1001, 1101, 1001, 1001, 1001, 1001]
    processor = WaveformProcessor(filter_threshold_mv=50)

    columns, stats = processor.process(block([[record]], [7], [100], [3]))

    assert rows(columns) == [
        (800 + 10, 7, 3, 10, -195),  # (801 - 1001) * 1000 / 1024 = -195.3 -> -195
        (800 + 11, 7, 3, 11, -293),  # -301 * 0.9765625 = -293.9 -> -293
        (800 + 15, 7, 3, 15, 97),  # 100 * 0.9765625 = 97.66 -> 97
    ]
    assert stats.acq_events == 1 and stats.total_samples_raw == 20
    assert stats.acq_samples == 3 and stats.samples_filtered_out == 17
    assert (stats.min_value_mv, stats.max_value_mv) == (-293, 97)
    assert stats.sum_value_mv == -195 - 293 + 97
    assert stats.sum_value_mv_squared == 195**2 + 293**2 + 97**2


def test_filter_keeps_samples_at_or_beyond_the_threshold_on_either_side() -> None:
    base = [512] * 10
    # 1024 counts = 1000 mV: +-52 counts = +-50.78 mV -> +-50 (kept at 50), +-51 counts -> 49.8 -> 49.
    record = [*base, 564, 460, 563, 461, 512, 512, 512, 512, 512, 512]
    columns, stats = WaveformProcessor(filter_threshold_mv=50).process(block([[record]], [1], [0], [0]))
    assert columns["value_mv"].tolist() == [50, -50]
    assert columns["sample_index"].tolist() == [10, 11]
    assert stats.samples_filtered_out == 18

    everything, _ = WaveformProcessor(filter_threshold_mv=0).process(block([[record]], [1], [0], [0]))
    assert len(everything["value_mv"]) == 20


def test_events_whose_peak_stays_below_the_event_threshold_are_dropped_whole() -> None:
    quiet = [[1023] * 10 + [1023 - 40] + [1023] * 9]  # peak -39 mV
    loud = [[1023] * 10 + [1023 - 40, 1023 - 200] + [1023] * 8]  # peak -195 mV
    events = block([quiet, loud], [1, 2], [10, 20], [0])

    kept, stats = WaveformProcessor(filter_threshold_mv=30, event_peak_threshold_mv=100).process(events)
    assert set(kept["event_counter"].tolist()) == {2}
    assert kept["value_mv"].tolist() == [-39, -195]
    assert stats.acq_events == 2 and stats.samples_filtered_out == 38

    both, _ = WaveformProcessor(filter_threshold_mv=30, event_peak_threshold_mv=0).process(events)
    assert set(both["event_counter"].tolist()) == {1, 2}


def test_events_without_channels_count_but_give_no_rows() -> None:
    empty = EventBlock(
        samples=np.zeros((2, 0, 0), dtype=np.uint16),
        channels=np.zeros(0, dtype=np.uint8),
        event_counter=np.array([1, 2], dtype=np.uint32),
        trigger_time_tag=np.array([5, 6], dtype=np.uint32),
    )
    columns, stats = WaveformProcessor(filter_threshold_mv=50, event_peak_threshold_mv=30).process(empty)
    assert len(columns["value_mv"]) == 0 and stats.acq_events == 2 and stats.total_samples_raw == 0


def test_timestamps_are_the_time_tag_in_ns_plus_the_sample_index_across_rollovers() -> None:
    top = 2**31 - 1
    processor = WaveformProcessor(filter_threshold_mv=0)
    flat = [[0] * 10]

    first, _ = processor.process(block([flat, flat], [1, 2], [top - 1, top], [0]))
    assert first["real_ns_timestamp"][:2].tolist() == [(top - 1) * 8, (top - 1) * 8 + 1]
    assert first["real_ns_timestamp"][10] == top * 8

    # The tag rolls over inside the next block and again in the one after: 2^31 ticks each.
    second, _ = processor.process(block([flat, flat], [3, 4], [5, 2**30], [0]))
    assert second["real_ns_timestamp"][0] == (2**31 + 5) * 8
    assert second["real_ns_timestamp"][10] == (2**31 + 2**30) * 8
    third, _ = processor.process(block([flat], [5], [3], [0]))
    assert third["real_ns_timestamp"][0] == (2 * 2**31 + 3) * 8
    assert third["real_ns_timestamp"].dtype == np.uint64

    # Bit 31 (an overflow flag on some boards) is not part of the tag.
    fourth, _ = processor.process(block([flat], [6], [2**31 + 4], [0]))
    assert fourth["real_ns_timestamp"][0] == (2 * 2**31 + 4) * 8


def test_waveform_table_has_the_original_columns_and_types() -> None:
    columns, _ = WaveformProcessor(filter_threshold_mv=0).process(block([[[5] * 10]], [1], [1], [2]))
    table = waveform_table(columns)
    assert table.schema == pa.schema(
        [
            ("real_ns_timestamp", pa.uint64()),
            ("event_counter", pa.uint32()),
            ("channel", pa.uint8()),
            ("sample_index", pa.uint16()),
            ("value_mv", pa.int16()),
        ]
    )
    assert table.num_rows == 10 and set(table.column("channel").to_pylist()) == {2}


def test_event_counter_gaps_are_counted_over_the_24_bit_wrap() -> None:
    assert counter_gaps(None, np.array([3, 4, 7], dtype=np.uint32)) == 2
    assert counter_gaps(7, np.array([8, 9], dtype=np.uint32)) == 0
    assert counter_gaps(2**24 - 2, np.array([2**24 - 1, 1], dtype=np.uint32)) == 1


def test_the_original_example_decodes_unchanged() -> None:
    with open(UPSTREAM) as f:
        config = decode(f.read(), DAQJobCAENDigitizerConfig, UPSTREAM)
    assert config.connection_type == "OPTICAL_LINK" and config.link_number == "1"
    assert config.sw_trigger() is TriggerMode.ACQ_ONLY and config.event_filter_out_peak_threshold == 30
    assert config.channel_enable_mask == 0 and config.waveform_store_config is not None
    # TOP baseline, rising edge: 1023 + 102 is clamped to the 10-bit ADC's top, not 1024 or more.
    assert config.trigger_threshold_lsb() == 1023


def parse(extra: str) -> DAQJobCAENDigitizerConfig:
    text = f'daq_job_type = "DAQJobCAENDigitizer"\nconnection_type = "SIMULATED"\n{extra}\n'
    return decode(text, DAQJobCAENDigitizerConfig, "dig.toml")


def test_config_values_by_name_dc_offsets_by_channel_and_thresholds_clamped() -> None:
    config = parse(
        'sw_trigger_mode = "ACQ_AND_EXTOUT"\ntrigger_polarity = "ON_FALLING_EDGE"\n'
        'baseline_position = "BOTTOM"\nchannel_self_trigger_threshold_mv = 300\n'
        "channel_dc_offsets = {0 = 50, 7 = 65535}"
    )
    assert config.sw_trigger() is TriggerMode.ACQ_AND_EXTOUT
    assert config.dc_offsets() == {0: 50, 7: 65535}
    assert config.trigger_threshold_lsb() == 0  # 0 - 307 clamped at the bottom
    assert (
        parse("").channel_dc_offsets == {}
        and parse("").channel_dc_offsets is not parse("").channel_dc_offsets
    )


@pytest.mark.parametrize(
    ("extra", "field", "says"),
    [
        ("record_length = 0", "record_length", ">= 1"),
        ("channel_enable_mask = 0x1FF", "channel_enable_mask", "<= 255"),
        ("channel_self_trigger_threshold_mv = 2000", "channel_self_trigger_threshold_mv", "<= 1000"),
        ("channel_dc_offsets = {8 = 10}", "channel_dc_offsets", "channel '8'"),
        ("channel_dc_offsets = {1 = 70000}", "channel_dc_offsets", "outside 0..65535"),
        ("sw_trigger_mode = 7", "sw_trigger_mode", "Invalid enum value 7"),
        ("post_trigger_size = 101", "post_trigger_size", "<= 100"),
        ("simulated_trigger_rate_hz = 0", "simulated_trigger_rate_hz", "> 0"),
        ("save_npy_lz4 = true", "save_npy_lz4", "not supported"),
        ("restart_driver_command = 'unclosed \"quote'", "restart_driver_command", "cannot be split"),
        ("colour = 'red'", "colour", "unknown"),
    ],
)
def test_bad_values_are_errors_naming_the_field(extra: str, field: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(extra)
    assert caught.value.field == field and says in str(caught.value), str(caught.value)


def test_a_real_device_needs_its_link_number() -> None:
    with pytest.raises(ConfigError, match="link_number is required"):
        decode(
            'daq_job_type = "DAQJobCAENDigitizer"\nconnection_type = "USB"\n', DAQJobCAENDigitizerConfig, "x"
        )
