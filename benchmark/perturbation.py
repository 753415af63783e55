"""How large an adversarial perturbation is, so that "imperceptible" is measured: Linf, L2, SSIM and PSNR.

Inputs are float arrays (numpy or torch) of shape (N, C, H, W) or (N, H, W) with values in [0, data_range].
PSNR of an unchanged image is inf in the returned numbers (mean PSNR is then inf as well); `metrics.to_jsonable`
writes inf as None, and `n_unchanged` in the summary says how many images caused it.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from skimage.metrics import structural_similarity

from benchmark.metrics import as_numpy

__all__ = ["perturbation_metrics", "per_image_perturbation", "ssim_win_size", "summarise"]

_STATS = ("mean", "median", "min", "max")


def ssim_win_size(height: int, width: int, preferred: int = 7) -> int:
    """The SSIM window: `preferred` (odd) shrunk to the largest odd size that fits the smaller side; at least 1."""
    side = min(height, width, preferred)
    return max(1, side if side % 2 else side - 1)


def _as_batch(x: Any, name: str) -> np.ndarray:
    a = as_numpy(x)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W) or (N, H, W), got {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{name} must be a float array in [0, data_range], got dtype {a.dtype}")
    return a


def _ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """SSIM of one (C, H, W) pair; windows of 1 pixel (sides < 3) use population statistics, as 1/(n-1) fails."""
    win = ssim_win_size(a.shape[-2], a.shape[-1])
    if a.shape[0] == 1:
        a, b, channel_axis = a[0], b[0], None
    else:
        channel_axis = 0
    return float(structural_similarity(a, b, data_range=data_range, win_size=win, channel_axis=channel_axis,
                                       use_sample_covariance=win > 1))


def per_image_perturbation(x: Any, x_adv: Any, data_range: float = 1.0) -> dict[str, np.ndarray]:
    """Per-image arrays (N,) of linf, l2 (intensity units), ssim and psnr (dB, inf when unchanged)."""
    xs, advs = _as_batch(x, "x"), _as_batch(x_adv, "x_adv")
    if xs.shape != advs.shape:
        raise ValueError(f"x has shape {xs.shape} but x_adv has shape {advs.shape}")
    n = len(xs)
    out = {key: np.empty(n, dtype=np.float64) for key in ("linf", "l2", "ssim", "psnr")}
    for i in range(n):  # one image at a time keeps memory at one float64 image for full-size mammograms
        a, b = xs[i].astype(np.float64), advs[i].astype(np.float64)
        d = b - a
        out["linf"][i] = np.abs(d).max() if d.size else 0.0
        out["l2"][i] = np.sqrt(np.square(d).sum())
        mse = np.square(d).mean()
        with np.errstate(divide="ignore"):
            out["psnr"][i] = 10 * np.log10(data_range**2 / mse) if mse > 0 else np.inf
        out["ssim"][i] = _ssim(a, b, data_range)
    return out


def summarise(values: np.ndarray) -> dict[str, float]:
    """{mean, median, min, max} of a 1-D array (nan for an empty one; inf propagates)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {key: float("nan") for key in _STATS}
    return {"mean": float(v.mean()), "median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}


def perturbation_metrics(x: Any, x_adv: Any, data_range: float = 1.0) -> dict[str, Any]:
    """Summaries of per-image Linf, L2, SSIM and PSNR: {linf, l2, ssim, psnr: {mean, median, min, max}, n, ...}."""
    per_image = per_image_perturbation(x, x_adv, data_range)
    out: dict[str, Any] = {key: summarise(v) for key, v in per_image.items()}
    shape = _as_batch(x, "x").shape
    out.update(n=int(shape[0]), n_unchanged=int((per_image["linf"] == 0).sum()), data_range=float(data_range),
               ssim_win_size=ssim_win_size(shape[-2], shape[-1]))
    return out
