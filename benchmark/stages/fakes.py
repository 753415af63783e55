"""Stage `fakes`: every image through its generator once (reused by every cell and by fake-based training),
with how visible the edits are: SSIM/PSNR, area changed, and a real-vs-fake detector's AUC."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmark.attacking.perturbation import breast_mask, perturbation_metrics
from benchmark.data.imageset import SPLITS
from benchmark.device import autocast, seed_everything
from benchmark.execution.artifacts import FAKES, read_data, read_generators
from benchmark.gan.detector import real_vs_fake_auc
from benchmark.gan.networks import apply_generators
from benchmark.memory_fit import fit_batch, memory_error, out_of_memory
from benchmark.metrics import to_jsonable
from benchmark.stages.context import StageContext

__all__ = ["run", "CHANGED_LEVEL"]

CHANGED_LEVEL = 0.02  # a pixel counts as edited when it moved by more than this on the [0,1] scale


def run(params: dict, inputs: dict[str, Path], out: Path, ctx: StageContext) -> None:
    """Generate fakes for all splits; measure their visibility on the test split (SSIM/PSNR inside the breast in
    `perturbation`, over the whole image in `perturbation_whole_image`)."""
    seed_everything(params["seed"])
    data = read_data(inputs["data"])
    generators, record = read_generators(inputs["gan"], ctx.device)
    start = time.perf_counter()
    fakes, fit = _generate(generators, data, ctx)
    generate_seconds = time.perf_counter() - start
    changed = np.abs(fakes - data.images) > CHANGED_LEVEL
    test = data.splits == "test"
    detector = real_vs_fake_auc(data.images, fakes, data.splits, ctx.device, params["seed"], ctx.progress)
    np.savez(out / FAKES.images, images=fakes, ids=data.ids.astype(str))
    originals, edited = data.images[test], fakes[test]
    breast = breast_mask(originals)  # SSIM/PSNR inside the breast: the black background would flatter them
    visibility = {
        "perturbation": perturbation_metrics(originals, edited, region=breast),
        "perturbation_whole_image": perturbation_metrics(originals, edited),
        "area_changed": {"level": CHANGED_LEVEL,
                         "mean_fraction_of_image": float(changed[test].mean()),
                         "mean_fraction_of_breast": float(changed[test].sum() / max(1, breast.sum()))},
        "detector": detector,
        "counts": {s: int((data.splits == s).sum()) for s in SPLITS},
        "gan_target": record["target"],
        "gan_seconds": record["seconds"], "generate_seconds": generate_seconds,
        "seconds": record["seconds"] + generate_seconds,
        "batch": fit,  # the batch the memory allowed (fakes do not depend on it: every image is edited alone)
    }
    (out / FAKES.record).write_text(json.dumps(to_jsonable(visibility), indent=1))


def _generate(generators: dict, data: object, ctx: StageContext) -> tuple[np.ndarray, dict]:
    """apply_generators at the largest batch up to attack.batch_size that fits; halved and redone on out-of-memory."""
    gen = generators["insert"].eval()
    sample = torch.as_tensor(data.images[:1], dtype=torch.float32).to(ctx.device)

    def probe() -> None:
        with torch.no_grad(), autocast(ctx.device):
            gen(sample)
    fit = fit_batch("fakes", ctx.attack_batch_size, probe, ctx.device, ctx.max_memory)
    used = fit.used
    while True:
        try:
            fakes = apply_generators(generators, data.images, data.labels, ctx.device, used)
            return fakes, {**fit.record(), "used": used, "adapted": used < fit.configured}
        except RuntimeError as exc:
            if not out_of_memory(exc):
                raise
            if used == 1:
                raise memory_error("fakes", fit.per_image_bytes, fit.available_bytes, fit.source,
                                   ran_out=True) from None
            used = max(1, used // 2)
            if ctx.device.type == "cuda":
                torch.cuda.empty_cache()
