"""The lesion GAN's settings: one GanSchedule per training, two presets (`fast`, `zhou2021`) and its options.

`fast` is this project's GAN, tuned to learn in a few hundred CPU steps at 64 px. `zhou2021` follows the study's
public code (benchmark/gan/zhou2021.py): its U-Net and critic, its critic loss with the gradient penalty, 5 critic
steps per generator step, its learning rates, Adam betas and augmentation, and its fidelity normalisation. Any option
the config writes overrides the preset's value.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from benchmark.errors import BenchmarkError
from benchmark.options import Option, OptionValueError, check_value

__all__ = ["GanSchedule", "PRESETS", "SCHEDULE_OPTIONS", "schedule_from_options"]


@dataclass(frozen=True)
class GanSchedule:
    """Loss weights, steps per stage and optimiser settings of one GAN training run (the `fast` preset's values)."""

    preset: str = "fast"
    identity_steps: int = 60
    head_steps: int = 40
    joint_steps: int = 160
    batch_size: int = 16
    lr_generator: float = 2e-3
    lr_identity: float = 2e-3
    lr_discriminator: float = 2e-4
    lr_head: float = 2e-3
    adam_beta2: float = 0.99
    adversarial_weight: float = 1.0
    fidelity_weight: float = 20.0
    classifier_weight: float = 0.0
    critic_steps: int = 1
    augment: bool = False
    r1_gamma: float = 1.0
    r1_every: int = 4
    unet_base: int = 16
    unet_levels: int = 3
    logit_skip: bool = True

    def total_steps(self) -> int:
        """Steps of one direction over all three stages."""
        return self.identity_steps + self.head_steps + self.joint_steps


# What `preset = "zhou2021"` changes (trainV1728posPal41.py; tests/test_gan_presets.py pins this table). Steps and
# batch size stay the config's: the study's 600 epochs at batch 2 are a GPU-days schedule.
PRESETS: dict[str, dict[str, Any]] = {
    "fast": {},
    "zhou2021": {
        "lr_generator": 1e-5,  # generate_model: lr 1e-5 once the critic trains
        "lr_identity": 1e-4,  # stage 0 (identity): 1e-4
        "lr_discriminator": 1e-4,  # the critic's new head and the classifier's top (features stay frozen)
        "lr_head": 1e-4,
        "adam_beta2": 0.9,  # every Adam: betas (0.5, 0.9)
        "adversarial_weight": 1.0,
        "fidelity_weight": 1.0,  # l2_Xnoise = MSE / mean((x - 0.485)^2), weight 1
        "critic_steps": 5,  # GN_pass = 5
        "augment": True,  # vertical flip, rotation and x-shear up to 45 degrees
        "r1_gamma": 0.0,  # replaced by the study's penalty: 5 * mean |grad D(real)|^4, every critic step
        "unet_base": 64,  # 64 -> 512 channels
        "unet_levels": 6,  # resolution levels (five 2x poolings); sides must divide by 32
        "logit_skip": False,  # plain U-Net, sigmoid output
    },
}

# The schedule's options (attack options of the GAN attacks); the documented defaults are the `fast` preset's.
_DOCS = {
    "preset": ("which GAN: fast (this project's) or zhou2021 (the study's code); options override it", None, None),
    "identity_steps": ("steps of identity pretraining of the generator (fidelity only)", 0, 100_000),
    "head_steps": ("steps training the critic's new head alone", 0, 100_000),
    "joint_steps": ("steps training generator and critic jointly", 0, 1_000_000),
    "batch_size": ("images per GAN training batch", 1, 4096),
    "lr_generator": ("generator learning rate (joint stage)", 0, 1),
    "lr_identity": ("generator learning rate in identity pretraining", 0, 1),
    "lr_discriminator": ("critic learning rate in the joint stage", 0, 1),
    "lr_head": ("critic head learning rate in the head stage", 0, 1),
    "adam_beta2": ("second Adam beta of every GAN optimiser (the first is 0.5)", 0, 0.9999),
    "adversarial_weight": ("weight of the generator's adversarial loss", 0, 1e6),
    "fidelity_weight": ("weight of the relative MSE to the input image", 0, 1e6),
    "classifier_weight": ("weight of the attacked classifier's loss (white-box only)", 0, 1e6),
    "critic_steps": ("critic steps per generator step in the joint stage", 1, 100),
    "augment": ("random vertical flips, rotations and shears of GAN training batches (the study's)", None, None),
    "r1_gamma": ("R1 gradient penalty on real images (fast preset)", 0, 1e6),
    "r1_every": ("critic steps between R1 penalties", 1, 1000),
    "unet_base": ("channels of the generator U-Net's first level", 4, 256),
    "unet_levels": ("levels of the generator U-Net (zhou2021: resolution levels, the study's 6)", 1, 7),
    "logit_skip": ("generator edits in logit space (a skip connection around the U-Net; fast preset)", None, None),
}
SCHEDULE_OPTIONS: dict[str, Option] = {
    f.name: Option(f.default, type(f.default), _DOCS[f.name][0], low=_DOCS[f.name][1], high=_DOCS[f.name][2],
                   choices=tuple(PRESETS) if f.name == "preset" else ())
    for f in fields(GanSchedule)}


def schedule_from_options(options: dict[str, Any], where: str) -> GanSchedule:
    """A GanSchedule from attack options: the preset's values, then what the options set. Values out of range are
    one-line errors (other keys are ignored: they belong to the attack entry, which checks them against its card)."""
    values = {}
    for key, value in options.items():
        opt = SCHEDULE_OPTIONS.get(key)
        if opt is None:
            continue  # other options (surrogate, seeds) belong to the attack entry
        try:
            checked = check_value(opt, value)
        except OptionValueError as exc:
            raise BenchmarkError(f"{where}.options.{key} = {value!r}: {exc.reason}") from None
        if checked is not None:
            values[key] = opt.kind(checked)
    preset = values.get("preset", "fast")
    return replace(GanSchedule(preset=preset, **PRESETS[preset]), **values)
