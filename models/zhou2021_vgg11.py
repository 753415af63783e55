"""The study's classifier setting: timm's VGG-11 trained with focal loss and an input-gradient penalty."""
from __future__ import annotations

from torch import nn

from benchmark.model_factory import create_timm
from benchmark.registry import register_model

# Zhou et al. 2021 trained VGG-11 with focal loss (gamma 2) on balanced positive/negative batches (the engine's
# default sampler) and a smoothness penalty on input gradients; the penalty weight is a knob of this recipe.
RECIPE = {"loss": "focal", "gamma": 2.0, "input_grad_penalty": 0.01}


@register_model("zhou2021-vgg11", recipe=RECIPE)
def zhou2021_vgg11(image_size: int, **options: object) -> nn.Module:
    """VGG-11 (timm) trained as in Zhou et al. 2021: focal loss, balanced batches, input-gradient penalty."""
    return create_timm("vgg11", image_size, **options)
