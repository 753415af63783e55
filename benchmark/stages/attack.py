"""Stage `attack`: adversarial versions of the test split against one deployed model, at one budget."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.attacking.attack_call import call_attack, generator
from benchmark.attacking.operating_point import at_threshold, logit_shift
from benchmark.attacking.seeds import score_seed_fakes
from benchmark.config import budget_label
from benchmark.device import seed_everything
from benchmark.entry_api import AttackContext
from benchmark.errors import BenchmarkError
from benchmark.execution.artifacts import ATTACK, read_data, read_deployed, read_fakes
from benchmark.memory_fit import fit_batch, memory_error, micro_batches, out_of_memory
from benchmark.registry import get_component
from benchmark.stages.context import StageContext
from benchmark.training.inference import predict_manipulation, predict_proba

__all__ = ["run", "defense_name"]


def run(params: dict, inputs: dict[str, Path], out: Path, ctx: StageContext) -> None:
    """Attack every test image in batches; save float32 adversarial images and their scores."""
    seed_everything(params["seed"])
    entry = get_component("attacks", params["attack"]["name"])
    data = read_data(inputs["data"])
    test = data.subset("test")
    device, batch_size = ctx.device, ctx.attack_batch_size
    model, defense, train_info = read_deployed(inputs["train"], params["train"], data.images.shape[-1], device)
    threshold = float(train_info["threshold"])
    target = at_threshold(model, threshold)  # attacks aim at the threshold the cell is scored at
    eps, threat = float(params["budget"]), entry.card.threat
    fakes, visibility = _test_fakes(inputs, data) if "fakes" in inputs else (None, None)
    pieces = []
    start = time.perf_counter()
    model_name = params["train"]["model"]["name"]
    label = f"{params['attack']['name']}@{budget_label(eps)} on {model_name}+{defense_name(params)}"
    fit = fit_batch("attack", batch_size, lambda: _probe(target, test, device), device, ctx.max_memory) \
        if len(test) else None
    micro = fit.used if fit else batch_size
    for i in tqdm(range(0, len(test), batch_size), desc=label, unit="batch", leave=False, dynamic_ncols=True,
                  disable=not ctx.progress):
        x = torch.as_tensor(test.images[i:i + batch_size]).to(device)
        y = torch.as_tensor(test.labels[i:i + batch_size], dtype=torch.long).to(device)
        masks = torch.as_tensor(test.masks[i:i + batch_size]).to(device)
        chunk_fakes = torch.as_tensor(fakes[i:i + batch_size]).to(device) if fakes is not None else None
        while True:  # a chunk that runs out of memory is redone whole with half the micro-batch
            try:
                x_adv = _attack_chunk(entry, target, x, y, masks, chunk_fakes, eps, params, i, micro, batch_size,
                                      defense.differentiable, device)
                break
            except RuntimeError as exc:  # e.g. "element 0 of tensors does not require grad": a wrap() without autograd
                if out_of_memory(exc):
                    if micro == 1:
                        raise memory_error("attack", fit.per_image_bytes, fit.available_bytes, fit.source,
                                           ran_out=True) from None
                    micro = max(1, micro // 2)
                    _release(device)
                    continue
                if not _blocks_gradients(model, x):
                    raise
                raise BenchmarkError(_blocked_message(params, defense)) from exc
        pieces.append(x_adv)
    seconds = time.perf_counter() - start
    x_adv = torch.cat(pieces).numpy() if pieces else np.zeros_like(test.images)
    scores = predict_proba(model, x_adv, device)
    extra = {"manipulation": predict_manipulation(model, x_adv, device)} \
        if getattr(defense, "extra_classes", 0) else {}  # a detecting defense's head on the attacked images
    seed_scores, seed_visibility = score_seed_fakes(inputs, data.splits, lambda x: predict_proba(model, x, device))
    if seed_scores is not None:  # a GAN cell with `seeds` > 1: the further GAN trainings' fakes, scored
        extra["seed_scores"] = seed_scores
    np.savez(out / ATTACK.images, images=x_adv, scores=scores, **extra)
    record = {"attack": params["attack"]["name"], "budget": eps, "threat": threat,
              "access": entry.card.access, "adaptive": not defense.differentiable,
              "operating_point": {"threshold": threshold, "logit_shift": logit_shift(threshold)},
              "seconds": seconds, "images_per_s": len(test) / seconds if seconds > 0 else None}
    if fit is not None:  # the batch the memory allowed (seeds and chunks stay those of attack.batch_size)
        record["batch"] = {**fit.record(), "used": micro, "adapted": micro < batch_size}
    if visibility is not None:  # GAN cells: the fakes' own cost and visibility (galleries: at leaderboard time)
        record["seconds"] += visibility.get("seconds", 0.0)
        record["visibility"] = visibility
    if seed_visibility:
        record["seed_visibility"] = seed_visibility
    (out / ATTACK.record).write_text(json.dumps(record, indent=1))


def _attack_chunk(entry: object, target: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, masks: torch.Tensor,
                  fakes: torch.Tensor | None, eps: float, params: dict, start: int, micro: int, batch_size: int,
                  differentiable: bool, device: torch.device) -> torch.Tensor:
    """One chunk of attack.batch_size images, in micro-batches of `micro` sharing the chunk's seeded generator: one
    random draw per chunk (FGSM, PGD-L-inf with one start) gives the same images as the whole chunk at once."""
    seed, options = params["seed"] + start, dict(params["attack"]["options"])
    shared = generator(device, seed) if micro < len(x) else None  # None: call_attack seeds it, as always
    pieces = []
    for part in micro_batches(len(x), micro):  # no lone image unless the chunk is one: same bits at any size
        actx = AttackContext(device, seed, masks[part], options, min(micro, batch_size), differentiable,
                             fakes[part] if fakes is not None else None, generator=shared)
        pieces.append(call_attack(entry, target, x[part], y[part], eps, actx).detach().float().cpu())
    return torch.cat(pieces)


def _probe(target: torch.nn.Module, test: object, device: torch.device) -> None:
    """One image's forward and input gradient: what a gradient attack's step holds in memory at once."""
    with torch.enable_grad():
        x = torch.as_tensor(test.images[:1]).to(device).requires_grad_(True)
        out = target(x)
        if out.requires_grad:
            torch.autograd.grad(out.float().sum(), x)


def _release(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _blocks_gradients(model: torch.nn.Module, x: torch.Tensor) -> bool:
    """True when the deployed model's output carries no autograd graph back to its input."""
    with torch.enable_grad():
        probe = x[:1].detach().clone().requires_grad_(True)
        return not model(probe).requires_grad


def _blocked_message(params: dict, defense: object) -> str:
    cls = type(defense)
    return (f"attack {params['attack']['name']}: defense {defense_name(params)} ({cls.__module__}.{cls.__qualname__}) "
            "blocks gradients: its deployed model's output has no grad_fn (does wrap() run under torch.no_grad() "
            "or leave autograd through numpy?); deploy the transform behind "
            "benchmark.attacking.adaptive.TransformedModel "
            "(BPDA/EOT) so that attacks reach the model")


def _test_fakes(inputs: dict[str, Path], data: object) -> tuple[np.ndarray, dict]:
    """The test split's rows of a fakes artifact, and its visibility record (with the GAN's training time)."""
    images, visibility = read_fakes(inputs["fakes"])
    if len(images) != len(data.labels):
        raise BenchmarkError(f"fakes artifact has {len(images)} images for a data set of {len(data.labels)}")
    return images[data.splits == "test"], visibility


def defense_name(params: dict) -> str:
    """The defense's name in an attack stage's params."""
    return params["train"]["defense"]["name"]


