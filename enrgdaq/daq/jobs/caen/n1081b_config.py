"""``DAQJobN1081BConfig``: the original's fields, decoded strictly, plus the simulated unit.

The original's example (``configs/examples/n1081b.toml``) writes its store in an early
form: ``[store_config]`` with ``daq_job_store_type = "csv"`` and that store's keys beside it.
That form is still read (as ``[store_config.csv]``), so the file passes unchanged; anything
else in it is an error as everywhere.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from enrgdaq.daq.models import DAQJobConfig
from enrgdaq.daq.store.models import DAQJobStoreConfig
from enrgdaq.errors import ConfigValueError

SECTIONS = ("SEC_A", "SEC_B", "SEC_C", "SEC_D")
"""The N1081B's four sections, by name; the protocol numbers them 0..3."""
N1081B_QUERY_INTERVAL_SECONDS = 1.0
N1081B_TIMEOUT_SECONDS = 5.0
LEGACY_STORE_TYPE_KEY = "daq_job_store_type"


class N1081BSimulationConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[simulation]``: the simulated unit (used only with ``simulate = true``).

    Attributes:
        rate_hz: mean count rate of every LEMO input, in Hz (Poisson).
        inputs: LEMO inputs per section (``lemo_0`` .. ``lemo_{inputs-1}``).
        section_rates_hz: rates per section and input, overriding ``rate_hz``:
            ``{ SEC_B = [100.0, 20.0, 0.0, 5.0] }``.
    """

    rate_hz: Annotated[float, msgspec.Meta(ge=0, le=1e9)] = 100.0
    inputs: Annotated[int, msgspec.Meta(ge=1, le=16)] = 4
    section_rates_hz: dict[str, list[Annotated[float, msgspec.Meta(ge=0, le=1e9)]]] = {}


class DAQJobN1081BConfig(DAQJobConfig, kw_only=True):
    """A CAEN N1081B whose sections' counters are read every ``poll_interval_seconds``.

    Attributes:
        host: the unit's address.
        port: its websocket port (``"8080"`` or 8080).
        password: its login password (never logged nor shown).
        sections_to_store: any of ``SEC_A``, ``SEC_B``, ``SEC_C``, ``SEC_D``; one table each.
        store_config: where the tables go.
        simulate: read a simulated unit instead (*new*).
        simulation: the simulated unit (*new*).
        poll_interval_seconds: seconds between readings (*new*; the original's 1 s).
        timeout_seconds: how long one request may take (*new*; the original's 5 s).
    """

    host: str
    port: str | int
    password: str
    sections_to_store: list[str]
    store_config: Annotated[
        Any,
        msgspec.Meta(
            description="A DAQJobStoreConfig table ([store_config.csv] ...), or the original's early form: "
            "[store_config] with daq_job_store_type and that store's keys"
        ),
    ]
    simulate: bool = False
    simulation: N1081BSimulationConfig = msgspec.field(default_factory=N1081BSimulationConfig)
    poll_interval_seconds: Annotated[float, msgspec.Meta(gt=0, le=86400)] = N1081B_QUERY_INTERVAL_SECONDS
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=600)] = N1081B_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        for section in self.sections_to_store:
            if section not in SECTIONS:
                raise ConfigValueError(
                    f"sections_to_store: unknown section '{section}'; sections: {', '.join(SECTIONS)}"
                )
        if not self.sections_to_store:
            raise ConfigValueError("sections_to_store is empty: name at least one of " + ", ".join(SECTIONS))
        for section in self.simulation.section_rates_hz:
            if section not in SECTIONS:
                raise ConfigValueError(
                    f"simulation: unknown section '{section}' in section_rates_hz; "
                    f"sections: {', '.join(SECTIONS)}"
                )
        port = str(self.port)
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigValueError(f"port '{port}' is not a TCP port (1-65535)")
        self.store_config = store_config_from(self.store_config)

    @property
    def port_number(self) -> int:
        return int(str(self.port))


def store_config_from(value: Any) -> DAQJobStoreConfig:
    """``[store_config]`` as a :class:`DAQJobStoreConfig`, also from the early form
    ``daq_job_store_type = "csv"`` with the store's keys beside it."""
    if isinstance(value, DAQJobStoreConfig):
        return value
    if not isinstance(value, dict):
        raise ConfigValueError("store_config must be a table, e.g. [store_config.csv]")
    if LEGACY_STORE_TYPE_KEY in value:
        rest = {k: v for k, v in value.items() if k != LEGACY_STORE_TYPE_KEY}
        kind = value[LEGACY_STORE_TYPE_KEY]
        known = [f for f in DAQJobStoreConfig.__struct_fields__ if f != "target_local_supervisor"]
        if kind not in known:
            raise ConfigValueError(f"store_config: daq_job_store_type '{kind}' is none of {', '.join(known)}")
        value = {kind: rest}
    try:
        return msgspec.convert(value, DAQJobStoreConfig, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigValueError(f"store_config: {exc}") from exc
