"""GAN cells over several GAN trainings (attack option `seeds`): the further seeds' fakes scored in the attack stage,
and in the score stage each seed's fooled rates with their mean and spread.

One GAN training per cell is not a measurement: the same schedule fools 0/52 or 7/52 positives depending on the seed.
The cell's headline numbers stay those of the first seed (its images are the ones on the board); `seeds` in the
metrics row adds every seed's rates, their mean and their spread (min, max, sample standard deviation).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.execution.artifacts import read_fakes
from benchmark.metrics import attack_outcome

__all__ = ["seed_roles", "seed_role", "score_seed_fakes", "seed_summary", "SEED_RATES"]

SEED_RATES = ("neg_to_pos", "pos_to_neg", "overall")  # the study's two directions, and both together


def seed_role(k: int) -> str:
    """The input role of the k-th further seed's fakes (k >= 1; seed 0's are `fakes`)."""
    return f"fakes_{k}"


def seed_roles(inputs: dict[str, Path]) -> list[str]:
    """The further seeds' fakes roles of an attack stage's inputs, in seed order."""
    return sorted((r for r in inputs if r.startswith("fakes_")), key=lambda r: int(r.split("_")[1]))


def score_seed_fakes(inputs: dict[str, Path], splits: np.ndarray, predict: Any) -> tuple[np.ndarray | None, list]:
    """P(positive) of the deployed model (`predict(images) -> scores`) on each further seed's test fakes, stacked
    (seeds-1, n), and each seed's visibility record; (None, []) for a cell with one seed."""
    roles = seed_roles(inputs)
    if not roles:
        return None, []
    rows, visibility = [], []
    for role in roles:
        images, record = read_fakes(inputs[role])
        with torch.no_grad():
            rows.append(np.asarray(predict(images[splits == "test"]), dtype=np.float32))
        visibility.append(record)
    return np.stack(rows), visibility


def _rates(labels: np.ndarray, clean: np.ndarray, adv: np.ndarray, threshold: float) -> dict[str, dict]:
    out = attack_outcome(labels, (clean >= threshold).astype(int), (adv >= threshold).astype(int)).summary
    return {k: out[k] for k in SEED_RATES}


def _spread(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()),
            "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0}


def seed_summary(labels: np.ndarray, clean_scores: np.ndarray, adv_scores: list[np.ndarray],
                 threshold: float) -> dict[str, Any]:
    """Per-seed fooled rates (Wilson intervals) at the cell's threshold and at argmax, with mean and spread."""
    out: dict[str, Any] = {"n": len(adv_scores)}
    for name, at in (("threshold", threshold), ("argmax", 0.5)):
        per_seed = [_rates(labels, clean_scores, adv, at) for adv in adv_scores]
        out[name] = {"per_seed": per_seed,
                     **{k: _spread([s[k]["value"] for s in per_seed]) for k in SEED_RATES}}
    return out
