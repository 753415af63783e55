"""The lesion GAN: networks, options, the planner's gan/fakes stages, and a tiny end-to-end run."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config, tiny_raw
from sklearn.metrics import roc_auc_score

from benchmark.errors import BenchmarkError
from benchmark.execution.artifacts import read_attack, read_clean_scores, read_data, read_fakes
from benchmark.execution.matrix import run
from benchmark.execution.planner import plan_matrix
from benchmark.execution.store import Store
from benchmark.gan.networks import FeatureDiscriminator, UNetGenerator, backbone_of
from benchmark.gan.schedule import GanSchedule, schedule_from_options
from benchmark.training.model_factory import create_timm

TINY_GAN = {"identity_steps": 5, "head_steps": 20, "joint_steps": 60, "batch_size": 8, "unet_base": 8,
            "unet_levels": 2, "lr_generator": 5e-3, "fidelity_weight": 10.0}


def test_unet_starts_as_identity_and_keeps_range() -> None:
    torch.manual_seed(0)
    x = torch.rand(3, 1, 32, 32) * 0.9
    x[:, :, :, :8] = 0  # background
    gen = UNetGenerator(base=8, levels=3)
    y = gen(x)
    assert y.shape == x.shape
    assert torch.allclose(y, x.clamp(1e-4, 1 - 1e-4), atol=1e-5)
    plain = UNetGenerator(base=8, levels=3, logit_skip=False)(x).detach()
    assert float(plain.min()) > 0 and float(plain.max()) < 1
    assert float((plain - x).abs().mean()) > 0.05  # the plain U-Net is not the identity until pretrained
    with pytest.raises(BenchmarkError, match="divisible by 8"):
        gen(torch.rand(1, 1, 30, 30))


def test_discriminator_is_a_copy_of_the_classifier_features_with_a_new_head() -> None:
    torch.manual_seed(0)
    clf = create_timm("resnet10t", 32).eval()
    critic = FeatureDiscriminator(clf).eval()
    x = torch.rand(4, 1, 32, 32)
    assert critic(x).shape == (4,)
    head = critic.head_parameters()
    assert sum(p.numel() for p in head) == backbone_of(clf).get_classifier().in_features + 1
    stem = next(critic.net.parameters())
    assert torch.equal(stem, next(clf.parameters())) and stem.data_ptr() != next(clf.parameters()).data_ptr()
    with pytest.raises(BenchmarkError, match="no timm classifier"):
        backbone_of(torch.nn.Conv2d(1, 1, 3))


def test_schedule_options_are_checked() -> None:
    assert schedule_from_options({"joint_steps": 7, "surrogate": "x"}, "attacks.gan").joint_steps == 7
    with pytest.raises(BenchmarkError, match=r"attacks.gan.options.batch_size = 0"):
        schedule_from_options({"batch_size": 0}, "attacks.gan")
    with pytest.raises(BenchmarkError, match="joint_steps = 1.5: expected a whole number"):
        schedule_from_options({"joint_steps": 1.5}, "attacks.gan")
    assert GanSchedule().total_steps() == GanSchedule().identity_steps + GanSchedule().head_steps + \
        GanSchedule().joint_steps


def _gan_config(tmp_path: Path, attacks: list, models: list | None = None, defenses: list | None = None):
    raw = tiny_raw(tmp_path)
    raw["attacks"] = attacks
    if models:
        raw["models"] = models
    if defenses:
        raw["defenses"] = defenses
    return tiny_config(tmp_path, **{k: raw[k] for k in ("attacks", "models", "defenses")})


def test_planner_white_box_per_model_transfer_shared(tmp_path: Path) -> None:
    config = _gan_config(tmp_path, [{"name": "gan", "options": TINY_GAN},
                                    {"name": "gan-transfer", "options": {**TINY_GAN, "surrogate": "resnet18"}}],
                         models=[{"name": "resnet10t"}, {"name": "resnet18"}])
    plan = plan_matrix(config)
    gans = [s for s in plan.stages if s.kind == "gan"]
    # one GAN per attacked model; the transfer fakes are the surrogate's own white-box fakes, computed once
    assert sorted(s.params["target"]["model"]["name"] for s in gans) == ["resnet10t", "resnet18"]
    assert len([s for s in plan.stages if s.kind == "fakes"]) == 2
    fakes_of = {c.cell[:3]: [d for r, d in plan.by_key()[c.deps["attack"]].deps.items() if r == "fakes"][0]
                for c in plan.cells}
    assert fakes_of[("resnet10t", "none", "gan-transfer")] == fakes_of[("resnet18", "none", "gan-transfer")] \
        == fakes_of[("resnet18", "none", "gan")] != fakes_of[("resnet10t", "none", "gan")]
    assert len(plan.cells) == 4 and {c.cell[3] for c in plan.cells} == {0.0}
    trains = [s for s in plan.stages if s.kind == "train"]
    assert len(trains) == 2  # the surrogate is the matrix's own resnet18, not trained twice


def test_planner_errors_for_gan_options(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="did you mean 'joint_steps'"):
        plan_matrix(_gan_config(tmp_path, [{"name": "gan", "options": {"joint_step": 3}}]))
    with pytest.raises(BenchmarkError, match="surrogate 'vgg' is not a model of the matrix"):
        plan_matrix(_gan_config(tmp_path, [{"name": "gan-transfer", "options": {"surrogate": "vgg"}}]))
    with pytest.raises(BenchmarkError, match="semantic attack has no norm budget"):
        plan_matrix(_gan_config(tmp_path, [{"name": "gan", "budgets": ["1/255"]}]))


@pytest.mark.slow
def test_tiny_gan_edits_locally_and_moves_scores_in_the_attacked_direction(tmp_path: Path) -> None:
    raw = tiny_raw(tmp_path)
    config = tiny_config(tmp_path, attacks=[{"name": "gan", "options": TINY_GAN}],
                         training={"epochs": 8, "batch_size": 16, "lr": 0.002},
                         dataset={**raw["dataset"], "options": {"count": 192}})
    result = run(config, progress=False)
    assert not result.failed, [o.error for o in result.failed]
    store = Store(config.run.store)
    by_kind = {}
    for stage in result.plan.stages:
        by_kind.setdefault(stage.kind, []).append(store.path(stage.key))
    data = read_data(by_kind["data"][0])
    fakes, visibility = read_fakes(by_kind["fakes"][0])
    assert fakes.shape == data.images.shape and fakes.dtype == np.float32
    # Edits stay local: most of the change of a positive sits inside its lesion mask (the disc the GAN removes).
    pos = data.labels == 1
    change = np.abs(fakes - data.images)
    inside = (change * data.masks)[pos].sum() / data.masks[pos].sum()
    outside = (change * (1 - data.masks))[pos].sum() / (1 - data.masks)[pos].sum()
    assert inside > 3 * outside, (inside, outside)
    assert visibility["perturbation"]["ssim"]["mean"] > 0.5
    assert 0 <= visibility["detector"]["auc"]["value"] <= 1
    # Scores move in the attacked direction: up for negatives (insert), down for positives (remove).
    test = data.subset("test")
    _, after, record = read_attack(by_kind["attack"][0])
    before = read_clean_scores(by_kind["train"][0])
    neg, pos = test.labels == 0, test.labels == 1
    print(f"P(positive) before: negatives {before[neg].mean():.3f}, positives {before[pos].mean():.3f}; after: "
          f"{after[neg].mean():.3f}, {after[pos].mean():.3f}")
    assert roc_auc_score(test.labels, before) > 0.8  # a classifier worth attacking
    assert (after[neg] > before[neg]).mean() >= 0.7  # insert: most negatives look more positive
    assert (after[pos] < before[pos]).mean() >= 0.7  # remove: most positives look less positive
    assert after[pos].mean() < 0.5 * before[pos].mean()  # and by much, not just by a hair
    assert record["threat"] == "semantic" and record["access"] == "white-box" and "visibility" in record
    # the GAN cell's gallery (original, fake, difference) is drawn by the leaderboard from the stored artifacts
    galleries = Path(config.run.leaderboards) / config.dataset.name / "galleries"
    assert [p.stat().st_size > 5000 for p in galleries.glob("*--gan.png")] == [True]


def test_fake_based_defenses_train_on_fakes_of_the_undefended_model(tmp_path: Path) -> None:
    config = _gan_config(tmp_path, [{"name": "gan", "options": TINY_GAN}],
                         defenses=["none", "gan-fakes-relabel", "gan-fakes-detect"])
    plan = plan_matrix(config)
    by_key = plan.by_key()
    trains = {s.params["defense"]["name"]: s for s in plan.stages if s.kind == "train"}
    assert set(trains) == {"none", "gan-fakes-relabel", "gan-fakes-detect"}
    assert "fakes" not in trains["none"].deps
    shared = trains["gan-fakes-relabel"].deps["fakes"]
    assert trains["gan-fakes-detect"].deps["fakes"] == shared
    gan = by_key[by_key[shared].deps["gan"]]
    assert gan.deps["train"] == trains["none"].key and gan.params["options"] == TINY_GAN
    # the white-box GAN cell of the undefended model uses those very fakes; defended models get their own GAN
    gan_cells = {c.cell[1]: by_key[c.deps["attack"]].deps["fakes"] for c in plan.cells}
    assert gan_cells["none"] == shared and gan_cells["gan-fakes-relabel"] != shared


@pytest.mark.slow
def test_gan_fakes_detect_learns_a_manipulation_head_and_counts_undetected_fooling(tmp_path: Path) -> None:
    raw = tiny_raw(tmp_path)
    config = tiny_config(tmp_path, attacks=[{"name": "gan", "options": TINY_GAN}],
                         defenses=["gan-fakes-detect"],
                         training={"epochs": 6, "batch_size": 8, "lr": 0.002},
                         dataset={**raw["dataset"], "options": {"count": 192}})
    result = run(config, progress=False)
    assert not result.failed, [o.error for o in result.failed]
    infos = [json.loads(p.read_text()) for p in Path(config.run.store).glob("objects/*/*/train.json")]
    detect = [i for i in infos if i["defense"] == "gan-fakes-detect"][0]
    assert detect["detection"]["detection_rate"]["n"] > 0
    # a model that learned anything flags fakes more often than real images
    assert detect["detection"]["detection_rate"]["value"] > detect["detection"]["false_alarm_rate"]["value"]
    assert detect["detection"]["auc"]["value"] > 0.5
    rows = [json.loads(p.read_text()) for p in Path(config.run.store).glob("objects/*/*/row.json")]
    outcome = [r for r in rows if r["attack"] == "gan"][0]["attack_outcome"]
    # fooled and unflagged is a subset of fooled, over the same correctly classified originals
    assert outcome["fooled_undetected"]["n"] == outcome["overall"]["n"]
    assert outcome["fooled_undetected"]["successes"] + outcome["fooled_flagged"]["successes"] \
        == outcome["overall"]["successes"]
    assert outcome["flagged_clean"]["n"] == outcome["n"]
