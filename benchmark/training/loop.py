"""Classifier training: class-balanced batches, light anatomical augmentation, AdamW + cosine, best by val AUC."""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from tqdm.auto import tqdm

from benchmark.config import TrainSpec
from benchmark.data.imageset import ImageSet
from benchmark.device import autocast
from benchmark.entry_api import Defense
from benchmark.errors import BenchmarkError
from benchmark.training.inference import predict_proba
from benchmark.training.losses import LossFn, make_loss

__all__ = ["TrainResult", "augment", "balanced_batches", "train_classifier"]



@dataclass
class TrainResult:
    """The best weights by validation AUC and how training went."""

    state_dict: dict
    best_epoch: int
    val_auc: float
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def balanced_batches(labels: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of index batches with positives and negatives drawn equally (minority oversampled)."""
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    per_class = max(len(pos), len(neg))
    picks = [rng.choice(idx, per_class, replace=len(idx) < per_class) for idx in (pos, neg) if len(idx)]
    order = rng.permutation(np.concatenate(picks))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


SHIFT_FRACTION = 3 / 16  # "strong": the largest shift, as a fraction of the image side (12 px at 64 px)


def augment(x: torch.Tensor, gen: torch.Generator, mode: str = "light") -> torch.Tensor:
    """Plausible anatomy only. "light": vertical flip and mild gamma jitter (the breast stays on its side).
    "strong": also a mirror (a left breast becomes a plausible right one) and a shift of up to SHIFT_FRACTION of
    the side, filled with background, so that a model cannot memorise where each training breast sits."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(2), x)
    gamma = torch.exp(torch.empty(x.shape[0]).uniform_(-0.15, 0.15, generator=gen)).view(-1, 1, 1, 1).to(x.device)
    x = x.clamp(0, 1).pow(gamma)
    if mode == "strong":
        mirror = torch.rand(x.shape[0], generator=gen) < 0.5
        x = torch.where(mirror.view(-1, 1, 1, 1).to(x.device), x.flip(3), x)
        x = _shift(x, max(1, round(SHIFT_FRACTION * x.shape[-1])), gen)
    return x


def _shift(x: torch.Tensor, limit: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by its own integer (dy, dx) in [-limit, limit], filling with zeros (background)."""
    n, _, h, w = x.shape
    dy, dx = (torch.randint(-limit, limit + 1, (n,), generator=gen).to(x.device) for _ in range(2))
    padded = torch.nn.functional.pad(x, (limit, limit, limit, limit))
    rows = (limit - dy).view(n, 1, 1, 1) + torch.arange(h, device=x.device).view(1, 1, h, 1)
    cols = (limit - dx).view(n, 1, 1, 1) + torch.arange(w, device=x.device).view(1, 1, 1, w)
    return padded[torch.arange(n, device=x.device).view(n, 1, 1, 1), torch.arange(x.shape[1], device=x.device)
                  .view(1, -1, 1, 1), rows, cols]  # one gather for the whole batch


def _checked_batch(defense: Defense, out: object, shape: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
    """Refuse a defense's training batch unless it is (float images of the input's C, H, W; one label each)."""
    x, y = out if isinstance(out, tuple) and len(out) == 2 else (out, None)
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.is_floating_point()
            and x.shape[1:] == shape[1:] and y.shape == x.shape[:1]):
        got = [tuple(t.shape) if hasattr(t, "shape") else type(t).__name__ for t in (x, y)]
        raise BenchmarkError(f"defense {type(defense).__name__}.training_batch returned images {got[0]} and "
                             f"labels {got[1]} for a batch {tuple(shape)}; return (images, labels) with images "
                             f"of shape (N, {', '.join(map(str, shape[1:]))}) and N labels")
    return x, y


def train_classifier(model: nn.Module, train: ImageSet, val: ImageSet, spec: TrainSpec, defense: Defense,
                     device: torch.device, seed: int, label: str = "train",
                     loss_fn: LossFn | None = None, progress: bool = True) -> TrainResult:
    """Train model in place on train, keep the weights with the best validation AUC."""
    loss_fn = loss_fn or make_loss({})
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    images = torch.as_tensor(train.images)
    labels = torch.as_tensor(train.labels, dtype=torch.long)
    steps_per_epoch = math.ceil(2 * max(int(train.labels.sum()), int((1 - train.labels).sum())) / spec.batch_size)
    total = max(1, spec.epochs * steps_per_epoch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    warmup = max(1, total // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    best = TrainResult(copy.deepcopy(model.state_dict()), -1, float("-inf"))
    start, step = time.perf_counter(), 0
    bar = tqdm(total=total, desc=label, unit="step", leave=False, dynamic_ncols=True, disable=not progress)
    for epoch in range(spec.epochs):
        model.train()
        running, seen = 0.0, 0
        for idx in balanced_batches(train.labels, spec.batch_size, rng):
            x = augment(images[idx], gen, spec.augment).to(device, non_blocking=True)
            y = labels[idx].to(device, non_blocking=True)
            x, y = _checked_batch(defense, defense.training_batch(model, x, y, step), x.shape)
            model.train()
            with autocast(device):
                loss = loss_fn(model, x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            running += float(loss.detach()) * len(y)
            seen += len(y)
            step += 1
            bar.update(1)
        val_scores = predict_proba(defense.wrap(model), val.images, device)  # judge the model as deployed
        auc = float(roc_auc_score(val.labels, val_scores)) if len(set(val.labels.tolist())) == 2 else float("nan")
        best.history.append({"epoch": epoch, "loss": running / max(seen, 1), "val_auc": auc})
        bar.set_postfix(loss=f"{running / max(seen, 1):.3f}", val_auc=f"{auc:.3f}")
        if auc > best.val_auc:
            best.state_dict = copy.deepcopy(model.state_dict())
            best.best_epoch, best.val_auc = epoch, auc
    bar.close()
    if spec.epochs == 0:
        best.val_auc = float(roc_auc_score(val.labels, predict_proba(defense.wrap(model), val.images, device)))
    model.load_state_dict(best.state_dict)
    best.seconds = time.perf_counter() - start
    return best
