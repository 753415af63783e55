"""The plugin authors' kit (benchmark/testing.py): it passes the built-ins and catches broken entries."""
from __future__ import annotations

import pytest
import torch
from tinyplugin import RandomNoiseEOT, Round8Bit
from torch import nn

from benchmark.entry_api import Defense
from benchmark.options import Option
from benchmark.testing import ContractError, check_attack, check_defense, tiny_batch, tiny_model

FAST = {"square": {"queries": 10}, "deepfool": {"steps": 5}, "pgd-linf": {"steps": 3}, "pgd-l2": {"steps": 3},
        "lesion-pgd": {"steps": 3}, "fgsm": {}, "gan": {}}


@pytest.mark.parametrize("name", list(FAST))
def test_built_in_attacks_pass(name: str) -> None:
    check_attack(name, options=FAST[name])


@pytest.mark.parametrize("name, options", [
    ("none", {}), ("jpeg", {}), ("spatial-smoothing", {}), ("feature-squeezing", {"bit_depth": 4}),
    ("pgd-at", {"steps": 1}), ("gan-fakes-relabel", {}), ("gan-fakes-detect", {})])
def test_built_in_defenses_pass(name: str, options: dict) -> None:
    check_defense(name, options=options)


def test_a_plugin_defense_with_options_passes_and_a_typo_is_caught() -> None:
    check_defense(RandomNoiseEOT, options={"sigma": 0.05})
    with pytest.raises(ContractError, match=r"options\.sigam: unknown option; did you mean 'sigma'"):
        check_defense(RandomNoiseEOT, options={"sigam": 0.05})


def _linf(fn):
    fn.threat = "linf"
    fn.budgets = ("2/255",)
    return fn


@_linf
def over_budget(model, x, y, eps, ctx):
    """Steps twice the budget."""
    return (x + 2 * eps).clamp(0, 1)


@_linf
def unseeded(model, x, y, eps, ctx):
    """Random start from the global RNG: not reproducible."""
    return (x + eps * (2 * torch.rand_like(x) - 1)).clamp(0, 1)


@_linf
def trains_the_model(model, x, y, eps, ctx):
    """Leaves the model in train mode."""
    model.train()
    return x


@_linf
def off_range(model, x, y, eps, ctx):
    """Forgets to clip at 0."""
    out = x.clone()
    out[0, 0, 0, 0] = -eps / 2
    return out


@_linf
def seeded(model, x, y, eps, ctx):
    """A correct random attack: draws from the engine's generator, stays inside the budget."""
    return (x + eps * (2 * torch.rand(x.shape, generator=ctx.generator) - 1)).clamp(0, 1)


def no_threat(model, x, y, eps, ctx):
    """Declares nothing."""
    return x


@pytest.mark.parametrize("attack, message", [
    (over_budget, "exceeded its linf budget"), (unseeded, "not deterministic under a seed"),
    (trains_the_model, "left the model in train mode"), (off_range, "adversarial images must stay in [0,1]"),
    (no_threat, "no threat model declared")])
def test_broken_attacks_are_caught(attack, message: str) -> None:
    with pytest.raises(ContractError) as info:
        check_attack(attack)
    assert message in str(info.value)


def test_a_correct_plugin_attack_passes() -> None:
    check_attack(seeded)


class WrongShape(Defense):
    """training_batch drops a row of pixels."""

    claims = ("linf",)

    def training_batch(self, model, x, y, step):
        return x[:, :, :-1], y


class UndeclaredOption(Defense):
    """Reads an option it never declared."""

    claims = ("linf",)


class ChangesWeights(Defense):
    """Zeroes the model's last layer while deploying it."""

    claims = ("linf",)
    options_spec = {"scale": Option(1.0, float, "a scale", above=0)}

    def wrap(self, model: nn.Module) -> nn.Module:
        with torch.no_grad():
            list(model.parameters())[-1].zero_()
        return model


@pytest.mark.parametrize("defense, options, message", [
    (Round8Bit, {}, "every input gradient of the deployed model is zero"),
    (WrongShape, {}, "training_batch returned images"),
    (UndeclaredOption, {"sigma": 0.1}, "options.sigma: unknown option"),
    (ChangesWeights, {}, "changed the model's"),
])
def test_broken_defenses_are_caught(defense, options: dict, message: str) -> None:
    with pytest.raises(ContractError) as info:
        check_defense(defense, options=options)
    assert message in str(info.value)


def test_tiny_model_and_batch_are_reproducible() -> None:
    a, b = tiny_model(), tiny_model()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters())) and not a.training
    x, y, masks = tiny_batch()
    assert x.shape == (8, 1, 32, 32) and float(x.min()) >= 0 and float(x.max()) <= 1 and masks[y == 0].sum() == 0
