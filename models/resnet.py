"""ResNets from timm, single-channel, two classes, trained from scratch (no hub download)."""
from __future__ import annotations

from torch import nn

from benchmark.registry import register_model
from benchmark.training.model_factory import create_timm

# On the default 800 synthetic images resnet18 memorises where each training breast sits under the light recipe
# (test AUC 0.765); mirror + shift augmentation for 60 epochs at batch 16 gives 0.889
# (benchmarks/results/model_auc.json).
RESNET18_TRAIN = {"augment": "strong", "epochs": 60, "batch_size": 16}


@register_model("resnet18", train=RESNET18_TRAIN)
def resnet18(image_size: int, **options: object) -> nn.Module:
    """ResNet-18 (timm), 11M parameters: the standard small baseline (trained with strong augmentation)."""
    return create_timm("resnet18", image_size, **options)


@register_model("resnet10t")
def resnet10t(image_size: int, **options: object) -> nn.Module:
    """ResNet-10-T (timm), 5M parameters with a tiered stem: smaller and faster than resnet18."""
    return create_timm("resnet10t", image_size, **options)
