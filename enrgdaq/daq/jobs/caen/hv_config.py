"""``DAQJobCAENHVConfig``: the original's fields, decoded strictly, plus the simulated supply."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from enrgdaq.daq.models import DAQJobConfig
from enrgdaq.daq.store.models import DAQJobStoreConfig
from enrgdaq.errors import ConfigValueError

SystemType = Literal[
    "SY1527",
    "SY2527",
    "SY4527",
    "SY5527",
    "N568E",
    "V65XX",
    "N1470",
    "V8100",
    "N568B",
    "SMARTHV",
    "NGPS",
    "N1068",
    "DT55XXE",
    "DT55XX",
]
LinkType = Literal["TCPIP", "RS232", "USB", "OPTLINK", "USB_VCP", "SIMULATED"]
SIMULATED = "SIMULATED"
CAEN_HV_POLL_INTERVAL_SECONDS = 1.0

PositiveFloat = Annotated[float, msgspec.Meta(gt=0, le=1e6)]


class HVChannelSelection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One ``[[channels_to_monitor]]`` entry: a board's slot and its channels (default: all)."""

    slot: Annotated[int, msgspec.Meta(ge=0, le=255)]
    channels: list[Annotated[int, msgspec.Meta(ge=0, le=4095)]] | None = None


class HVSimulationConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[simulation]``: the simulated crate (used only with ``link_type = "SIMULATED"``).

    Attributes:
        boards: boards in slots 0..boards-1.
        channels: channels per board.
        load_mohm: the load on every channel in MΩ: ``IMon`` (µA) = ``VMon`` / ``load_mohm``.
        v0set, i0set, rup, rdwn, trip, svmax: each channel's ``V0Set`` (V), ``I0Set`` (µA),
            ``RUp``/``RDwn`` (V/s), ``Trip`` (s) and ``SVMax`` (V) at start.
        power_on: channels start switched on (``Pw`` = 1) and ramp at once; default off.
    """

    boards: Annotated[int, msgspec.Meta(ge=1, le=16)] = 1
    channels: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4
    load_mohm: PositiveFloat = 10.0
    v0set: Annotated[float, msgspec.Meta(ge=0, le=1e5)] = 0.0
    i0set: Annotated[float, msgspec.Meta(ge=0, le=1e6)] = 200.0
    rup: PositiveFloat = 50.0
    rdwn: PositiveFloat = 50.0
    trip: Annotated[float, msgspec.Meta(ge=0, le=1e4)] = 1.0
    svmax: Annotated[float, msgspec.Meta(ge=0, le=1e5)] = 3000.0
    power_on: bool = False

    def channel_defaults(self) -> dict[str, float]:
        return {
            "V0Set": self.v0set,
            "I0Set": self.i0set,
            "RUp": self.rup,
            "RDwn": self.rdwn,
            "Trip": self.trip,
            "SVMax": self.svmax,
            "Pw": 1 if self.power_on else 0,
        }


class DAQJobCAENHVConfig(DAQJobConfig, kw_only=True):
    """A CAEN HV system polled every ``poll_interval_seconds``.

    Attributes:
        system_type: CAEN system (``SY4527``, ``N1470``, ``DT55XX``, ...).
        link_type: ``TCPIP``, ``RS232``, ``USB``, ``OPTLINK``, ``USB_VCP``, or ``SIMULATED``
            (*new*: the simulated supply of ``[simulation]``, no library needed).
        connection_arg: IP address or host (TCPIP), device path (USB, serial).
        username, password: login, when the system asks for one (the password is never
            logged nor shown).
        poll_interval_seconds: seconds between two readings of every channel.
        store_config: where the ``ch_param`` table goes (one row per channel, every parameter).
        timeseries_store_config: where the per-parameter tables go (tag = parameter name,
            one column per channel ``slot_S_channel_C``).
        channels_to_monitor: ``[[channels_to_monitor]]`` entries ``slot``, ``channels``;
            default: every channel of every board.
        params_to_monitor: parameter names to read; default: every readable one.
        simulation: the simulated crate (*new*).
    """

    system_type: SystemType
    link_type: LinkType
    connection_arg: str
    username: str = ""
    password: str = ""
    poll_interval_seconds: Annotated[float, msgspec.Meta(gt=0, le=86400)] = CAEN_HV_POLL_INTERVAL_SECONDS
    store_config: DAQJobStoreConfig | None = None
    timeseries_store_config: DAQJobStoreConfig | None = None
    channels_to_monitor: list[HVChannelSelection] | None = None
    params_to_monitor: list[str] | None = None
    simulation: HVSimulationConfig = msgspec.field(default_factory=HVSimulationConfig)

    def __post_init__(self) -> None:
        slots = [c.slot for c in self.channels_to_monitor or []]
        repeated = sorted({s for s in slots if slots.count(s) > 1})
        if repeated:
            raise ConfigValueError(
                f"channels_to_monitor names slot {repeated[0]} more than once: list its channels in one entry"
            )
        if self.params_to_monitor is not None and not self.params_to_monitor:
            raise ConfigValueError("params_to_monitor is empty: leave it out to read every parameter")

    @property
    def simulated(self) -> bool:
        return self.link_type == SIMULATED
