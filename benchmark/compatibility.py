"""Plan-time threat-model checks: refuse a (model, defense, attack) cell that cannot be run honestly, warn when unsure.

Each check reads what entries declare on their cards (benchmark/cards.py: attack `threat`, `access`, `needs`,
`budgets`; defense `needs`; data set `masks`; each validated when the entry registered) and, for the GAN attacks,
builds the model on the meta device (no memory, no weights) to see whether it is a timm classifier. Errors are one
line naming the config file, the entry and the fix.
"""
from __future__ import annotations

import functools
import json
import math
import warnings

import torch

from benchmark.cards import NEEDS  # noqa: F401 -- re-exported: what the engine can hand an entry
from benchmark.config import (
    AttackSpec,
    DefenseSpec,
    MatrixConfig,
    ModelSpec,
    budget_label,
)
from benchmark.errors import BenchmarkError
from benchmark.registry import Component, get_component

__all__ = ["CompatibilityWarning", "check_cell", "check_matrix", "dataset_has_masks"]

LINF_LARGE = 16 / 255  # the largest L-inf budget in common use; above it the image content itself changes
L2_RMS_TINY = 0.1 / 255  # L2 budgets whose per-pixel RMS is below a tenth of an 8-bit grey level
L2_RMS_LARGE = 32 / 255


class CompatibilityWarning(UserWarning):
    """A cell that runs, but probably not as the config's author meant (e.g. budgets in the wrong scale)."""


def check_cell(config: MatrixConfig, model: ModelSpec, defense: DefenseSpec, attack: AttackSpec) -> None:
    """Raise BenchmarkError if this cell cannot be run honestly; issue CompatibilityWarning where it looks wrong."""
    a_entry = get_component("attacks", attack.name)
    d_entry = get_component("defenses", defense.name)
    where = f"{config.source}: attacks '{attack.name}'"
    threat, access, needs = a_entry.card.threat, a_entry.card.access, a_entry.card.needs  # checked at registration
    if "masks" in needs:
        _check_masks(config, attack)
    if "fakes" in needs:
        target = str(attack.options.get("surrogate", config.models[0].name)) if access == "transfer" else model.name
        spec = next((m for m in config.models if m.name == target), None)
        if spec is not None:  # an unknown surrogate is the planner's error, with the list of matrix models
            _check_timm(config, spec, f"{where} ({access}: its GAN critic starts from the features of "
                                      f"{'surrogate ' if access == 'transfer' else ''}model '{target}')")
    if "fakes" in d_entry.card.needs:
        _check_timm(config, model, f"{config.source}: defenses '{defense.name}' (it trains on GAN fakes made "
                                   f"against model '{model.name}')")
    _check_budgets(config, attack, a_entry, threat)


def check_matrix(config: MatrixConfig) -> None:
    """check_cell for every (model, defense, attack) of the matrix."""
    for model in config.models:
        for defense in config.defenses:
            for attack in config.attacks:
                check_cell(config, model, defense, attack)


def dataset_has_masks(entry: Component, options: dict) -> bool | None:
    """Whether a data set entry yields lesion masks with these options; None when it does not declare `masks`."""
    return entry.card.has_masks(options)  # ("roi_masks", False): masks exactly when that boolean option is on


def _check_masks(config: MatrixConfig, attack: AttackSpec) -> None:
    name = config.dataset.name
    has = dataset_has_masks(get_component("datasets", name), config.dataset.options)
    where = f"{config.source}: attacks '{attack.name}'"
    if has is False:
        raise BenchmarkError(f"{where} needs lesion masks and data set '{name}' has none with these options; "
                             "use a data set with masks (e.g. cbis-ddsm with options.roi_masks = true) or remove "
                             "the attack (pgd-linf attacks the whole image)")
    if has is None:
        warnings.warn(f"{where} needs lesion masks and data set '{name}' does not declare whether it has them "
                      "(register it with masks=True/False); images without a mask are attacked in a random breast "
                      "region instead", CompatibilityWarning, stacklevel=3)


def _check_timm(config: MatrixConfig, model: ModelSpec, why: str) -> None:
    if not _is_timm_classifier(model.name, json.dumps(model.options, sort_keys=True, default=str),
                               config.dataset.image_size):
        raise BenchmarkError(f"{why}: '{model.name}' is not a timm classifier (no forward_features and "
                             "reset_classifier); attack it with a pixel attack, or build it with "
                             "benchmark.training.model_factory.create_timm")


@functools.lru_cache(maxsize=64)
def _is_timm_classifier(name: str, options: str, image_size: int) -> bool:
    """Build the model on the meta device (no memory, no weights) and look for a timm classifier inside it."""
    with torch.device("meta"):
        model = get_component("models", name).obj(image_size, **json.loads(options))
    return any(hasattr(m, "forward_features") and hasattr(m, "reset_classifier") for m in model.modules())


def _check_budgets(config: MatrixConfig, attack: AttackSpec, entry: Component, threat: str) -> None:
    where = f"{config.source}: attacks '{attack.name}'"
    if threat == "semantic":
        if attack.budgets:
            raise BenchmarkError(f"{where}: a semantic attack has no norm budget; remove budgets")
        return
    budgets = attack.budgets or entry.card.budget_values
    side = config.dataset.image_size
    pixels = side * side
    for eps in budgets:
        if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
            raise BenchmarkError(f"{where}: budget {eps!r} must be a positive number on the [0,1] intensity scale")
        label = budget_label(eps)
        if threat == "linf" and eps >= 1:
            raise BenchmarkError(f"{where}: L-inf budget {label} spans the whole [0,1] intensity range; budgets are "
                                 f"fractions of it: write \"{_fraction(eps)}\" for {eps:g} grey levels of 255")
        if threat == "linf" and eps > LINF_LARGE:
            _warn(f"{where}: L-inf budget {label} is above 16/255, the largest in common use, where the "
                  "perturbation can change what the image shows; budgets are fractions of the [0,1] range")
        if threat == "l2":
            rms = eps / math.sqrt(pixels)
            if eps > math.sqrt(pixels):
                raise BenchmarkError(f"{where}: L2 budget {eps:g} exceeds the largest possible change of a "
                                     f"{side}x{side} [0,1] image ({math.sqrt(pixels):g}); give L2 norms on the "
                                     "[0,1] scale")
            if rms < L2_RMS_TINY:
                _warn(f"{where}: L2 budget {label} over {side}x{side} pixels is a per-pixel RMS of "
                      f"{rms * 255:.2g}/255, which looks like an L-inf fraction; L2 budgets grow with sqrt(pixels) "
                      f"(the L-inf box of {label} has L2 radius {eps * math.sqrt(pixels):.3g} here)")
            elif rms > L2_RMS_LARGE:
                _warn(f"{where}: L2 budget {label} over {side}x{side} pixels is a per-pixel RMS of "
                      f"{rms * 255:.3g}/255, large enough to change the image content; is it in the 0-255 scale?")


def _fraction(eps: float) -> str:
    return f"{eps:g}/255"


def _warn(message: str) -> None:
    warnings.warn(message, CompatibilityWarning, stacklevel=4)

