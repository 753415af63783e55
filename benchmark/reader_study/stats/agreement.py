"""Agreement between readers: Fleiss' kappa (Fleiss 1971) with a bootstrap interval over the rated items."""
from __future__ import annotations

import numpy as np

__all__ = ["category_counts", "fleiss_kappa", "fleiss_kappa_interval"]


def category_counts(calls: np.ndarray, categories: int) -> np.ndarray:
    """(items, categories) counts of readers per category from calls (readers, items) coded 0..categories-1."""
    calls = np.asarray(calls)
    if calls.ndim != 2 or calls.size == 0:
        raise ValueError(f"calls must be a non-empty (readers, items) array, not shape {calls.shape}")
    if calls.min() < 0 or calls.max() >= categories:
        raise ValueError(f"calls must be coded 0..{categories - 1}")
    return np.stack([(calls == k).sum(axis=0) for k in range(categories)], axis=1)


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of an (items, categories) table of how many readers put each item in each category."""
    counts = np.asarray(counts, dtype=float)
    raters = counts.sum(axis=1)
    if counts.ndim != 2 or len(counts) == 0 or not np.all(raters == raters[0]) or raters[0] < 2:
        raise ValueError("counts must be (items, categories) with the same number (>= 2) of readers per item")
    n = raters[0]
    p_item = (np.sum(counts ** 2, axis=1) - n) / (n * (n - 1))
    p_cat = counts.sum(axis=0) / counts.sum()
    p_bar, p_e = p_item.mean(), np.sum(p_cat ** 2)
    if p_e == 1.0:
        return float("nan")  # every reader used one category for every item: agreement by chance is total
    return float((p_bar - p_e) / (1 - p_e))


def fleiss_kappa_interval(counts: np.ndarray, resamples: int = 2000, seed: int = 0,
                          level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of Fleiss' kappa, resampling items (rows) with replacement."""
    counts = np.asarray(counts, dtype=float)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        k = fleiss_kappa(counts[rng.integers(0, len(counts), len(counts))])
        if np.isfinite(k):
            draws.append(k)
    if not draws:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    return float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))
