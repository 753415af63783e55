"""Train the study's two one-way lesion generators (insert, remove) with the staged schedule.

Per direction (insert: negatives -> positive-looking; remove: positives -> negative-looking):
  generator loss  = adversarial_weight * softplus(-D(G(x))) + fidelity_weight * MSE(G(x), x) / mean(x^2)
                    [+ classifier_weight * (CE(classifier(G(x)), target class) + softplus(manipulated logit), the
                       latter only against a detecting model; white-box only, 0 by default]
  critic loss     = softplus(D(G(x))) + softplus(-D(real)) + r1_gamma / 2 * |grad_x D(real)|^2  (every r1_every steps)
where `real` are images of the target class and D starts from the classifier's feature extractor with a new head.
Schedule: identity pretraining of G (fidelity only), then D's head alone, then G and all of D jointly.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from benchmark.device import autocast
from benchmark.errors import BenchmarkError
from benchmark.gan.networks import DIRECTIONS, FeatureDiscriminator, UNetGenerator
from benchmark.options import Option, OptionValueError, check_value

__all__ = ["GanSchedule", "train_direction", "train_gan", "schedule_from_options", "SCHEDULE_OPTIONS"]


@dataclass(frozen=True)
class GanSchedule:
    """Loss weights, steps per stage and optimiser settings of one GAN training run."""

    identity_steps: int = 60
    head_steps: int = 40
    joint_steps: int = 160
    batch_size: int = 16
    lr_generator: float = 2e-3
    lr_discriminator: float = 2e-4
    lr_head: float = 2e-3
    adversarial_weight: float = 1.0
    fidelity_weight: float = 20.0
    classifier_weight: float = 0.0
    r1_gamma: float = 1.0
    r1_every: int = 4
    unet_base: int = 16
    unet_levels: int = 3
    logit_skip: bool = True

    def total_steps(self) -> int:
        """Steps of one direction over all three stages."""
        return self.identity_steps + self.head_steps + self.joint_steps


# The schedule's options (attack options of gan and gan-transfer): defaults are GanSchedule's own.
_DOCS = {
    "identity_steps": ("steps of identity pretraining of the generator (fidelity only)", 0, 100_000),
    "head_steps": ("steps training the critic's new head alone", 0, 100_000),
    "joint_steps": ("steps training generator and critic jointly", 0, 1_000_000),
    "batch_size": ("images per GAN training batch", 1, 4096),
    "lr_generator": ("generator learning rate", 0, 1),
    "lr_discriminator": ("critic backbone learning rate", 0, 1),
    "lr_head": ("critic head learning rate", 0, 1),
    "adversarial_weight": ("weight of the generator's adversarial loss", 0, 1e6),
    "fidelity_weight": ("weight of the relative MSE to the input image", 0, 1e6),
    "classifier_weight": ("weight of the attacked classifier's loss (white-box only)", 0, 1e6),
    "r1_gamma": ("R1 gradient penalty on real images", 0, 1e6),
    "r1_every": ("critic steps between R1 penalties", 1, 1000),
    "unet_base": ("channels of the generator U-Net's first level", 4, 256),
    "unet_levels": ("levels of the generator U-Net", 1, 6),
    "logit_skip": ("generator edits in logit space (a skip connection around the U-Net)", None, None),
}
SCHEDULE_OPTIONS: dict[str, Option] = {
    f.name: Option(f.default, type(f.default), _DOCS[f.name][0], low=_DOCS[f.name][1], high=_DOCS[f.name][2])
    for f in fields(GanSchedule)}


def schedule_from_options(options: dict[str, Any], where: str) -> GanSchedule:
    """A GanSchedule from attack options; values out of range are one-line errors (other keys are ignored: they
    belong to the attack entry, which checks them against its card)."""
    values = {}
    for key, value in options.items():
        opt = SCHEDULE_OPTIONS.get(key)
        if opt is None:
            continue  # other options (surrogate) belong to the attack entry
        try:
            checked = check_value(opt, value)
        except OptionValueError as exc:
            raise BenchmarkError(f"{where}.options.{key} = {value!r}: {exc.reason}") from None
        if checked is not None:
            values[key] = opt.kind(checked)
    return GanSchedule(**values)


def _fidelity(fake: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """MSE(G(x), x) / mean(x^2): the study's relative fidelity term, per batch."""
    return F.mse_loss(fake, x) / x.pow(2).mean().clamp_min(1e-8)


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(n, size=min(batch_size, n), replace=n < batch_size)


def train_direction(source: torch.Tensor, real: torch.Tensor, classifier: nn.Module, schedule: GanSchedule,
                    target_label: int, device: torch.device, seed: int, label: str = "gan",
                    progress: bool = True) -> tuple[UNetGenerator, list[dict]]:
    """Train one generator that makes `source` images look like `real` ones to a critic grown from `classifier`."""
    if len(source) == 0 or len(real) == 0:
        raise BenchmarkError(f"{label}: the train split needs images of both classes to train the lesion GAN")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = UNetGenerator(schedule.unet_base, schedule.unet_levels, schedule.logit_skip).to(device)
    critic = FeatureDiscriminator(classifier).to(device).eval()  # frozen BN statistics: per-image, deterministic
    classifier = classifier.eval()
    for p in classifier.parameters():
        p.requires_grad_(False)
    opt_g = torch.optim.Adam(gen.parameters(), lr=schedule.lr_generator, betas=(0.5, 0.99))
    opt_head = torch.optim.Adam(critic.head_parameters(), lr=schedule.lr_head, betas=(0.5, 0.99))
    opt_d = torch.optim.Adam(critic.parameters(), lr=schedule.lr_discriminator, betas=(0.5, 0.99))
    history: list[dict] = []
    stages = [("identity", schedule.identity_steps), ("head", schedule.head_steps), ("joint", schedule.joint_steps)]
    bar = tqdm(total=schedule.total_steps(), desc=label, unit="step", leave=False, dynamic_ncols=True,
               disable=not progress)
    step = 0
    for stage, steps in stages:
        for _ in range(steps):
            x = source[_batches(len(source), schedule.batch_size, rng)].to(device, non_blocking=True)
            r = real[_batches(len(real), schedule.batch_size, rng)].to(device, non_blocking=True)
            record = {"stage": stage, "step": step}
            if stage == "identity":
                with autocast(device):
                    loss = _fidelity(gen(x).float(), x)
                opt_g.zero_grad(set_to_none=True)
                loss.backward()
                opt_g.step()
                record["fidelity"] = float(loss.detach())
            else:
                record.update(_critic_step(critic, gen, x, r, schedule, opt_head if stage == "head" else opt_d,
                                           stage, step, device))
                if stage == "joint":
                    record.update(_generator_step(critic, gen, classifier, x, schedule, opt_g, target_label, device))
            history.append(record)
            step += 1
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if isinstance(v, float)})
    bar.close()
    for p in classifier.parameters():
        p.requires_grad_(True)
    return gen.eval(), history


def _critic_step(critic: FeatureDiscriminator, gen: UNetGenerator, x: torch.Tensor, real: torch.Tensor,
                 schedule: GanSchedule, optimizer: torch.optim.Optimizer, stage: str, step: int,
                 device: torch.device) -> dict:
    with torch.no_grad():
        fake = gen(x).float()
    use_r1 = schedule.r1_gamma > 0 and step % schedule.r1_every == 0
    real = real.detach().requires_grad_(use_r1)
    with autocast(device):
        logits = critic(torch.cat([real, fake])).float()
    d_real, d_fake = logits[:len(real)], logits[len(real):]
    loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
    out = {"d_loss": float(loss.detach()), "d_real": float(d_real.mean().detach()),
           "d_fake": float(d_fake.mean().detach())}
    if use_r1:  # lazy R1: the penalty on real samples, scaled by how often it is applied
        grad, = torch.autograd.grad(d_real.sum(), real, create_graph=True)
        r1 = grad.pow(2).flatten(1).sum(1).mean()
        loss = loss + schedule.r1_gamma / 2 * r1 * schedule.r1_every
        out["r1"] = float(r1.detach())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return out


def _generator_step(critic: FeatureDiscriminator, gen: UNetGenerator, classifier: nn.Module, x: torch.Tensor,
                    schedule: GanSchedule, optimizer: torch.optim.Optimizer, target_label: int,
                    device: torch.device) -> dict:
    for p in critic.parameters():
        p.requires_grad_(False)
    with autocast(device):
        fake = gen(x).float()
        adversarial = F.softplus(-critic(fake).float()).mean()
        fidelity = _fidelity(fake, x)
        loss = schedule.adversarial_weight * adversarial + schedule.fidelity_weight * fidelity
        if schedule.classifier_weight > 0:
            target = torch.full((len(x),), target_label, dtype=torch.long, device=x.device)
            logits = classifier(fake).float()
            steer = F.cross_entropy(logits[:, :2], target)
            if logits.shape[1] > 2:  # a detecting model's "manipulated" head: white-box means evading it too
                steer = steer + F.softplus(logits[:, 2]).mean()
            loss = loss + schedule.classifier_weight * steer
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    for p in critic.parameters():
        p.requires_grad_(True)
    return {"g_adv": float(adversarial.detach()), "fidelity": float(fidelity.detach())}


def train_gan(images: np.ndarray, labels: np.ndarray, classifier: nn.Module, schedule: GanSchedule,
              device: torch.device, seed: int, label: str = "gan",
              progress: bool = True) -> tuple[dict[str, UNetGenerator], dict]:
    """Both generators (insert, remove) on the train split; returns them and a JSON-able record."""
    x = torch.as_tensor(images, dtype=torch.float32)
    y = np.asarray(labels)
    generators, record = {}, {"schedule": asdict(schedule), "directions": {}}
    for i, (name, (source, target)) in enumerate(DIRECTIONS.items()):
        start = time.perf_counter()
        gen, history = train_direction(x[y == source], x[y == target], classifier, schedule, target, device,
                                       seed + i, label=f"{label} {name}", progress=progress)
        generators[name] = gen
        record["directions"][name] = {"seconds": time.perf_counter() - start, "source_label": source,
                                      "target_label": target, "history": history,
                                      "parameters": sum(p.numel() for p in gen.parameters())}
    return generators, record
