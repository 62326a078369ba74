"""The time stamp drawn on a stored frame: white text on a half-transparent black box.

Drawn with numpy and a built-in 5x7 pixel font (digits, ``-``, ``:``, space and
``.``), so the real and the simulated camera stamp frames the same way without
OpenCV. The box is darkened to ``1 - opacity`` of the frame under it, as the
original did with its semi-transparent rectangle.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import numpy as np

from enrgdaq.daq.jobs.camera.movement import Frame

TIME_TEXT_FORMAT = "%Y-%m-%d %H:%M:%S"


class TimeTextPosition(StrEnum):
    """Corner of the frame the time stamp goes to (the original's lowercase values)."""

    TOP_LEFT = "top_left"
    TOP_RIGHT = "top_right"
    BOTTOM_LEFT = "bottom_left"
    BOTTOM_RIGHT = "bottom_right"


_GLYPHS = {
    "0": ("01110", "10001", "10011", "10101", "11001", "10001", "01110"),
    "1": ("00100", "01100", "00100", "00100", "00100", "00100", "01110"),
    "2": ("01110", "10001", "00001", "00010", "00100", "01000", "11111"),
    "3": ("11110", "00001", "00001", "01110", "00001", "00001", "11110"),
    "4": ("00010", "00110", "01010", "10010", "11111", "00010", "00010"),
    "5": ("11111", "10000", "11110", "00001", "00001", "10001", "01110"),
    "6": ("00110", "01000", "10000", "11110", "10001", "10001", "01110"),
    "7": ("11111", "00001", "00010", "00100", "01000", "01000", "01000"),
    "8": ("01110", "10001", "10001", "01110", "10001", "10001", "01110"),
    "9": ("01110", "10001", "10001", "01111", "00001", "00010", "01100"),
    "-": ("00000", "00000", "00000", "11111", "00000", "00000", "00000"),
    ":": ("00000", "01100", "01100", "00000", "01100", "01100", "00000"),
    ".": ("00000", "00000", "00000", "00000", "00000", "01100", "01100"),
    " ": ("00000",) * 7,
}
_MASKS = {c: np.array([[ch == "1" for ch in row] for row in rows], dtype=bool) for c, rows in _GLYPHS.items()}
_GLYPH_H, _GLYPH_W = 7, 5


def text_mask(text: str, scale: int) -> np.ndarray:
    """Boolean pixels of ``text`` in the built-in font, ``scale`` pixels per font pixel; a
    character the font lacks is drawn as a space."""
    blank = _MASKS[" "]
    cells = []
    for char in text:
        cells.append(_MASKS.get(char, blank))
        cells.append(np.zeros((_GLYPH_H, 1), dtype=bool))  # one column between characters
    mask = np.hstack(cells[:-1]) if cells else np.zeros((_GLYPH_H, 0), dtype=bool)
    return np.kron(mask, np.ones((scale, scale), dtype=bool)).astype(bool)


def scale_for(frame_width: int) -> int:
    """Font scale: the stamp takes roughly a third of the frame's width, at least 1."""
    return max(1, frame_width // 330)


def box_origin(
    frame_shape: tuple[int, ...], box_h: int, box_w: int, position: TimeTextPosition
) -> tuple[int, int]:
    """Top-left (row, column) of a ``box_h`` x ``box_w`` box in ``position``'s corner (clipped
    to the frame)."""
    height, width = frame_shape[:2]
    top = 0 if position in (TimeTextPosition.TOP_LEFT, TimeTextPosition.TOP_RIGHT) else height - box_h
    left = 0 if position in (TimeTextPosition.TOP_LEFT, TimeTextPosition.BOTTOM_LEFT) else width - box_w
    return max(0, top), max(0, left)


def draw_time_text(
    frame: Frame, when: datetime, position: TimeTextPosition, opacity: float
) -> tuple[int, int, int, int]:
    """Stamp ``when`` on ``frame`` in place; returns the box drawn as (top, left, height, width)."""
    scale = scale_for(frame.shape[1])
    mask = text_mask(when.strftime(TIME_TEXT_FORMAT), scale)
    pad = 3 * scale
    box_h = min(frame.shape[0], mask.shape[0] + 2 * pad)
    box_w = min(frame.shape[1], mask.shape[1] + 2 * pad)
    top, left = box_origin(frame.shape, box_h, box_w, position)
    box = frame[top : top + box_h, left : left + box_w]
    box[...] = (box.astype(np.float32) * (1.0 - opacity)).astype(np.uint8)
    region = box[pad:, pad:]
    rows, columns = min(region.shape[0], mask.shape[0]), min(region.shape[1], mask.shape[1])
    region[:rows, :columns][mask[:rows, :columns]] = 255
    return top, left, box_h, box_w
