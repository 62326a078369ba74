"""``DAQJobCamera``'s TOML, decoded strictly with range checks."""

from __future__ import annotations

from typing import Annotated

import msgspec

from enrgdaq.daq.jobs.camera.overlay import TimeTextPosition
from enrgdaq.daq.store.models import StorableDAQJobConfig
from enrgdaq.errors import ConfigValueError

MAX_INTERVAL_SECONDS = 86400.0
CAMERA_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:+-]{0,199}$"
"""A USB camera's udev name (the part between ``usb-`` and ``-video-index0``): no '/'."""


class DAQJobCameraConfig(StorableDAQJobConfig, kw_only=True):
    """Attributes:
    camera_device_index: OpenCV's device index (``/dev/videoN``).
    camera_device_name: the camera's name under ``/dev/v4l/by-id/usb-<name>-video-index0``,
        looked up at each start (survives re-plugging into another port). Give at most one
        of the two; with neither, the first camera (index 0) is used, as OpenCV does.
    store_interval_seconds: seconds between frames looked at (and stored when they moved).
    store_interval_seconds_no_movement: a frame is stored at least this often, moving or not.
    enable_time_text: stamp the date and time on stored frames.
    time_text_position: ``top_left`` (default), ``top_right``, ``bottom_left``,
        ``bottom_right``; upper case as in the original's docs is accepted too.
    time_text_background_opacity: darkness of the box under the stamp, 0-1 (0.7; a real
        field now, the original's could not be set).
    movement_detection_threshold: fraction of pixels (0-1) that must change for movement.
    movement_detection_frame_width: width (pixels) frames are shrunk to for the detection.
    simulate: use the simulated camera (*new*): a scene with a blob that moves now and then,
        stored as PNG; no camera or OpenCV needed.
    """

    camera_device_index: Annotated[int, msgspec.Meta(ge=0, le=1023)] | None = None
    camera_device_name: Annotated[str, msgspec.Meta(pattern=CAMERA_NAME_PATTERN)] | None = None
    store_interval_seconds: Annotated[float, msgspec.Meta(gt=0, le=MAX_INTERVAL_SECONDS)] = 1.0
    store_interval_seconds_no_movement: Annotated[float, msgspec.Meta(gt=0, le=MAX_INTERVAL_SECONDS)] = 5.0
    enable_time_text: bool = True
    time_text_position: str = TimeTextPosition.TOP_LEFT.value
    time_text_background_opacity: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.7
    movement_detection_threshold: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.02
    movement_detection_frame_width: Annotated[int, msgspec.Meta(ge=16, le=8192)] = 500
    simulate: bool = False

    def __post_init__(self) -> None:
        if self.camera_device_index is not None and self.camera_device_name is not None:
            raise ConfigValueError(
                "camera_device_name and camera_device_index both given: keep one of them "
                f"(name '{self.camera_device_name}', index {self.camera_device_index})"
            )
        choices = [p.value for p in TimeTextPosition]
        position = self.time_text_position.lower()
        if position not in choices:
            raise ConfigValueError(
                f"time_text_position '{self.time_text_position}' is not a corner; choose one of: "
                + ", ".join(choices)
            )
        self.time_text_position = position

    @property
    def position(self) -> TimeTextPosition:
        return TimeTextPosition(self.time_text_position)
