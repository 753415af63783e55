"""The zhou2021 GAN pieces that follow the study's code: generator, critic, losses, schedule and augmentation."""
from __future__ import annotations

import math

import pytest
import torch

from benchmark.errors import BenchmarkError
from benchmark.gan.zhou2021 import (
    StudyCritic,
    StudyGenerator,
    StudySchedule,
    critic_adversarial,
    critic_loss,
    generator_adversarial,
    generator_fidelity,
    gradient_penalty,
    level_widths,
    study_augment,
)
from benchmark.registry import get_component
from benchmark.training.model_factory import create_timm


@pytest.mark.parametrize(("depth", "size"), [(2, (32, 32)), (3, (32, 48)), (4, (64, 40)), (6, (64, 64))])
def test_generator_shape_and_range(depth: int, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 1, *size)
    with torch.no_grad():
        y = StudyGenerator(width=8, depth=depth)(x)
    assert y.shape == x.shape
    assert float(y.min()) > 0 and float(y.max()) < 1


def test_generator_matches_the_study_layout() -> None:
    assert level_widths(64, 6) == [64, 128, 256, 512, 512, 512]
    gen = StudyGenerator()  # the study's UNet(1, 1): inc, down1-5 (64 ... 512), up1-5, 3x3 outconv
    assert [b[0].in_channels for b in gen.down] == [64, 128, 256, 512, 512]
    assert [(b[0].in_channels, b[0].out_channels) for b in gen.up] == [(1024, 512), (1024, 256), (512, 128),
                                                                     (256, 64), (128, 64)]
    assert gen.out.kernel_size == (3, 3) and gen.out.out_channels == 1


def test_generator_normalises_input_as_the_study() -> None:
    gen = StudyGenerator(width=8, depth=2)
    seen = {}
    gen.inc[0].register_forward_pre_hook(lambda _m, args: seen.setdefault("x", args[0]))
    x = torch.rand(1, 1, 16, 16)
    gen(x)
    assert torch.allclose(seen["x"], (x - 0.485) / 0.229)


def test_generator_rejects_bad_sizes() -> None:
    gen = StudyGenerator(width=8, depth=3)
    with pytest.raises(BenchmarkError, match="divisible by 4, got 30x32") as err:
        gen(torch.rand(1, 1, 30, 32))
    assert "\n" not in str(err.value)
    with pytest.raises(BenchmarkError, match="1, H, W"):
        gen(torch.rand(1, 3, 32, 32))


@pytest.mark.parametrize("name", ["resnet10t", "zhou2021-vgg11"])
def test_critic_freezes_the_classifier(name: str) -> None:
    torch.manual_seed(0)
    clf = get_component("models", name).obj(32)
    clf.train()
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    critic = StudyCritic(clf).train()
    assert not critic.classifier.training and critic.head.training
    x = torch.rand(3, 1, 32, 32)
    d = critic(x)
    assert d.shape == (3,)
    d.sum().backward()
    assert all(p.grad is None and not p.requires_grad for p in critic.classifier.parameters())
    assert critic.head.weight.grad is not None and critic.head.in_features == 512
    assert clf.training and all(p.requires_grad and p.grad is None for p in clf.parameters())
    assert all(torch.equal(before[k], v) for k, v in clf.state_dict().items())


def test_critic_applies_the_classifier_input_standardisation() -> None:
    torch.manual_seed(0)
    clf = create_timm("resnet10t", 32).eval()
    critic = StudyCritic(clf)
    x = torch.rand(2, 1, 32, 32)
    pooled = clf.forward_head(clf.forward_features((x - 0.5) / 0.25), pre_logits=True)
    assert torch.allclose(critic(x), critic.head(pooled).reshape(-1), atol=1e-6)
    assert [type(m).__name__ for m in critic.top_modules()] == ["SelectAdaptivePool2d"]


def _sp(v: float) -> float:
    return math.log(1 + math.exp(v))


def test_critic_adversarial_by_hand() -> None:
    d_real, d_fake = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0])
    drf = (_sp(-1.0) + _sp(2.0)) / 2  # the study's Drf = -mean(lossF(D(r))), lossF(x) = -log(1 + exp(-x))
    dff = -(_sp(-0.5) + _sp(-3.0)) / 2  # Dff = mean(lossF(D(f)))
    assert float(critic_adversarial(d_real, d_fake)) == pytest.approx(drf + dff + abs(drf - 1), rel=1e-6)
    assert float(generator_adversarial(d_fake)) == pytest.approx(-dff, rel=1e-6)


def test_gradient_penalty_on_a_linear_critic() -> None:
    torch.manual_seed(0)
    w = torch.randn(1, 1, 4, 4)
    real = torch.rand(3, 1, 4, 4, requires_grad=True)
    d_real = (real * w).sum((1, 2, 3))
    norm = float(w.norm())
    assert float(gradient_penalty(d_real, real).detach()) == pytest.approx(5 * norm ** 4, rel=1e-5)
    d_fake = torch.tensor([0.0, 1.0, -1.0])
    total = critic_loss(d_real, d_fake, real)
    expected = critic_adversarial(d_real, d_fake) + 5 * norm ** 4
    assert float(total.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    total.backward()  # create_graph: the penalty itself is differentiable
    assert real.grad is not None


def test_fidelity_normalisation_by_hand() -> None:
    x = torch.tensor([0.0, 1.0]).reshape(1, 1, 1, 2)
    fake = torch.tensor([0.1, 0.8]).reshape(1, 1, 1, 2)
    expected = ((0.1 ** 2 + 0.2 ** 2) / 2) / ((0.485 ** 2 + 0.515 ** 2) / 2)
    assert float(generator_fidelity(x, fake)) == pytest.approx(expected, rel=1e-6)
    n = lambda t: (t - 0.485) / 0.229  # noqa: E731 - the study's units: F.mse_loss(fX - nX, 0) / mean(nX ** 2)
    study = ((n(fake) - n(x)) ** 2).mean() / (n(x) ** 2).mean()
    assert float(generator_fidelity(x, fake)) == pytest.approx(float(study), rel=1e-5)


def test_schedule_defaults_and_phases() -> None:
    s = StudySchedule()
    assert (s.critic_steps_per_generator_step, s.generator_lr_identity, s.generator_lr) == (5, 1e-4, 1e-5)
    assert (s.critic_lr, s.features_lr, s.betas, s.batch_size) == (1e-4, 1e-5, (0.5, 0.9), 2)
    assert (s.vflip_p, s.max_rotation, s.max_shear) == (0.5, 45.0, 45.0)
    assert [s.phase(e) for e in (0, 10, 11, 20, 21, 30, 31, 330, 331, 600)] == [
        "identity", "identity", "head-only", "head-only", "head", "head", "top", "top", "features", "features"]


def _blob_batch(n: int = 6, side: int = 32) -> torch.Tensor:
    x = torch.zeros(n, 1, side, side)
    x[:, :, 4:10, 18:26] = 1.0
    return x


def _centre(t: torch.Tensor) -> torch.Tensor:
    h, w = t.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    mass = t.sum((-1, -2))
    return torch.stack([(t * ys).sum((-1, -2)) / mass, (t * xs).sum((-1, -2)) / mass], -1)


def test_augment_reproducible_and_shared_with_the_mask() -> None:
    x = _blob_batch() * 0.7
    mask = _blob_batch()
    a, ma = study_augment(x, torch.Generator().manual_seed(3), mask)
    b, mb = study_augment(x, torch.Generator().manual_seed(3), mask)
    c = study_augment(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and torch.equal(ma, mb)
    assert not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # each image draws its own transform
    assert set(ma.unique().tolist()) <= {0.0, 1.0}  # nearest keeps the mask binary
    assert torch.allclose(_centre(a), _centre(ma), atol=1.0)  # same geometry for image and mask
    assert float((_centre(a) - _centre(x)).abs().max()) > 2  # and it did move things


def test_augment_without_draws_is_the_identity() -> None:
    x = torch.rand(2, 1, 16, 16)
    still = StudySchedule(vflip_p=0.0, max_rotation=0.0, max_shear=0.0)
    assert torch.allclose(study_augment(x, torch.Generator().manual_seed(0), schedule=still), x, atol=1e-6)
    flipped = study_augment(x, torch.Generator().manual_seed(0),
                            schedule=StudySchedule(vflip_p=1.0, max_rotation=0.0, max_shear=0.0))
    assert torch.allclose(flipped, x.flip(-2), atol=1e-6)
