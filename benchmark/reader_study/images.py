"""The PNG a reader sees: 8-bit grey, the same encoder and settings for originals and fakes, no metadata."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

__all__ = ["to_png"]


def to_png(image: np.ndarray) -> bytes:
    """An image with values in [0, 1], shaped (H, W) or (1, H, W), as 8-bit greyscale PNG bytes without text chunks."""
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"a study image must be (H, W) or (1, H, W), not shape {array.shape}")
    pixels = np.round(np.clip(array, 0.0, 1.0) * 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", optimize=False, compress_level=6)
    return out.getvalue()
