"""Models: timm backbones for 1-channel mammograms, safe checkpoint loading, the study's recipe losses."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from benchmark.errors import BenchmarkError
from benchmark.registry import get_component, list_components
from benchmark.training.losses import distillation_term, focal_loss, make_loss
from benchmark.training.model_factory import create_timm, load_checkpoint


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("name", [e.name for e in list_components("models")])
def test_every_registered_model_takes_one_channel_and_gives_two_logits(name: str) -> None:
    model = get_component("models", name).obj(64).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 64, 64))
    assert out.shape == (2, 2)


def test_pretrained_download_is_refused() -> None:
    with pytest.raises(BenchmarkError, match="cannot be downloaded here"):
        create_timm("resnet10t", 64, pretrained=True)


def test_checkpoint_round_trip_and_refusals(tmp_path: Path) -> None:
    model = create_timm("resnet10t", 32)
    torch.save(model.state_dict(), tmp_path / "ok.pt")
    fresh = create_timm("resnet10t", 32)
    load_checkpoint(fresh, tmp_path / "ok.pt")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))

    marker = tmp_path / "pwned"
    torch.save({"weights": _Evil(str(marker))}, tmp_path / "evil.pt")
    with pytest.raises(BenchmarkError, match=r"evil.pt refused: not a plain weights file"):
        load_checkpoint(fresh, tmp_path / "evil.pt")
    assert not marker.exists()

    torch.save(create_timm("resnet18", 32).state_dict(), tmp_path / "other.pt")
    with pytest.raises(BenchmarkError, match=r"other.pt does not fit this model"):
        load_checkpoint(fresh, tmp_path / "other.pt")
    with pytest.raises(BenchmarkError, match="checkpoint not found"):
        load_checkpoint(fresh, tmp_path / "missing.pt")


def test_focal_loss_reduces_to_cross_entropy_and_downweights_easy_examples() -> None:
    logits = torch.tensor([[4.0, -4.0], [0.1, 0.0], [-1.0, 1.0]])
    y = torch.tensor([0, 1, 1])
    assert focal_loss(logits, y, gamma=0.0) == pytest.approx(float(F.cross_entropy(logits, y)))
    easy = focal_loss(logits[:1], y[:1], 2.0) / F.cross_entropy(logits[:1], y[:1])
    hard = focal_loss(logits[1:2], y[1:2], 2.0) / F.cross_entropy(logits[1:2], y[1:2])
    assert easy < 1e-3 < hard < 1


def test_input_gradient_penalty_adds_a_positive_term() -> None:
    torch.manual_seed(0)
    model = create_timm("resnet10t", 32)
    x, y = torch.rand(4, 1, 32, 32), torch.tensor([0, 1, 0, 1])
    plain = make_loss({"loss": "focal"})(model, x, y)
    smooth = make_loss({"loss": "focal", "input_grad_penalty": 0.1})(model, x, y)
    assert float(smooth.detach()) > float(plain.detach())
    smooth.backward()  # double backprop works
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    with pytest.raises(BenchmarkError, match="recipe loss 'hinge' is unknown"):
        make_loss({"loss": "hinge"})


def test_distillation_pulls_the_student_towards_the_teachers_soft_outputs() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.0, 0.5], [1.0, 1.0]])
    y = torch.tensor([0, 1, 2])  # the third image is a detecting defense's 'manipulated' class: no teacher opinion
    assert float(distillation_term(logits, logits.clone(), y)) == pytest.approx(0.0, abs=1e-7)
    far = torch.tensor([[-2.0, 1.0], [0.0, 0.5], [9.0, -9.0]])
    near = torch.tensor([[1.5, -1.0], [0.0, 0.5], [-9.0, 9.0]])
    assert float(distillation_term(logits, near, y)) < float(distillation_term(logits, far, y))
    # T^2 KL at T = 2 by hand for the first image; the second matches and the third is left out: mean over 2
    p = F.softmax(far[0] / 2, 0)
    kl = float((p * (p.log() - F.log_softmax(logits[0] / 2, 0))).sum()) * 4 / 2
    assert float(distillation_term(logits, far, y)) == pytest.approx(kl, rel=1e-5)

    torch.manual_seed(0)
    student, teacher = create_timm("resnet10t", 32).eval(), create_timm("resnet10t", 32).eval()
    x, y = torch.rand(4, 1, 32, 32), torch.tensor([0, 1, 0, 1])
    plain = float(make_loss({})(student, x, y))
    mixed = make_loss({}, teacher)(student, x, y)
    with torch.no_grad():
        expected = 0.5 * plain + 0.5 * float(distillation_term(student(x), teacher(x), y))
    assert float(mixed) == pytest.approx(expected, rel=1e-5)
    mixed.backward()
    assert all(p.grad is None for p in teacher.parameters())  # the teacher is only read
    assert float(make_loss({}, student)(student, x, y)) == pytest.approx(0.5 * plain, rel=1e-5)


def _tmp_model(image_size: int, **options: object) -> torch.nn.Module:
    """A temporary entry with its own training defaults."""
    return create_timm("resnet10t", image_size, **options)


def test_a_models_own_training_defaults_apply_where_the_config_is_silent(tmp_path: Path) -> None:
    from benchmark.config import TrainSpec, parse_config
    from benchmark.registry import get_registry, register_model
    from benchmark.training.recipes import train_defaults

    list_components("models")
    register_model("tmp-recipe", train={"lr": 5e-4, "epochs": 3})(_tmp_model)
    try:
        assert train_defaults("tmp-recipe") == {"lr": 5e-4, "epochs": 3}
        assert train_defaults("no-such-model") == {}
        raw = {"dataset": {"name": "synthetic-mammo"}, "training": {"lr": 0.002, "epochs": 9, "batch_size": 16},
               "models": [{"name": "tmp-recipe"}, {"name": "tmp-recipe-2"}], "attacks": ["fgsm"]}
        register_model("tmp-recipe-2")(_tmp_model)
        own, plain = parse_config(raw).models
        assert own.train == TrainSpec(epochs=3, batch_size=16, lr=5e-4, weight_decay=0.05)  # own over [training]
        assert plain.train == TrainSpec(epochs=9, batch_size=16, lr=0.002, weight_decay=0.05)
        raw["models"] = [{"name": "tmp-recipe", "lr": 0.01}]  # a [[models]] key beats the model's default
        assert parse_config(raw).models[0].train.lr == 0.01
        config = parse_config({**raw, "models": ["tmp-recipe-2"]}).with_cell("tmp-recipe", None, None)
        assert config.models[0].train == TrainSpec(epochs=3, batch_size=16, lr=5e-4, weight_decay=0.05)
        get_registry("models").remove("tmp-recipe")
        with pytest.raises(BenchmarkError, match="train default 'learning_rate' is unknown"):
            register_model("tmp-recipe", train={"learning_rate": 1e-3})(_tmp_model)  # refused at registration
        assert "tmp-recipe" not in get_registry("models").names()
    finally:
        get_registry("models").remove("tmp-recipe")
        get_registry("models").remove("tmp-recipe-2")


def test_models_see_standardised_images_and_keep_plain_timm_weights() -> None:
    import copy

    from benchmark.training.model_factory import INPUT_MEAN, INPUT_STD, create_timm

    torch.manual_seed(0)
    model = create_timm("resnet10t", 32).eval()
    plain = create_timm("resnet10t", 32, standardize=False).eval()
    plain.load_state_dict(model.state_dict())  # same keys: a checkpoint fits both
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        expected = plain((x - INPUT_MEAN) / INPUT_STD)
        torch.testing.assert_close(model(x), expected)
        torch.testing.assert_close(copy.deepcopy(model)(x), expected)  # the GAN critic is a deep copy
        assert not torch.allclose(plain(x), expected)
    with pytest.raises(BenchmarkError, match="option standardize = 'yes' must be true or false"):
        create_timm("resnet10t", 32, standardize="yes")


def test_vit_sees_16_px_tokens_through_a_convolutional_stem_unless_asked_not_to() -> None:
    entry = get_component("models", "vit_tiny_patch16_224")
    stem, plain = entry.obj(64).eval(), entry.obj(64, conv_stem=False).eval()
    assert [type(m).__name__ for m in stem.patch_embed.proj][:3] == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert isinstance(plain.patch_embed.proj, torch.nn.Conv2d) and plain.patch_embed.proj.kernel_size == (16, 16)
    with torch.no_grad():  # the stem keeps the token grid: 4 x 4 tokens (plus the class token) at 64 px
        tokens = stem.forward_features(torch.rand(2, 1, 64, 64))
    assert tokens.shape == (2, 1 + 16, 192) and stem.patch_embed.grid_size == (4, 4)
    with pytest.raises(BenchmarkError, match="option conv_stem = 'yes' must be true or false"):
        entry.obj(64, conv_stem="yes")


@pytest.mark.parametrize("name", ["efficientnet_b0", "zhou2021-vgg11"])
def test_models_with_a_zeroed_classifier_start_at_chance(name: str) -> None:
    torch.manual_seed(0)
    model = get_component("models", name).obj(64).eval()
    with torch.no_grad():
        out = model(torch.rand(4, 1, 64, 64))
    assert torch.equal(out, torch.zeros_like(out))  # loss ln 2, not timm's large initial logits


def test_zhou2021_vgg11_pools_before_its_classifier() -> None:
    model = get_component("models", "zhou2021-vgg11").obj(64)
    assert isinstance(model.pre_logits, torch.nn.Identity) and model.head.fc.in_features == 512
    assert sum(p.numel() for p in model.parameters()) < 10_000_000  # timm's 7 x 7 x 4096 classifier alone is 119M
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.features)
    assert get_component("models", "zhou2021-vgg11").obj(64, num_classes=3).head.fc.out_features == 3
