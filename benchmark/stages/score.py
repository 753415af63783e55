"""Stage `score`: one metrics row per cell, plus per-image flags for paired comparisons."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmark.attacking.perturbation import perturbation_metrics
from benchmark.attacking.seeds import seed_summary
from benchmark.execution.artifacts import (
    SCORE,
    read_attack,
    read_clean_manipulation,
    read_clean_scores,
    read_data,
    read_manipulation,
    read_seed_scores,
    read_train_record,
)
from benchmark.metrics import attack_outcome, classification_metrics, detection_outcome, to_jsonable
from benchmark.stages.context import StageContext

__all__ = ["run"]


def run(params: dict, inputs: dict[str, Path], out: Path, ctx: StageContext) -> None:
    """Score clean and adversarial predictions of one (model, defense, attack, budget) cell."""
    test = read_data(inputs["data"]).subset("test")
    train_info = read_train_record(inputs["train"])
    clean_scores, clean_manipulation = read_clean_scores(inputs["train"]), read_clean_manipulation(inputs["train"])
    adv_images, adv_scores, attack_info = read_attack(inputs["attack"])
    threshold = float(train_info["threshold"])
    clean_pred = (clean_scores >= threshold).astype(int)
    adv_pred = (adv_scores >= threshold).astype(int)
    outcome = attack_outcome(test.labels, clean_pred, adv_pred)
    # the study's operating point, argmax (P >= 0.5), for the GAN table beside the study's numbers
    at_argmax = attack_outcome(test.labels, (clean_scores >= 0.5).astype(int), (adv_scores >= 0.5).astype(int))
    adv_manipulation = read_manipulation(inputs["attack"])
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
    if train_info.get("pretrained"):  # trained from a local weights file: its name and sha256
        row["pretrained"] = train_info["pretrained"]
    if attack_info.get("visibility") is not None:  # GAN cells: how visible the fakes are
        row["visibility"] = attack_info["visibility"]
    seed_scores = read_seed_scores(inputs["attack"])
    if seed_scores is not None:  # GAN cells over several GAN trainings: each seed's rates, their mean and spread
        row["seeds"] = seed_summary(test.labels, clean_scores, [adv_scores, *seed_scores], threshold)
        row["seeds"]["visibility"] = [attack_info.get("visibility"), *attack_info.get("seed_visibility", [])]
    detection = train_info.get("detection") or attack_info.get("detection")
    if detection is not None:  # detecting defenses: fakes flagged as manipulated, and real images flagged
        row["detection"] = detection
    (out / SCORE.row).write_text(json.dumps(to_jsonable(row), indent=1))
    np.savez(out / SCORE.flags, ids=test.ids.astype(str), labels=test.labels,
             clean_correct=clean_pred == test.labels, robust=outcome.flags, fooled=outcome.fooled)

