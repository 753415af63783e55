"""Plan-time threat-model checks (benchmark/compatibility.py), and NaN data refused by the data stage."""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config
from torch import nn

from benchmark.compatibility import (
    CompatibilityWarning,
    check_cell,
    check_matrix,
    dataset_has_masks,
)
from benchmark.config import DEFAULT_CONFIG, MatrixConfig, load_config
from benchmark.data.imageset import ImageSet
from benchmark.entry_api import Defense
from benchmark.errors import BenchmarkError
from benchmark.execution.matrix import run
from benchmark.registry import (
    get_component,
    get_registry,
    list_components,
    register_attack,
    register_dataset,
    register_defense,
    register_model,
)


def _noop_attack(model, x, y, eps, ctx):
    """A stand-in attack: returns its input."""
    return x


class _SmallNet(nn.Module):
    """A plain torch classifier: no forward_features, not a timm model."""

    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _plain_model(image_size: int, **options: object) -> nn.Module:
    """A plain torch CNN (not timm)."""
    return _SmallNet(int(options.get("num_classes", 2)))


class _BadClaims(Defense):
    """A defense that claims a threat model that does not exist."""

    claims = ("linfinity",)


class _FuzzyDifferentiable(Defense):
    """A defense that declares differentiable as a string."""

    differentiable = "sometimes"


@pytest.fixture(scope="module")
def temp_entries() -> Iterator[None]:
    """Temporary entries with odd declarations, removed after the module's tests."""
    list_components("models")
    added = [("attacks", "tmp-needs-masks", register_attack("tmp-needs-masks", threat="linf", needs="masks",
                                                            budgets=("1/255",))),
             ("attacks", "tmp-l2", register_attack("tmp-l2", threat="l2", budgets=("0.5",))),
             ("models", "tmp-plain-cnn", register_model("tmp-plain-cnn"))]
    objects = [_noop_attack, _noop_attack, _plain_model]
    for (kind, name, decorate), obj in zip(added, objects):
        get_registry(kind).remove(name)
        decorate(obj)
    yield
    for kind, name, _ in added:
        get_registry(kind).remove(name)


def _config(tmp_path: Path, dataset: dict | None = None, models: list | None = None,
            defenses: list | None = None, attacks: list | None = None) -> MatrixConfig:
    return tiny_config(tmp_path, dataset=dataset or {"name": "synthetic-mammo", "image_size": 64},
                       models=models or [{"name": "resnet10t"}], defenses=defenses or ["none"],
                       attacks=attacks or [{"name": "fgsm", "budgets": ["1/255"]}])


def _error(config: MatrixConfig) -> str:
    with pytest.raises(BenchmarkError) as info:
        check_matrix(config)
    message = str(info.value)
    assert "\n" not in message and message.startswith("tiny.toml: ")
    return message


def _quiet(config: MatrixConfig) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompatibilityWarning)
        check_matrix(config)


def test_the_shipped_configs_pass_without_warnings() -> None:
    for path in sorted(DEFAULT_CONFIG.parent.glob("*.toml")):
        _quiet(load_config(path))


def _refused(kind: str, name: str, decorate, obj) -> str:
    """The one-line error of registering obj with a bad declaration (its card is refused; nothing is added)."""
    list_components(kind)
    try:
        with pytest.raises(BenchmarkError) as info:
            decorate(obj)
        assert name not in get_registry(kind).names()
    finally:
        get_registry(kind).remove(name)
    message = str(info.value)
    assert "\n" not in message and "(module test_compatibility)" in message
    return message


def test_an_attack_with_an_unknown_threat_is_refused() -> None:
    message = _refused("attacks", "tmp-weird-threat", register_attack("tmp-weird-threat", threat="linfinity"),
                       _noop_attack)
    assert "attack 'tmp-weird-threat'" in message and "threat 'linfinity'" in message
    assert "linf, l2, semantic" in message


def test_an_attack_needing_what_the_engine_cannot_give_is_refused() -> None:
    message = _refused("attacks", "tmp-needs-oracle", register_attack("tmp-needs-oracle", threat="linf",
                                                                      needs="oracle", budgets=("1/255",)),
                       _noop_attack)
    assert "needs 'oracle'" in message and "cannot provide" in message


@pytest.mark.parametrize(("dataset", "options", "expected"), [
    ("synthetic-mammo", {}, True), ("inbreast", {}, False), ("cmmd", {}, False), ("rsna-screening", {}, False),
    ("dicom-folder", {}, False), ("cbis-ddsm", {}, False), ("cbis-ddsm", {"roi_masks": True}, True),
    ("vindr-mammo", {}, True), ("vindr-mammo", {"masks": False}, False), ("tiny-blobs", {}, None)])
def test_data_sets_declare_lesion_masks(dataset: str, options: dict, expected: bool | None) -> None:
    assert dataset_has_masks(get_component("datasets", dataset), options) is expected


def test_a_mask_attack_on_a_data_set_without_masks_is_refused(tmp_path: Path, temp_entries: None) -> None:
    attacks = [{"name": "tmp-needs-masks"}]
    message = _error(_config(tmp_path, {"name": "cbis-ddsm", "options": {"root": "/data"}}, attacks=attacks))
    assert "attacks 'tmp-needs-masks' needs lesion masks and data set 'cbis-ddsm' has none" in message
    assert "roi_masks = true" in message
    _quiet(_config(tmp_path, {"name": "cbis-ddsm", "options": {"root": "/data", "roi_masks": True}},
                   attacks=attacks))
    _quiet(_config(tmp_path, attacks=attacks))  # synthetic-mammo has masks
    with pytest.warns(CompatibilityWarning, match="does not declare whether it has them"):
        check_matrix(_config(tmp_path, {"name": "tiny-blobs"}, attacks=attacks))


def test_lesion_pgd_declares_that_it_needs_masks(tmp_path: Path) -> None:
    assert get_component("attacks", "lesion-pgd").card.needs == frozenset({"masks"})
    message = _error(_config(tmp_path, {"name": "inbreast", "options": {"root": "/data"}},
                             attacks=[{"name": "lesion-pgd", "budgets": ["1/255"]}]))
    assert "attacks 'lesion-pgd' needs lesion masks and data set 'inbreast' has none" in message


def test_gan_attacks_need_a_timm_classifier(tmp_path: Path, temp_entries: None) -> None:
    models = [{"name": "tmp-plain-cnn"}, {"name": "resnet10t"}]
    message = _error(_config(tmp_path, models=models, attacks=[{"name": "gan"}]))
    assert "attacks 'gan'" in message and "'tmp-plain-cnn' is not a timm classifier" in message
    _quiet(_config(tmp_path, models=models))  # pixel attacks need only gradients
    _quiet(_config(tmp_path, models=models, attacks=[{"name": "gan-transfer", "options": {"surrogate": "resnet10t"}}]))
    message = _error(_config(tmp_path, models=models, attacks=[{"name": "gan-transfer"}]))  # surrogate: 1st model
    assert "surrogate model 'tmp-plain-cnn'" in message
    message = _error(_config(tmp_path, models=models, defenses=["gan-fakes-relabel"]))
    assert "defenses 'gan-fakes-relabel'" in message and "'tmp-plain-cnn' is not a timm classifier" in message


@pytest.mark.parametrize("budget", [8, 1, "255/255", 2.0])
def test_linf_budgets_on_the_0_255_scale_are_refused(tmp_path: Path, budget: object) -> None:
    message = _error(_config(tmp_path, attacks=[{"name": "pgd-linf", "budgets": ["1/255", budget]}]))
    assert "attacks 'pgd-linf': L-inf budget" in message and "spans the whole [0,1] intensity range" in message
    value = float(budget) if not isinstance(budget, str) else 1.0
    assert f'write "{value:g}/255"' in message


def test_suspicious_budgets_warn(tmp_path: Path, temp_entries: None) -> None:
    with pytest.warns(CompatibilityWarning, match=r"L-inf budget 25.5/255 is above 16/255"):
        check_matrix(_config(tmp_path, attacks=[{"name": "fgsm", "budgets": [0.1]}]))
    with pytest.warns(CompatibilityWarning, match=r"L2 budget 2/255 over 64x64 pixels .* looks like an L-inf "
                                                  r"fraction.*L2 radius 0.502"):
        check_matrix(_config(tmp_path, attacks=[{"name": "pgd-l2", "budgets": ["2/255"]}]))
    with pytest.warns(CompatibilityWarning, match=r"L2 budget 16 over 64x64 pixels .* 0-255 scale"):
        check_matrix(_config(tmp_path, attacks=[{"name": "tmp-l2", "budgets": [16]}]))
    _quiet(_config(tmp_path, attacks=[{"name": "pgd-l2"}, {"name": "fgsm"}]))  # the entries' default budgets
    _quiet(_config(tmp_path, attacks=[{"name": "pgd-l2", "budgets": [0.5, 2]}, {"name": "fgsm", "budgets": [0.05]}]))


def test_an_l2_budget_beyond_the_image_is_refused(tmp_path: Path, temp_entries: None) -> None:
    message = _error(_config(tmp_path, attacks=[{"name": "tmp-l2", "budgets": [100]}]))
    assert "L2 budget 100 exceeds the largest possible change of a 64x64 [0,1] image (64)" in message


def test_defenses_must_declare_real_threat_models() -> None:
    assert "claims 'linfinity'" in _refused("defenses", "tmp-bad-claims", register_defense("tmp-bad-claims"),
                                            _BadClaims)
    assert "differentiable = 'sometimes'" in _refused("defenses", "tmp-fuzzy", register_defense("tmp-fuzzy"),
                                                      _FuzzyDifferentiable)


def test_check_cell_takes_one_cell_of_the_matrix(tmp_path: Path, temp_entries: None) -> None:
    config = _config(tmp_path, models=[{"name": "tmp-plain-cnn"}, {"name": "resnet10t"}],
                     attacks=[{"name": "fgsm"}, {"name": "gan"}])
    check_cell(config, config.models[1], config.defenses[0], config.attacks[1])  # resnet10t under the GAN: fine
    check_cell(config, config.models[0], config.defenses[0], config.attacks[0])  # plain CNN under FGSM: fine
    with pytest.raises(BenchmarkError, match="not a timm classifier"):
        check_cell(config, config.models[0], config.defenses[0], config.attacks[1])


def _nan_blobs(spec, workdir: Path) -> ImageSet:
    """Blobs with one NaN pixel in image 3 (as a broken preprocessing step would leave)."""
    n, s = 24, spec.image_size
    images = np.random.default_rng(0).uniform(0.2, 0.8, (n, 1, s, s)).astype(np.float32)
    images[3, 0, 5, 5] = np.nan
    labels = np.arange(n) % 2
    ids = np.array([f"img{i}" for i in range(n)])
    return ImageSet(images, labels, np.zeros(images.shape, np.uint8), ids, ids.copy(), None, {"positive": "odd"})


def test_nan_pixels_are_refused_by_the_data_stage_naming_the_data_set(tmp_path: Path) -> None:
    list_components("datasets")
    get_registry("datasets").remove("tmp-nan-blobs")
    register_dataset("tmp-nan-blobs", masks=False)(_nan_blobs)
    try:
        result = run(tiny_config(tmp_path, dataset={"name": "tmp-nan-blobs", "image_size": 32}), progress=False,
                     leaderboard=False)
    finally:
        get_registry("datasets").remove("tmp-nan-blobs")
    data = [o for o in result.outcomes.values() if o.kind == "data"]
    assert [o.status for o in data] == ["failed"]
    assert data[0].error.startswith("data set tmp-nan-blobs: ") and "finite" in data[0].error
    assert "\n" not in data[0].error
    assert {o.status for o in result.outcomes.values() if o.kind != "data"} == {"skipped"}


def test_the_planner_runs_the_checks_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from benchmark.execution.planner import plan_matrix

    refused = _config(tmp_path, {"name": "inbreast", "options": {"root": str(tmp_path / "nowhere")}},
                      attacks=[{"name": "lesion-pgd", "budgets": ["1/255"]}])
    with pytest.raises(BenchmarkError, match="attacks 'lesion-pgd' needs lesion masks"):
        plan_matrix(refused)
    with pytest.raises(BenchmarkError, match="attacks 'lesion-pgd' needs lesion masks"):
        run(refused, progress=False)
    assert not Path(refused.run.store).exists()  # refused before the store was made
    odd = _config(tmp_path, attacks=[{"name": "pgd-l2", "budgets": ["2/255"]}])
    with pytest.warns(CompatibilityWarning, match="looks like an L-inf fraction"):
        plan_matrix(odd)
