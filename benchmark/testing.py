"""A contract check for plugin authors: run your attack or defense on a tiny built-in model before you publish it.

    from benchmark.testing import check_attack, check_defense

    def test_contract():
        check_defense(MyDefense, options={"sigma": 0.05})
        check_attack(my_attack, eps=2 / 255)

Each check builds the entry's card (as registration would, from the decorator's keywords when the entry is
registered, else from the object's attributes), parses the options with the defaults, runs the entry on a small
random CNN and batch on the CPU, and raises ContractError naming what is wrong: the output's shape, dtype or range,
the budget, determinism under a seed, gradients hidden by a defense declared differentiable, or a model changed
by the entry. Nothing is downloaded and no GPU is needed; a check takes seconds.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from benchmark.attacking.attack_call import check_batch, check_output, generator
from benchmark.cards import AttackCard, DefenseCard, make_card
from benchmark.entry_api import AttackContext
from benchmark.errors import BenchmarkError
from benchmark.options import read_options

__all__ = ["ContractError", "check_attack", "check_defense", "tiny_batch", "tiny_model"]

_CPU = torch.device("cpu")


class ContractError(AssertionError):
    """An entry that breaks the benchmark's contract; the message names the entry and the broken rule."""


class _TinyNet(nn.Module):
    """A small CNN with batch norm: (B, 1, H, W) in [0,1] -> (B, num_classes) logits."""

    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def tiny_model(num_classes: int = 2, seed: int = 0) -> nn.Module:
    """The built-in tiny model the checks use: a seeded random CNN in eval mode, on the CPU."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _TinyNet(num_classes).eval()


def tiny_batch(n: int = 8, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, y, masks): textured toy images in [0,1], alternating labels, a disc mask on every positive."""
    g = torch.Generator().manual_seed(seed)
    x = 0.2 + 0.5 * torch.rand(n, 1, size, size, generator=g)
    y = torch.arange(n) % 2
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disc = ((yy - size // 2) ** 2 + (xx - size // 2) ** 2 <= (size // 6) ** 2)
    masks = (disc[None, None] & (y == 1).view(-1, 1, 1, 1)).to(torch.uint8)
    return (x + 0.2 * masks).clamp(0, 1).float(), y, masks


def _card(kind: str, obj: Any, name: str | None) -> tuple[str, Any, str]:
    """(name, card, source) of obj: its registry entry when it is registered, else a card from its attributes."""
    from benchmark.registry import get_registry, load_all

    if isinstance(obj, str):
        from benchmark.registry import get_component

        entry = get_component(kind, obj)
        return entry.name, entry.card, entry.source
    load_all()
    for entry in get_registry(kind).entries():
        if entry.obj is obj:
            return entry.name, entry.card, entry.source
    label = name or getattr(obj, "name", None) or getattr(obj, "__name__", type(obj).__name__)
    source = f"module {getattr(obj, '__module__', '?')}"
    try:
        return label, make_card(kind, label, obj, source, {}), source
    except BenchmarkError as exc:
        raise ContractError(f"card: {exc}") from None


def _state(model: nn.Module) -> tuple[dict, bool, list]:
    return ({k: v.detach().clone() for k, v in model.state_dict().items()}, model.training,
            [p.grad is None for p in model.parameters()])


def _untouched(who: str, model: nn.Module, before: tuple[dict, bool, list], when: str) -> None:
    params, training, no_grads = before
    now = model.state_dict()
    changed = [k for k, v in params.items() if not torch.equal(v, now[k])]
    if changed:
        raise ContractError(f"{who}: {when} changed the model's {changed[0]} (work on a copy, or restore it)")
    if model.training != training:
        raise ContractError(f"{who}: {when} left the model in {'train' if model.training else 'eval'} mode")
    if [p.grad is None for p in model.parameters()] != no_grads:
        raise ContractError(f"{who}: {when} left .grad on the model's parameters (use torch.autograd.grad, or "
                            "restore them)")


def check_attack(attack: Callable | str, *, name: str | None = None, options: Mapping | None = None,
                 eps: float | None = None, model: nn.Module | None = None,
                 batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None, seed: int = 0) -> None:
    """Run the attack contract on `attack` (a function, or a registered name); raise ContractError if broken.

    Checked: the card is valid (threat declared, budgets, needs, options); `options` parse with the defaults; the
    raw output is a finite float tensor of the input's shape, dtype and device in [0,1]; it keeps the budget `eps`
    (default: the card's first budget, else 2/255 or 0.5) unless the card declares `minimal` (a minimal-perturbation
    attack, projected onto the budget by the engine); the same seed gives the same output; the model's
    weights, mode and .grad are as before.
    """
    name, card, _ = _card("attacks", attack, name)
    assert isinstance(card, AttackCard)
    fn = attack if callable(attack) else _obj("attacks", name)
    who = f"attack {name}"
    try:
        parsed = read_options(name, dict(options or {}), card.options)
    except BenchmarkError as exc:
        raise ContractError(f"options: {exc}") from None
    x, y, masks = batch if batch is not None else tiny_batch(seed=seed)
    model = model if model is not None else tiny_model()
    semantic = card.threat == "semantic"
    if eps is None:
        eps = 0.0 if semantic else (card.budget_values[0] if card.budgets else
                                    2 / 255 if card.threat == "linf" else 0.5)
    check_batch(name, card.threat, x, y, None if semantic else eps)
    fakes = (x.flip(-1) * 0.9).clamp(0, 1) if "fakes" in card.needs else None

    def run() -> Any:
        ctx = AttackContext(_CPU, seed, masks, dict(parsed), len(x), True, fakes, generator(x.device, seed))
        before = _state(model)
        try:
            out = fn(model, x.clone(), y.clone(), eps, ctx)
        except BenchmarkError:
            raise
        except Exception as exc:
            raise ContractError(f"{who} raised {type(exc).__name__}: {exc}") from exc
        _untouched(who, model, before, "the attack")
        return out

    first = run()
    if not isinstance(first, torch.Tensor) or first.shape != x.shape:
        shape = tuple(first.shape) if hasattr(first, "shape") else type(first).__name__
        raise ContractError(f"{who} returned {shape}; expected a tensor of the input's shape {tuple(x.shape)}")
    if first.dtype != x.dtype or first.device != x.device:
        raise ContractError(f"{who} returned {first.dtype} on {first.device}; expected {x.dtype} on {x.device}")
    if not torch.isfinite(first).all():
        raise ContractError(f"{who} returned NaN or infinite pixels")
    lo, hi = float(first.min()), float(first.max())
    if lo < 0 or hi > 1:
        raise ContractError(f"{who} returned pixels in [{lo:.4g}, {hi:.4g}]; adversarial images must stay in [0,1]")
    if not semantic and not card.minimal:  # a minimal-perturbation attack is projected by the engine
        delta = (first - x).flatten(1)
        size = float(delta.abs().max()) if card.threat == "linf" else float(delta.norm(dim=1).max())
        if size > eps * (1 + 1e-5) + 1e-6:
            raise ContractError(f"{who} exceeded its {card.threat} budget {eps:.5g}: {size:.5g} (the engine "
                                "would project it; a correct attack stays inside)")
    second = run()
    if not torch.equal(first, second):
        raise ContractError(f"{who} is not deterministic under a seed: two runs with seed {seed} differ (draw "
                            "randomness from ctx.generator, seeded by the engine, not from the global RNG)")
    check_output(name, card.threat, first, x, eps)


def _obj(kind: str, name: str) -> Any:
    from benchmark.registry import get_component

    return get_component(kind, name).obj


def _jsonable(who: str, value: Any) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ContractError(f"{who}: describe() must return JSON-able facts ({exc})") from None


def check_defense(defense: type | str, *, name: str | None = None, options: Mapping | None = None,
                  model: nn.Module | None = None,
                  batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None, seed: int = 0) -> None:
    """Run the defense contract on `defense` (a Defense class, or a registered name); raise ContractError if broken.

    Checked: the card is valid (options_spec, differentiable, claims, needs); `options` parse with the defaults and
    the class accepts them; training_batch returns a finite [0,1] batch with one label per image; training_loss
    gives a finite scalar; the deployed model (wrap) gives finite logits, the same ones under the same seed, and
    input gradients when the defense declares itself differentiable; the model's weights and mode are as before;
    describe() is JSON-able.
    """
    name, card, _ = _card("defenses", defense, name)
    assert isinstance(card, DefenseCard)
    cls = defense if not isinstance(defense, str) else _obj("defenses", name)
    who = f"defense {name}"
    try:
        read_options(name, dict(options or {}), card.options, kind="defenses")
    except BenchmarkError as exc:
        raise ContractError(f"options: {exc}") from None
    try:
        instance = cls(dict(options or {}))
    except Exception as exc:
        raise ContractError(f"{who}: constructing it with options {dict(options or {})} raised "
                            f"{type(exc).__name__}: {exc}") from exc
    x, y, _ = batch if batch is not None else tiny_batch(seed=seed)
    extra = int(getattr(instance, "extra_classes", 0))
    model = model if model is not None else tiny_model(2 + extra)
    if "fakes" in card.needs:
        instance.use_fakes((x.flip(-1) * 0.9).clamp(0, 1).numpy(), y.numpy())

    before = _state(model)
    torch.manual_seed(seed)
    try:
        out = instance.training_batch(model, x.clone(), y.clone(), 0)
    except Exception as exc:
        raise ContractError(f"{who}: training_batch raised {type(exc).__name__}: {exc}") from exc
    if not (isinstance(out, tuple) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out)):
        raise ContractError(f"{who}: training_batch must return (images, labels) tensors, got {type(out).__name__}")
    xb, yb = out
    if xb.dim() != 4 or xb.shape[1:] != x.shape[1:] or len(yb) != len(xb) or not xb.is_floating_point():
        raise ContractError(f"{who}: training_batch returned images {tuple(xb.shape)} and labels "
                            f"{tuple(yb.shape)}; expected float (N, {', '.join(map(str, x.shape[1:]))}) images "
                            "and N labels")
    if not torch.isfinite(xb).all() or float(xb.min()) < 0 or float(xb.max()) > 1:
        raise ContractError(f"{who}: training_batch returned pixels outside [0,1] or NaN")
    _untouched(who, model, before, "training_batch")

    def base_loss(m: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(m(inputs)[:, :2], labels.clamp(0, 1))
    model.train()
    loss = instance.training_loss(base_loss)(model, xb, yb)
    model.eval()
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0 or not torch.isfinite(loss):
        raise ContractError(f"{who}: training_loss must give a finite scalar tensor, got {loss!r}")
    model.zero_grad(set_to_none=True)
    model.load_state_dict(before[0])  # the loss's forward pass in train mode moved batch-norm statistics

    before = _state(model)
    deployed = instance.wrap(model)
    if not isinstance(deployed, nn.Module):
        raise ContractError(f"{who}: wrap must return an nn.Module, got {type(deployed).__name__}")
    outputs = []
    for _ in range(2):
        torch.manual_seed(seed)
        with torch.no_grad():
            outputs.append(deployed(x.clone()))
    logits = outputs[0]
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != len(x) or \
            logits.shape[1] < 2 or not torch.isfinite(logits).all():
        raise ContractError(f"{who}: the deployed model must give finite (B, >= 2) logits, got "
                            f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__}")
    if not torch.equal(outputs[0], outputs[1]):
        raise ContractError(f"{who}: the deployed model is not deterministic under a seed (draw randomness from "
                            "torch's seeded generator)")
    if card.differentiable:
        probe = x.clone().requires_grad_(True)
        with torch.enable_grad():
            out = deployed(probe)
            if not out.requires_grad:
                raise ContractError(f"{who}: declared differentiable, but the deployed model's output has no "
                                    "gradient to its input; declare differentiable = False (the engine then "
                                    "attacks it with BPDA/EOT)")
            grad = torch.autograd.grad(out[:, 1].sum() - out[:, 0].sum(), probe)[0]
        if not torch.isfinite(grad).all() or float(grad.abs().max()) == 0:
            raise ContractError(f"{who}: declared differentiable, but every input gradient of the deployed model "
                                "is zero (masked gradients); declare differentiable = False so the engine attacks "
                                "it with BPDA/EOT")
        model.zero_grad(set_to_none=True)
    _untouched(who, model, before, "wrap and the deployed model")
    _jsonable(who, instance.describe())
