"""Stage `score`: one metrics row per cell, plus per-image flags for paired comparisons."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from benchmark.metrics import attack_outcome, classification_metrics, detection_outcome, to_jsonable
from benchmark.attacking.perturbation import perturbation_metrics
from benchmark.stages import attack as attack_stage
from benchmark.stages import data as data_stage

__all__ = ["load", "run"]


def run(params: dict, inputs: dict[str, Path], out: Path, ctx: object) -> None:
    """Score clean and adversarial predictions of one (model, defense, attack, budget) cell."""
    test = data_stage.load(inputs["data"]).subset("test")
    train_info = json.loads((inputs["train"] / "train.json").read_text())
    with np.load(inputs["train"] / "predictions.npz", allow_pickle=False) as z:
        clean_scores = z["test"]
        clean_manipulation = z["test_manipulation"] if "test_manipulation" in z.files else None
    adv_images, adv_scores, attack_info = attack_stage.load(inputs["attack"])
    threshold = float(train_info["threshold"])
    clean_pred = (clean_scores >= threshold).astype(int)
    adv_pred = (adv_scores >= threshold).astype(int)
    outcome = attack_outcome(test.labels, clean_pred, adv_pred)
    # the study's operating point, argmax (P >= 0.5), for the GAN table beside the study's numbers
    at_argmax = attack_outcome(test.labels, (clean_scores >= 0.5).astype(int), (adv_scores >= 0.5).astype(int))
    adv_manipulation = attack_stage.load_manipulation(inputs["attack"])
    if adv_manipulation is not None and clean_manipulation is not None:  # a detecting defense: count its flags
        flag_at = float(train_info.get("detection_threshold") or 0.0)  # calibrated on real validation images
        outcome.summary.update(detection_outcome(outcome.fooled, adv_manipulation > flag_at,
                                                 clean_manipulation > flag_at, clean_pred == test.labels))
        outcome.summary["flag_threshold"] = flag_at
    row = {
        "model": params["cell"]["model"], "defense": params["cell"]["defense"],
        "attack": params["cell"]["attack"], "budget": params["cell"]["budget"],
        "threat": attack_info["threat"], "access": attack_info["access"], "adaptive": attack_info["adaptive"],
        "clean": classification_metrics(test.labels, clean_scores, threshold),
        "attack_outcome": outcome.summary,
        "attack_outcome_argmax": at_argmax.summary,
        "role": params["cell"].get("role", "board"),  # "sanity": the large-budget check, on no board
        "operating_point": attack_info.get("operating_point"),
        "eot_samples": train_info.get("eot_samples", 1),
        "perturbation": perturbation_metrics(test.images, adv_images),
        "attack_seconds": attack_info["seconds"], "images_per_s": attack_info["images_per_s"],
        "train_seconds": train_info["seconds"], "val_auc": train_info["val_auc"], "threshold": threshold,
        "n_test": len(test),
        "defense_info": train_info.get("defense_info"),
        "teacher": train_info.get("teacher"),  # the model it was distilled from (recipe key distill), or None
        "masking_probe": train_info.get("masking_probe"),  # None for train artifacts made before the probe
    }
    if attack_info.get("visibility") is not None:  # GAN cells: how visible the fakes are
        row["visibility"] = attack_info["visibility"]
    detection = train_info.get("detection") or attack_info.get("detection")
    if detection is not None:  # detecting defenses: fakes flagged as manipulated, and real images flagged
        row["detection"] = detection
    # GAN cells: the attack's gallery (original, fake, difference); pixel galleries are drawn by the leaderboard
    if (inputs["attack"] / "gallery.png").is_file():
        shutil.copyfile(inputs["attack"] / "gallery.png", out / "gallery.png")
        row["gallery"] = "gallery.png"
    (out / "row.json").write_text(json.dumps(to_jsonable(row), indent=1))
    np.savez(out / "flags.npz", ids=test.ids.astype(str), labels=test.labels,
             clean_correct=clean_pred == test.labels, robust=outcome.flags, fooled=outcome.fooled)


def load(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The metrics row and the per-image flags of a score artifact."""
    with np.load(path / "flags.npz", allow_pickle=False) as z:
        flags = {k: z[k] for k in z.files}
    return json.loads((path / "row.json").read_text()), flags
