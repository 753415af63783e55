"""Spatial smoothing (Xu et al., 2018): a median filter over each image, ART's SpatialSmoothing in torch."""
from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from benchmark.attacking.adaptive import Transform
from benchmark.registry import register_defense

from ._input_transform import InputTransformDefense
from ._options import Option


def _symmetric_pad(x: torch.Tensor, before: int, after: int, dim: int) -> torch.Tensor:
    """Pad one dimension by mirroring with the edge repeated (d c b a | a b c d), scipy's mode 'reflect'."""
    parts = [x.narrow(dim, 0, before).flip(dim), x, x.narrow(dim, x.shape[dim] - after, after).flip(dim)]
    return torch.cat(parts, dim)


def median_filter(x: torch.Tensor, window: int) -> torch.Tensor:
    """scipy.ndimage.median_filter(x, size=(1, 1, window, window), mode='reflect') for a (B, C, H, W) batch."""
    before, after = window // 2, window - 1 - window // 2  # scipy's window placement, also for even sizes
    if max(before, after) > min(x.shape[-2:]):
        raise ValueError(f"median window {window} is larger than the image {tuple(x.shape[-2:])}")
    padded = _symmetric_pad(_symmetric_pad(x, before, after, 2), before, after, 3)
    b, c, h, w = x.shape
    patches = F.unfold(padded.reshape(b * c, 1, *padded.shape[-2:]), window)  # (B*C, window^2, H*W)
    rank = window * window // 2  # scipy's rank: the upper median for an even count
    return patches.kthvalue(rank + 1, dim=1).values.reshape(b, c, h, w)


@register_defense("spatial-smoothing")
class SpatialSmoothing(InputTransformDefense):
    """Median filter over a window x window neighbourhood of every input (ART's SpatialSmoothing, on device); BPDA."""

    name = "spatial-smoothing"
    options_spec: ClassVar[dict[str, Option]] = {
        "window": Option(3, int, "side of the square median window, in pixels", low=1, high=15)}

    def transform(self) -> Transform:
        """The median filter with this defense's window, clipped to [0,1] like ART."""
        window = self.settings["window"]
        return lambda x: median_filter(x, window).clamp(0, 1)
