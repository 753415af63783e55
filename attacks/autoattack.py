"""AutoAttack (Croce & Hein, 2020) through ART, L-inf, with ART's standard attack set made valid for two classes.

ART's default set is APGD-CE, APGD-DLR, DeepFool and Square. The DLR loss needs a third-largest logit, so with
two classes it is undefined; the default here is ART's set without it (APGD-CE 100 steps x 5 restarts, DeepFool,
Square 5000 queries x 5 restarts), at ART's settings. Each image keeps the first attack that fools the model
within the budget. This is slow on a CPU: lower `steps`, `restarts`, `queries` and `square_restarts` there.

ART's `AutoAttack.generate` imports `multiprocess` even when it runs serially, and that package is not a dependency
here; the serial untargeted loop is therefore driven below with ART's own per-attack step (`run_attack`: attack the
still-robust images, accept a result only if it fools the model within eps).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from benchmark.attacking.art_adapter import art_generate
from benchmark.entry_api import AttackContext
from benchmark.errors import BenchmarkError
from benchmark.options import Option
from benchmark.registry import register_attack

from ._budgets import LINF_BUDGETS

_PARTS = ("apgd-ce", "apgd-dlr", "deepfool", "square")
AUTOATTACK_OPTIONS = {
    "attacks": Option(["apgd-ce", "deepfool", "square"], list, "attacks to run, in order", choices=_PARTS),
    "steps": Option(100, int, "APGD iterations", low=1),
    "restarts": Option(5, int, "APGD random restarts", low=1),
    "queries": Option(5000, int, "Square query budget", low=1),
    "square_restarts": Option(5, int, "Square restarts", low=1),
}


def _parts(clf: object, eps: float, o: dict, batch_size: int) -> list:
    from art.attacks.evasion import AutoProjectedGradientDescent, DeepFool, SquareAttack

    def apgd(loss: str) -> object:
        return AutoProjectedGradientDescent(clf, norm=np.inf, eps=eps, eps_step=2 * eps, max_iter=o["steps"],
                                            targeted=False, nb_random_init=o["restarts"], batch_size=batch_size,
                                            loss_type=loss, verbose=False)
    make = {"apgd-ce": lambda: apgd("cross_entropy"), "apgd-dlr": lambda: apgd("difference_logits_ratio"),
            "deepfool": lambda: DeepFool(clf, max_iter=100, epsilon=1e-3, nb_grads=10, batch_size=batch_size,
                                         verbose=False),
            "square": lambda: SquareAttack(clf, norm=np.inf, max_iter=o["queries"], eps=eps, p_init=0.8,
                                           nb_restarts=o["square_restarts"], batch_size=batch_size,
                                           verbose=False)}
    return [make[name]() for name in o["attacks"]]


class _SerialAutoAttack:
    """ART AutoAttack's untargeted serial loop over `attacks`, built from ART's own `run_attack`."""

    def __init__(self, clf: object, attacks: list, eps: float, batch_size: int) -> None:
        self.clf, self.attacks, self.eps, self.batch_size = clf, attacks, eps, batch_size

    def generate(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        from art.attacks.evasion.auto_attack import run_attack

        x_adv = x.astype(np.float32)
        robust = self.clf.predict(x_adv, batch_size=self.batch_size).argmax(1) == y.argmax(1)
        for attack in self.attacks:
            if not robust.any():
                break
            x_adv, robust = run_attack(x=x_adv, y=y, sample_is_robust=robust, attack=attack,
                                       estimator_orig=self.clf, norm=np.inf, eps=self.eps)
        return x_adv


@register_attack("autoattack", threat="linf", access="white-box", budgets=LINF_BUDGETS, options=AUTOATTACK_OPTIONS)
def autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, ctx: AttackContext) -> torch.Tensor:
    """AutoAttack (ART): APGD-CE, DeepFool and Square in turn, the first success within eps kept per image."""
    o = ctx.options
    if "apgd-dlr" in o["attacks"]:
        raise BenchmarkError("attacks.autoattack.options.attacks: 'apgd-dlr' needs at least 3 classes and this "
                             "benchmark's models have 2 (positive, negative); remove it")
    return art_generate(lambda clf: _SerialAutoAttack(clf, _parts(clf, eps, o, ctx.batch_size), eps,
                                                      ctx.batch_size),
                        model, x, y, ctx, name="autoattack")  # projected onto the budget by call_attack
