"""A model's own training defaults: `@register_model(name, train={"lr": ...})`, applied where a config is silent.

Precedence, most specific first: a key in the model's [[models]] table, the model's own `train` defaults, the
[training] section, the TrainSpec defaults. The effective values land in ModelSpec.train, so they are part of the
train stage's parameters (cache key, manifest, train.json) like any value written in a config.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from benchmark.errors import BenchmarkError
from benchmark.options import Option, OptionValueError, check_value

__all__ = ["TRAIN_DEFAULT_KEYS", "TRAIN_DEFAULT_OPTIONS", "check_train_defaults", "train_defaults"]

# What a model may declare as its own training defaults (the config parser checks augment and distill values).
TRAIN_DEFAULT_OPTIONS: dict[str, Option] = {
    "epochs": Option(None, int, "training epochs", above=0),
    "batch_size": Option(None, int, "images per training batch", above=0),
    "lr": Option(None, float, "learning rate", above=0),
    "weight_decay": Option(None, float, "weight decay", low=0),
    "augment": Option(None, str, "augmentation recipe name"),
    "distill": Option(None, str, "model to distil from"),
}
TRAIN_DEFAULT_KEYS = {key: opt.kind for key, opt in TRAIN_DEFAULT_OPTIONS.items()}


def check_train_defaults(name: str, source: str, declared: object) -> dict[str, Any]:
    """A model's declared `train` defaults checked against TRAIN_DEFAULT_OPTIONS (at registration)."""
    if not isinstance(declared, Mapping):
        raise BenchmarkError(f"model {name} ({source}): train= must be a dict such as {{\"lr\": 0.001}}")
    out = {}
    for key, value in declared.items():
        opt = TRAIN_DEFAULT_OPTIONS.get(key)
        if opt is None:
            raise BenchmarkError(f"model {name} ({source}): train default '{key}' is unknown; allowed: "
                                 f"{', '.join(TRAIN_DEFAULT_OPTIONS)}")
        if opt.kind is str:  # augment, distill: the config parser and the planner check the value
            if not isinstance(value, str):
                raise BenchmarkError(f"model {name} ({source}): train default {key} = {value!r} must be a string")
            out[key] = value
            continue
        try:
            if value is None:
                raise OptionValueError("not a whole number")
            out[key] = opt.kind(check_value(opt, value))
        except OptionValueError:
            raise BenchmarkError(f"model {name} ({source}): train default {key} = {value!r} is invalid; "
                                 f"expected a positive {opt.kind.__name__}") from None
    return out


def train_defaults(name: str) -> dict[str, Any]:
    """The training defaults a registered model declares (its card's `train`, checked at registration); {} for
    unknown names."""
    from benchmark.registry import get_registry, load_all

    load_all()
    registry = get_registry("models")
    if name not in registry.names():
        return {}  # the planner reports unknown names, with close matches
    return dict(registry.get(name).card.train)
