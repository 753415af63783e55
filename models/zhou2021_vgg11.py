"""The study's classifier setting: timm's VGG-11 trained with focal loss and an input-gradient penalty."""
from __future__ import annotations

from timm.layers import ClassifierHead
from torch import nn

from benchmark.registry import register_model
from benchmark.training.model_factory import create_timm, zero_classifier

# Zhou et al. 2021 trained VGG-11 with focal loss (gamma 2) on balanced positive/negative batches (the engine's
# default sampler) and a smoothness penalty on input gradients; the penalty weight is a knob of this recipe.
RECIPE = {"loss": "focal", "gamma": 2.0, "input_grad_penalty": 0.01}
# What it takes to learn at 480 training images (benchmarks/README.md): batch norm (timm's vgg11_bn), a pooled linear
# classifier instead of timm's 4096-wide 7 x 7 one (128.8M parameters on a 2 x 2 map at 64 px), strong augmentation
# and the soft outputs of a trained resnet10t.
ZHOU2021_TRAIN = {"augment": "strong", "epochs": 20, "lr": 1e-3, "distill": "resnet10t"}


@register_model("zhou2021-vgg11", recipe=RECIPE, train=ZHOU2021_TRAIN)
def zhou2021_vgg11(image_size: int, **options: object) -> nn.Module:
    """VGG-11 with batch norm (timm), 9.2M parameters, trained as in Zhou et al. 2021 (focal loss, gradient penalty).

    Global-average-pooled linear classifier (starting at zero); balanced batches; input-gradient penalty."""
    model = create_timm("vgg11_bn", image_size, **options)
    features = model.feature_info[-1]["num_chs"]
    model.pre_logits = nn.Identity()
    model.head = ClassifierHead(features, int(options.get("num_classes", 2)), pool_type="avg")
    model.num_features = model.head_hidden_size = features
    return zero_classifier(model)
