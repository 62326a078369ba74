"""A simulated CAEN HV supply (``link_type = "SIMULATED"``): what a user can run without a crate.

Each channel behaves like a real one driving a resistive load:

- ``VMon`` ramps toward ``V0Set`` at ``RUp`` V/s while the channel is on (``Pw`` = 1), and toward
  0 at ``RDwn`` V/s when it is off; ``Status`` shows ON, ramping up or down;
- ``IMon`` (µA) follows the load: ``VMon / load_mohm``;
- when ``IMon`` exceeds ``I0Set`` the OVC bit is set, and after ``Trip`` seconds of it the
  channel trips: it is switched off at once (``Pw`` = 0, ``VMon`` = 0) and the internal-trip
  bit stays set until it is switched on again;
- set-parameter requests take ``Pw``, ``V0Set`` (clamped to ``SVMax``), ``I0Set``, ``RUp``,
  ``RDwn``, ``Trip`` and ``SVMax``; ``VMon``, ``IMon`` and ``Status`` are read-only.

Time is the monotonic clock unless a test passes its own ``clock``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from enrgdaq.daq.jobs.caen.hv_driver import ChannelStatus, HVBoard, ParamKind, ParamValue, coerce_value
from enrgdaq.errors import DeviceError, MessagePayloadError

SIM_MODEL = "SIM1535"
WRITABLE: dict[str, ParamKind] = {
    "Pw": ParamKind.INTEGER,
    "V0Set": ParamKind.NUMERIC,
    "I0Set": ParamKind.NUMERIC,
    "RUp": ParamKind.NUMERIC,
    "RDwn": ParamKind.NUMERIC,
    "Trip": ParamKind.NUMERIC,
    "SVMax": ParamKind.NUMERIC,
}
READ_ONLY = ("VMon", "IMon", "Status")
PARAMS = sorted([*WRITABLE, *READ_ONLY])


@dataclass
class SimulatedChannel:
    V0Set: float
    I0Set: float
    RUp: float
    RDwn: float
    Trip: float
    SVMax: float
    load_mohm: float
    Pw: int = 0
    VMon: float = 0.0
    IMon: float = 0.0
    Status: int = 0
    _over_since: float | None = None

    def advance(self, dt: float, now: float) -> None:
        """Move the channel on by ``dt`` seconds (``now`` is when that ends)."""
        target = min(self.V0Set, self.SVMax) if self.Pw else 0.0
        status = self.Status & ChannelStatus.INTERNAL_TRIP
        if self.VMon < target:
            self.VMon = min(target, self.VMon + self.RUp * dt)
        elif self.VMon > target:
            self.VMon = max(target, self.VMon - self.RDwn * dt)
        if self.VMon < target:
            status |= ChannelStatus.RAMP_UP
        elif self.VMon > target:
            status |= ChannelStatus.RAMP_DOWN
        if self.Pw:
            status |= ChannelStatus.ON
        self.IMon = self.VMon / self.load_mohm
        if self.IMon > self.I0Set:
            status |= ChannelStatus.OVER_CURRENT
            if self._over_since is None:
                self._over_since = now - dt
            if now - self._over_since >= self.Trip:
                self.Pw, self.VMon, self.IMon, self._over_since = 0, 0.0, 0.0, None
                status = ChannelStatus.INTERNAL_TRIP
        else:
            self._over_since = None
        self.Status = status

    def set(self, param: str, value: ParamValue) -> None:
        if param == "Pw":
            self.Pw = 1 if value else 0
            if self.Pw:
                self.Status &= ~ChannelStatus.INTERNAL_TRIP  # switching on again clears a trip
            return
        number = float(value)
        if number < 0:
            raise MessagePayloadError(f"{param} cannot be negative ({number})", field="payload.value")
        if param == "V0Set" and number > self.SVMax:
            raise MessagePayloadError(
                f"V0Set {number} V is above SVMax ({self.SVMax} V)", field="payload.value"
            )
        setattr(self, param, number)


class SimulatedHV:
    """The :class:`~enrgdaq.daq.jobs.caen.hv_driver.HVDriver` of a simulated crate."""

    def __init__(
        self,
        boards: int,
        channels: int,
        load_mohm: float,
        defaults: dict[str, float | int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._boards = [HVBoard(slot, SIM_MODEL, channels) for slot in range(boards)]
        self._channels = {
            (b.slot, ch): SimulatedChannel(load_mohm=load_mohm, **defaults)  # type: ignore[arg-type]
            for b in self._boards
            for ch in range(channels)
        }
        self._last = clock()
        self._open = False

    def open(self) -> list[HVBoard]:
        self._advance()
        self._open = True
        return list(self._boards)

    def readable_params(self, slot: int, channel: int) -> list[str]:
        self._channel(slot, channel)
        return list(PARAMS)

    def read(self, slot: int, channels: list[int], param: str) -> list[ParamValue]:
        self._advance()
        if param not in PARAMS:
            raise DeviceError(f"simulated HV: no parameter '{param}' on slot {slot}")
        return [getattr(self._channel(slot, ch), param) for ch in channels]

    def write(self, slot: int, channels: list[int], param: str, value: ParamValue) -> None:
        self._advance()
        if param in READ_ONLY:
            raise MessagePayloadError(f"{param} is read-only", field="payload.param_name")
        kind = WRITABLE.get(param)
        if kind is None:
            raise MessagePayloadError(
                f"unknown parameter '{param}'; settable: {', '.join(sorted(WRITABLE))}",
                field="payload.param_name",
            )
        value = coerce_value(param, kind, value)
        targets = [self._channel(slot, ch, payload=True) for ch in channels]
        for channel in targets:
            channel.set(param, value)

    def close(self) -> None:
        self._open = False

    def _channel(self, slot: int, channel: int, payload: bool = False) -> SimulatedChannel:
        found = self._channels.get((slot, channel))
        if found is None:
            what = f"no channel {channel} in slot {slot} of the simulated crate"
            if payload:
                raise MessagePayloadError(what, field="payload.channel_list")
            raise DeviceError(what)
        return found

    def _advance(self) -> None:
        """Advance every channel to now, in steps of at most 0.1 s (ramps and trips stay exact)."""
        now = self._clock()
        self._last = max(self._last, now - 600.0)  # a long pause: the last 10 minutes suffice
        while self._last < now:
            step = min(0.1, now - self._last)
            self._last += step
            for channel in self._channels.values():
                channel.advance(step, self._last)
