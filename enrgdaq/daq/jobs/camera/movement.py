"""Movement detection between consecutive camera frames, in numpy.

The steps are the original's (OpenCV there): shrink the frame to a fixed width,
grey, blur 7x7 (Gaussian, sigma 1.4 as OpenCV picks for that size), absolute
difference against the previous frame, threshold at 30, dilate 3x3 twice, and
call it movement when the changed fraction of pixels exceeds the configured
threshold. Written in numpy so that the real and the simulated camera share one
detector and it runs without OpenCV installed.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

PIXEL_CHANGE_THRESHOLD = 30
"""A pixel counts as changed when its blurred grey value moved by more than this (0-255)."""

_BLUR_SIZE = 7
_BLUR_SIGMA = 0.3 * ((_BLUR_SIZE - 1) * 0.5 - 1) + 0.8
_x = np.arange(_BLUR_SIZE) - _BLUR_SIZE // 2
_BLUR_KERNEL = np.exp(-(_x**2) / (2 * _BLUR_SIGMA**2))
_BLUR_KERNEL /= _BLUR_KERNEL.sum()

Frame = npt.NDArray[np.uint8]


def shrink(frame: Frame, width: int) -> Frame:
    """``frame`` scaled (nearest pixel) to ``width`` columns, keeping its aspect ratio; a frame
    narrower than ``width`` is kept as it is."""
    height, columns = frame.shape[:2]
    if columns <= width:
        return frame
    rows = max(1, round(height * width / columns))
    ys = (np.arange(rows) * height // rows).astype(np.intp)
    xs = (np.arange(width) * columns // width).astype(np.intp)
    return frame[ys][:, xs]


def grey(frame: Frame) -> npt.NDArray[np.float32]:
    """Luma of a BGR frame (OpenCV's channel order), or the frame itself when it has one channel."""
    if frame.ndim == 2:
        return frame.astype(np.float32)
    b, g, r = frame[..., 0], frame[..., 1], frame[..., 2]
    return (0.114 * b + 0.587 * g + 0.299 * r).astype(np.float32)


def blur(image: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Separable 7x7 Gaussian blur with edges repeated."""
    half = _BLUR_SIZE // 2
    padded = np.pad(image, half, mode="edge")
    rows, columns = image.shape
    across = sum(w * padded[:, i : i + columns] for i, w in enumerate(_BLUR_KERNEL))
    return np.asarray(sum(w * across[i : i + rows, :] for i, w in enumerate(_BLUR_KERNEL)), dtype=np.float32)


def dilate(mask: npt.NDArray[np.bool_], times: int = 2) -> npt.NDArray[np.bool_]:
    """3x3 binary dilation, ``times`` times."""
    for _ in range(times):
        padded = np.pad(mask, 1)
        rows, columns = mask.shape
        grown = np.zeros_like(mask)
        for dy in range(3):
            for dx in range(3):
                grown |= padded[dy : dy + rows, dx : dx + columns]
        mask = grown
    return mask


class MovementDetector:
    """Remembers the previous frame; :meth:`update` says whether the new one moved.

    ``threshold``: fraction of pixels (0-1) that must change; ``frame_width``: width the
    frames are shrunk to first (smaller is faster and less sensitive to noise).
    """

    def __init__(self, threshold: float, frame_width: int) -> None:
        self.threshold = threshold
        self.frame_width = frame_width
        self._previous: npt.NDArray[np.float32] | None = None
        self.last_fraction = 0.0
        """Fraction of pixels that changed in the last update (for logs and tests)."""

    def changed_fraction(self, frame: Frame) -> float:
        """Fraction of changed pixels against the previous frame (0 for the first frame)."""
        current = blur(grey(shrink(frame, self.frame_width)))
        previous, self._previous = self._previous, current
        if previous is None or previous.shape != current.shape:
            return 0.0
        changed = dilate(np.abs(current - previous) > PIXEL_CHANGE_THRESHOLD)
        return float(changed.mean())

    def update(self, frame: Frame) -> bool:
        """Whether ``frame`` differs from the one before by more than the threshold."""
        self.last_fraction = self.changed_fraction(frame)
        return self.last_fraction > self.threshold
