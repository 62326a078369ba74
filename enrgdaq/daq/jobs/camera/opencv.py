"""The real camera: a V4L2 (or any OpenCV) capture device, frames JPEG-encoded by OpenCV.

OpenCV is the ``camera`` extra and is imported only when a real camera is opened,
so the simulated camera and ``enrgdaq check`` work without it. The calls used are
OpenCV's documented ones: ``cv2.VideoCapture(index)``, ``isOpened()``, ``read()``
-> ``(ok, frame)``, ``release()`` and ``cv2.imencode('.jpg', frame)`` -> ``(ok, buffer)``.
A device given by name is looked up as the original did, through the udev link
``/dev/v4l/by-id/usb-<name>-video-index0`` -> ``/dev/videoN``.
"""

from __future__ import annotations

import os
import re
from typing import Any

from enrgdaq.daq.jobs.camera.movement import Frame
from enrgdaq.errors import DeviceError, DeviceLibraryMissingError

V4L_BY_ID_DIR = "/dev/v4l/by-id"
WARM_UP_FRAMES = 5
"""Frames read and thrown away after opening: the first ones of many webcams are dark."""

_VIDEO_NODE = re.compile(r"video(\d+)\Z")


def load_cv2() -> Any:
    """The ``cv2`` module, preferring the V4L2 back end (as the original did); raises
    DeviceLibraryMissingError naming the extra when OpenCV is not installed."""
    os.environ.setdefault("OPENCV_VIDEOIO_PRIORITY_LIST", "V4L2")
    try:
        import cv2  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise DeviceLibraryMissingError("DAQJobCamera (OpenCV, for a real camera)", "camera", exc) from exc
    return cv2


def resolve_device_name(name: str, by_id_dir: str = V4L_BY_ID_DIR) -> int:
    """The ``/dev/videoN`` index of the USB camera called ``name``; DeviceError when it is not
    plugged in (the link is missing) or the link points elsewhere."""
    link = os.path.join(by_id_dir, f"usb-{name}-video-index0")
    if not os.path.exists(link):
        present = sorted(os.listdir(by_id_dir)) if os.path.isdir(by_id_dir) else []
        known = ", ".join(present) if present else "no camera at all"
        raise DeviceError(f"camera '{name}' not found: {link} does not exist ({by_id_dir} has: {known})")
    target = os.path.basename(os.path.realpath(link))
    match = _VIDEO_NODE.match(target)
    if match is None:
        raise DeviceError(f"camera '{name}': {link} points to {target}, not a /dev/videoN device")
    return int(match.group(1))


class OpenCVCamera:
    """An opened ``cv2.VideoCapture``; every failure is a DeviceError, raised after nothing
    more is held than before the call."""

    file_extension = ".jpg"

    def __init__(self, cv2: Any, capture: Any, description: str) -> None:
        self._cv2 = cv2
        self._capture: Any = capture
        self.description = description
        self._cv2_error: type[BaseException] = getattr(cv2, "error", RuntimeError)

    @classmethod
    def open(
        cls,
        index: int | None,
        name: str | None,
        cv2: Any = None,
        by_id_dir: str = V4L_BY_ID_DIR,
    ) -> OpenCVCamera:
        """Open camera ``name`` (looked up) or ``index`` (0, the first camera, when neither is
        given) and read the warm-up frames."""
        cv2 = cv2 if cv2 is not None else load_cv2()
        if name is not None:
            index = resolve_device_name(name, by_id_dir)
            description = f"camera '{name}' (/dev/video{index})"
        else:
            index = index or 0
            description = f"camera {index}"
        capture = cv2.VideoCapture(index)
        camera = cls(cv2, capture, description)
        try:
            if not capture.isOpened():
                raise DeviceError(
                    f"{description} cannot be opened (not connected, or in use by another program)"
                )
            for _ in range(WARM_UP_FRAMES):
                camera.read()
        except BaseException:
            camera.close()
            raise
        return camera

    def read(self) -> Frame:
        if self._capture is None:
            raise DeviceError(f"{self.description} is closed")
        try:
            ok, frame = self._capture.read()
        except self._cv2_error as exc:
            raise DeviceError(f"{self.description} failed to read a frame: {exc}") from exc
        if not ok or frame is None:
            raise DeviceError(f"{self.description} gave no frame (unplugged or stalled)")
        return frame

    def encode(self, frame: Frame) -> bytes:
        try:
            ok, buffer = self._cv2.imencode(".jpg", frame)
        except self._cv2_error as exc:
            raise DeviceError(f"{self.description}: JPEG encoding failed: {exc}") from exc
        if not ok:
            raise DeviceError(f"{self.description}: JPEG encoding failed")
        return bytes(buffer.tobytes())

    def close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()
