"""``DAQJobN1081B``: the counters of a CAEN N1081B's sections, as one table per section.

Every ``poll_interval_seconds`` (the original's 1 s) it asks the unit for each section of
``sections_to_store`` and sends a one-row table ``timestamp`` (unix ms), ``lemo_0``,
``lemo_1``, ... with ``tag`` = the section's name (``SEC_B``). ``simulate = true`` reads a
simulated unit that counts at the configured rates. A unit that cannot be reached, refuses
the login, or whose section runs no counter ends the run with a ``DeviceError`` after the
connection is closed; the supervisor restarts the job with backoff. Stops take effect
within a fraction of a second, also while connecting or waiting for an answer.

The class is always importable: the websocket library is needed only to talk to a real unit.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import pyarrow as pa

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.jobs.caen.n1081b_config import SECTIONS, DAQJobN1081BConfig
from enrgdaq.daq.jobs.caen.n1081b_device import N1081BDriver, SimulatedN1081B, counters_of
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow
from enrgdaq.errors import DAQJobStopError, DeviceError

__all__ = ["DAQJobN1081B", "DAQJobN1081BConfig"]

LOOP_WAIT_SECONDS = 0.1


class DAQJobN1081B(DAQJob):
    config_type = DAQJobN1081BConfig
    config: DAQJobN1081BConfig
    queue: ClassVar[str] = "caen"

    def make_driver(self) -> N1081BDriver:
        c = self.config
        if c.simulate:
            sim = c.simulation
            rates = {s: sim.section_rates_hz.get(s, [sim.rate_hz] * sim.inputs) for s in SECTIONS}
            return SimulatedN1081B(rates)
        from enrgdaq.daq.jobs.caen.n1081b_client import N1081BClient

        return N1081BClient(
            c.host, c.port_number, c.password, c.timeout_seconds, should_stop=lambda: self._has_been_freed
        )

    def start(self) -> None:
        driver = self.make_driver()
        try:
            driver.connect()
            self._logger.info("connected; storing %s", ", ".join(self.config.sections_to_store))
            due = time.monotonic()
            while not self._has_been_freed:
                now = time.monotonic()
                if now >= due:
                    self._poll(driver)
                    interval = self.config.poll_interval_seconds
                    due = due + interval if due + interval > now else now + interval
                time.sleep(min(LOOP_WAIT_SECONDS, max(0.0, due - time.monotonic())))
        except DAQJobStopError:
            pass
        finally:
            driver.close()

    def _poll(self, driver: N1081BDriver) -> None:
        for section in self.config.sections_to_store:
            reply = driver.results(section)
            counters = counters_of(section, reply)
            if not counters:
                raise DeviceError(
                    f"section {section} reports no counters: set its function to a counter "
                    "(or scaler) on the N1081B, or leave it out of sections_to_store"
                )
            columns: dict[str, Any] = {"timestamp": [int(time.time() * 1000)]}
            for lemo in sorted(counters):
                columns[f"lemo_{lemo}"] = [counters[lemo]]
            self._put_message_out(
                DAQJobMessageStorePyArrow(
                    store_config=self.config.store_config, tag=section, table=pa.table(columns)
                )
            )
