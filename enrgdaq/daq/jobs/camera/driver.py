"""The camera as the job sees it: a small interface with a real and a simulated device.

The job asks :func:`open_camera` for a driver; ``simulate = true`` in the TOML gives
the simulated camera (:mod:`.simulated`), otherwise OpenCV's capture device
(:mod:`.opencv`). Both hand out BGR frames as numpy arrays and encode them for the
store themselves (JPEG for the real one, PNG for the simulation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from enrgdaq.daq.jobs.camera.movement import Frame

if TYPE_CHECKING:
    from enrgdaq.daq.jobs.camera.config import DAQJobCameraConfig


class CameraDriver(Protocol):
    """One open camera. ``read`` and ``encode`` raise :class:`~enrgdaq.errors.DeviceError`
    when the device fails; ``close`` releases it and may be called more than once."""

    description: str
    """What the logs call it (device index or name, or 'simulated camera')."""

    file_extension: str
    """Extension of what :meth:`encode` makes ('.jpg', '.png')."""

    def read(self) -> Frame: ...

    def encode(self, frame: Frame) -> bytes: ...

    def close(self) -> None: ...


def open_camera(config: DAQJobCameraConfig) -> CameraDriver:
    """The configured camera, opened; raises DeviceError (or DeviceLibraryMissingError) when it
    cannot be."""
    if config.simulate:
        from enrgdaq.daq.jobs.camera.simulated import SimulatedCamera

        return SimulatedCamera()
    from enrgdaq.daq.jobs.camera.opencv import OpenCVCamera

    return OpenCVCamera.open(config.camera_device_index, config.camera_device_name)
