"""JPEG compression of the input (Das et al., 2017; Guo et al., 2018), through ART's JpegCompression."""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from benchmark.attacking.adaptive import Transform, numpy_transform
from benchmark.registry import register_defense

from ._input_transform import InputTransformDefense
from ._options import Option

QUANTISATION = ("ART's JPEG works on 8-bit images: each pixel becomes floor(255 * x) / 255 before compression "
                "(a truncation, not a rounding), so a 12-16-bit mammogram loses its low bits (steps of 1/255) and "
                "darkens by up to 1/255 on top of the compression loss; the deployed model sees 8-bit JPEG images")


@register_defense("jpeg")
class JpegCompression(InputTransformDefense):
    """JPEG compression of every input at a fixed quality (8-bit, ART's JpegCompression); attacked with BPDA."""

    name = "jpeg"
    options_spec: ClassVar[dict[str, Option]] = {
        "quality": Option(75, int, "JPEG quality, 1 (worst) to 95 (best)", low=1, high=95)}
    apply_fit = True  # ART's default: the model also trains on compressed images

    def transform(self) -> Transform:
        """ART's JpegCompression (channels first, clip values [0,1]) on a numpy copy of the batch."""
        from art.defences.preprocessor import JpegCompression as ArtJpeg

        art = ArtJpeg(clip_values=(0.0, 1.0), quality=self.settings["quality"], channels_first=True)
        return numpy_transform(lambda x: art(np.clip(x, 0.0, 1.0))[0])

    def describe(self) -> dict[str, Any]:
        """The base facts plus how a 12-16-bit mammogram is quantised to 8 bits on the way in."""
        return {**super().describe(), "quantisation": QUANTISATION}
