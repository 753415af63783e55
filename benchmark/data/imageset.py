"""The in-memory form of a data set that every stage after `data` reads: arrays, labels, masks, splits."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["ImageSet", "SPLITS", "unique_in_order"]

SPLITS = ("train", "val", "test")


def unique_in_order(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values in order of first appearance, and each row's index into them (np.unique sorts instead).
    Splits follow the data set's own order, so that keyed (per-store) ids do not change which patient goes where."""
    _, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return values[np.sort(first)], rank[inverse.ravel()]


@dataclass
class ImageSet:
    """Preprocessed images in [0,1] with labels (1 = positive: malignant/cancer) and lesion masks."""

    images: np.ndarray  # float32 (N, 1, H, W), values in [0, 1]
    labels: np.ndarray  # int64 (N,), 1 = positive, 0 = negative
    masks: np.ndarray  # uint8 (N, 1, H, W), 1 inside a lesion, all zero for images without one
    ids: np.ndarray  # str (N,), anonymous image ids (never a patient identifier from a real file)
    patients: np.ndarray  # str (N,), anonymous patient ids, used for patient-level splits
    splits: np.ndarray | None = None  # str (N,) in SPLITS, or None to let the engine split by patient
    meta: dict = field(default_factory=dict)  # JSON-able facts: positive definition, skipped files, ...

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.images.ndim != 4 or self.images.shape[1] != 1:
            raise ValueError(f"images must be (N, 1, H, W), got {self.images.shape}")
        for name in ("images", "masks", "ids", "patients"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows, labels has {n}")
        if self.masks.shape != self.images.shape:
            raise ValueError(f"masks shape {self.masks.shape} differs from images shape {self.images.shape}")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, split: str) -> ImageSet:
        """The rows of one split."""
        if self.splits is None:
            raise ValueError("this ImageSet has no splits assigned yet")
        keep = self.splits == split
        return ImageSet(self.images[keep], self.labels[keep], self.masks[keep], self.ids[keep],
                        self.patients[keep], self.splits[keep], dict(self.meta))

    def save(self, path: Path) -> None:
        """Write all arrays to one .npz file (no pickles)."""
        np.savez(path, images=self.images, labels=self.labels, masks=self.masks,
                 ids=self.ids.astype(str), patients=self.patients.astype(str),
                 splits=(self.splits if self.splits is not None else np.array([], dtype=str)).astype(str))

    @classmethod
    def load(cls, path: Path, meta: dict | None = None) -> ImageSet:
        """Read an ImageSet written by `save` (allow_pickle stays off)."""
        with np.load(path, allow_pickle=False) as z:
            splits = z["splits"]
            return cls(z["images"], z["labels"], z["masks"], z["ids"], z["patients"],
                       splits if len(splits) else None, dict(meta or {}))
