"""What every attack entry checks before it runs: its options, its budget and the batch it is given."""
from __future__ import annotations

import math

import torch

from benchmark.options import Option, read_options
from benchmark.errors import BenchmarkError

__all__ = ["L2_BUDGETS", "LINF_BUDGETS", "Option", "check_batch", "generator", "read_options"]

# Default budgets on the [0,1] intensity scale. The L2 ones equal the L-inf ones times sqrt(64 * 64), i.e. the same
# per-pixel size on the default 64 px matrix; give budgets explicitly for other resolutions.
LINF_BUDGETS = ("0.5/255", "1/255", "2/255", "4/255", "8/255")
L2_BUDGETS = ("0.125", "0.25", "0.5", "1", "2")


def check_batch(name: str, threat: str, x: torch.Tensor, y: torch.Tensor, eps: float) -> None:
    """Refuse a batch or budget an attack cannot honestly run on: NaNs, values off [0,1], bad labels or budget."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise BenchmarkError(f"attack {name}: expected a float image batch (B, C, H, W), got {shape}")
    if not isinstance(y, torch.Tensor) or y.shape != x.shape[:1]:
        raise BenchmarkError(f"attack {name}: expected {x.shape[0]} labels, got "
                             f"{tuple(y.shape) if hasattr(y, 'shape') else type(y).__name__}")
    if x.numel() == 0:
        raise BenchmarkError(f"attack {name}: empty image batch {tuple(x.shape)}")
    lo, hi = torch.aminmax(x)  # NaN propagates into both; one pass, one device sync below
    lo, hi, ylo, yhi = torch.stack([lo, hi, y.min().to(x.dtype), y.max().to(x.dtype)]).tolist()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise BenchmarkError(f"attack {name}: the input batch has NaN or infinite pixels; fix the data or its "
                             "preprocessing before attacking")
    if lo < 0 or hi > 1:
        raise BenchmarkError(f"attack {name}: pixels must be intensities in [0,1], got [{lo:.4g}, {hi:.4g}]; "
                             "normalise the images (the benchmark never rounds them to 8 bits)")
    if ylo < 0 or yhi > 1:
        raise BenchmarkError(f"attack {name}: labels must be 0 (negative) or 1 (positive)")
    ceiling = 1.0 if threat == "linf" else math.sqrt(x[0].numel())
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 < eps <= ceiling:
        raise BenchmarkError(f"attack {name}: budget {eps!r} is outside (0, {ceiling:.6g}] for a {threat} attack "
                             "on [0,1] images")


def generator(device: torch.device, seed: int) -> torch.Generator:
    """A torch generator on device seeded with the batch seed (reproducible random starts on CPU)."""
    return torch.Generator(device=device).manual_seed(int(seed) % 2**63)
