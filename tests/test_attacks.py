"""Pixel attacks: native FGSM/PGD equal ART's, budgets hold, no 8-bit grid, strength ordering, lesion region, errors."""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.attacking import torch_attacks
from benchmark.attacking.art_adapter import art_classifier
from benchmark.attacking.attack_call import call_attack
from benchmark.entry_api import AttackContext
from benchmark.errors import BenchmarkError
from benchmark.registry import get_component

S = 32  # image side
CPU = torch.device("cpu")
# Small options so that the ART attacks finish in seconds on two cores.
FAST = {"fgsm": {}, "pgd-linf": {}, "pgd-l2": {}, "lesion-pgd": {},
        "cw-l2": {"binary_search_steps": 3, "steps": 10, "learning_rate": 0.05, "initial_const": 1.0},
        "deepfool": {"steps": 10}, "square": {"queries": 30},
        "autoattack": {"steps": 5, "restarts": 1, "queries": 20, "square_restarts": 1}}


def blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Toy mammograms: a textured half-disc 'breast' on a black background; positives carry a bright masked blob."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    breast = (yy - S / 2) ** 2 + xx ** 2 <= (0.8 * S) ** 2
    texture = F.interpolate(torch.rand(n, 1, S // 4, S // 4, generator=g), size=(S, S), mode="bilinear")
    y = torch.arange(n) % 2
    masks = torch.zeros(n, 1, S, S, dtype=torch.uint8)
    for i in torch.nonzero(y).flatten().tolist():
        cy = int(torch.randint(S // 4, 3 * S // 4, (1,), generator=g))
        cx = int(torch.randint(3, S // 2, (1,), generator=g))
        r = 2 + 2 * float(torch.rand(1, generator=g))
        masks[i, 0] = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & breast
    x = (0.3 + 0.25 * texture) * breast + 0.16 * masks + 0.02 * torch.rand(n, 1, S, S, generator=g) * breast
    return x.clamp(0, 1).float(), y, masks


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A tiny conv net (with batch norm, in eval mode) trained to ~100% on toy blobs, and a held-out batch."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveMaxPool2d(1),
                          nn.Flatten(), nn.Linear(16, 2))
    x, y, _ = blobs(256, seed=0)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    g = torch.Generator().manual_seed(0)  # batches from their own generator: no dependence on global RNG use
    for _ in range(200):
        i = torch.randint(0, len(x), (32,), generator=g)
        loss = F.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    xt, yt, mt = blobs(48, seed=1)
    assert accuracy(model, xt, yt) >= 0.95
    return model, xt, yt, mt


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def attack(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
           masks: torch.Tensor | None = None, seed: int = 0, **options: object) -> torch.Tensor:
    """Call a registered attack the way the engine's attack stage does."""
    ctx = AttackContext(CPU, seed, masks, dict(options), batch_size=64)
    return call_attack(get_component("attacks", name), model, x, y, eps, ctx)


def onehot(y: torch.Tensor) -> np.ndarray:
    return np.eye(2, dtype=np.float32)[y.numpy()]


def test_native_fgsm_equals_art(trained) -> None:
    from art.attacks.evasion import FastGradientMethod

    model, x, y, _ = trained
    timm_model = timm.create_model("resnet10t", pretrained=False, in_chans=1, num_classes=2).eval()
    for net in (model, timm_model):
        clf = art_classifier(net, (1, S, S), CPU)
        ref = FastGradientMethod(clf, norm=np.inf, eps=2 / 255, batch_size=64).generate(x.numpy(), onehot(y))
        ours = attack("fgsm", net, x, y, 2 / 255)
        assert float((ours - torch.from_numpy(ref)).abs().max()) <= 1e-6


@pytest.mark.parametrize("norm,eps,art_norm,atol", [("linf", 4 / 255, np.inf, 1e-6), ("l2", 0.5, 2, 1e-5)])
def test_native_pgd_equals_art_without_random_start(trained, norm, eps, art_norm, atol) -> None:
    from art.attacks.evasion import ProjectedGradientDescent

    model, x, y, _ = trained
    clf = art_classifier(model, (1, S, S), CPU)
    ref = ProjectedGradientDescent(clf, norm=art_norm, eps=eps, eps_step=eps / 4, max_iter=7, num_random_init=0,
                                   batch_size=64, verbose=False).generate(x.numpy(), onehot(y))
    ours = attack(f"pgd-{norm}", model, x, y, eps, steps=7, step_size=eps / 4, random_start=False)
    assert float((ours - torch.from_numpy(ref)).abs().max()) <= atol
    assert accuracy(model, ours, y) == pytest.approx(accuracy(model, torch.from_numpy(ref), y))


@pytest.mark.parametrize("name", list(FAST))
def test_every_attack_keeps_its_budget_and_float_precision(trained, name) -> None:
    model, x, y, masks = trained
    entry = get_component("attacks", name)
    threat = entry.card.threat
    eps = 4 / 255 if threat == "linf" else 0.5
    model.zero_grad(set_to_none=True)  # ART called directly in other tests leaves .grad behind
    before = [p.detach().clone() for p in model.parameters()]
    x_adv = attack(name, model, x, y, eps, masks, **FAST[name])
    assert x_adv.dtype == torch.float32 and x_adv.shape == x.shape and x_adv.device == x.device
    assert torch.isfinite(x_adv).all() and float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    delta = (x_adv - x).flatten(1)
    size = delta.abs().max(1).values if threat == "linf" else delta.norm(dim=1)
    assert float(size.max()) <= eps * (1 + 1e-5) + 1e-6
    moved = x_adv[x_adv != x]
    assert moved.numel() > 0, f"{name} changed nothing"
    off_grid = ((moved * 255 - (moved * 255).round()).abs() > 1e-3).float().mean()
    assert float(off_grid) > 0.5  # not rounded to 8-bit levels
    # the model is left as it was: eval mode, parameters trainable, unchanged, no stray .grad
    assert not model.training and all(p.requires_grad and p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_pgd_at_least_as_strong_as_fgsm_and_monotone_in_eps(trained) -> None:
    model, x, y, _ = trained
    clean = accuracy(model, x, y)
    budgets = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
    fgsm = [accuracy(model, attack("fgsm", model, x, y, e), y) for e in budgets]
    pgd = [accuracy(model, attack("pgd-linf", model, x, y, e), y) for e in budgets]
    assert all(p <= f for p, f in zip(pgd, fgsm))
    assert all(a >= b for a, b in zip([clean] + fgsm, fgsm)) and all(a >= b for a, b in zip([clean] + pgd, pgd))
    # At 8/255 PGD breaks this undefended toy model and FGSM does not. The trained toy differs a little between CPUs
    # (7/48 left robust on an AVX-512 EPYC, under 5/48 elsewhere), so the bound leaves room and the gap is the claim.
    assert pgd[-1] <= 0.25 and fgsm[-1] - pgd[-1] >= 0.25 and fgsm[-1] < clean


def test_lesion_pgd_stays_in_the_lesion_or_a_breast_region(trained) -> None:
    model, x, y, masks = trained
    x_adv = attack("lesion-pgd", model, x, y, 8 / 255, masks)
    changed = (x_adv != x)[:, 0]
    lesion, breast = masks[:, 0] > 0, x[:, 0] > 0.05
    positives, negatives = y == 1, y == 0
    assert not (changed[positives] & ~lesion[positives]).any()
    assert changed[positives].flatten(1).any(1).all()
    assert not (changed[negatives] & ~breast[negatives]).any()
    areas = changed[negatives].flatten(1).sum(1).float()
    lesion_areas = lesion[positives].flatten(1).sum(1).float()
    assert float(areas.min()) > 0 and float(areas.max()) <= 3 * float(lesion_areas.max())
    assert accuracy(model, x_adv, y) < accuracy(model, x, y)


def test_same_seed_same_result_other_seed_other_start(trained) -> None:
    model, x, y, masks = trained
    for name in ("pgd-linf", "pgd-l2", "lesion-pgd", "square"):
        eps = 0.5 if name == "pgd-l2" else 4 / 255
        a = attack(name, model, x, y, eps, masks, seed=3, **FAST[name])
        b = attack(name, model, x, y, eps, masks, seed=3, **FAST[name])
        c = attack(name, model, x, y, eps, masks, seed=4, **FAST[name])
        assert torch.equal(a, b) and not torch.equal(a, c), name


def test_torch_pgd_is_clean_for_adversarial_training(trained) -> None:
    model, x, y, _ = trained
    model.train()
    try:
        before = {k: v.clone() for k, v in model.state_dict().items()}
        gen = torch.Generator().manual_seed(0)
        x_adv = torch_attacks.pgd(model.eval(), x, y, 4 / 255, steps=3, generator=gen, norm="linf")
        assert float((x_adv - x).abs().max()) <= 4 / 255 + 1e-6
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
        assert all(p.requires_grad and p.grad is None for p in model.parameters())
    finally:
        model.eval()


def test_bad_input_is_a_clear_error(trained) -> None:
    model, x, y, _ = trained
    nan = x.clone()
    nan[0, 0, 0, 0] = float("nan")
    for name in ("fgsm", "pgd-linf", "square"):
        with pytest.raises(BenchmarkError, match="NaN"):
            attack(name, model, nan, y, 2 / 255)
    with pytest.raises(BenchmarkError, match=r"options\.stpes: unknown option; did you mean 'steps'"):
        attack("pgd-linf", model, x, y, 2 / 255, stpes=5)
    with pytest.raises(BenchmarkError, match=r"attacks\.fgsm\.options\.steps: unknown option"):
        attack("fgsm", model, x, y, 2 / 255, steps=5)
    with pytest.raises(BenchmarkError, match=r"attacks\.square\.options\.queries: must be >= 1"):
        attack("square", model, x, y, 2 / 255, queries=0)
    with pytest.raises(BenchmarkError, match=r"attacks\.pgd-l2\.options\.random_start: expected true or false"):
        attack("pgd-l2", model, x, y, 0.5, random_start="yes")
    with pytest.raises(BenchmarkError, match=r"budget 2 is outside \(0, 1\] for a linf attack"):
        attack("pgd-linf", model, x, y, 2)
    with pytest.raises(BenchmarkError, match=r"budget 0 is outside"):
        attack("deepfool", model, x, y, 0)
    with pytest.raises(BenchmarkError, match=r"intensities in \[0,1\]"):
        attack("fgsm", model, x * 4095, y, 2 / 255)
    with pytest.raises(BenchmarkError, match="apgd-dlr' needs at least 3 classes"):
        attack("autoattack", model, x, y, 2 / 255, attacks=["apgd-ce", "apgd-dlr"])


def test_a_gradient_that_comes_back_as_an_expanded_view_is_not_written_into() -> None:
    """A model whose input gradient is an expanded tensor (here: through a sum) must not break the in-place step."""
    class Summed(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = x.flatten(1).sum(1, keepdim=True)
            return torch.cat([-z, z], dim=1)

    x, y, _ = blobs(8, seed=3)
    x_adv = attack("fgsm", Summed(), x, y, 2 / 255)
    assert torch.allclose((x_adv - x).abs().amax(), torch.tensor(2 / 255), atol=1e-6)
