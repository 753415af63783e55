"""ViT-Tiny/16 from timm with its image size set to the config's, single-channel, two classes."""
from __future__ import annotations

from torch import nn

from benchmark.model_factory import create_timm
from benchmark.registry import register_model


@register_model("vit_tiny_patch16_224")
def vit_tiny_patch16_224(image_size: int, **options: object) -> nn.Module:
    """ViT-Tiny, 16 px patches (timm), 5.4M parameters; positional embeddings sized to the config's images."""
    return create_timm("vit_tiny_patch16_224", image_size, img_size=image_size, **options)
