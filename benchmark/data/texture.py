"""Parenchymal texture: Gaussian fields with a 1/f^beta power spectrum, and the fit of beta that checks them."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft as sp_fft

__all__ = ["power_law_field", "fit_beta"]


@lru_cache(maxsize=32)
def _log_freq(n: int, anisotropy: float) -> np.ndarray:
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    f = np.sqrt((fx * anisotropy) ** 2 + fy ** 2)
    f[0, 0] = 1.0
    return np.log(f).astype(np.float32)


def power_law_field(rng: np.random.Generator, n: int, beta: float, anisotropy: float = 1.0) -> np.ndarray:
    """A zero-mean, unit-variance Gaussian field with power spectrum 1/f^beta (anisotropy < 1 stretches along x)."""
    amp = np.exp(np.float32(-0.5 * beta) * _log_freq(n, round(anisotropy * 20) / 20))
    amp[0, 0] = 0.0
    # White noise drawn directly in the Fourier domain (complex Gaussian), which saves the forward transform.
    white = rng.standard_normal((n, n // 2 + 1, 2), dtype=np.float32).view(np.complex64)[..., 0]
    field = sp_fft.irfft2(white * amp, s=(n, n))
    return (field / field.std()).astype(np.float32)


def fit_beta(patches: np.ndarray, fmin: float = 0.03, fmax: float = 0.2) -> float:
    """Fit P(f) ~ 1/f^beta to the radially averaged power spectrum of Hann-windowed square patches (f in cycles/px).

    A stack (N, n, n) averages the spectra first, as in clinical measurements over many regions of interest.
    """
    patches = np.asarray(patches, dtype=np.float64).reshape(-1, *np.shape(patches)[-2:])
    n = patches.shape[-1]
    win = np.outer(np.hanning(n), np.hanning(n))
    centred = (patches - patches.mean((1, 2), keepdims=True)) * win
    power = (np.abs(np.fft.fftshift(np.fft.fft2(centred), axes=(1, 2))) ** 2).mean(0)
    yy, xx = np.indices(power.shape) - n // 2
    f = (np.hypot(yy, xx) / n).ravel()
    edges = np.geomspace(fmin, fmax, 13)
    idx = np.digitize(f, edges)
    ok = (idx > 0) & (idx < len(edges))
    sums = np.bincount(idx[ok], power.ravel()[ok], minlength=len(edges))[1:]
    counts = np.bincount(idx[ok], minlength=len(edges))[1:]
    keep = counts > 0
    centres = np.sqrt(edges[:-1] * edges[1:])
    slope = np.polyfit(np.log(centres[keep]), np.log(sums[keep] / counts[keep]), 1)[0]
    return float(-slope)
