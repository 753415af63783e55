"""Native batched torch attacks: FGSM and PGD (L-inf, L2), on-device, float32, no 8-bit rounding.

This is the fast path of the harness for the gradient attacks that dominate the matrix, and the attack inside PGD
adversarial training. The arithmetic mirrors ART's `FastGradientMethod` / `ProjectedGradientDescentPyTorch` step for
step (gradient of the mean cross-entropy, sign or L2-normalised step, clip to [0,1], project onto the budget ball), so
without a random start the outputs equal ART's; what differs is the cost: gradients are taken w.r.t. the input only,
with the parameters frozen for the duration, and nothing leaves the device between steps.

The gradient is one swappable function (`GradFn`): BPDA/EOT for non-differentiable defenses plug in there.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.device import autocast
from benchmark.errors import BenchmarkError

__all__ = [
    "NORMS",
    "GradFn",
    "default_step_size",
    "eval_mode",
    "fgsm",
    "fooled",
    "frozen_parameters",
    "loss_gradient",
    "pgd",
    "project",
    "random_init",
]

NORMS = ("linf", "l2")
# (x, y) -> d loss / d x: a fresh tensor of x's shape, which the attack then overwrites in place
GradFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@contextlib.contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[nn.Module]:
    """Parameters stop requiring grad inside the block (input gradients only); restored on exit, also on error."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p in params:
            p.requires_grad_(True)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode inside the block; every submodule's own mode is restored on exit."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def loss_gradient(model: nn.Module) -> GradFn:
    """d/dx of the mean cross-entropy on the first two logits (extra heads are ignored), input gradient only."""
    def grad(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            with autocast(x.device):
                logits = model(x)
            if logits.dim() != 2 or logits.shape[1] < 2:
                raise BenchmarkError(f"attacks need a model with 2-class logits (negative, positive) per image; "
                                     f"this one returned shape {tuple(logits.shape)}")
            loss = F.cross_entropy(logits[:, :2].float(), y)
            return torch.autograd.grad(loss, x)[0]
    return grad


def default_step_size(eps: float, steps: int) -> float:
    """Madry's rule of thumb: 2.5 * eps / steps, so that a walk can cross the ball and back."""
    return 2.5 * eps / steps


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """x + (x_adv - x) projected onto the eps ball of norm, then clipped to [0,1] (clipping never grows the norm)."""
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        n = delta.flatten(1).norm(dim=1).view(-1, *([1] * (x.dim() - 1)))
        delta = delta * torch.where(n > eps, eps / n.clamp_min(1e-30), torch.ones_like(n))
    return (x + delta).clamp_(0, 1)


def random_init(x: torch.Tensor, eps: float, norm: str, generator: torch.Generator | None,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """A uniform random point of the eps ball around x (inside mask when given), clipped to [0,1]."""
    if norm == "linf":
        delta = (torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1) * eps
    else:
        flat = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype).flatten(1)
        radius = torch.rand((x.shape[0], 1), generator=generator, device=x.device, dtype=x.dtype)
        radius = eps * radius.pow(1.0 / flat.shape[1])
        delta = (flat * (radius / flat.norm(dim=1, keepdim=True).clamp_min(1e-30))).view_as(x)
    if mask is not None:
        delta = delta * mask
    return (x + delta).clamp(0, 1)


def _step(x_adv: torch.Tensor, g: torch.Tensor, step_size: float, norm: str,
          mask: torch.Tensor | None) -> torch.Tensor:
    """One ascent step along the sign (L-inf) or the unit-L2 direction of g, inside mask; clipped to [0,1].

    g is consumed (updated in place: no allocation per step); the result is a new tensor, x_adv is not touched.
    """
    if mask is not None:
        g = g.mul_(mask)
    if norm == "linf":
        direction = g.sign_()
    else:
        n = g.flatten(1).norm(dim=1).view(-1, *([1] * (g.dim() - 1)))
        direction = g.mul_(torch.where(n == 0, n, 1 / n))
    return direction.mul_(step_size).add_(x_adv).clamp_(0, 1)


def _project_delta(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """ART's order: project x_adv - x, add back to x (no clip here: x_adv was clipped already). Consumes x_adv."""
    delta = x_adv.sub_(x)
    if norm == "linf":
        return delta.clamp_(-eps, eps).add_(x)
    n = delta.flatten(1).norm(dim=1).view(-1, *([1] * (x.dim() - 1)))
    return delta.mul_(torch.where(n == 0, n, torch.clamp(eps / n, max=1.0))).add_(x)


@torch.no_grad()
def fooled(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Boolean (B,): the model's 2-class decision on x differs from y."""
    with autocast(x.device):
        logits = model(x)
    return logits[:, :2].float().argmax(1) != y


def _pgd_once(grad_fn: GradFn, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, step_size: float,
              norm: str, start: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    x_adv = start
    for _ in range(steps):
        # contiguous: a gradient can come back as an expanded view (e.g. through a mean), which _step writes into
        x_adv = _step(x_adv, grad_fn(x_adv, y).contiguous(), step_size, norm, mask)
        x_adv = _project_delta(x_adv, x, eps, norm)
    return x_adv.clamp_(0, 1) if steps else x_adv.clamp(0, 1)  # never write into the caller's x


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 10,
        step_size: float | None = None, norm: str = "linf", random_start: bool = True,
        generator: torch.Generator | None = None, mask: torch.Tensor | None = None, *, restarts: int = 1,
        grad_fn: GradFn | None = None) -> torch.Tensor:
    """Madry's PGD on a batch: `steps` ascent steps of `step_size` (default 2.5*eps/steps), projected on the eps ball.

    norm is "linf" or "l2"; mask (broadcastable to x, 0/1) confines the perturbation; with restarts > 1 a later
    random start replaces an earlier result only where the earlier one did not fool the model (ART's rule). The
    model is used in the mode it is in (the entries put it in eval mode); its parameters are frozen meanwhile.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    x = x.detach()
    step_size = default_step_size(eps, steps) if step_size is None else float(step_size)
    mask = None if mask is None else mask.to(device=x.device, dtype=x.dtype)
    grad_fn = grad_fn or loss_gradient(model)
    with frozen_parameters(model):
        best = None
        for _ in range(max(1, restarts)):
            start = random_init(x, eps, norm, generator, mask) if random_start else x
            x_adv = _pgd_once(grad_fn, x, y, eps, steps, step_size, norm, start, mask)
            if best is None:
                best = x_adv
                if restarts <= 1:
                    break
                done = fooled(model, best, y)
            else:
                take = ~done & fooled(model, x_adv, y)
                best = torch.where(take.view(-1, *([1] * (x.dim() - 1))), x_adv, best)
                done = done | take
    return best


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, mask: torch.Tensor | None = None, *,
         grad_fn: GradFn | None = None) -> torch.Tensor:
    """Goodfellow's FGSM: x + eps * sign(grad), clipped to [0,1]: one PGD step of size eps from x."""
    return pgd(model, x, y, eps, steps=1, step_size=eps, norm="linf", random_start=False, mask=mask,
               grad_fn=grad_fn)
