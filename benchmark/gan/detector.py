"""A machine stand-in for the study's radiologists: a classifier trained to tell real images from GAN fakes."""
from __future__ import annotations

import numpy as np
import torch

from benchmark.config import TrainSpec
from benchmark.data.imageset import ImageSet
from benchmark.device import prepare_model
from benchmark.entry_api import Defense
from benchmark.metrics import paired_bootstrap_auc, rate
from benchmark.training.inference import predict_proba
from benchmark.training.loop import train_classifier
from benchmark.training.model_factory import create_timm

__all__ = ["real_vs_fake_auc", "DETECTOR_MODEL", "DETECTOR_RECIPE"]

DETECTOR_MODEL = "resnet10t"
DETECTOR_RECIPE = TrainSpec(epochs=6, batch_size=32, lr=2e-3, weight_decay=0.05)


def _pairs(images: np.ndarray, fakes: np.ndarray, keep: np.ndarray, tag: str) -> ImageSet:
    real, fake = images[keep], fakes[keep]
    n = len(real)
    x = np.concatenate([real, fake]).astype(np.float32)
    ids = np.array([f"{tag}-{i}" for i in range(2 * n)])
    return ImageSet(x, np.r_[np.zeros(n), np.ones(n)].astype(np.int64), np.zeros(x.shape, np.uint8), ids,
                    np.concatenate([np.arange(n), np.arange(n)]).astype(str))


def real_vs_fake_auc(images: np.ndarray, fakes: np.ndarray, splits: np.ndarray, device: torch.device, seed: int,
                     progress: bool = True) -> dict:
    """Train on train-split (real, fake) pairs, pick by val AUC; report test AUC and accuracy at 0.5.

    The AUC's interval resamples test PAIRS (a real image and its own fake together), as the two are not
    independent; the accuracy's is the Wilson interval over all 2n test images."""
    train, val, test = (_pairs(images, fakes, splits == s, s) for s in ("train", "val", "test"))
    torch.manual_seed(seed)
    model = prepare_model(create_timm(DETECTOR_MODEL, images.shape[-1]), device)
    result = train_classifier(model, train, val, DETECTOR_RECIPE, Defense(), device, seed,
                              label="real-vs-fake detector", progress=progress)
    scores = predict_proba(model, test.images, device)
    correct = int(((scores >= 0.5).astype(int) == test.labels).sum())
    real, fake = scores[test.labels == 0], scores[test.labels == 1]  # aligned by pair: `_pairs` keeps the order
    return {"model": DETECTOR_MODEL, "epochs": DETECTOR_RECIPE.epochs, "val_auc": result.val_auc,
            "auc": paired_bootstrap_auc(real, fake, seed=seed), "accuracy": rate(correct, len(test)).to_dict(),
            "n_test_pairs": len(test) // 2, "seconds": result.seconds}
