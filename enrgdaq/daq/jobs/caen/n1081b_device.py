"""What ``DAQJobN1081B`` needs from a CAEN N1081B, and the simulated unit.

:class:`N1081BDriver` is implemented by the websocket client
(:mod:`enrgdaq.daq.jobs.caen.n1081b_client`) and by :class:`SimulatedN1081B`. Both answer
``results(section)`` with the unit's own reply to ``get_function_results``:
``{"data": {"counters": [{"lemo": 0, "value": 123}, ...]}, ...}``, and raise
:class:`~enrgdaq.errors.DeviceError` when the unit cannot be reached or answers wrongly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from enrgdaq.daq.jobs.caen.n1081b_config import SECTIONS


class N1081BDriver(Protocol):
    def connect(self) -> None:
        """Open the connection and log in."""
        ...

    def results(self, section: str) -> dict[str, Any]:
        """The reply to ``get_function_results`` for ``section`` (``SEC_A`` .. ``SEC_D``)."""
        ...

    def close(self) -> None:
        """Close the connection; safe to call more than once."""
        ...


def counters_of(section: str, reply: dict[str, Any]) -> dict[int, int]:
    """``{lemo: value}`` from a ``get_function_results`` reply; empty when it holds no counters
    (the section runs another function than a counter or scaler)."""
    data = reply.get("data") if isinstance(reply, dict) else None
    counters = data.get("counters") if isinstance(data, dict) else None
    if not isinstance(counters, list):
        return {}
    found = {}
    for item in counters:
        if (
            isinstance(item, dict)
            and isinstance(item.get("lemo"), int)
            and isinstance(item.get("value"), int)
        ):
            found[item["lemo"]] = item["value"]
    return found


class SimulatedN1081B:
    """A unit whose sections count Poisson pulses on each LEMO input at the configured rates,
    from zero at ``connect``, as its counter function does."""

    def __init__(
        self,
        rates_hz: dict[str, list[float]],
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
    ) -> None:
        self._rates = {s: np.asarray(rates_hz[s], dtype=float) for s in SECTIONS if s in rates_hz}
        self._clock = clock
        self._rng = np.random.default_rng(seed)
        self._counts: dict[str, np.ndarray] = {}
        self._last = clock()

    def connect(self) -> None:
        self._counts = {s: np.zeros(len(r), dtype=np.int64) for s, r in self._rates.items()}
        self._last = self._clock()

    def results(self, section: str) -> dict[str, Any]:
        now = self._clock()
        dt, self._last = max(0.0, now - self._last), now
        for name, rates in self._rates.items():
            self._counts[name] += self._rng.poisson(rates * dt)
        counts = self._counts.get(section)
        if counts is None:
            return {"Result": True, "data": {}}
        return {
            "Result": True,
            "data": {"counters": [{"lemo": i, "value": int(v)} for i, v in enumerate(counts)]},
        }

    def close(self) -> None:
        self._counts = {}
