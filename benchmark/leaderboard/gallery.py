"""A small PNG gallery of mammograms with lesion-mask outlines, for eyeballing a data set."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmark.data.imageset import ImageSet

__all__ = ["save_gallery", "save_attack_gallery", "pick_examples"]


def _save(fig: object, path: Path | str) -> Path:
    """Lay out and write a gallery figure as PNG (its folder created), returning the path."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


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
    return _save(fig, path)


def pick_examples(labels: np.ndarray, before: np.ndarray, after: np.ndarray, threshold: float, n: int = 6) -> list[int]:
    """Up to n images, half per class, correctly classified originals first and those the attack flipped first."""
    labels = np.asarray(labels)
    correct = (before >= threshold).astype(int) == labels
    flipped = correct & ((after >= threshold).astype(int) != labels)
    order: list[int] = []
    for cls in (1, 0):
        idx = np.flatnonzero(labels == cls)
        ranked = sorted(idx, key=lambda i: (not flipped[i], not correct[i], i))
        order += ranked[: (n + 1) // 2 if cls == 1 else n - len(order)]
    return order


def save_attack_gallery(images: np.ndarray, adversarial: np.ndarray, labels: np.ndarray, before: np.ndarray,
                        after: np.ndarray, threshold: float, path: Path, title: str, n: int = 6) -> Path:
    """Columns of original, adversarial and difference map, titled with P(positive) before and after."""
    from matplotlib.figure import Figure

    images = np.asarray(images).reshape(len(images), *np.asarray(images).shape[-2:])
    adversarial = np.asarray(adversarial).reshape(images.shape)
    order = pick_examples(labels, before, after, threshold, n)
    diff = adversarial - images
    scale = max(float(np.abs(diff[order]).max()) if order else 0.0, 1e-6)
    fig = Figure(figsize=(2.4 * max(1, len(order)), 7.6))
    axes = fig.subplots(3, max(1, len(order)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for j, i in enumerate(order):
        kind = "positive" if labels[i] == 1 else "negative"
        axes[0, j].imshow(images[i], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[0, j].set_title(f"{kind}\nP(pos) {before[i]:.2f}", fontsize=8)
        axes[1, j].imshow(adversarial[i], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[1, j].set_title(f"adversarial (synthetic)\nP(pos) {after[i]:.2f}", fontsize=8)
        axes[2, j].imshow(diff[i], cmap="RdBu_r", vmin=-scale, vmax=scale, interpolation="nearest")
        axes[2, j].set_title(f"difference (±{scale:.3f})", fontsize=8)
    fig.suptitle(f"{title}  (threshold {threshold:.2f}; rows: original, adversarial, difference)", fontsize=9)
    return _save(fig, path)
