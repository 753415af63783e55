"""EfficientNet-B0 from timm, single-channel, two classes, trained from scratch."""
from __future__ import annotations

from torch import nn

from benchmark.model_factory import create_timm
from benchmark.registry import register_model


@register_model("efficientnet_b0")
def efficientnet_b0(image_size: int, **options: object) -> nn.Module:
    """EfficientNet-B0 (timm), 4M parameters, depthwise convolutions and squeeze-excitation."""
    return create_timm("efficientnet_b0", image_size, **options)
