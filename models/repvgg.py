"""RepVGG-A0 from timm: a modern small convnet (Ding et al. 2021), single-channel, two classes, trained from scratch.

It stands in for ConvNeXt-Atto, which does not learn the lesion on the default data under any recipe tried (test AUC
0.45-0.56; with strong augmentation and distillation its training loss never leaves chance). RepVGG trains as a
multi-branch net (3x3, 1x1 and identity branches with batch norm) and can be folded into plain 3x3 convolutions for
deployment. benchmarks/README.md has the runs.
"""
from __future__ import annotations

from torch import nn

from benchmark.registry import register_model
from benchmark.training.model_factory import create_timm

# 0.566 with the default recipe (it fits the 480 training images); strong augmentation and the soft outputs of a
# trained resnet10t: 0.875.
REPVGG_A0_TRAIN = {"augment": "strong", "epochs": 40, "lr": 1e-3, "distill": "resnet10t"}


@register_model("repvgg_a0", train=REPVGG_A0_TRAIN)
def repvgg_a0(image_size: int, **options: object) -> nn.Module:
    """RepVGG-A0 (timm), 7.8M parameters while training: stages of re-parameterisable 3x3 blocks."""
    return create_timm("repvgg_a0", image_size, **options)
