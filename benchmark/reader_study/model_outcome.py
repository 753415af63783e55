"""The attacked model's outcome on the study's fakes: from the run's score of the GAN cell that used exactly these
fakes against the model they were made for (white-box), per image whether the model read the original right and
whether the fake fooled it, at the model's operating point."""
from __future__ import annotations

import numpy as np

from benchmark.execution.artifacts import read_score
from benchmark.execution.store import Store

__all__ = ["model_outcomes", "white_box_score"]


def white_box_score(manifest: dict, store: Store, fakes_key: str) -> tuple[str, str] | None:
    """(key, label) of the stored score of the GAN cell that attacked the fakes' own target with them, or None."""
    by_key = {s["key"]: s for s in manifest["stages"]}
    gan = by_key.get((by_key.get(fakes_key, {}).get("deps") or {}).get("gan"), {})
    target = (gan.get("deps") or {}).get("train")
    for stage in manifest["stages"]:
        if stage["kind"] != "score" or stage["status"] not in ("done", "cached") or not store.has(stage["key"]):
            continue
        attack = by_key.get((stage.get("deps") or {}).get("attack"), {})
        deps = attack.get("deps") or {}
        if target is not None and deps.get("fakes") == fakes_key and deps.get("train") == target:
            return stage["key"], stage["label"]
    return None


def model_outcomes(store: Store, score_key: str) -> dict[str, tuple[int, int]]:
    """Image id -> (model right on the original, model fooled by the fake) from a GAN cell's stored score."""
    _, flags = read_score(store.path(score_key))
    correct, fooled = np.asarray(flags["clean_correct"], bool), np.asarray(flags["fooled"], bool)
    return {str(i): (int(c), int(f)) for i, c, f in zip(flags["ids"], correct, fooled)}
