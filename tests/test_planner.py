"""The planner: one stage per distinct artifact, keys that change only when their inputs do."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import tiny_config

from benchmark.errors import BenchmarkError
from benchmark.execution.planner import plan_matrix


def test_matrix_expands_to_cells_and_shared_stages(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, models=["resnet10t", "resnet18"])
    plan = plan_matrix(config)
    kinds = [s.kind for s in plan.stages]
    assert kinds.count("data") == 1 and kinds.count("train") == 2
    assert kinds.count("attack") == 4 and kinds.count("score") == 4 and len(plan.cells) == 4
    order = {s.key: i for i, s in enumerate(plan.stages)}
    for stage in plan.stages:  # dependency order
        assert all(order[d] < order[stage.key] for d in stage.deps.values())
    assert sorted({c.cell[3] for c in plan.cells}) == pytest.approx([2 / 255, 8 / 255])


def test_adding_an_entry_keeps_existing_keys(tmp_path: Path) -> None:
    small = plan_matrix(tiny_config(tmp_path))
    bigger = plan_matrix(tiny_config(tmp_path, models=["resnet10t", "resnet18"],
                                     attacks=[{"name": "fgsm", "budgets": ["2/255", "8/255", "4/255"]}]))
    assert {s.key for s in small.stages} < {s.key for s in bigger.stages}


def test_keys_change_with_seed_and_recipe(tmp_path: Path) -> None:
    base = {s.kind: s.key for s in plan_matrix(tiny_config(tmp_path)).stages}
    reseeded = {s.kind: s.key for s in plan_matrix(tiny_config(tmp_path, run={"seed": 1})).stages}
    assert all(base[k] != reseeded[k] for k in ("data", "train", "attack", "score"))
    longer = {s.kind: s.key for s in plan_matrix(tiny_config(tmp_path, training={"epochs": 3})).stages}
    assert longer["data"] == base["data"] and longer["train"] != base["train"]


def test_unknown_names_and_budgets_fail_before_running(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="unknown attack 'fgsn'; did you mean 'fgsm'"):
        plan_matrix(tiny_config(tmp_path, attacks=["fgsn"]))
    with pytest.raises(BenchmarkError, match=r"budget 2 is outside \(0, 1\] for a linf attack"):
        plan_matrix(tiny_config(tmp_path, attacks=[{"name": "fgsm", "budgets": [2]}]))
    default_budgets = plan_matrix(tiny_config(tmp_path, attacks=["fgsm"]))
    expected = [0.5 / 255, 1 / 255, 2 / 255, 4 / 255, 8 / 255]
    assert sorted(c.cell[3] for c in default_budgets.cells) == pytest.approx(expected)


def test_a_distilled_model_trains_after_its_teacher(tmp_path: Path) -> None:
    def trains(plan):  # label -> train stage
        return {s.label: s for s in plan.stages if s.kind == "train"}
    # teacher outside the matrix: planned from its own recipe over [training], trained without defense
    alone = trains(plan_matrix(tiny_config(tmp_path, models=[{"name": "resnet18", "distill": "resnet10t"}],
                                           defenses=["none", "pgd-at"])))
    teacher = alone["train resnet10t+none"]
    assert teacher.params["model"]["train"]["distill"] is None and teacher.deps == {"data": teacher.deps["data"]}
    for defense in ("none", "pgd-at"):
        student = alone[f"train resnet18+{defense}"]
        assert student.deps["teacher"] == teacher.key
        assert student.params["teacher"]["model"] == teacher.params["model"]
    # teacher in the matrix: the same stage serves as a cell and as the teacher
    student = {"name": "resnet18", "distill": "resnet10t"}
    both = trains(plan_matrix(tiny_config(tmp_path, models=["resnet10t", student])))
    assert both["train resnet18+none"].deps["teacher"] == both["train resnet10t+none"].key
    plain = trains(plan_matrix(tiny_config(tmp_path, models=["resnet18"])))
    assert "teacher" not in plain["train resnet18+none"].deps and len(plain) == 1


def test_distill_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="unknown model 'resnet10'; did you mean 'resnet10t'"):
        plan_matrix(tiny_config(tmp_path, models=[{"name": "resnet18", "distill": "resnet10"}]))
    with pytest.raises(BenchmarkError, match="names the model itself"):
        plan_matrix(tiny_config(tmp_path, models=[{"name": "resnet18", "distill": "resnet18"}]))
    with pytest.raises(BenchmarkError, match="'resnet10t': its teacher 'resnet18' distils from 'resnet10t' itself"):
        plan_matrix(tiny_config(tmp_path, models=[{"name": "resnet10t", "distill": "resnet18"},
                                                  {"name": "resnet18", "distill": "resnet10t"}]))


def test_every_entry_gets_one_sanity_cell_on_no_board(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, models=["resnet10t", "resnet18"], attack={"sanity_budget": "32/255"})
    plan = plan_matrix(config)
    sanity = [s for s in plan.cells if s.params["cell"].get("role") == "sanity"]
    assert len(plan.cells) == 4 + 2 and len(sanity) == 2
    assert {s.cell[:2] for s in sanity} == {("resnet10t", "none"), ("resnet18", "none")}
    attack = plan.by_key()[sanity[0].deps["attack"]]
    assert attack.params["attack"] == {"name": "pgd-linf", "options": {}}
    assert attack.params["budget"] == pytest.approx(32 / 255)
    assert "stage:attack" in attack.versions and "attack:pgd-linf" in attack.versions
    off = plan_matrix(tiny_config(tmp_path, models=["resnet10t"], attack={"sanity_budget": 0}))
    assert not [s for s in off.cells if s.params["cell"].get("role") == "sanity"]
    # a matrix cell at the same budget shares the attack artifact; only the score's role differs
    shared = tiny_config(tmp_path, attacks=[{"name": "pgd-linf", "budgets": ["32/255"]}],
                         attack={"sanity_budget": "32/255"})
    kinds = [s.kind for s in plan_matrix(shared).stages]
    assert kinds.count("attack") == 1 and kinds.count("score") == 2


def test_an_attack_needing_fakes_and_masks_gets_its_fakes_stage(tmp_path: Path) -> None:
    from benchmark.registry import get_registry, list_components

    def tmp_lesion_gan(model, x, y, eps, ctx):
        """A GAN edit confined to lesions: needs both fakes and masks."""
        return ctx.fakes

    list_components("attacks")
    registry = get_registry("attacks")
    registry.add("tmp-fakes-masks", tmp_lesion_gan, threat="semantic", needs=("fakes", "masks"))
    try:
        plan = plan_matrix(tiny_config(tmp_path, dataset={"name": "synthetic-mammo", "image_size": 32},
                                       attacks=[{"name": "tmp-fakes-masks"}]))
        attack = next(s for s in plan.stages if s.kind == "attack")
        assert "fakes" in attack.deps and [s.kind for s in plan.stages].count("gan") == 1
    finally:
        registry.remove("tmp-fakes-masks")


def test_every_entrys_options_are_checked_before_planning(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match=r"tiny.toml: defenses.jpeg.options.qualty: unknown option; "
                                             r"did you mean 'quality'\?"):
        plan_matrix(tiny_config(tmp_path, defenses=[{"name": "jpeg", "options": {"qualty": 50}}]))
    with pytest.raises(BenchmarkError, match=r"tiny.toml: attacks.gan.options.joint_steps: expected a whole number"):
        plan_matrix(tiny_config(tmp_path, attacks=[{"name": "gan", "options": {"joint_steps": "many"}}]))
