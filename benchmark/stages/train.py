"""Stage `train`: a model (with its defense's training changes) trained on the train split, best by val AUC."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmark.attacking.masking_probe import eot_samples, gradient_probe
from benchmark.device import prepare_model, seed_everything
from benchmark.errors import BenchmarkError
from benchmark.execution.artifacts import TRAIN, read_data, read_deployed, read_fakes
from benchmark.memory_fit import out_of_memory
from benchmark.metrics import bootstrap_auc, choose_threshold, flag_threshold, rate
from benchmark.registry import get_component
from benchmark.stages.context import StageContext
from benchmark.training.inference import predict_manipulation, predict_proba
from benchmark.training.loop import train_classifier
from benchmark.training.losses import make_loss
from benchmark.training.model_factory import build_deployable, deployable_specs, load_checkpoint
from benchmark.training.pretrained import load_pretrained

__all__ = ["DEFAULT_FALSE_ALARM_RATE", "run"]

DEFAULT_FALSE_ALARM_RATE = 0.05  # a detecting defense's head flags this share of real validation images


def run(params: dict, inputs: dict[str, Path], out: Path, ctx: StageContext) -> None:
    """Train, choose the operating threshold on validation, save weights and clean predictions."""
    seed_everything(params["seed"])
    data = read_data(inputs["data"])
    model_spec, defense_spec = deployable_specs(params)
    model, defense = build_deployable(model_spec, defense_spec, data.images.shape[-1])
    pretrained = load_pretrained(model, model_spec.train.pretrained_file, model_spec.train.pretrained_sha256) \
        if model_spec.train.pretrained_file else None  # local ImageNet-style weights: where training starts
    if model_spec.train.checkpoint:
        load_checkpoint(model, model_spec.train.checkpoint)
    device = ctx.device
    model = prepare_model(model, device)
    fakes = read_fakes(inputs["fakes"])[0] if "fakes" in inputs else None
    teacher = read_deployed(inputs["teacher"], params["teacher"], data.images.shape[-1], device)[0] \
        if "teacher" in inputs else None  # a recipe's `distill`: the trained teacher's soft outputs join the loss
    if fakes is not None:  # adversarial training with pre-generated GAN fakes
        train_rows = data.splits == "train"
        defense.use_fakes(fakes[train_rows], data.labels[train_rows])
    try:
        result = train_classifier(model, data.subset("train"), data.subset("val"), model_spec.train, defense, device,
                                  params["seed"], label=f"train {model_spec.name}+{defense_spec.name}",
                                  loss_fn=defense.training_loss(
                                      make_loss(dict(get_component("models", model_spec.name).card.recipe), teacher)),
                                  progress=ctx.progress)
    except RuntimeError as exc:
        if not out_of_memory(exc):
            raise
        raise BenchmarkError(f"stage train {model_spec.name}+{defense_spec.name}: out of {device.type} memory at "
                             f"batch_size = {model_spec.train.batch_size} and {data.images.shape[-1]} px; lower the "
                             "model's batch_size (or [training] batch_size) or dataset.image_size") from None
    deployed = defense.wrap(model)
    val, test = data.subset("val"), data.subset("test")
    val_scores = predict_proba(deployed, val.images, device)
    test_scores = predict_proba(deployed, test.images, device)
    threshold = choose_threshold(val.labels, val_scores)
    detecting = bool(getattr(defense, "extra_classes", 0))
    extra, detection, flag_at = {}, None, None
    if detecting:  # the head flags above a threshold set on real validation images at the stated false-alarm rate
        # a detecting defense's "manipulated" logit on the real test images, for per-cell counts
        extra["test_manipulation"] = predict_manipulation(deployed, test.images, device)
        far = float(getattr(defense, "false_alarm_rate", DEFAULT_FALSE_ALARM_RATE))
        flag_at = flag_threshold(predict_manipulation(deployed, val.images, device), far)
        if fakes is not None:
            detection = _detection(deployed, test.images, fakes[data.splits == "test"], device, flag_at, far)
    torch.save({k: v.detach().cpu() for k, v in result.state_dict.items()}, out / TRAIN.weights)
    np.savez(out / TRAIN.predictions, val=val_scores, test=test_scores, **extra)
    (out / TRAIN.record).write_text(json.dumps({
        "model": model_spec.name, "defense": defense_spec.name, "defense_info": defense.describe(),
        "teacher": model_spec.train.distill, "pretrained": pretrained,
        "best_epoch": result.best_epoch, "val_auc": result.val_auc, "threshold": threshold,
        "seconds": result.seconds, "history": result.history,
        "parameters": sum(p.numel() for p in model.parameters()), "detection": detection,
        "detection_threshold": flag_at,  # the head's "manipulated" logit above this flags an image
        "eot_samples": eot_samples(deployed),  # > 1: a random transform averaged over draws when attacked (EOT)
        # gradient-masking probe on the deployed model, judged by benchmark.leaderboard.checks at leaderboard time
        "masking_probe": gradient_probe(deployed, val.images, val.labels, device)}, indent=1))


def _detection(model: nn.Module, real: np.ndarray, fakes: np.ndarray, device: torch.device, flag_at: float,
               target_far: float) -> dict:
    """A detecting model's rate of flagging test fakes as manipulated and of flagging real test images, at the
    threshold calibrated on validation, and the AUC of its manipulated logit between the two (threshold-free)."""
    on_fakes, on_real = (predict_manipulation(model, images, device) for images in (fakes, real))
    both = np.concatenate([on_fakes, on_real])
    truth = np.concatenate([np.ones(len(on_fakes)), np.zeros(len(on_real))])
    return {"detection_rate": rate(int((on_fakes > flag_at).sum()), len(on_fakes)).to_dict(),
            "false_alarm_rate": rate(int((on_real > flag_at).sum()), len(on_real)).to_dict(),
            "threshold": flag_at, "target_false_alarm_rate": target_far,
            "calibrated_on": "real validation images",
            "auc": bootstrap_auc(truth, both, n_boot=1000, seed=0)}

