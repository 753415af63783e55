"""A small PNG gallery of mammograms with lesion-mask outlines, for eyeballing a data set."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from benchmark.imageset import ImageSet

__all__ = ["save_gallery"]


def save_gallery(data: ImageSet | tuple[np.ndarray, np.ndarray, np.ndarray], path: Path, n: int = 8,
                 titles: Sequence[str] | None = None) -> Path:
    """Save the first n/2 positives and n/2 negatives (images, masks, labels) as a grid PNG with mask outlines."""
    from matplotlib.figure import Figure  # no pyplot: renders with Agg and leaves the user's backend alone

    if isinstance(data, ImageSet):
        images, masks, labels = data.images, data.masks, data.labels
        titles = titles if titles is not None else list(data.ids)
    else:
        images, masks, labels = data
    images = np.asarray(images).reshape(len(images), *np.asarray(images).shape[-2:])
    masks = np.asarray(masks).reshape(images.shape)
    labels = np.asarray(labels)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels != 1)
    half = min(len(pos), (n + 1) // 2)
    order = list(pos[:half]) + list(neg[:n - half])
    order += [i for i in pos[half:] if len(order) < n]
    cols = min(len(order), 4 if n <= 8 else 8)
    rows = max(1, -(-len(order) // max(cols, 1)))
    fig = Figure(figsize=(3 * cols, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), order):
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        if labels[i] == 1 and masks[i].any():
            ax.contour(masks[i] > 0, levels=[0.5], colors="red", linewidths=0.8)
        name = f"{titles[i]}  " if titles is not None else ""
        ax.set_title(f"{name}{'positive' if labels[i] == 1 else 'negative'}", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
