"""Shared fixtures: a tiny registered data set for engine tests, and configs that write into tmp folders."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmark.config import MatrixConfig, parse_config
from benchmark.imageset import ImageSet
from benchmark.registry import get_registry, load_all, register_dataset

load_all()


def _tiny_blobs(spec, workdir: Path) -> ImageSet:
    """Tiny test set: smooth noise, positives carry a bright disc (engine tests only)."""
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


if "tiny-blobs" not in get_registry("datasets").names():
    register_dataset("tiny-blobs")(_tiny_blobs)


def tiny_config(tmp_path: Path, **overrides) -> MatrixConfig:
    """A one-model matrix on tiny-blobs that writes only under tmp_path."""
    raw = {
        "run": {"seed": 0, "device": "cpu", "store": str(tmp_path / "runs"),
                "leaderboards": str(tmp_path / "leaderboards")},
        "dataset": {"name": "tiny-blobs", "image_size": 32, "options": {"count": 96}},
        "training": {"epochs": 2, "batch_size": 16, "lr": 0.003},
        "models": [{"name": "resnet10t"}],
        "defenses": ["none"],
        "attacks": [{"name": "fgsm", "budgets": ["2/255", "8/255"]}],
    }
    for key, value in overrides.items():
        raw[key] = value
    return parse_config(raw, "tiny.toml")


@pytest.fixture
def tiny(tmp_path: Path) -> MatrixConfig:
    """The tiny matrix config, writing under this test's tmp folder."""
    return tiny_config(tmp_path)
