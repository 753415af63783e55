"""Stage `attack`: adversarial versions of the test split against one deployed model, at one budget."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.attacking.attack_call import call_attack
from benchmark.attacking.operating_point import at_threshold, logit_shift
from benchmark.config import budget_label
from benchmark.device import seed_everything
from benchmark.entry_api import AttackContext
from benchmark.errors import BenchmarkError
from benchmark.execution.artifacts import ATTACK, read_data, read_deployed, read_fakes
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
    for i in tqdm(range(0, len(test), batch_size), desc=label, unit="batch", leave=False, dynamic_ncols=True,
                  disable=not ctx.progress):
        x = torch.as_tensor(test.images[i:i + batch_size]).to(device)
        y = torch.as_tensor(test.labels[i:i + batch_size], dtype=torch.long).to(device)
        masks = torch.as_tensor(test.masks[i:i + batch_size]).to(device)
        actx = AttackContext(device, params["seed"] + i, masks, dict(params["attack"]["options"]), batch_size,
                             defense.differentiable,
                             torch.as_tensor(fakes[i:i + batch_size]).to(device) if fakes is not None else None)
        try:
            x_adv = call_attack(entry, target, x, y, eps, actx)  # checked, options read, projected
        except RuntimeError as exc:  # e.g. "element 0 of tensors does not require grad": a wrap() without autograd
            if not _blocks_gradients(model, x):
                raise
            raise BenchmarkError(_blocked_message(params, defense)) from exc
        pieces.append(x_adv.detach().float().cpu())
    seconds = time.perf_counter() - start
    x_adv = torch.cat(pieces).numpy() if pieces else np.zeros_like(test.images)
    scores = predict_proba(model, x_adv, device)
    extra = {"manipulation": predict_manipulation(model, x_adv, device)} \
        if getattr(defense, "extra_classes", 0) else {}  # a detecting defense's head on the attacked images
    np.savez(out / ATTACK.images, images=x_adv, scores=scores, **extra)
    record = {"attack": params["attack"]["name"], "budget": eps, "threat": threat,
              "access": entry.card.access, "adaptive": not defense.differentiable,
              "operating_point": {"threshold": threshold, "logit_shift": logit_shift(threshold)},
              "seconds": seconds, "images_per_s": len(test) / seconds if seconds > 0 else None}
    if visibility is not None:  # GAN cells: the fakes' own cost and visibility (galleries: at leaderboard time)
        record["seconds"] += visibility.get("seconds", 0.0)
        record["visibility"] = visibility
    (out / ATTACK.record).write_text(json.dumps(record, indent=1))


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


