"""A simulated camera: a still scene with a bright blob that moves some of the time.

The scene is a fixed grey gradient with a little sensor noise (too little to count
as movement). Every ``period`` seconds the blob drifts across the frame for
``moving`` seconds and sits still otherwise, so the job sees stretches with and
without movement, as a real camera watching a lab would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from enrgdaq.daq.jobs.camera.movement import Frame
from enrgdaq.daq.jobs.camera.png import encode_png

SIMULATED_WIDTH = 320
SIMULATED_HEIGHT = 240


class SimulatedCamera:
    """Frames of ``width`` x ``height`` (BGR, uint8); ``clock`` gives seconds (monotonic by
    default; tests pass their own to pick the moving or the still phase)."""

    description = "simulated camera"
    file_extension = ".png"

    def __init__(
        self,
        width: int = SIMULATED_WIDTH,
        height: int = SIMULATED_HEIGHT,
        period: float = 10.0,
        moving: float = 4.0,
        clock: Callable[[], float] = time.monotonic,
        seed: int = 0,
    ) -> None:
        self.width, self.height = width, height
        self.period, self.moving = period, moving
        self._clock = clock
        self._start = clock()
        self._rng = np.random.default_rng(seed)
        ys, xs = np.mgrid[0:height, 0:width]
        base = 40 + 60 * xs / max(1, width - 1) + 30 * ys / max(1, height - 1)
        self._background = np.stack([base, base * 0.9, base * 0.8], axis=-1).astype(np.float32)
        self._ys, self._xs = ys, xs
        self.radius = max(4, min(width, height) // 10)
        self.closed = False

    def is_moving(self, t: float | None = None) -> bool:
        """Whether the blob moves at ``t`` seconds since the camera opened."""
        elapsed = (self._clock() - self._start) if t is None else t
        return (elapsed % self.period) < self.moving

    def blob_centre(self, elapsed: float) -> tuple[float, float]:
        """Where the blob is ``elapsed`` seconds after opening: it travels only while moving."""
        cycles, within = divmod(elapsed, self.period)
        travelled = cycles * self.moving + min(within, self.moving)
        x = self.width / 2 + self.width / 3 * math.sin(travelled * 1.3)
        y = self.height / 2 + self.height / 3 * math.sin(travelled * 0.9)
        return y, x

    def read(self) -> Frame:
        elapsed = self._clock() - self._start
        cy, cx = self.blob_centre(elapsed)
        blob = ((self._ys - cy) ** 2 + (self._xs - cx) ** 2) <= self.radius**2
        frame = self._background + self._rng.normal(0.0, 2.0, self._background.shape).astype(np.float32)
        frame[blob] = (250.0, 250.0, 250.0)
        return np.clip(frame, 0, 255).astype(np.uint8)

    def encode(self, frame: Frame) -> bytes:
        return encode_png(frame)

    def close(self) -> None:
        self.closed = True
