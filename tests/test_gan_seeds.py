"""GAN cells over several GAN trainings (option `seeds`) and the adaptive attacker's own attack name."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_config
from test_gan import TINY_GAN

from benchmark.attacking.seeds import seed_summary
from benchmark.errors import BenchmarkError
from benchmark.execution.artifacts import read_attack, read_seed_scores
from benchmark.execution.matrix import run
from benchmark.execution.planner import plan_matrix
from benchmark.execution.store import Store
from benchmark.metrics import attack_outcome

FAST = {k: v for k, v in TINY_GAN.items() if k != "joint_steps"} | {"joint_steps": 20, "head_steps": 5}


def test_seed_summary_is_each_seeds_rates_with_mean_and_spread() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    clean = np.array([0.1, 0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.9])  # all correct at 0.5
    seeds = [np.array([0.9, 0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.9]),  # 1/4 negatives fooled, 0/4 positives
             np.array([0.9, 0.9, 0.9, 0.1, 0.1, 0.9, 0.9, 0.9])]  # 3/4, 1/4
    out = seed_summary(labels, clean, seeds, 0.5)
    assert out["n"] == 2
    at = out["threshold"]
    assert [s["neg_to_pos"]["value"] for s in at["per_seed"]] == [0.25, 0.75]
    assert at["neg_to_pos"] == pytest.approx({"mean": 0.5, "min": 0.25, "max": 0.75, "sd": np.std([.25, .75], ddof=1)})
    assert at["pos_to_neg"]["mean"] == pytest.approx(0.125) and at["overall"]["max"] == pytest.approx(4 / 8)
    first = attack_outcome(labels, clean >= 0.5, seeds[0] >= 0.5).summary["neg_to_pos"]
    assert at["per_seed"][0]["neg_to_pos"] == first  # the same Wilson interval the cell reports for its first seed
    assert out["argmax"]["per_seed"] == at["per_seed"]  # threshold 0.5 is argmax here


def test_planner_trains_one_gan_per_seed_and_shares_seed_zero(tmp_path: Path) -> None:
    one = plan_matrix(tiny_config(tmp_path, attacks=[{"name": "gan", "options": FAST}]))
    three = plan_matrix(tiny_config(tmp_path, attacks=[{"name": "gan", "options": {**FAST, "seeds": 3}}]))
    gans = [s for s in three.stages if s.kind == "gan"]
    assert len(gans) == 3 and sorted(s.params["seed"] for s in gans) == [0, 1000, 2000]
    assert {s.key for s in one.stages if s.kind == "gan"} < {s.key for s in gans}  # seed 0 is the one-seed GAN
    attack = next(s for s in three.stages if s.kind == "attack")
    assert sorted(attack.deps) == ["data", "fakes", "fakes_1", "fakes_2", "train"]
    with pytest.raises(BenchmarkError, match="seeds"):
        plan_matrix(tiny_config(tmp_path, attacks=[{"name": "gan", "options": {**FAST, "seeds": 0}}]))


def test_adaptive_gan_is_its_own_attack_with_the_classifier_in_its_loss(tmp_path: Path) -> None:
    plan = plan_matrix(tiny_config(tmp_path, attacks=[{"name": "gan", "options": FAST},
                                                      {"name": "gan-adaptive", "options": FAST}]))
    gans = [s for s in plan.stages if s.kind == "gan"]
    assert sorted(s.params["options"].get("classifier_weight", 0.0) for s in gans) == [0.0, 1.0]
    assert {c.cell[2] for c in plan.cells} == {"gan", "gan-adaptive"}


@pytest.mark.slow
def test_a_two_seed_gan_cell_reports_both_seeds(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, attacks=[{"name": "gan", "options": {**FAST, "seeds": 2}}],
                         training={"epochs": 3, "batch_size": 16, "lr": 0.003})
    result = run(config, progress=False)
    assert not result.failed, [o.error for o in result.failed]
    store = Store(config.run.store)
    attack = next(s for s in result.plan.stages if s.kind == "attack")
    _, scores, record = read_attack(store.path(attack.key))
    seed_scores = read_seed_scores(store.path(attack.key))
    assert seed_scores.shape == (1, len(scores)) and len(record["seed_visibility"]) == 1
    assert not np.array_equal(seed_scores[0], scores)  # a second GAN training makes other fakes
    score = next(s for s in result.plan.stages if s.kind == "score")
    row = json.loads((store.path(score.key) / "row.json").read_text())
    assert row["seeds"]["n"] == 2
    first = row["seeds"]["threshold"]["per_seed"][0]
    assert first["overall"] == row["attack_outcome"]["overall"]  # seed 0 is the cell's own headline
    assert len(row["seeds"]["visibility"]) == 2


def test_one_attack_twice_under_two_labels_makes_two_cells(tmp_path: Path) -> None:
    attacks = [{"name": "gan", "options": {**FAST, "preset": "zhou2021", "unet_base": 4, "unet_levels": 2}},
               {"name": "gan", "label": "gan-fast", "options": FAST}]
    config = tiny_config(tmp_path, attacks=attacks)
    plan = plan_matrix(config)
    assert sorted(c.cell[2] for c in plan.cells) == ["gan", "gan-fast"]
    presets = sorted(s.params["options"].get("preset", "fast") for s in plan.stages if s.kind == "gan")
    assert presets == ["fast", "zhou2021"]
    assert [a.label for a in config.with_cell(None, None, "gan-fast").attacks] == ["gan-fast"]
    with pytest.raises(BenchmarkError, match="'gan' is listed twice"):
        tiny_config(tmp_path, attacks=[{"name": "gan"}, {"name": "gan"}])
    with pytest.raises(BenchmarkError, match=r"attacks\[1\].label: 'Gan Fast' is not a short lowercase name"):
        tiny_config(tmp_path, attacks=[{"name": "gan"}, {"name": "gan", "label": "Gan Fast"}])


def test_a_distilled_model_has_one_undefended_training_shared_with_its_gan(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, models=[{"name": "resnet10t"}, {"name": "resnet18", "distill": "resnet10t"}],
                         defenses=["none", "gan-fakes-relabel"],
                         attacks=[{"name": "gan-transfer", "options": {**FAST, "surrogate": "resnet18"}}])
    plan = plan_matrix(config)
    trains = [s for s in plan.stages if s.kind == "train" and s.label == "train resnet18+none"]
    assert len(trains) == 1 and "teacher" in trains[0].deps  # the GANs attack the distilled model itself
    gan_targets = {s.deps["train"] for s in plan.stages if s.kind == "gan"}
    assert trains[0].key in gan_targets
