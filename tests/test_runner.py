"""Running matrices in-process: caching, reproducibility, contained failures, leaderboards."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmark.execution.matrix import run
from benchmark.execution.store import Store
from conftest import tiny_config

TIMING = ["attack_seconds", "images_per_s", "train_seconds"]


def _metrics(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=TIMING).sort_values(["attack", "budget"]).reset_index(drop=True)


def test_rerun_does_no_work_and_gives_the_same_table(tiny) -> None:
    first = run(tiny, progress=False)
    assert {o.status for o in first.outcomes.values()} == {"done"}
    second = run(tiny, progress=False)
    assert {o.status for o in second.outcomes.values()} == {"cached"}
    pd.testing.assert_frame_equal(first.table, second.table)
    row = first.table.set_index("budget").sort_index()
    assert row["clean_accuracy"].iloc[0] >= 0.75  # the tiny set is easy (2 epochs; chance is 0.5)
    # a bigger budget fools at least as many images as a smaller one
    assert row["attack_outcome_robust_accuracy"].iloc[1] <= row["attack_outcome_robust_accuracy"].iloc[0]


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


def test_failing_cells_are_contained(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, attacks=[{"name": "fgsm", "budgets": ["2/255"]},
                                            {"name": "broken", "budgets": ["2/255"]},
                                            {"name": "wrong-shape", "budgets": ["2/255"]}])
    result = run(config, progress=False)
    status = {o.label: (o.status, o.error) for o in result.outcomes.values()}
    assert status["attack broken@2/255 vs resnet10t+none"] == (
        "failed", "RuntimeError: this attack is broken on purpose")
    assert status["score broken@2/255 vs resnet10t+none"][0] == "skipped"
    assert "attack wrong-shape returned (20, 1, 31, 32), expected a tensor of shape (20, 1, 32, 32)" in \
        status["attack wrong-shape@2/255 vs resnet10t+none"][1]
    assert status["score fgsm@2/255 vs resnet10t+none"][0] == "done"
    assert list(result.table["attack"]) == ["fgsm"]
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["counts"] == {"done": 4, "cached": 0, "failed": 2, "skipped": 2}


def test_force_recomputes_a_stage_kind_and_its_dependents(tiny) -> None:
    run(tiny, progress=False)
    forced = run(tiny, force=("train",), progress=False)
    by_kind = {}
    for o in forced.outcomes.values():
        by_kind.setdefault(o.kind, set()).add(o.status)
    assert by_kind == {"data": {"cached"}, "train": {"done"}, "attack": {"done"}, "score": {"done"}}


def test_growing_a_matrix_computes_only_new_cells(tmp_path: Path) -> None:
    run(tiny_config(tmp_path), progress=False)
    grown = run(tiny_config(tmp_path, attacks=[{"name": "fgsm", "budgets": ["2/255", "8/255", "4/255"]}]),
                progress=False)
    done = sorted(o.label for o in grown.outcomes.values() if o.status == "done")
    assert done == ["attack fgsm@4/255 vs resnet10t+none", "score fgsm@4/255 vs resnet10t+none"]


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
