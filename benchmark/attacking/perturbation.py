"""How large an adversarial perturbation is, so that "imperceptible" is measured: Linf, L2, SSIM and PSNR.

Inputs are float arrays (numpy or torch) of shape (N, C, H, W) or (N, H, W) with values in [0, data_range].
PSNR of an unchanged image is inf in the returned numbers (mean PSNR is then inf as well); `metrics.to_jsonable`
writes inf as None, and `n_unchanged` in the summary says how many images caused it.

SSIM and PSNR can be measured inside a region only (`region=`, e.g. `breast_mask(x)`), so that the black background
around the breast, identical in both images, does not make them look better; Linf and L2 always cover the whole
image, as they are the attack's budgets.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from skimage.metrics import structural_similarity

from benchmark.metrics import as_numpy

__all__ = ["breast_mask", "perturbation_metrics", "per_image_perturbation", "ssim_win_size", "summarise"]

_STATS = ("mean", "median", "min", "max")
BREAST_LEVEL = 0.02  # the background of the images is 0; breast tissue lies above this on the [0, 1] scale


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


def breast_mask(images: Any, level: float = BREAST_LEVEL) -> np.ndarray:
    """The breast: pixels of the ORIGINAL images above `level` (the background is 0), as a bool array of their shape.

    Pass the originals, not the perturbed images, so that the region does not depend on the attack.
    """
    return as_numpy(images) > level


def _as_region(region: Any, shape: tuple[int, ...]) -> np.ndarray:
    """`region` as a bool array of the (N, C, H, W) batch shape: (N, H, W) and (N, 1, H, W) apply to every channel."""
    r = as_numpy(region)
    if r.dtype != np.bool_:
        raise ValueError(f"region must be a boolean array (True inside the area to measure), got dtype {r.dtype}")
    if r.ndim == 3:
        r = r[:, None]
    try:
        return np.broadcast_to(r, shape)
    except ValueError:
        raise ValueError(f"region of shape {as_numpy(region).shape} does not fit images of shape {shape}") from None


def _ssim(a: np.ndarray, b: np.ndarray, data_range: float, region: np.ndarray | None = None) -> float:
    """SSIM of one (C, H, W) pair; windows of 1 pixel (sides < 3) use population statistics, as 1/(n-1) fails.

    With a (C, H, W) bool `region`: the mean of skimage's full SSIM map over region pixels, leaving out the strip of
    half a window along the edges exactly as skimage's own mean does (so a region covering everything gives the
    plain SSIM); nan when no region pixel lies off that strip.
    """
    win = ssim_win_size(a.shape[-2], a.shape[-1])
    if a.shape[0] == 1:
        a, b, channel_axis = a[0], b[0], None
    else:
        channel_axis = 0
    kwargs = {"data_range": data_range, "win_size": win, "channel_axis": channel_axis,
              "use_sample_covariance": win > 1}
    if region is None:
        return float(structural_similarity(a, b, **kwargs))
    _, ssim_map = structural_similarity(a, b, full=True, **kwargs)
    ssim_map = ssim_map.reshape(region.shape)
    pad = (win - 1) // 2
    inner = np.zeros(region.shape, dtype=bool)
    inner[..., pad:region.shape[-2] - pad, pad:region.shape[-1] - pad] = True
    keep = region & inner
    return float(ssim_map[keep].mean(dtype=np.float64)) if keep.any() else float("nan")


def per_image_perturbation(x: Any, x_adv: Any, data_range: float = 1.0, region: Any = None) -> dict[str, np.ndarray]:
    """Per-image arrays (N,) of linf, l2 (intensity units), ssim and psnr (dB, inf when unchanged).

    `region` (optional): a bool array of x's shape, or (N, H, W) for every channel, True inside the area to
    measure. SSIM and PSNR are then measured over region pixels only (PSNR from the MSE over them; SSIM as the mean of
    the full SSIM map over them, see `_ssim`); an image with an empty region gets nan for both. Linf and L2 always
    cover the whole image.
    """
    xs, advs = _as_batch(x, "x"), _as_batch(x_adv, "x_adv")
    if xs.shape != advs.shape:
        raise ValueError(f"x has shape {xs.shape} but x_adv has shape {advs.shape}")
    regions = None if region is None else _as_region(region, xs.shape)
    n = len(xs)
    out = {key: np.empty(n, dtype=np.float64) for key in ("linf", "l2", "ssim", "psnr")}
    for i in range(n):  # one image at a time keeps memory at one float64 image for full-size mammograms
        a, b = xs[i].astype(np.float64), advs[i].astype(np.float64)
        d = b - a
        out["linf"][i] = np.abs(d).max() if d.size else 0.0
        out["l2"][i] = np.sqrt(np.square(d).sum())
        if regions is None:
            mse = np.square(d).mean()
            out["ssim"][i] = _ssim(a, b, data_range)
        elif not regions[i].any():
            out["psnr"][i] = out["ssim"][i] = np.nan
            continue
        else:
            mse = np.square(d[regions[i]]).mean()
            out["ssim"][i] = _ssim(a, b, data_range, np.ascontiguousarray(regions[i]))
        with np.errstate(divide="ignore"):
            out["psnr"][i] = 10 * np.log10(data_range**2 / mse) if mse > 0 else np.inf
    return out


def summarise(values: np.ndarray) -> dict[str, float]:
    """{mean, median, min, max} of a 1-D array, ignoring nan values (images with an empty region); nan when nothing
    is left; inf propagates."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return {key: float("nan") for key in _STATS}
    return {"mean": float(v.mean()), "median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}


def perturbation_metrics(x: Any, x_adv: Any, data_range: float = 1.0, region: Any = None) -> dict[str, Any]:
    """Summaries of per-image Linf, L2, SSIM and PSNR: {linf, l2, ssim, psnr: {mean, median, min, max}, n, ...}.

    With `region` (see `per_image_perturbation`) SSIM and PSNR are measured inside it ("region": "breast" in the
    result, else "image"); images with an empty region have nan SSIM/PSNR, are left out of those summaries (which
    ignore nan values) and are counted in `n_empty_region`.
    """
    per_image = per_image_perturbation(x, x_adv, data_range, region)
    out: dict[str, Any] = {key: summarise(v) for key, v in per_image.items()}
    shape = _as_batch(x, "x").shape
    n_empty = 0 if region is None else int((~_as_region(region, shape).reshape(shape[0], -1).any(axis=1)).sum())
    out.update(n=int(shape[0]), n_unchanged=int((per_image["linf"] == 0).sum()), data_range=float(data_range),
               ssim_win_size=ssim_win_size(shape[-2], shape[-1]), region="image" if region is None else "breast",
               n_empty_region=n_empty)
    return out
