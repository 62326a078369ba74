"""The simulated digitizer behaves like the board: trigger rate, channel mask, record length,
thresholds, polarity, DC offsets, block size and lost events when it is not read.

Its clock is a stand-in that the test moves (the device's own sleep moves it), so that a
minute of acquisition takes milliseconds and the counts are exact for a seed."""

from __future__ import annotations

import numpy as np
import pytest

from enrgdaq.config.decode import decode
from enrgdaq.daq.jobs.caen.digitizer_config import DAQJobCAENDigitizerConfig
from enrgdaq.daq.jobs.caen.digitizer_driver import EventBlock
from enrgdaq.daq.jobs.caen.digitizer_sim import MEMORY_EVENTS, SimulatedDigitizer
from enrgdaq.errors import DeviceError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def device(extra: str, seed: int = 1) -> tuple[SimulatedDigitizer, Clock]:
    text = f'daq_job_type = "DAQJobCAENDigitizer"\nconnection_type = "SIMULATED"\n{extra}\n'
    clock = Clock()
    sim = SimulatedDigitizer(
        decode(text, DAQJobCAENDigitizerConfig, "x"), seed=seed, clock=clock, sleep=clock.sleep
    )
    sim.open()
    sim.configure()
    sim.start()
    return sim, clock


def acquire(sim: SimulatedDigitizer, clock: Clock, seconds: float) -> list[EventBlock]:
    """Read as the job does (0.1 s timeouts) until ``seconds`` of device time passed."""
    end = clock.now + seconds
    blocks: list[EventBlock] = []
    while clock.now < end:
        blocks += sim.read(0.1)
    return blocks


def events(blocks: list[EventBlock]) -> int:
    return sum(b.events for b in blocks)


FORCED = "sw_trigger_mode = 1\nmax_num_events_blt = 100"


def test_a_software_trigger_takes_every_pulse_at_the_configured_rate() -> None:
    sim, clock = device(f"{FORCED}\nsimulated_trigger_rate_hz = 200")
    blocks = acquire(sim, clock, 60)
    # Poisson: 12,000 expected, sd 110.
    assert 11_500 < events(blocks) < 12_500
    counters = np.concatenate([b.event_counter for b in blocks])
    assert counters.tolist() == list(range(len(counters)))  # none lost: read in time
    stats = sim.stats()
    assert stats.events_read == len(counters) and stats.events_lost == 0
    # Time tags: 8 ns ticks, increasing, spread over the 60 s (2^31 ticks = 17 s: it rolled over).
    tags = np.concatenate([b.trigger_time_tag for b in blocks]).astype(np.int64)
    assert int(np.sum(np.diff(tags) < 0)) == 3


def test_only_enabled_channels_are_recorded_with_the_record_length() -> None:
    sim, clock = device(f"{FORCED}\nchannel_enable_mask = 0b10100100\nrecord_length = 300")
    (first, *_) = acquire(sim, clock, 1)
    assert first.channels.tolist() == [2, 5, 7]
    assert first.samples.shape[1:] == (3, 300) and first.samples.dtype == np.uint16
    assert int(first.samples.max()) <= 1023


def test_blocks_hold_at_most_max_num_events_blt_events() -> None:
    sim, clock = device("sw_trigger_mode = 1\nmax_num_events_blt = 3\nsimulated_trigger_rate_hz = 1000")
    clock.now += 1.0  # a second of events waits in the device
    sizes = [b.events for _ in range(5) for b in sim.read(0.1)]
    assert sizes == [3, 3, 3, 3, 3]


def test_a_pulse_below_the_threshold_does_not_trigger() -> None:
    base = "channel_self_trigger_channel_mask = 1\ntrigger_polarity = 1\nsimulated_trigger_rate_hz = 500"
    low, clock = device(f"{base}\nchannel_self_trigger_threshold_mv = 100")
    fired = events(acquire(low, clock, 20))
    # Amplitudes are exponential with a 150 mV mean: P(above 100 mV) = exp(-100/150) = 0.51.
    assert 0.46 * 10_000 < fired < 0.56 * 10_000
    high, clock = device(f"{base}\nchannel_self_trigger_threshold_mv = 1000")
    assert events(acquire(high, clock, 20)) < 0.002 * 10_000  # exp(-1000/150): a few at most


def test_each_triggered_event_crosses_the_threshold_on_the_trigger_channel() -> None:
    sim, clock = device(
        "channel_self_trigger_channel_mask = 0b10\nchannel_enable_mask = 0b11\ntrigger_polarity = 1\n"
        "channel_self_trigger_threshold_mv = 200\nsimulated_trigger_rate_hz = 300"
    )
    blocks = acquire(sim, clock, 5)
    assert events(blocks) > 50
    for b in blocks:
        # TOP baseline (1023), falling edge: channel 1's minimum reaches 1023 - 204 (noise aside).
        assert (b.samples[:, 1, :].min(axis=1) <= 1023 - 204 + 8).all()


def test_polarity_decides_whether_pulses_away_from_a_top_baseline_trigger() -> None:
    base = "channel_self_trigger_channel_mask = 1\nsimulated_trigger_rate_hz = 500"
    rising, clock = device(f"{base}\ntrigger_polarity = 0")  # TOP: pulses go down, never up
    assert events(acquire(rising, clock, 10)) == 0
    falling, clock = device(f"{base}\ntrigger_polarity = 1")
    assert events(acquire(falling, clock, 10)) > 1000


def test_baseline_position_and_dc_offsets_set_where_the_record_sits() -> None:
    sim, clock = device(
        f'{FORCED}\nchannel_enable_mask = 0b111\nbaseline_position = "BOTTOM"\n'
        "channel_dc_offsets = {1 = 32768, 2 = 65535}"
    )
    samples = np.concatenate([b.samples for b in acquire(sim, clock, 2)])
    pre_trigger = samples[:, :, :100].astype(float).mean(axis=(0, 2))
    assert pre_trigger[0] == pytest.approx(0.8, abs=1.0)  # BOTTOM, noise clipped at 0
    assert pre_trigger[1] == pytest.approx(512, abs=1.0)
    assert pre_trigger[2] == pytest.approx(1022.2, abs=1.0)
    # Pulses go up from a low baseline, down from a high one; the trigger at 20 % of the record.
    big = samples[:, 0, :].max(axis=1) > 100
    peak_at = samples[big, 0, :].argmax(axis=1)
    assert big.sum() > 20 and np.median(peak_at) == pytest.approx(1024 * 20 // 100 + 3, abs=2)
    assert (samples[:, 2, :].min(axis=1) < 1000).mean() > 0.8


def test_triggers_while_the_memory_is_full_are_lost_and_leave_counter_gaps() -> None:
    sim, clock = device("sw_trigger_mode = 1\nsimulated_trigger_rate_hz = 1000\nmax_num_events_blt = 1023")
    clock.now += 3.0  # nobody reads for 3 s: about 3000 triggers, memory for 1024
    blocks = acquire(sim, clock, 0.5)
    stats = sim.stats()
    assert 1800 < stats.events_lost < 2200
    counters = np.concatenate([b.event_counter for b in blocks]).astype(np.int64)
    assert counters[MEMORY_EVENTS - 1] == MEMORY_EVENTS - 1
    assert counters[MEMORY_EVENTS] - counters[MEMORY_EVENTS - 1] - 1 == stats.events_lost


def test_read_before_start_is_a_device_error() -> None:
    text = 'daq_job_type = "DAQJobCAENDigitizer"\nconnection_type = "SIMULATED"\n'
    sim = SimulatedDigitizer(decode(text, DAQJobCAENDigitizerConfig, "x"))
    with pytest.raises(DeviceError, match="out of order"):
        sim.read(0.01)
