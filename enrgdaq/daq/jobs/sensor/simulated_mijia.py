"""A simulated LYWSD03MMC: temperature and humidity that drift like a lab's, a battery that drains.

Temperature follows a slow daily swing around 22 degC plus a mean-reverting
random walk; humidity moves against it around 45 %; the cell loses a little
voltage over time. Readings go through the real sensor's byte format, so they
have its resolution (0.01 degC, whole % humidity, mV).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

from enrgdaq.daq.jobs.sensor.lywsd03mmc import MijiaReading, decode_reading, encode_reading

DRAIN_MV_PER_HOUR = 0.5


class SimulatedLywsd03mmc:
    """``clock`` gives wall-clock seconds (tests pass their own); the seed comes from the address,
    so two simulated sensors differ and one sensor repeats itself across restarts."""

    def __init__(self, address: str, clock: Callable[[], float] = time.time) -> None:
        self.description = f"simulated LYWSD03MMC {address}"
        self._clock = clock
        self._rng = random.Random(address)
        self._offset = self._rng.uniform(-1.5, 1.5)
        self._walk = 0.0
        self._last = clock()
        self._battery_mv = 3000.0 - self._rng.uniform(0, 150)
        self.closed = False

    def _advance(self) -> tuple[float, float]:
        now = self._clock()
        dt = max(0.0, now - self._last)
        self._last = now
        # Ornstein-Uhlenbeck walk: wanders about 0.3 degC, relaxes over ~10 minutes.
        relax = math.exp(-dt / 600.0)
        self._walk = self._walk * relax + 0.3 * math.sqrt(1 - relax**2) * self._rng.gauss(0, 1)
        self._battery_mv -= DRAIN_MV_PER_HOUR * dt / 3600
        daily = 1.5 * math.sin(2 * math.pi * (now % 86400) / 86400)
        return 22.0 + self._offset + daily + self._walk, now

    def read(self, should_stop: Callable[[], bool]) -> MijiaReading | None:
        temperature, _ = self._advance()
        humidity = 45 - 2.5 * (temperature - 22.0) + self._rng.gauss(0, 0.4)
        humidity_pct = max(0, min(99, round(humidity)))
        return decode_reading(encode_reading(temperature, humidity_pct, round(self._battery_mv)))

    def close(self) -> None:
        self.closed = True
