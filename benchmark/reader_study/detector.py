"""The benchmark's real-vs-fake detector on the study's own images: the `fakes` stage's recipe (benchmark.gan.detector:
its model and training recipe) trained again with a fixed seed on the run's train-split (real, fake) pairs, picked
by validation AUC, then applied to every study image. The stage keeps only the detector's summary, not per-image
scores, so the study scores its images itself; study cases come from the test split, which training never sees."""
from __future__ import annotations

import numpy as np
import torch

from benchmark.data.imageset import ImageSet
from benchmark.device import prepare_model, seed_everything
from benchmark.entry_api import Defense
from benchmark.gan.detector import DETECTOR_MODEL, DETECTOR_RECIPE
from benchmark.training.inference import predict_proba
from benchmark.training.loop import train_classifier
from benchmark.training.model_factory import create_timm

__all__ = ["DETECTOR_SEED", "detector_scores"]

DETECTOR_SEED = 0


def _pairs(images: np.ndarray, fakes: np.ndarray, keep: np.ndarray, tag: str) -> ImageSet:
    """Real (label 0) and fake (label 1) versions of the kept rows."""
    real, fake = images[keep], fakes[keep]
    n = len(real)
    x = np.concatenate([real, fake]).astype(np.float32)
    return ImageSet(x, np.r_[np.zeros(n), np.ones(n)].astype(np.int64), np.zeros(x.shape, np.uint8),
                    np.array([f"{tag}-{i}" for i in range(2 * n)]), np.r_[np.arange(n), np.arange(n)].astype(str))


def detector_scores(images: np.ndarray, fakes: np.ndarray, splits: np.ndarray, study: np.ndarray,
                    seed: int = DETECTOR_SEED) -> dict:
    """Train the detector on the train split (val picks the epoch) and score study images (N, 1, H, W): returns
    {"scores": P(fake) per study image, "model", "epochs", "val_auc", "seed"}; on one CPU thread, so the scores
    repeat exactly."""
    device, threads = torch.device("cpu"), torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same scores on any machine, and no stall on a busy one
    try:
        seed_everything(seed)
        train, val = (_pairs(images, fakes, splits == s, s) for s in ("train", "val"))
        model = prepare_model(create_timm(DETECTOR_MODEL, images.shape[-1]), device)
        result = train_classifier(model, train, val, DETECTOR_RECIPE, Defense(), device, seed,
                                  label="real-vs-fake detector (reader study)", progress=False)
        scores = predict_proba(model, np.asarray(study, dtype=np.float32), device)
    finally:
        torch.set_num_threads(threads)
    return {"scores": scores, "model": DETECTOR_MODEL, "epochs": DETECTOR_RECIPE.epochs,
            "val_auc": result.val_auc, "seed": seed}
