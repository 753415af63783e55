"""Build timm backbones for mammograms (1 channel, 2 classes, no pretrained download) and load local weights."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from benchmark.config import DefenseSpec, ModelSpec, TrainSpec
from benchmark.entry_api import Defense
from benchmark.errors import BenchmarkError
from benchmark.registry import get_component

__all__ = ["INPUT_MEAN", "INPUT_STD", "build_deployable", "create_timm", "deployable_specs", "load_checkpoint",
           "standardize_input", "zero_classifier"]

# Images stay on the [0,1] intensity scale everywhere (attacks, budgets, GAN); the network itself sees them
# standardised. Without it a LayerNorm network (ConvNeXt) trained from scratch on [0,1] mammograms never leaves
# chance (training loss stuck at ln 2), while batch-norm ResNets are indifferent.
INPUT_MEAN, INPUT_STD = 0.5, 0.25


def standardize_input(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: (x - INPUT_MEAN) / INPUT_STD on the first input (a module-level function: it deep-copies)."""
    return ((args[0] - INPUT_MEAN) / INPUT_STD, *args[1:])


def create_timm(name: str, image_size: int, num_classes: int = 2, **kwargs: Any) -> nn.Module:
    """timm.create_model(name) with in_chans=1 and pretrained=False, its input standardised (option standardize,
    default on: forward sees (x - 0.5) / 0.25); other kwargs pass through (e.g. img_size, global_pool)."""
    if kwargs.pop("pretrained", False):
        raise BenchmarkError(f"model {name}: pretrained weights cannot be downloaded here; "
                             "give a local timm weights file as pretrained_file = \"path\" instead")
    standardize = kwargs.pop("standardize", True)
    if not isinstance(standardize, bool):
        raise BenchmarkError(f"model {name}: option standardize = {standardize!r} must be true or false")
    model = timm.create_model(name, pretrained=False, in_chans=1, num_classes=num_classes, **kwargs)
    if standardize:
        model.register_forward_pre_hook(standardize_input)
    return model


def zero_classifier(model: nn.Module) -> nn.Module:
    """Start the classifier at zero, so that training starts at chance (ln 2) instead of large initial logits."""
    head = model.get_classifier()
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return model


def load_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Load a local state_dict safely (weights_only=True refuses pickles that would run code)."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError for unsafe pickles, RuntimeError for junk
        raise BenchmarkError(f"checkpoint {path} refused: not a plain weights file "
                             f"({type(exc).__name__}); save it with torch.save(model.state_dict(), path)") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise BenchmarkError(f"checkpoint {path} does not fit this model: {first}") from None


def deployable_specs(params: dict) -> tuple[ModelSpec, DefenseSpec]:
    """The model and defense specs of a train stage's params."""
    m = params["model"]
    return (ModelSpec(m["name"], TrainSpec(**m["train"]), m["options"]),
            DefenseSpec(params["defense"]["name"], params["defense"]["options"]))


def build_deployable(model_spec: ModelSpec, defense_spec: DefenseSpec, image_size: int) -> tuple[nn.Module, Defense]:
    """Fresh model and defense objects from their registry entries (deploy as defense.wrap(model))."""
    defense = get_component("defenses", defense_spec.name).obj(defense_spec.options)
    extra = int(getattr(defense, "extra_classes", 0))  # e.g. a "manipulated" output for a detecting defense
    options = {**model_spec.options, **({"num_classes": 2 + extra} if extra else {})}
    model = get_component("models", model_spec.name).obj(image_size, **options)
    return model, defense
