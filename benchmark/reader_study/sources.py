"""Where a study's images come from: a recorded run's stored GAN fakes of one cell (model + defense)."""
from __future__ import annotations

import json
from pathlib import Path

from benchmark.errors import BenchmarkError
from benchmark.execution.store import Store
from benchmark.reader_study.model_outcome import white_box_score

__all__ = ["ATTACKS", "FakesSource", "find_fakes"]

ATTACKS = ("gan",)  # attacks whose images are stored whole (the lesion GAN's fakes); the others are budgets


class FakesSource:
    """A run's fakes artifact and the data artifact it was made from."""

    def __init__(self, run_id: str, label: str, fakes_key: str, data_key: str,
                 score: tuple[str, str] | None = None) -> None:
        self.run_id, self.label, self.fakes_key, self.data_key = run_id, label, fakes_key, data_key
        self.score = score  # (key, label) of the GAN cell that attacked the fakes' own target with them


def find_fakes(run_dir: Path, store: Store, model: str | None = None, defense: str | None = None,
               attack: str = "gan") -> FakesSource:
    """The run's stored fakes made against model+defense (the first stored one when neither is given)."""
    if attack not in ATTACKS:
        raise BenchmarkError(f"--attack {attack}: a reader study needs whole synthetic images; use --attack gan")
    manifest = json.loads((Path(run_dir) / "manifest.json").read_text())
    found = []
    for stage in manifest["stages"]:
        if stage["kind"] != "fakes" or stage["status"] not in ("done", "cached") or not store.has(stage["key"]):
            continue
        target = stage["label"].removeprefix("fakes vs ")
        m, _, d = target.partition("+")
        if (model is None or m == model) and (defense is None or d == defense):
            found.append(FakesSource(manifest["run_id"], stage["label"], stage["key"], stage["deps"]["data"],
                                     white_box_score(manifest, store, stage["key"])))
    found = [f for f in found if store.has(f.data_key)]
    if not found:
        wanted = f" against {model or '*'}+{defense or '*'}" if model or defense else ""
        raise BenchmarkError(f"run {manifest['run_id']} has no stored GAN fakes{wanted}; run a matrix with the "
                             "`gan` attack (configs/default.toml has it) or pick another --model/--defense/--run")
    return found[0]
