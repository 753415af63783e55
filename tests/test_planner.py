"""The planner: one stage per distinct artifact, keys that change only when their inputs do."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.errors import BenchmarkError
from benchmark.planner import plan_matrix
from conftest import tiny_config


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
    assert sorted(c.cell[3] for c in default_budgets.cells) == pytest.approx([0.5 / 255, 1 / 255, 2 / 255, 4 / 255, 8 / 255])
