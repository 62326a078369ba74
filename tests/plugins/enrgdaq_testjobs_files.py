"""Test stores for the HDF5 and ROOT stores' system tests, loaded as a lab's own jobs are
(``plugins = ["enrgdaq_testjobs", "enrgdaq_testjobs_files"]``); a module apart from
``enrgdaq_testjobs`` so that the other system tests' workers do not import h5py and uproot.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from enrgdaq.daq.jobs.store.hdf5 import DAQJobStoreHDF5, DAQJobStoreHDF5Config
from enrgdaq.daq.jobs.store.root import DAQJobStoreROOT, DAQJobStoreROOTConfig


class _KilledAfterWrite:
    """``kill_after_rows``: once this many rows are written, the store kills itself (-9) right
    after a write, before it gives the ring slots back (the worst moment for exactly once);
    ``marker``: a file made before the kill, so that the restarted store runs on."""

    config: Any
    _pending: dict[Any, list[Any]]

    def store_loop(self) -> None:
        rows = sum(piece.rows for pieces in self._pending.values() for piece in pieces)
        super().store_loop()  # type: ignore[misc]
        if rows and not self._pending:
            self._rows_written = getattr(self, "_rows_written", 0) + rows
        written = getattr(self, "_rows_written", 0)
        if written >= self.config.kill_after_rows and not os.path.exists(self.config.marker):
            with open(self.config.marker, "w") as f:
                f.write(f"killed after {written} rows\n")
            os.kill(os.getpid(), signal.SIGKILL)


class DAQJobStoreHDF5KilledAfterWriteConfig(DAQJobStoreHDF5Config, kw_only=True):
    kill_after_rows: int
    marker: str


class DAQJobStoreHDF5KilledAfterWrite(_KilledAfterWrite, DAQJobStoreHDF5):
    config_type = DAQJobStoreHDF5KilledAfterWriteConfig


class DAQJobStoreROOTKilledAfterWriteConfig(DAQJobStoreROOTConfig, kw_only=True):
    kill_after_rows: int
    marker: str


class DAQJobStoreROOTKilledAfterWrite(_KilledAfterWrite, DAQJobStoreROOT):
    config_type = DAQJobStoreROOTKilledAfterWriteConfig
