"""The one interface the digitizer job reads a device through, and what it hands back.

Two implementations: :class:`~enrgdaq.daq.jobs.caen.digitizer_real.CAENDigitizerDriver` over
CAEN's binding, and :class:`~enrgdaq.daq.jobs.caen.digitizer_sim.SimulatedDigitizer`. The job
calls ``open``, ``configure``, ``start``, then ``read`` in a loop (each call returns within its
timeout, so a stop is seen quickly), and ``close`` on every way out (``close`` also stops the
acquisition; calling it twice is harmless). Every device failure is a
:class:`~enrgdaq.errors.DeviceError`, raised after the device was closed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from enrgdaq.daq.jobs.caen.digitizer_config import DAQJobCAENDigitizerConfig

EVENT_COUNTER_MODULO = 2**24
"""The boards' event counter has 24 bits."""
TRIGGER_TIME_TAG_MASK = 0x7FFFFFFF
"""The trigger time tag counts 8 ns ticks in 31 bits (bit 31 is an overflow flag on some boards)."""


@dataclass
class EventBlock:
    """Consecutive events with the same channels and record length, as arrays.

    Attributes:
        samples: ADC counts, shape (events, channels, samples), uint16.
        channels: the channel number of each second-axis row, uint8.
        event_counter: per event, uint32 (24 bits used).
        trigger_time_tag: per event, 8 ns ticks, uint32 (31 bits used).
    """

    samples: npt.NDArray[np.uint16]
    channels: npt.NDArray[np.uint8]
    event_counter: npt.NDArray[np.uint32]
    trigger_time_tag: npt.NDArray[np.uint32]

    @property
    def events(self) -> int:
        return int(self.samples.shape[0])


@dataclass
class DriverStats:
    """What a device reports, counted since it was opened.

    Attributes:
        events_read: events handed to the job.
        events_lost: triggers the device saw but could not keep (its memory was full because the
            job read too slowly): gaps in the event counter.
        buffered_events: events waiting in the device (or driver) to be read now.
    """

    events_read: int = 0
    events_lost: int = 0
    buffered_events: int = 0


class DigitizerDriver(Protocol):
    """A digitizer as the job sees it (see the module docstring for the call order)."""

    def open(self) -> None: ...

    def configure(self) -> None: ...

    def start(self) -> None: ...

    def read(self, timeout_s: float) -> list[EventBlock]:
        """The events that arrived, in order; an empty list once ``timeout_s`` passed without any."""
        ...

    def close(self) -> None: ...

    def stats(self) -> DriverStats: ...

    def describe(self) -> str:
        """Model and serial number (for the log), once opened."""
        ...


def make_driver(
    config: DAQJobCAENDigitizerConfig, log: logging.Logger | logging.LoggerAdapter[Any]
) -> DigitizerDriver:
    """The driver that ``connection_type`` asks for (the real one imports CAEN's binding only in
    ``open``); ``log``: the job's logger."""
    if config.simulated:
        from enrgdaq.daq.jobs.caen.digitizer_sim import SimulatedDigitizer

        return SimulatedDigitizer(config)
    from enrgdaq.daq.jobs.caen.digitizer_real import CAENDigitizerDriver

    return CAENDigitizerDriver(config, log=log)


def counter_gaps(previous: int | None, counters: npt.NDArray[np.uint32]) -> int:
    """Events missing between consecutive 24-bit event counters (``previous``: the last one seen)."""
    if counters.size == 0:
        return 0
    values = counters.astype(np.int64)
    if previous is not None:
        values = np.concatenate(([previous], values))
    steps = np.diff(values) % EVENT_COUNTER_MODULO
    return int(np.sum(steps[steps > 0] - 1))
