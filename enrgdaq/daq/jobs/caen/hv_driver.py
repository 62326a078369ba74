"""What ``DAQJobCAENHV`` needs from a CAEN HV supply: one small interface, two implementations.

:class:`HVDriver` is implemented by the real driver over ``caen_libs.caenhvwrapper``
(:mod:`enrgdaq.daq.jobs.caen.hv_caen`) and by a simulated supply
(:mod:`enrgdaq.daq.jobs.caen.hv_sim`). Both raise :class:`~enrgdaq.errors.DeviceError` when the
device fails (the job then closes it and ends its run, to be restarted with backoff) and
:class:`~enrgdaq.errors.MessagePayloadError` when a set-parameter request cannot be applied
(an unknown or read-only parameter, a value of the wrong kind): the device is fine then.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from enrgdaq.errors import MessagePayloadError

ParamValue = float | int | str


class ParamKind(Enum):
    """How a parameter's value is carried (CAEN's PARAM_TYPE_*, reduced to what a value needs)."""

    NUMERIC = "numeric"  # float: volts, microamps, V/s, seconds
    INTEGER = "integer"  # on/off, status bits, enum index
    STRING = "string"


class ChannelStatus:
    """CAEN's channel status bits (the ``Status`` parameter)."""

    ON = 1 << 0
    RAMP_UP = 1 << 1
    RAMP_DOWN = 1 << 2
    OVER_CURRENT = 1 << 3
    OVER_VOLTAGE = 1 << 4
    UNDER_VOLTAGE = 1 << 5
    EXTERNAL_TRIP = 1 << 6
    MAX_V = 1 << 7
    EXTERNAL_DISABLE = 1 << 8
    INTERNAL_TRIP = 1 << 9


@dataclass(frozen=True)
class HVBoard:
    """A board found in the crate: its slot, model and number of channels."""

    slot: int
    model: str
    n_channel: int


class HVDriver(Protocol):
    """A CAEN HV system as the job uses it; only the job's loop thread calls it (one call at a time)."""

    def open(self) -> list[HVBoard]:
        """Connect and return the boards present (empty slots left out)."""
        ...

    def readable_params(self, slot: int, channel: int) -> list[str]:
        """Names of the channel's parameters that can be read (write-only ones left out)."""
        ...

    def read(self, slot: int, channels: list[int], param: str) -> list[ParamValue]:
        """The parameter's value for each of ``channels``, in order."""
        ...

    def write(self, slot: int, channels: list[int], param: str, value: ParamValue) -> None:
        """Set the parameter on each of ``channels``."""
        ...

    def close(self) -> None:
        """Disconnect; safe to call more than once and after a failed ``open``."""
        ...


def coerce_value(param: str, kind: ParamKind, value: ParamValue) -> ParamValue:
    """``value`` as the parameter takes it: floats for numeric parameters (1500.5 V is fine),
    whole numbers for on/off and enum parameters; anything else is the sender's mistake."""
    if kind is ParamKind.STRING:
        return str(value)
    if isinstance(value, (bool, str)):
        raise MessagePayloadError(f"{param} takes a number, not {value!r}", field="payload.value")
    if kind is ParamKind.NUMERIC:
        return float(value)
    if float(value) != int(value):
        raise MessagePayloadError(f"{param} takes a whole number, not {value!r}", field="payload.value")
    return int(value)
