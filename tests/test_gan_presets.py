"""The GAN presets: `zhou2021` pinned to the study's settings (a schema), and both presets training for real."""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch

from benchmark.errors import BenchmarkError
from benchmark.gan.generators import build_generator
from benchmark.gan.networks import UNetGenerator
from benchmark.gan.schedule import PRESETS, SCHEDULE_OPTIONS, GanSchedule, schedule_from_options
from benchmark.gan.training import train_gan
from benchmark.gan.zhou2021 import StudyGenerator, StudySchedule
from benchmark.training.model_factory import create_timm

# The study's trainV1728posPal41.py, as documented in benchmark/gan/schedule.py and the README's differences table.
# Changing a preset value must change this table (and the README) on purpose.
DOCUMENTED_ZHOU2021 = {
    "preset": "zhou2021", "lr_generator": 1e-5, "lr_identity": 1e-4, "lr_discriminator": 1e-4, "lr_head": 1e-4,
    "adam_beta2": 0.9, "adversarial_weight": 1.0, "fidelity_weight": 1.0, "critic_steps": 5, "augment": True,
    "r1_gamma": 0.0, "unet_base": 64, "unet_levels": 6, "logit_skip": False,
}


def test_zhou2021_preset_matches_its_documented_settings() -> None:
    schedule = asdict(schedule_from_options({"preset": "zhou2021"}, "attacks.gan"))
    assert {k: schedule[k] for k in DOCUMENTED_ZHOU2021} == DOCUMENTED_ZHOU2021
    study = StudySchedule()  # the study module's own reading of its code agrees with the preset
    assert (study.generator_lr, study.generator_lr_identity, study.critic_lr) == (1e-5, 1e-4, 1e-4)
    assert (study.betas[1], study.critic_steps_per_generator_step, study.fidelity_weight) == (0.9, 5, 1.0)
    assert set(PRESETS) == {"fast", "zhou2021"} and PRESETS["fast"] == {}
    assert asdict(schedule_from_options({}, "attacks.gan")) == asdict(GanSchedule())  # fast = the defaults


def test_options_override_the_preset_and_bad_presets_are_refused() -> None:
    s = schedule_from_options({"preset": "zhou2021", "unet_base": 8, "critic_steps": 2}, "attacks.gan")
    assert (s.unet_base, s.critic_steps, s.lr_generator) == (8, 2, 1e-5)
    with pytest.raises(BenchmarkError, match=r"attacks.gan.options.preset = 'zhou': expected one of 'fast'"):
        schedule_from_options({"preset": "zhou"}, "attacks.gan")
    assert SCHEDULE_OPTIONS["preset"].choices == ("fast", "zhou2021")


def test_build_generator_follows_the_preset() -> None:
    assert isinstance(build_generator(asdict(GanSchedule(unet_base=8))), UNetGenerator)
    study = build_generator(asdict(schedule_from_options({"preset": "zhou2021", "unet_base": 4, "unet_levels": 3},
                                                         "x")))
    assert isinstance(study, StudyGenerator) and study.depth == 3


def _tiny_set(n: int = 24, side: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.uniform(0.1, 0.6, (n, 1, side, side)).astype(np.float32)
    labels = np.arange(n) % 2
    images[labels == 1, :, 8:16, 8:16] += 0.3  # positives carry a bright "lesion"
    return images, labels


def test_zhou2021_preset_trains_the_study_networks_with_five_critic_steps_per_generator_step() -> None:
    images, labels = _tiny_set()
    torch.manual_seed(0)
    classifier = create_timm("resnet10t", 32).eval()
    before = [p.detach().clone() for p in classifier.parameters()]
    options = {"preset": "zhou2021", "unet_base": 4, "unet_levels": 3, "identity_steps": 3, "head_steps": 2,
               "joint_steps": 10, "batch_size": 4}
    schedule = schedule_from_options(options, "attacks.gan")
    generators, record = train_gan(images, labels, classifier, schedule, torch.device("cpu"), 0, progress=False)
    assert all(isinstance(g, StudyGenerator) and not g.training for g in generators.values())
    history = record["directions"]["insert"]["history"]
    joint = [h for h in history if h["stage"] == "joint"]
    assert len(joint) == 10 and sum("g_adv" in h for h in joint) == 2  # steps 5 and 10 of 15: one in five
    assert all("gp" in h for h in history if h["stage"] != "identity")  # the study's penalty on every critic step
    assert record["schedule"]["preset"] == "zhou2021" and record["schedule"]["augment"] is True
    assert all(torch.equal(a, b) for a, b in zip(before, classifier.parameters()))  # the attacked model is untouched
    x = torch.as_tensor(images[:2])
    out = generators["insert"](x).detach()
    assert out.shape == x.shape and float(out.min()) > 0 and float(out.max()) < 1


def test_zhou2021_training_repeats_exactly_with_a_seed() -> None:
    images, labels = _tiny_set(16)
    options = {"preset": "zhou2021", "unet_base": 4, "unet_levels": 2, "identity_steps": 2, "head_steps": 1,
               "joint_steps": 5, "batch_size": 4}
    schedule = schedule_from_options(options, "attacks.gan")
    outs = []
    for _ in range(2):
        torch.manual_seed(1)
        clf = create_timm("resnet10t", 32).eval()
        gens, _ = train_gan(images, labels, clf, schedule, torch.device("cpu"), 3, progress=False)
        outs.append(gens["remove"](torch.as_tensor(images[:3])).detach())
    assert torch.equal(outs[0], outs[1])
