"""The camera job (``enrgdaq.daq.jobs.camera``, the original's import path)."""

from enrgdaq.daq.jobs.camera.config import DAQJobCameraConfig
from enrgdaq.daq.jobs.camera.job import DAQJobCamera
from enrgdaq.daq.jobs.camera.overlay import TimeTextPosition

__all__ = ["DAQJobCamera", "DAQJobCameraConfig", "TimeTextPosition"]
