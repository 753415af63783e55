"""Every stage artifact's file names and its readers: stages write with these names and read their inputs here.

Only this module's own source enters a reading stage's code version (benchmark.execution.code_version._READERS):
what an artifact holds was computed by the stage that wrote it, and that stage's key covers its code.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from benchmark.data.imageset import ImageSet
from benchmark.device import prepare_model
from benchmark.entry_api import Defense
from benchmark.gan.generators import build_generator
from benchmark.gan.networks import DIRECTIONS
from benchmark.training.model_factory import build_deployable, deployable_specs

__all__ = ["DATA", "TRAIN", "GAN", "FAKES", "ATTACK", "SCORE", "read_data", "read_data_summary", "read_train_record",
           "read_clean_scores",
           "read_clean_manipulation", "read_deployed", "read_generators", "read_fakes", "read_attack",
           "read_manipulation", "read_seed_scores", "read_score", "stored_gallery"]


class DataFiles(NamedTuple):
    """Files of a `data` artifact."""

    images: str = "imageset.npz"  # ImageSet.save: images, masks, labels, ids, patients, splits
    summary: str = "summary.json"  # data set name, sizes per split, the entry's meta (e.g. skipped files)
    source: str = "source"  # a folder the data set entry may fill (e.g. a downloaded CSV)


class TrainFiles(NamedTuple):
    """Files of a `train` artifact."""

    weights: str = "model.pt"  # the model's state_dict (without its defense)
    predictions: str = "predictions.npz"  # P(positive) on val and test; test_manipulation for detecting defenses
    record: str = "train.json"  # threshold, val AUC, seconds, defense info, masking probe, detection


class GanFiles(NamedTuple):
    """Files of a `gan` artifact."""

    generators: str = "generators.pt"  # {direction: state_dict}
    record: str = "gan.json"  # schedule, per-direction histories, target, seconds


class FakesFiles(NamedTuple):
    """Files of a `fakes` artifact."""

    images: str = "fakes.npz"  # every image of the data set through its generator, same rows; ids
    record: str = "fakes.json"  # visibility: SSIM/PSNR, area changed, detector AUC, seconds


class AttackFiles(NamedTuple):
    """Files of an `attack` artifact."""

    images: str = "adversarial.npz"  # the test split attacked, its P(positive), a detecting head's logit
    record: str = "attack.json"  # attack, budget, threat, access, operating point, seconds, GAN visibility


class ScoreFiles(NamedTuple):
    """Files of a `score` artifact."""

    row: str = "row.json"  # the cell's metrics row
    flags: str = "flags.npz"  # per-image ids, labels, clean_correct, robust, fooled
    gallery: str = "gallery.png"  # GAN cells scored before galleries were drawn at leaderboard time


DATA, TRAIN, GAN = DataFiles(), TrainFiles(), GanFiles()
FAKES, ATTACK, SCORE = FakesFiles(), AttackFiles(), ScoreFiles()


def _json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def read_data(path: Path) -> ImageSet:
    """The ImageSet stored in a data artifact."""
    return ImageSet.load(Path(path) / DATA.images, meta=_json(Path(path) / DATA.summary))


def read_data_summary(path: Path) -> dict:
    """A data artifact's summary: data set name, sizes per split, the entry's meta (e.g. skipped files)."""
    return _json(Path(path) / DATA.summary)


def read_train_record(path: Path) -> dict:
    """The record (train.json) of a train artifact: threshold, val AUC, seconds, defense info, probes."""
    return _json(Path(path) / TRAIN.record)


def read_clean_scores(path: Path, split: str = "test") -> np.ndarray:
    """The deployed model's P(positive) on the clean images of one split ("val" or "test") of a train artifact."""
    with np.load(Path(path) / TRAIN.predictions, allow_pickle=False) as z:
        return z[split]


def read_clean_manipulation(path: Path) -> np.ndarray | None:
    """A detecting defense's "manipulated" logit on the clean test images (None for other defenses)."""
    with np.load(Path(path) / TRAIN.predictions, allow_pickle=False) as z:
        return z["test_manipulation"] if "test_manipulation" in z.files else None


def read_deployed(path: Path, params: dict, image_size: int, device: torch.device) -> tuple[nn.Module, Defense, dict]:
    """The deployed (defense-wrapped) model of a train artifact made with these params, its defense, its record."""
    model, defense = build_deployable(*deployable_specs(params), image_size)
    model.load_state_dict(torch.load(Path(path) / TRAIN.weights, map_location="cpu", weights_only=True))
    model = prepare_model(model, device).eval()
    return defense.wrap(model), defense, read_train_record(path)


def read_generators(path: Path, device: torch.device) -> tuple[dict[str, nn.Module], dict]:
    """The generators of a gan artifact (weights_only load), in eval mode on device, and its record."""
    record = _json(Path(path) / GAN.record)
    schedule = record["schedule"]
    states = torch.load(Path(path) / GAN.generators, map_location="cpu", weights_only=True)
    generators = {}
    for name in DIRECTIONS:
        gen = build_generator(schedule)  # the fast preset's U-Net or the study's (schedule "preset")
        gen.load_state_dict(states[name])
        generators[name] = gen.to(device).eval()
    return generators, record


def read_fakes(path: Path) -> tuple[np.ndarray, dict]:
    """All fakes (aligned with the data artifact's rows) and their visibility record."""
    with np.load(Path(path) / FAKES.images, allow_pickle=False) as z:
        images = z["images"]
    return images, _json(Path(path) / FAKES.record)


def read_attack(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Adversarial images, their P(positive) and the attack record of an attack artifact."""
    with np.load(Path(path) / ATTACK.images, allow_pickle=False) as z:
        images, scores = z["images"], z["scores"]
    return images, scores, _json(Path(path) / ATTACK.record)


def read_manipulation(path: Path) -> np.ndarray | None:
    """A detecting defense's "manipulated" logit on each attacked image of an attack artifact (None for others)."""
    with np.load(Path(path) / ATTACK.images, allow_pickle=False) as z:
        return z["manipulation"] if "manipulation" in z.files else None


def read_seed_scores(path: Path) -> np.ndarray | None:
    """P(positive) on the fakes of a GAN cell's further seeds, one row per seed after the first (None: one seed)."""
    with np.load(Path(path) / ATTACK.images, allow_pickle=False) as z:
        return z["seed_scores"] if "seed_scores" in z.files else None


def read_score(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The metrics row and the per-image flags of a score artifact."""
    with np.load(Path(path) / SCORE.flags, allow_pickle=False) as z:
        flags = {k: z[k] for k in z.files}
    return _json(Path(path) / SCORE.row), flags


def stored_gallery(path: Path) -> Path | None:
    """The gallery PNG a score artifact holds (GAN cells scored by earlier versions), or None."""
    gallery = Path(path) / SCORE.gallery
    return gallery if gallery.is_file() else None
