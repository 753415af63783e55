"""ViT-Tiny/16 from timm with its image size set to the config's, single-channel, two classes."""
from __future__ import annotations

from torch import nn

from benchmark.errors import BenchmarkError
from benchmark.registry import register_model
from benchmark.training.model_factory import create_timm

# With timm's 16 px patch projection it does not learn at 64 px (test AUC 0.50-0.56 on the default data). A
# convolutional stem makes it learn (0.675); strong augmentation and the soft outputs of a trained resnet10t take it to
# 0.866 in 60 epochs (val 0.868; 0.865 in 40, val 0.825). benchmarks/README.md has the runs.
VIT_TINY_TRAIN = {"augment": "strong", "epochs": 60, "lr": 5e-4, "distill": "resnet10t"}
STEM_CHANNELS = (24, 48, 96, 192)


def convolutional_stem(embed_dim: int, in_chans: int = 1) -> nn.Sequential:
    """Four 3x3 stride-2 convolutions with batch norm and ReLU, then a 1x1 projection to the embedding: the same
    16 px tokens as the patch projection it replaces, seen through early convolutions (Xiao et al. 2021)."""
    layers: list[nn.Module] = []
    for c_in, c_out in zip((in_chans, *STEM_CHANNELS[:-1]), STEM_CHANNELS):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.Conv2d(STEM_CHANNELS[-1], embed_dim, 1))


@register_model("vit_tiny_patch16_224", train=VIT_TINY_TRAIN)
def vit_tiny_patch16_224(image_size: int, conv_stem: bool = True, **options: object) -> nn.Module:
    """ViT-Tiny, 16 px tokens (timm), 5.5M parameters; positional embeddings sized to the config's images; a
    convolutional stem instead of the patch projection unless options conv_stem = false."""
    if not isinstance(conv_stem, bool):
        raise BenchmarkError(f"model vit_tiny_patch16_224: option conv_stem = {conv_stem!r} must be true or false")
    model = create_timm("vit_tiny_patch16_224", image_size, img_size=image_size, **options)
    if conv_stem:
        proj = model.patch_embed.proj
        model.patch_embed.proj = convolutional_stem(proj.out_channels, proj.in_channels)
    return model
