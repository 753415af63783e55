"""Running matrices: reproducibility, leaderboards, training recipes. What every executor must do (caching, force,
contained failures, growing a matrix) is tests/test_executor_contract.py."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from conftest import tiny_config

from benchmark.execution.matrix import run
from benchmark.execution.store import Store

TIMING = ["attack_seconds", "images_per_s", "train_seconds"]


def _metrics(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=TIMING).sort_values(["attack", "budget"]).reset_index(drop=True)


def test_same_seed_same_results_twice(tmp_path: Path) -> None:
    a = run(tiny_config(tmp_path / "a"), progress=False)
    b = run(tiny_config(tmp_path / "b"), progress=False)
    pd.testing.assert_frame_equal(_metrics(a.table), _metrics(b.table))
    train_a = [s for s in a.plan.stages if s.kind == "train"][0]
    wa = torch.load(Store(tmp_path / "a" / "runs").path(train_a.key) / "model.pt", weights_only=True)
    wb = torch.load(Store(tmp_path / "b" / "runs").path(train_a.key) / "model.pt", weights_only=True)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c = run(tiny_config(tmp_path / "c", run={"seed": 1, "device": "cpu", "store": str(tmp_path / "c" / "runs"),
                                             "leaderboards": str(tmp_path / "c" / "lb")}), progress=False)
    assert not _metrics(a.table)["clean_threshold"].equals(_metrics(c.table)["clean_threshold"])


def test_leaderboard_entries_and_markdown(tiny) -> None:
    result = run(tiny, progress=False)
    folder = tiny.run.leaderboards / "tiny-blobs"
    entry = json.loads((folder / "entries" / "resnet10t--none.json").read_text())
    per_attack = [a["attack_outcome"]["robust_accuracy"]["value"] for a in entry["attacks"]]
    worst = entry["worst_case_robust_accuracy"]
    assert worst["value"] <= min(per_attack)
    assert worst["lo"] <= worst["value"] <= worst["hi"]
    assert entry["config_digest"] == tiny.digest() and entry["seed"] == 0
    text = (folder / "leaderboard.md").read_text()
    assert "| 1 | resnet10t | none |" in text and "fgsm@2/255" in text and "fgsm@8/255" in text
    assert result.leaderboard == folder / "leaderboard.md"
    assert json.loads((folder / "leaderboard.json").read_text())[0]["model"] == "resnet10t"
    with np.load(Store(tiny.run.store).path(result.plan.cells[0].key) / "flags.npz") as flags:
        assert flags["robust"].dtype == bool and len(flags["robust"]) == entry["n_test"]


def test_light_augmentation_keeps_the_breast_in_place_and_strong_shifts_and_mirrors_it() -> None:
    from benchmark.training.loop import augment
    x = torch.zeros(64, 1, 32, 32)
    x[:, :, 10:12, 8:10] = 0.8  # a bright blob on the left (chest wall side), 8 px from the edge
    light = augment(x, torch.Generator().manual_seed(0), "light")
    cols = (light[:, 0] > 0).any(1).float().argmax(1)
    assert (cols == 8).all()  # only vertical flips: the blob keeps its column
    strong = augment(x, torch.Generator().manual_seed(0), "strong")
    assert strong.shape == x.shape and float(strong.min()) >= 0 and float(strong.max()) <= 1
    mass = strong.flatten(1).gt(0).sum(1)
    assert (mass <= 4).all() and (mass > 0).all()  # shifted by at most 6 px (3/16 of 32): the blob stays whole
    col = (strong[:, 0] > 0).any(1).float().argmax(1)
    assert len(set(col.tolist())) > 4  # columns vary: shifts and mirrors happen
    assert bool((col > 16).any()) and bool((col < 16).any())  # some images are mirrored to the other side
    assert torch.equal(augment(x, torch.Generator().manual_seed(0), "strong"), strong)  # seeded


def test_a_distilled_model_learns_from_its_trained_teacher(tmp_path: Path) -> None:
    short = {"name": "resnet18", "epochs": 4, "batch_size": 16, "augment": "light"}
    fgsm = [{"name": "fgsm", "budgets": ["2/255"]}]
    runs = {"kd": run(tiny_config(tmp_path / "kd", models=["resnet10t", {**short, "distill": "resnet10t"}],
                                  attacks=fgsm), progress=False),
            "plain": run(tiny_config(tmp_path / "plain", models=[short], attacks=fgsm), progress=False)}

    def artifact(which: str, model: str) -> Path:
        stage = next(s for s in runs[which].plan.stages if s.label == f"train {model}+none")
        return Store(tmp_path / which / "runs").path(stage.key)

    info = {w: json.loads((artifact(w, "resnet18") / "train.json").read_text()) for w in runs}
    assert info["kd"]["teacher"] == "resnet10t" and info["plain"]["teacher"] is None
    assert info["kd"]["history"][0]["loss"] != info["plain"]["history"][0]["loss"]  # same batches, another loss
    teacher = np.load(artifact("kd", "resnet10t") / "predictions.npz")["test"]
    follows = {w: np.corrcoef(teacher, np.load(artifact(w, "resnet18") / "predictions.npz")["test"])[0, 1]
               for w in runs}
    assert follows["kd"] > follows["plain"] + 0.3  # test-score correlation with the teacher: 0.68 against 0.19
    auc = {w: r.table.set_index("model").loc["resnet18", "clean_auc"] for w, r in runs.items()}
    assert auc["kd"] > auc["plain"] + 0.1  # 0.71 against 0.51 after 4 epochs
    entries = {json.loads(p.read_text())["model"]: json.loads(p.read_text())
               for p in (tmp_path / "kd" / "leaderboards").glob("*/entries/*.json")}
    assert entries["resnet18"]["teacher"] == "resnet10t" and entries["resnet10t"]["teacher"] is None
