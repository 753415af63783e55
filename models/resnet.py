"""ResNets from timm, single-channel, two classes, trained from scratch (no hub download)."""
from __future__ import annotations

from torch import nn

from benchmark.model_factory import create_timm
from benchmark.registry import register_model


@register_model("resnet18")
def resnet18(image_size: int, **options: object) -> nn.Module:
    """ResNet-18 (timm), 11M parameters: the standard small baseline."""
    return create_timm("resnet18", image_size, **options)


@register_model("resnet10t")
def resnet10t(image_size: int, **options: object) -> nn.Module:
    """ResNet-10-T (timm), 5M parameters with a tiered stem: smaller and faster than resnet18."""
    return create_timm("resnet10t", image_size, **options)
