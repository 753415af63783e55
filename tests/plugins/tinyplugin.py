"""A test-only plugin package: a tiny data set and a deliberately broken attack, joined via entry points."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmark.imageset import ImageSet


def tiny_blobs(spec, workdir: Path) -> ImageSet:
    """Tiny test set: blocky noise; positives carry a bright disc."""
    n = int(spec.options.get("count", 96))
    s = spec.image_size
    rng = np.random.default_rng(spec.seed)
    noise = rng.normal(0.4, 0.08, (n, 1, s // 4, s // 4)).repeat(4, 2).repeat(4, 3)
    labels = np.arange(n) % 2
    yy, xx = np.mgrid[:s, :s]
    masks = np.zeros((n, 1, s, s), np.uint8)
    for i in np.flatnonzero(labels):
        cy, cx = rng.integers(s // 4, 3 * s // 4, 2)
        masks[i, 0] = (yy - cy) ** 2 + (xx - cx) ** 2 <= (s // 8) ** 2
    images = np.clip(noise + 0.35 * masks, 0, 1).astype(np.float32)
    ids = np.array([f"img{i:04d}" for i in range(n)])
    return ImageSet(images, labels.astype(np.int64), masks, ids, ids.copy(), None, {"positive": "bright disc"})


def broken_attack(model, x, y, eps, ctx) -> torch.Tensor:
    """An attack that always fails, to show that a failing cell does not stop the matrix."""
    raise RuntimeError("this attack is broken on purpose")


def wrong_shape_attack(model, x, y, eps, ctx) -> torch.Tensor:
    """An attack that returns the wrong shape."""
    return x[:, :, :-1]
