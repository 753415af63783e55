"""Build the generator network a GAN schedule names (fast: UNetGenerator; zhou2021: the study's U-Net)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from benchmark.gan.networks import UNetGenerator
from benchmark.gan.zhou2021 import StudyGenerator

__all__ = ["build_generator"]


def build_generator(schedule: Mapping[str, Any]) -> nn.Module:
    """An untrained generator for a schedule (a GanSchedule as a dict, e.g. from a gan artifact's record)."""
    if schedule.get("preset", "fast") == "zhou2021":
        return StudyGenerator(schedule["unet_base"], schedule["unet_levels"])
    return UNetGenerator(schedule["unet_base"], schedule["unet_levels"], schedule["logit_skip"])
