"""The `zhou2021` preset: train one direction with the study's generator, critic, losses and step ratio.

As trainV1728posPal41.py: identity pretraining of the study's U-Net on fidelity alone (lr_identity), then the critic's
new Linear head alone on the frozen classifier, then the joint stage where the head and the classifier's top train
(lr_discriminator) with the study's critic loss (softplus pair, |Drf - 1|, 5 * mean |grad D(real)|^4) every step and
the generator (lr_generator) takes one step on softplus(-D(G(x))) + MSE / mean((x - 0.485)^2) every `critic_steps`
steps. The classifier's feature layers stay frozen: the study's published fakes (epochs 280 and 320) come from that
phase. Both batches are augmented the study's way when `augment` is on.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from benchmark.device import autocast
from benchmark.errors import BenchmarkError
from benchmark.gan.schedule import GanSchedule
from benchmark.gan.steering import classifier_steer, sample_batch
from benchmark.gan.zhou2021 import (
    StudyCritic,
    StudyGenerator,
    critic_adversarial,
    generator_adversarial,
    generator_fidelity,
    gradient_penalty,
)

__all__ = ["train_study_direction"]


def train_study_direction(source: torch.Tensor, real: torch.Tensor, classifier: nn.Module, schedule: GanSchedule,
                          target_label: int, device: torch.device, seed: int, label: str = "gan",
                          progress: bool = True) -> tuple[StudyGenerator, list[dict]]:
    """Train the study's generator that makes `source` look like `real` to a critic on `classifier`'s frozen layers."""
    if len(source) == 0 or len(real) == 0:
        raise BenchmarkError(f"{label}: the train split needs images of both classes to train the lesion GAN")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    augment = torch.Generator().manual_seed(seed) if schedule.augment else None
    gen = StudyGenerator(schedule.unet_base, schedule.unet_levels).to(device).train()
    gen.check_size(source[:1])
    critic = StudyCritic(classifier).to(device).train()
    classifier = classifier.eval()
    for p in classifier.parameters():
        p.requires_grad_(False)
    top = [p for module in critic.top_modules() for p in module.parameters()]
    betas = (0.5, schedule.adam_beta2)
    opt_g = torch.optim.Adam(gen.parameters(), lr=schedule.lr_identity, betas=betas)
    opt_head = torch.optim.Adam(critic.head.parameters(), lr=schedule.lr_head, betas=betas)
    opt_critic = torch.optim.Adam([*critic.head.parameters(), *top], lr=schedule.lr_discriminator, betas=betas)
    history: list[dict] = []
    stages = [("identity", schedule.identity_steps), ("head", schedule.head_steps), ("joint", schedule.joint_steps)]
    bar = tqdm(total=schedule.total_steps(), desc=label, unit="step", leave=False, dynamic_ncols=True,
               disable=not progress)
    step = 0
    for stage, steps in stages:
        if stage == "joint":  # the study's "top" phase: its top joins the head; the generator at its own rate
            for p in top:
                p.requires_grad_(True)
            for group in opt_g.param_groups:
                group["lr"] = schedule.lr_generator
        for _ in range(steps):
            x = sample_batch(source, schedule.batch_size, rng, device, augment)
            record = {"stage": stage, "step": step}
            if stage == "identity":
                with autocast(device):
                    loss = generator_fidelity(x, gen(x).float())
                _step(opt_g, loss)
                record["fidelity"] = float(loss.detach())
            else:
                r = sample_batch(real, schedule.batch_size, rng, device, augment)
                record.update(_critic_step(critic, gen, x, r, opt_head if stage == "head" else opt_critic, device))
                if stage == "joint" and step % schedule.critic_steps == 0:
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


def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _critic_step(critic: StudyCritic, gen: StudyGenerator, x: torch.Tensor, real: torch.Tensor,
                 optimizer: torch.optim.Optimizer, device: torch.device) -> dict:
    """One critic step: the study's adversarial terms and its gradient penalty on the real images."""
    with torch.no_grad():
        fake = gen(x).float()
    real = real.detach().requires_grad_(True)
    with autocast(device):
        d_real, d_fake = critic(real).float(), critic(fake).float()
    adversarial = critic_adversarial(d_real, d_fake)
    penalty = gradient_penalty(d_real, real)
    _step(optimizer, adversarial + penalty)
    return {"d_loss": float(adversarial.detach()), "gp": float(penalty.detach()),
            "d_real": float(d_real.mean().detach()), "d_fake": float(d_fake.mean().detach())}


def _generator_step(critic: StudyCritic, gen: StudyGenerator, classifier: nn.Module, x: torch.Tensor,
                    schedule: GanSchedule, optimizer: torch.optim.Optimizer, target_label: int,
                    device: torch.device) -> dict:
    """One generator step with the critic held fixed (its parameters get no gradient)."""
    trainable = [p for p in critic.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    with autocast(device):
        fake = gen(x).float()
        adversarial = generator_adversarial(critic(fake).float())
        fidelity = generator_fidelity(x, fake)
        loss = schedule.adversarial_weight * adversarial + schedule.fidelity_weight * fidelity
        if schedule.classifier_weight > 0:
            loss = loss + schedule.classifier_weight * classifier_steer(classifier, fake, target_label)
    _step(optimizer, loss)
    for p in trainable:
        p.requires_grad_(True)
    return {"g_adv": float(adversarial.detach()), "fidelity": float(fidelity.detach())}
