"""The PNG a reader sees: 8-bit grey under one study-wide mammography window, enlarged to a readable size, the same
encoder and settings for originals and fakes, no metadata; and the mask of what the GAN edited."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from benchmark.stages.fakes import CHANGED_LEVEL

__all__ = ["EDIT_LEVEL", "edited_mask", "pack_mask", "study_window", "to_png", "unpack_mask"]

EDIT_LEVEL = CHANGED_LEVEL  # a pixel counts as edited when the fake moved it by more than this (0.02 on [0, 1])


def _plane(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"a study image must be (H, W) or (1, H, W), not shape {array.shape}")
    return array


def study_window(originals: np.ndarray) -> tuple[float, float]:
    """(low, high) of the window every study image is shown under: the 1st and 99.5th percentiles of the
    originals' tissue (pixels above the background level), as a mammography viewer's default window."""
    values = np.asarray(originals, dtype=np.float64).ravel()
    tissue = values[values > EDIT_LEVEL]
    if tissue.size < 2:
        return 0.0, 1.0
    low, high = float(np.percentile(tissue, 1)), float(np.percentile(tissue, 99.5))
    return (0.0, 1.0) if high - low < 1e-3 else (low, high)


def to_png(image: np.ndarray, window: tuple[float, float] = (0.0, 1.0), size: int = 0) -> bytes:
    """An image with values in [0, 1], (H, W) or (1, H, W), windowed to window, enlarged (bicubic) so that its
    longer side is at least size, as 8-bit greyscale PNG bytes without text chunks."""
    array = _plane(image)
    low, high = window
    scaled = np.clip((array - low) / (high - low), 0.0, 1.0).astype(np.float32)
    picture = Image.fromarray(scaled, mode="F")
    if size and max(array.shape) < size:
        factor = size / max(array.shape)
        picture = picture.resize((round(array.shape[1] * factor), round(array.shape[0] * factor)),
                                 Image.Resampling.BICUBIC)
    pixels = np.round(np.clip(np.asarray(picture), 0.0, 1.0) * 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", optimize=False, compress_level=6)
    return out.getvalue()


def edited_mask(original: np.ndarray, fake: np.ndarray) -> np.ndarray:
    """(H, W) bool: where the fake differs from its original by more than EDIT_LEVEL."""
    return np.abs(_plane(fake) - _plane(original)) > EDIT_LEVEL


def pack_mask(mask: np.ndarray) -> bytes:
    """A bool mask as packed bits (row-major)."""
    return np.packbits(np.asarray(mask, dtype=bool).ravel()).tobytes()


def unpack_mask(blob: bytes, height: int, width: int) -> np.ndarray:
    """The inverse of pack_mask."""
    bits = np.unpackbits(np.frombuffer(blob, dtype=np.uint8))[: height * width]
    return bits.reshape(height, width).astype(bool)
