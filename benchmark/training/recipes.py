"""A model's own training defaults: `@register_model(name, train={"lr": ...})`, applied where a config is silent.

Precedence, most specific first: a key in the model's [[models]] table, the model's own `train` defaults, the
[training] section, the TrainSpec defaults. The effective values land in ModelSpec.train, so they are part of the
train stage's parameters (cache key, manifest, train.json) like any value written in a config.
"""
from __future__ import annotations

from typing import Any

from benchmark.errors import BenchmarkError
from benchmark.registry import get_registry, load_all

__all__ = ["TRAIN_DEFAULT_KEYS", "train_defaults"]

TRAIN_DEFAULT_KEYS = {"epochs": int, "batch_size": int, "lr": float, "weight_decay": float, "augment": str,
                    "distill": str}


def train_defaults(name: str) -> dict[str, Any]:
    """The training defaults a registered model declares (meta `train`), checked; {} for unknown names."""
    load_all()
    registry = get_registry("models")
    if name not in registry.names():
        return {}  # the planner reports unknown names, with close matches
    entry = registry.get(name)
    declared = entry.meta.get("train") or {}
    if not isinstance(declared, dict):
        raise BenchmarkError(f"model {name} ({entry.source}): train= must be a dict such as {{\"lr\": 0.001}}")
    out = {}
    for key, value in declared.items():
        kind = TRAIN_DEFAULT_KEYS.get(key)
        if kind is None:
            raise BenchmarkError(f"model {name} ({entry.source}): train default '{key}' is unknown; allowed: "
                                 f"{', '.join(TRAIN_DEFAULT_KEYS)}")
        if kind is str:  # augment, distill: the config parser and the planner check the value
            if not isinstance(value, str):
                raise BenchmarkError(f"model {name} ({entry.source}): train default {key} = {value!r} must be a string")
            out[key] = value
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)) \
                or value < 0 or (key != "weight_decay" and value == 0):
            raise BenchmarkError(f"model {name} ({entry.source}): train default {key} = {value!r} is invalid; "
                                 f"expected a positive {kind.__name__}")
        out[key] = kind(value)
    return out
