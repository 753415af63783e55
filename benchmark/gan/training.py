"""Train the study's two one-way lesion generators (insert, remove) with the staged schedule.

Per direction (insert: negatives -> positive-looking; remove: positives -> negative-looking):
  generator loss  = adversarial_weight * softplus(-D(G(x))) + fidelity_weight * MSE(G(x), x) / mean(x^2)
                    [+ classifier_weight * (CE(classifier(G(x)), target class) + softplus(manipulated logit), the
                       latter only against a detecting model; white-box only, 0 by default]
  critic loss     = softplus(D(G(x))) + softplus(-D(real)) + r1_gamma / 2 * |grad_x D(real)|^2  (every r1_every steps)
where `real` are images of the target class and D starts from the classifier's feature extractor with a new head.
Schedule: identity pretraining of G (fidelity only), then D's head alone, then G and all of D jointly (G steps once
every `critic_steps` critic steps). This is the `fast` preset; `preset = "zhou2021"` trains the study's networks with
its losses instead (benchmark/gan/study_training.py), chosen per direction in train_gan.
"""
from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from benchmark.device import autocast
from benchmark.errors import BenchmarkError
from benchmark.gan.networks import DIRECTIONS, FeatureDiscriminator, UNetGenerator
from benchmark.gan.schedule import GanSchedule
from benchmark.gan.steering import classifier_steer, sample_batch
from benchmark.gan.study_training import train_study_direction

__all__ = ["train_direction", "train_gan"]


def _fidelity(fake: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """MSE(G(x), x) / mean(x^2): the study's relative fidelity term, per batch."""
    return F.mse_loss(fake, x) / x.pow(2).mean().clamp_min(1e-8)


def train_direction(source: torch.Tensor, real: torch.Tensor, classifier: nn.Module, schedule: GanSchedule,
                    target_label: int, device: torch.device, seed: int, label: str = "gan",
                    progress: bool = True) -> tuple[UNetGenerator, list[dict]]:
    """Train one generator that makes `source` images look like `real` ones to a critic grown from `classifier`."""
    if len(source) == 0 or len(real) == 0:
        raise BenchmarkError(f"{label}: the train split needs images of both classes to train the lesion GAN")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    augment = torch.Generator().manual_seed(seed) if schedule.augment else None
    gen = UNetGenerator(schedule.unet_base, schedule.unet_levels, schedule.logit_skip).to(device)
    critic = FeatureDiscriminator(classifier).to(device).eval()  # frozen BN statistics: per-image, deterministic
    classifier = classifier.eval()
    for p in classifier.parameters():
        p.requires_grad_(False)
    betas = (0.5, schedule.adam_beta2)
    opt_g = torch.optim.Adam(gen.parameters(), lr=schedule.lr_identity, betas=betas)  # lr_generator from "joint"
    opt_head = torch.optim.Adam(critic.head_parameters(), lr=schedule.lr_head, betas=betas)
    opt_d = torch.optim.Adam(critic.parameters(), lr=schedule.lr_discriminator, betas=betas)
    history: list[dict] = []
    stages = [("identity", schedule.identity_steps), ("head", schedule.head_steps), ("joint", schedule.joint_steps)]
    bar = tqdm(total=schedule.total_steps(), desc=label, unit="step", leave=False, dynamic_ncols=True,
               disable=not progress)
    step = 0
    for stage, steps in stages:
        if stage == "joint":
            for group in opt_g.param_groups:
                group["lr"] = schedule.lr_generator
        for _ in range(steps):
            x = sample_batch(source, schedule.batch_size, rng, device, augment)
            r = sample_batch(real, schedule.batch_size, rng, device, augment)
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
        if schedule.classifier_weight > 0:  # white-box: steer the attacked model (and evade its detection head)
            loss = loss + schedule.classifier_weight * classifier_steer(classifier, fake, target_label)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    for p in critic.parameters():
        p.requires_grad_(True)
    return {"g_adv": float(adversarial.detach()), "fidelity": float(fidelity.detach())}


def train_gan(images: np.ndarray, labels: np.ndarray, classifier: nn.Module, schedule: GanSchedule,
              device: torch.device, seed: int, label: str = "gan",
              progress: bool = True) -> tuple[dict[str, torch.nn.Module], dict]:
    """Both generators (insert, remove) on the train split; returns them and a JSON-able record."""
    x = torch.as_tensor(images, dtype=torch.float32)
    y = np.asarray(labels)
    generators, record = {}, {"schedule": asdict(schedule), "directions": {}}
    for i, (name, (source, target)) in enumerate(DIRECTIONS.items()):
        start = time.perf_counter()
        direction = train_study_direction if schedule.preset == "zhou2021" else train_direction
        gen, history = direction(x[y == source], x[y == target], classifier, schedule, target, device,
                                 seed + i, label=f"{label} {name}", progress=progress)
        generators[name] = gen
        record["directions"][name] = {"seconds": time.perf_counter() - start, "source_label": source,
                                      "target_label": target, "history": history,
                                      "parameters": sum(p.numel() for p in gen.parameters())}
    return generators, record
