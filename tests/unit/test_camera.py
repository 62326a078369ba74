"""DAQJobCamera: movement detection, the time stamp, the simulated camera, the config, and the
real (OpenCV) driver down to the binding, against a stand-in with cv2's method names."""

from __future__ import annotations

import os
import struct
import sys
import threading
import time
import types
import zlib
from datetime import datetime
from typing import Any

import numpy as np
import pytest

from enrgdaq.cli.main import main
from enrgdaq.config.loader import load_job_text
from enrgdaq.daq.jobs.camera import DAQJobCamera, DAQJobCameraConfig, TimeTextPosition
from enrgdaq.daq.jobs.camera.movement import MovementDetector
from enrgdaq.daq.jobs.camera.opencv import WARM_UP_FRAMES, OpenCVCamera, load_cv2, resolve_device_name
from enrgdaq.daq.jobs.camera.overlay import draw_time_text
from enrgdaq.daq.jobs.camera.simulated import SimulatedCamera
from enrgdaq.daq.store.models import DAQJobMessageStoreRaw
from enrgdaq.errors import ConfigError, DeviceError, DeviceLibraryMissingError
from tests.harness.waiting import wait_for

STORE = '[store_config.raw]\nfile_path = "camera.jpg"\n'


def config(extra: str = "") -> DAQJobCameraConfig:
    spec = load_job_text(f'daq_job_type = "DAQJobCamera"\n{extra}\n{STORE}', "camera.toml")
    assert isinstance(spec.config, DAQJobCameraConfig)
    return spec.config


def scene(blob_x: int | None = None) -> np.ndarray:
    """A 240x320 grey scene with sensor noise and, optionally, a bright square at ``blob_x``."""
    rng = np.random.default_rng()
    frame = np.clip(90 + rng.normal(0, 3, (240, 320, 3)), 0, 255).astype(np.uint8)
    if blob_x is not None:
        frame[100:140, blob_x : blob_x + 40] = 250
    return frame


def decode_png(data: bytes) -> np.ndarray:
    """Pixels of a PNG (colour type 2, filter 0 rows, as encode_png writes), as RGB."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind + body)
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    width, height = struct.unpack(">II", header[:8])
    rows = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * 3)
    assert not rows[:, 0].any()
    return rows[:, 1:].reshape(height, width, 3)


# -- movement detection -------------------------------------------------------------------------


def test_noise_alone_is_not_movement_and_a_moved_blob_is() -> None:
    detector = MovementDetector(threshold=0.02, frame_width=500)
    assert detector.update(scene(50)) is False  # the first frame has nothing to compare with
    assert detector.update(scene(50)) is False  # same scene, new noise
    assert detector.last_fraction < 0.005
    assert detector.update(scene(200)) is True
    assert detector.last_fraction > 0.02


def test_the_threshold_decides_how_much_change_is_movement() -> None:
    strict, lax = MovementDetector(0.01, 500), MovementDetector(0.5, 500)
    for detector in (strict, lax):
        detector.update(scene(50))
    moved = scene(120)
    assert strict.update(moved) is True
    assert lax.update(moved) is False


def test_frames_are_shrunk_to_the_detection_width() -> None:
    big = np.zeros((960, 1280, 3), dtype=np.uint8)
    moved = big.copy()
    moved[400:560, 600:760] = 255
    detector = MovementDetector(0.02, 320)
    detector.update(big)
    assert detector.update(moved) is True
    assert detector._previous is not None and detector._previous.shape == (240, 320)


def test_the_simulated_camera_moves_some_of_the_time_and_is_still_otherwise() -> None:
    now = [0.0]
    camera = SimulatedCamera(period=10.0, moving=4.0, clock=lambda: now[0])
    detector = MovementDetector(0.02, 500)
    seen: dict[bool, list[bool]] = {True: [], False: []}
    detector.update(camera.read())
    for step in range(1, 40):
        now[0] = step * 0.5
        moving = camera.is_moving()
        moved = detector.update(camera.read())
        if moving == camera.is_moving(now[0] - 0.5):  # both frames in the same phase
            seen[moving].append(moved)
    assert seen[True] and all(seen[True]), seen
    assert seen[False] and not any(seen[False]), seen
    frame = camera.read()
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8


# -- time stamp --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("position", "corner"),
    [
        (TimeTextPosition.TOP_LEFT, (0, 0)),
        (TimeTextPosition.TOP_RIGHT, (0, 1)),
        (TimeTextPosition.BOTTOM_LEFT, (1, 0)),
        (TimeTextPosition.BOTTOM_RIGHT, (1, 1)),
    ],
)
def test_the_time_stamp_goes_to_its_corner(position: TimeTextPosition, corner: tuple[int, int]) -> None:
    frame = np.full((240, 320, 3), 200, dtype=np.uint8)
    top, left, height, width = draw_time_text(frame, datetime(2026, 1, 2, 3, 4, 5), position, 0.7)
    assert (top == 0) == (corner[0] == 0) and (top + height == 240) == (corner[0] == 1)
    assert (left == 0) == (corner[1] == 0) and (left + width == 320) == (corner[1] == 1)
    box = frame[top : top + height, left : left + width]
    assert set(np.unique(box)) == {60, 255}  # 200 darkened to 30 %, and white text
    outside = np.ones(frame.shape[:2], dtype=bool)
    outside[top : top + height, left : left + width] = False
    assert (frame[outside] == 200).all()


def test_the_stamp_reads_the_time_and_its_box_has_the_configured_opacity() -> None:
    one, other = (np.full((240, 320, 3), 100, dtype=np.uint8) for _ in range(2))
    draw_time_text(one, datetime(2026, 1, 2, 3, 4, 5), TimeTextPosition.TOP_LEFT, 0.0)
    draw_time_text(other, datetime(2026, 1, 2, 3, 4, 6), TimeTextPosition.TOP_LEFT, 0.0)
    assert (one != other).any()  # another second, other pixels
    assert set(np.unique(one)) == {100, 255}  # opacity 0: the box leaves the frame as it was


def test_time_text_position_takes_the_originals_lowercase_and_the_docs_uppercase() -> None:
    assert config('time_text_position = "bottom_left"').position is TimeTextPosition.BOTTOM_LEFT
    assert config('time_text_position = "TOP_RIGHT"').position is TimeTextPosition.TOP_RIGHT
    with pytest.raises(ConfigError) as caught:
        config('time_text_position = "middle"')
    assert caught.value.field == "time_text_position" and "top_left" in str(caught.value)


# -- config -------------------------------------------------------------------------------------


def test_config_defaults_are_the_originals_and_the_opacity_is_a_field() -> None:
    c = config()
    assert (c.store_interval_seconds, c.store_interval_seconds_no_movement) == (1.0, 5.0)
    assert (c.movement_detection_threshold, c.movement_detection_frame_width) == (0.02, 500)
    assert c.enable_time_text and c.time_text_background_opacity == 0.7 and not c.simulate
    assert config("time_text_background_opacity = 0.25").time_text_background_opacity == 0.25
    assert DAQJobCamera.queue == "camera"


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('camera_device_index = 1\ncamera_device_name = "cam"', "camera_device_name"),
        ('camera_device_name = "../../etc/x"', "camera_device_name"),
        ("camera_device_index = -1", "camera_device_index"),
        ("store_interval_seconds = 0", "store_interval_seconds"),
        ("store_interval_seconds_no_movement = -5", "store_interval_seconds_no_movement"),
        ("time_text_background_opacity = 1.5", "time_text_background_opacity"),
        ("movement_detection_threshold = 2", "movement_detection_threshold"),
        ("movement_detection_frame_width = 0", "movement_detection_frame_width"),
        ("store_interval = 5", "store_interval"),
    ],
)
def test_bad_values_are_config_errors_naming_the_field(line: str, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(line)
    assert caught.value.field == field, caught.value


# -- the real driver, to the OpenCV binding -----------------------------------------------------


class StandInCapture:
    """Has cv2.VideoCapture's methods; gives ``frames`` frames, then fails like an unplugged camera."""

    def __init__(self, index: int, opened: bool = True, frames: int = 100) -> None:
        self.index, self.opened, self.frames_left = index, opened, frames
        self.reads, self.released = 0, False

    def isOpened(self) -> bool:
        return self.opened

    def read(self) -> tuple[bool, Any]:
        self.reads += 1
        if self.frames_left <= 0:
            return False, None
        self.frames_left -= 1
        return True, scene(10 * (self.reads % 20))

    def release(self) -> None:
        self.released = True


class StandInCV2(types.ModuleType):
    """Has the part of the cv2 module the driver calls."""

    error = type("error", (Exception,), {})

    def __init__(self, opened: bool = True, frames: int = 100) -> None:
        super().__init__("cv2")
        self.opened, self.frames = opened, frames
        self.captures: list[StandInCapture] = []
        self.encoded: list[str] = []

    def VideoCapture(self, index: int) -> StandInCapture:
        capture = StandInCapture(index, self.opened, self.frames)
        self.captures.append(capture)
        return capture

    def imencode(self, ext: str, frame: np.ndarray) -> tuple[bool, np.ndarray]:
        self.encoded.append(ext)
        return True, np.frombuffer(b"\xff\xd8jpeg\xff\xd9", dtype=np.uint8)


def test_the_real_camera_opens_warms_up_reads_encodes_jpeg_and_releases() -> None:
    cv2 = StandInCV2()
    camera = OpenCVCamera.open(2, None, cv2=cv2)
    capture = cv2.captures[0]
    assert capture.index == 2 and capture.reads == WARM_UP_FRAMES
    frame = camera.read()
    assert frame.shape == (240, 320, 3)
    assert camera.encode(frame) == b"\xff\xd8jpeg\xff\xd9" and cv2.encoded == [".jpg"]
    camera.close()
    camera.close()
    assert capture.released
    with pytest.raises(DeviceError, match="closed"):
        camera.read()


def test_neither_index_nor_name_opens_the_first_camera() -> None:
    cv2 = StandInCV2()
    OpenCVCamera.open(None, None, cv2=cv2).close()
    assert cv2.captures[0].index == 0


def test_a_camera_that_does_not_open_is_a_device_error_and_is_released() -> None:
    cv2 = StandInCV2(opened=False)
    with pytest.raises(DeviceError, match="camera 0 cannot be opened"):
        OpenCVCamera.open(0, None, cv2=cv2)
    assert cv2.captures[0].released


def test_a_camera_that_stops_giving_frames_is_a_device_error() -> None:
    camera = OpenCVCamera.open(0, None, cv2=StandInCV2(frames=WARM_UP_FRAMES + 1))
    camera.read()
    with pytest.raises(DeviceError, match="gave no frame"):
        camera.read()


def test_a_camera_name_is_found_through_its_udev_link(tmp_path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "video3").touch()
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    os.symlink(tmp_path / "dev" / "video3", by_id / "usb-Acme_Cam_123-video-index0")
    assert resolve_device_name("Acme_Cam_123", str(by_id)) == 3
    cv2 = StandInCV2()
    camera = OpenCVCamera.open(None, "Acme_Cam_123", cv2=cv2, by_id_dir=str(by_id))
    assert cv2.captures[0].index == 3 and "Acme_Cam_123" in camera.description
    with pytest.raises(DeviceError, match=r"camera .Other. not found.*usb-Acme_Cam_123-video-index0"):
        resolve_device_name("Other", str(by_id))


def test_without_opencv_the_real_camera_names_the_extra_to_install() -> None:
    try:
        import cv2  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("OpenCV is installed here")
    with pytest.raises(DeviceLibraryMissingError, match=r"pip install 'enrgdaq\[camera\]'"):
        load_cv2()


# -- the job ------------------------------------------------------------------------------------


def run_job(job: DAQJobCamera) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            job.start()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, errors


def test_the_simulated_job_sends_png_frames_with_a_stamp_and_stops_within_a_second() -> None:
    job = DAQJobCamera(
        config("simulate = true\nstore_interval_seconds = 0.05\nstore_interval_seconds_no_movement = 0.2")
    )
    thread, errors = run_job(job)
    wait_for(lambda: len(job.message_out) >= 3, 10, "three messages out")
    asked = time.monotonic()
    job.request_stop()
    thread.join(2)
    took = time.monotonic() - asked
    job.free()
    assert not thread.is_alive() and not errors and took < 1.0, (took, errors)
    frames = [m for m in job.message_out if isinstance(m, DAQJobMessageStoreRaw)]
    assert len(frames) >= 3 and all(m.tag is None for m in frames)
    pixels = decode_png(frames[0].data)
    assert pixels.shape == (240, 320, 3)
    box = pixels[:20, :150]  # the stamp's half-transparent box, top-left by default
    assert (box < 60).mean() > 0.5 and (box == 255).any(), box
    assert job.driver is None  # closed by free()


def test_a_failing_camera_ends_the_run_with_a_device_error_after_releasing_it(monkeypatch) -> None:
    cv2 = StandInCV2(frames=WARM_UP_FRAMES + 2)
    monkeypatch.setitem(sys.modules, "cv2", cv2)
    job = DAQJobCamera(config("camera_device_index = 1\nstore_interval_seconds = 0.01"))
    with pytest.raises(DeviceError, match="camera 1 gave no frame"):
        job.start()
    job.free()
    assert cv2.captures[0].released
    assert len(job.message_out) >= 1  # the frames it had were stored (JPEG from the binding)
    assert cv2.encoded and set(cv2.encoded) == {".jpg"}


def test_the_original_example_passes_check_unchanged(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    upstream = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "upstream_configs")
    with open(os.path.join(upstream, "camera.toml")) as f:
        text = f.read()
    assert "camera_device_index = 0  #" in text and "\ncamera_device_index" not in text  # neither is set
    (tmp_path / "camera.toml").write_text(text)
    assert main(["check", str(tmp_path)]) == 0
    assert "DAQJobCamera 'camera' on queue 'camera'" in capsys.readouterr().out
