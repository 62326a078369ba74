"""PNG encoding of a frame with the standard library (zlib), for the simulated camera.

Without OpenCV (or Pillow) there is no JPEG encoder at hand; PNG needs only zlib
and every image viewer reads it. The real camera encodes JPEG with OpenCV.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from enrgdaq.daq.jobs.camera.movement import Frame

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def encode_png(frame: Frame, level: int = 6) -> bytes:
    """A PNG file of ``frame``: BGR (OpenCV's order, 3 channels) becomes RGB; one channel is grey."""
    if frame.ndim == 3:
        pixels = np.ascontiguousarray(frame[..., ::-1])
        colour_type = 2
    else:
        pixels = np.ascontiguousarray(frame)
        colour_type = 0
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    raw = np.hstack([np.zeros((height, 1), dtype=np.uint8), rows]).tobytes()  # filter 0 per row
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, level))
        + _chunk(b"IEND", b"")
    )
