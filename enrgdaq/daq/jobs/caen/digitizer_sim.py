"""A simulated CAEN digitizer: 8 channels, 10-bit ADC, 1 GS/s, that triggers like the real one.

What it does, so that a config can be tried without the crate:

* Pulses arrive as a Poisson process at ``simulated_trigger_rate_hz``; each one shows on every
  channel with its own amplitude (exponential, mean 150 mV), a fast rise and a 40-sample decay,
  going away from the baseline (down from a baseline in the upper half of the range, up
  otherwise), on top of Gaussian noise (2 counts).
* Baseline: ``baseline_position`` (1023 / 512 / 0); a channel named in ``channel_dc_offsets``
  has its baseline at ``offset / 65535`` of the range instead.
* A pulse makes an event when a self-trigger channel (in ``channel_self_trigger_channel_mask``
  and enabled) crosses the threshold with the configured edge: a pulse below the threshold, or
  going the other way, does not trigger. With ``sw_trigger_mode`` or ``ext_trigger_mode`` set to
  acquire, every pulse makes an event (a software or external trigger at that rate).
* Events are recorded for the enabled channels, ``record_length`` samples each, the trigger at
  ``100 - post_trigger_size`` percent of the record; the event counter (24 bits) counts every
  trigger and the time tag counts 8 ns ticks in 31 bits.
* Its memory holds 1024 events; triggers that come while it is full are lost and counted
  (``events_lost``), as on the board when the readout falls behind. ``read`` returns at most
  ``max_num_events_blt`` events.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from enrgdaq.daq.jobs.caen.digitizer_config import (
    ADC_MAX,
    DC_OFFSET_MAX,
    MAX_CHANNELS,
    MV_TO_LSB,
    DAQJobCAENDigitizerConfig,
    TriggerPolarity,
)
from enrgdaq.daq.jobs.caen.digitizer_driver import (
    EVENT_COUNTER_MODULO,
    TRIGGER_TIME_TAG_MASK,
    DriverStats,
    EventBlock,
)
from enrgdaq.errors import DeviceError

MEMORY_EVENTS = 1024
NOISE_LSB = 2.0
PULSE_MEAN_MV = 150.0
RISE_SAMPLES = 4
DECAY_SAMPLES = 40.0
NOISE_POOL_VALUES = 4_000_000
"""Noise is drawn once into a pool of records (int8) and reused: no random number per sample."""
POLL_SECONDS = 0.005


class SimulatedDigitizer:
    def __init__(
        self,
        config: DAQJobCAENDigitizerConfig,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._rng = np.random.default_rng(seed)
        self._clock = clock
        self._sleep = sleep
        self._opened = False
        self._configured = False
        self._running = False
        self._stats = DriverStats()
        self._counter = 0
        self._t0 = 0.0
        self._generated_until = 0.0
        self._mem_time = np.zeros(0)
        self._mem_counter = np.zeros(0, dtype=np.uint32)
        self._mem_amp = np.zeros((0, MAX_CHANNELS), dtype=np.float32)

    # -- the driver interface ------------------------------------------------------
    def open(self) -> None:
        self._opened = True

    def configure(self) -> None:
        self._need(self._opened, "configure")
        c = self.config
        offsets = c.dc_offsets()
        target = c.baseline_position.target_lsb()
        self._baseline = np.array(
            [
                round(offsets[ch] / DC_OFFSET_MAX * ADC_MAX) if ch in offsets else target
                for ch in range(MAX_CHANNELS)
            ],
            dtype=np.float32,
        )
        self._direction = np.where(self._baseline >= (ADC_MAX + 1) / 2, -1.0, 1.0).astype(np.float32)
        self._channels = np.array(c.enabled_channels(), dtype=np.uint8)
        trigger_mask = c.channel_self_trigger_channel_mask & c.channel_enable_mask
        self._trigger_channels = [ch for ch in range(MAX_CHANNELS) if trigger_mask >> ch & 1]
        self._threshold = c.trigger_threshold_lsb()
        self._rising = c.polarity() is TriggerPolarity.ON_RISING_EDGE
        self._forced = c.sw_trigger().acquires or c.ext_trigger().acquires
        length = c.record_length
        self._shape = _pulse_shape(length, min(length - 1, length * (100 - c.post_trigger_size) // 100))
        records = max(2, min(32, NOISE_POOL_VALUES // max(1, len(self._channels) * length)))
        noise = self._rng.normal(0.0, NOISE_LSB, (records, len(self._channels), length))
        self._noise = np.clip(np.rint(noise), -127, 127).astype(np.int8)
        self._configured = True

    def start(self) -> None:
        self._need(self._configured, "start")
        self._running = True
        self._t0 = self._generated_until = self._clock()

    def read(self, timeout_s: float) -> list[EventBlock]:
        self._need(self._running, "read")
        deadline = self._clock() + timeout_s
        while True:
            self._generate(self._clock())
            if self._mem_time.size:
                return [self._take(self.config.max_num_events_blt)]
            remaining = deadline - self._clock()
            if remaining <= 0:
                return []
            self._sleep(min(remaining, POLL_SECONDS))

    def close(self) -> None:
        self._running = self._configured = self._opened = False

    def stats(self) -> DriverStats:
        self._stats.buffered_events = int(self._mem_time.size)
        return DriverStats(**vars(self._stats))

    def describe(self) -> str:
        return (
            f"simulated digitizer, channels {self._channels.tolist() if self._configured else '?'}, "
            f"{self.config.simulated_trigger_rate_hz:g} Hz of pulses"
        )

    # -- the simulation ------------------------------------------------------------
    def _need(self, ok: bool, what: str) -> None:
        if not ok:
            raise DeviceError(f"simulated digitizer: {what} called out of order (open, configure, start)")

    def _generate(self, now: float) -> None:
        """Pulses since the last call: which trigger, which fit in memory, which are lost."""
        span = now - self._generated_until
        if span <= 0:
            return
        count = int(self._rng.poisson(self.config.simulated_trigger_rate_hz * span))
        times = self._generated_until + np.sort(self._rng.uniform(0.0, span, count))
        self._generated_until = now
        if count == 0:
            return
        amplitudes = self._rng.exponential(PULSE_MEAN_MV * MV_TO_LSB, (count, MAX_CHANNELS)).astype(
            np.float32
        )
        triggered = self._triggers(amplitudes)
        times, amplitudes = times[triggered], amplitudes[triggered]
        accepted = len(times)
        counters = (self._counter + np.arange(accepted)) % EVENT_COUNTER_MODULO
        self._counter = (self._counter + accepted) % EVENT_COUNTER_MODULO
        room = max(0, MEMORY_EVENTS - self._mem_time.size)
        self._stats.events_lost += max(0, accepted - room)
        self._mem_time = np.concatenate((self._mem_time, times[:room]))
        self._mem_counter = np.concatenate((self._mem_counter, counters[:room].astype(np.uint32)))
        self._mem_amp = np.concatenate((self._mem_amp, amplitudes[:room]))

    def _triggers(self, amplitudes: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
        if self._forced:
            return np.ones(len(amplitudes), dtype=bool)
        fired = np.zeros(len(amplitudes), dtype=bool)
        threshold = self._threshold
        for ch in self._trigger_channels:
            base = self._baseline[ch]
            peak = np.clip(base + self._direction[ch] * amplitudes[:, ch], 0, ADC_MAX)
            if self._rising:
                fired |= (base < threshold) & (peak >= threshold)
            else:
                fired |= (base > threshold) & (peak <= threshold)
        return fired

    def _take(self, limit: int) -> EventBlock:
        n = min(limit, self._mem_time.size)
        times, self._mem_time = self._mem_time[:n], self._mem_time[n:]
        counters, self._mem_counter = self._mem_counter[:n], self._mem_counter[n:]
        amps, self._mem_amp = self._mem_amp[:n], self._mem_amp[n:]
        channels = self._channels.astype(np.intp)
        # In place, one float32 record block: pulse, + noise, + baseline (+ 0.5 to round), clipped.
        wave = np.multiply((self._direction[channels] * amps[:, channels])[:, :, None], self._shape)
        wave += self._noise[self._rng.integers(0, len(self._noise), n)]
        wave += (self._baseline[channels] + np.float32(0.5))[None, :, None]
        np.clip(wave, 0, ADC_MAX, out=wave)
        samples = wave.astype(np.uint16)
        ticks = ((times - self._t0) * 1e9 / 8).astype(np.int64) & TRIGGER_TIME_TAG_MASK
        self._stats.events_read += n
        return EventBlock(
            samples=samples,
            channels=self._channels.copy(),
            event_counter=counters,
            trigger_time_tag=ticks.astype(np.uint32),
        )


def _pulse_shape(length: int, onset: int) -> npt.NDArray[np.float32]:
    """Unit-height pulse over a record: linear rise from ``onset``, then exponential decay."""
    t = np.arange(length, dtype=np.float32) - onset
    rise = np.clip((t + 1) / RISE_SAMPLES, 0.0, 1.0)
    decay = np.exp(-np.maximum(t + 1 - RISE_SAMPLES, 0.0) / DECAY_SAMPLES)
    return np.where(t < 0, 0.0, rise * decay).astype(np.float32)
