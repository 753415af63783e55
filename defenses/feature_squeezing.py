"""Feature squeezing (Xu et al., 2018): pixel intensities rounded to a few bits, ART's FeatureSqueezing in torch."""
from __future__ import annotations

from typing import ClassVar

import torch

from benchmark.attacking.adaptive import Transform
from benchmark.registry import register_defense

from ._input_transform import InputTransformDefense
from ._options import Option


@register_defense("feature-squeezing")
class FeatureSqueezing(InputTransformDefense):
    """Bit-depth reduction of every input to bit_depth bits (ART's FeatureSqueezing, on device); attacked with BPDA."""

    name = "feature-squeezing"
    options_spec: ClassVar[dict[str, Option]] = {"bit_depth": Option(5, int, "bits kept per pixel", low=1, high=16)}

    def transform(self) -> Transform:
        """round(x * (2^b - 1)) / (2^b - 1), in float64 like ART (half to even, as numpy's rint), on x's device."""
        levels = float(2 ** self.settings["bit_depth"] - 1)

        def squeeze(x: torch.Tensor) -> torch.Tensor:
            return (torch.round(x.double() * levels) / levels).to(x.dtype)
        return squeeze
