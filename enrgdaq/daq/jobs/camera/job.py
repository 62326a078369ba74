"""``DAQJobCamera``: frames of a camera to a store, often while something moves, seldom otherwise.

Every ``store_interval_seconds`` the job reads a frame and compares it with the
one before; it stores the frame when it moved, or when
``store_interval_seconds_no_movement`` passed since the last stored one (and the
first frame at once). A stored frame gets the time stamp when enabled and goes
out as ``DAQJobMessageStoreRaw`` (JPEG from the real camera, PNG from the
simulated one), with no tag, as in the original.

A camera that fails (unplugged, stalled) ends the run with a DeviceError after
the device is released; the supervisor shows it and restarts the job with
backoff, so a camera plugged back in is picked up. A stop is seen within 0.1 s.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import ClassVar

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.jobs.camera.config import DAQJobCameraConfig
from enrgdaq.daq.jobs.camera.driver import CameraDriver, open_camera
from enrgdaq.daq.jobs.camera.movement import Frame, MovementDetector
from enrgdaq.daq.jobs.camera.overlay import draw_time_text
from enrgdaq.daq.store.models import DAQJobMessageStoreRaw


class DAQJobCamera(DAQJob):
    config_type = DAQJobCameraConfig
    config: DAQJobCameraConfig
    queue: ClassVar[str] = "camera"
    multiprocessing_method = "spawn"  # the original's attribute, kept; the worker pool runs the job

    driver: CameraDriver | None = None
    frames_stored = 0
    frames_with_movement = 0

    def start(self) -> None:
        self.driver = open_camera(self.config)
        self._logger.info("%s open", self.driver.description)
        detector = MovementDetector(
            self.config.movement_detection_threshold, self.config.movement_detection_frame_width
        )
        last_stored: float | None = None
        due = time.monotonic()
        while not self._has_been_freed:
            frame = self.driver.read()
            moved = detector.update(frame)
            now = time.monotonic()
            quiet_for = None if last_stored is None else now - last_stored
            if moved or quiet_for is None or quiet_for >= self.config.store_interval_seconds_no_movement:
                self.frames_with_movement += int(moved)
                self._store(frame, moved, detector.last_fraction)
                last_stored = now
            due += self.config.store_interval_seconds
            self.sleep_until(due)
            due = max(due, time.monotonic() - self.config.store_interval_seconds)  # no catch-up burst

    def _store(self, frame: Frame, moved: bool, fraction: float) -> None:
        assert self.driver is not None
        if self.config.enable_time_text:
            draw_time_text(
                frame, datetime.now(), self.config.position, self.config.time_text_background_opacity
            )
        data = self.driver.encode(frame)
        self._put_message_out(DAQJobMessageStoreRaw(store_config=self.config.store_config, data=data))
        self.frames_stored += 1
        self._logger.debug(
            "frame stored (%d bytes, %s, %.1f %% changed)",
            len(data),
            "movement" if moved else "no movement",
            100 * fraction,
        )

    def cleanup(self) -> None:
        driver, self.driver = self.driver, None
        if driver is not None:
            driver.close()
            self._logger.info("%s closed", driver.description)
        super().cleanup()
