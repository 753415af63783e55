"""Adversarial training with pre-generated GAN fakes (the study's proposed defense), in both of its readings.

The engine trains the lesion GAN against the same model without a defense, generates fakes of the train split once
(the `fakes` stage, shared with the `gan` attack cells of the undefended model), and hands them to the defense
before training. Each training batch then gets `fraction` x batch-size fakes appended:
- `gan-fakes-relabel`: with their original label, so the model learns to see through inserted or removed tissue;
- `gan-fakes-detect`: with their original label AND a "manipulated" mark: the model gets a detection head (a third
  output, the logit of "this image was edited") trained with binary cross-entropy on real (0) and fake (1) images,
  while its two class outputs learn the fakes' original labels as in relabel. The head flags an image when its logit
  exceeds a threshold set on the real validation images at `false_alarm_rate` (5%). The leaderboard reports the
  head's detection rate on test fakes and its false-alarm rate on real test images at that threshold and, per attack
  cell, how many images were fooled without being flagged.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.entry_api import Defense, LossFn
from benchmark.errors import BenchmarkError
from benchmark.registry import register_defense
from benchmark.training.inference import MANIPULATED_OUTPUT

from ._options import Option

__all__ = ["GanFakesRelabel", "GanFakesDetect", "FAKE_LABEL_OFFSET"]

FAKE_LABEL_OFFSET = 2  # gan-fakes-detect's training label of a fake: its original label + 2 (2 or 3)
OPTIONS = {
    "fraction": Option(0.5, float, "fakes appended to each batch, as a share of the batch size", above=0, high=4),
    "seed": Option(0, int, "seed of the fake sampling (added to the run seed's batch order)", low=0),
}


class _GanFakes(Defense):
    differentiable = True
    claims = ("semantic",)
    extra_classes = 0
    name = "gan-fakes"
    options_spec = OPTIONS

    def __init__(self, options: dict | None = None) -> None:
        super().__init__(options)
        self.fakes: torch.Tensor | None = None
        self.fake_labels: torch.Tensor | None = None
        self._rng = np.random.default_rng(self.settings["seed"])

    def use_fakes(self, fakes: np.ndarray, labels: np.ndarray) -> None:
        """The train split's pre-generated fakes and the labels of the images they were made from."""
        if len(fakes) == 0:
            raise BenchmarkError(f"defense {self.name}: no fakes for the train split")
        self.fakes = torch.as_tensor(fakes, dtype=torch.float32)
        self.fake_labels = torch.as_tensor(labels, dtype=torch.long)

    def _target(self, labels: torch.Tensor) -> torch.Tensor:
        return labels

    def training_batch(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                       step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch with round(fraction * batch) random fakes appended (labels per the defense's reading)."""
        if self.fakes is None:
            raise BenchmarkError(f"defense {self.name} needs the engine's fakes stage; run it through the matrix")
        k = max(1, round(self.settings["fraction"] * len(x)))
        idx = torch.as_tensor(self._rng.choice(len(self.fakes), size=k, replace=len(self.fakes) < k))
        fakes = self.fakes[idx].to(x.device, x.dtype)
        return torch.cat([x, fakes]), torch.cat([y, self._target(self.fake_labels[idx]).to(y.device)])

    def describe(self) -> dict:
        """Options, claims and how the fakes were made."""
        return {**super().describe(), "fakes": "lesion GAN trained against the same model without defense",
                "extra_classes": self.extra_classes}


@register_defense("gan-fakes-relabel", needs="fakes")
class GanFakesRelabel(_GanFakes):
    """Adversarial training on pre-generated GAN fakes that keep their original label (see through the edit)."""

    name = "gan-fakes-relabel"


DETECT_OPTIONS = {**OPTIONS, "detect_weight": Option(1.0, float, "weight of the detection head's loss", low=0,
                                                     high=100),
                  "false_alarm_rate": Option(0.05, float, "share of real validation images the head may flag: "
                                                          "its threshold is set there", above=0, high=0.5)}


@register_defense("gan-fakes-detect", needs="fakes")
class GanFakesDetect(_GanFakes):
    """Adversarial training on pre-generated GAN fakes with their label and a 'manipulated' detection head."""

    name = "gan-fakes-detect"
    extra_classes = 1  # the detection head's logit, after the two class logits
    options_spec = DETECT_OPTIONS

    @property
    def false_alarm_rate(self) -> float:
        """The head's calibration target: the share of real validation images it flags."""
        return float(self.settings["false_alarm_rate"])

    def _target(self, labels: torch.Tensor) -> torch.Tensor:
        return labels + FAKE_LABEL_OFFSET

    def training_loss(self, loss: LossFn) -> LossFn:
        """The model's own loss on the two class outputs (fakes with their original label) plus
        detect_weight x binary cross-entropy of the detection head (fake or real), from one forward pass."""
        weight = self.settings["detect_weight"]

        def detect_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            fake = y >= FAKE_LABEL_OFFSET
            head: list[torch.Tensor] = []

            def class_outputs(inputs: torch.Tensor) -> torch.Tensor:
                logits = model(inputs)
                head.append(logits[:, MANIPULATED_OUTPUT].float())
                return logits[:, :2]
            value = loss(class_outputs, x, torch.where(fake, y - FAKE_LABEL_OFFSET, y))
            return value + weight * F.binary_cross_entropy_with_logits(head[0], fake.float())
        return detect_loss
