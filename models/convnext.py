"""ConvNeXt-Atto from timm: a modern small convnet, single-channel, two classes."""
from __future__ import annotations

from torch import nn

from benchmark.model_factory import create_timm
from benchmark.registry import register_model


@register_model("convnext_atto")
def convnext_atto(image_size: int, **options: object) -> nn.Module:
    """ConvNeXt-Atto (timm), 3.4M parameters: a modern small convnet with large depthwise kernels."""
    return create_timm("convnext_atto", image_size, **options)
