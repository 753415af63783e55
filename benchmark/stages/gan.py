"""Stage `gan`: the two lesion generators (insert, remove) trained on the train split against one classifier."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from benchmark.device import seed_everything
from benchmark.gan.networks import UNetGenerator
from benchmark.gan.training import DIRECTIONS, GanSchedule, schedule_from_options, train_gan
from benchmark.stages import data as data_stage
from benchmark.stages import train as train_stage

__all__ = ["run", "load"]


def run(params: dict, inputs: dict[str, Path], out: Path, ctx: object) -> None:
    """Train both generators; the critic grows from the (white-box target or surrogate) classifier's features."""
    seed_everything(params["seed"])
    data = data_stage.load(inputs["data"])
    train = data.subset("train")
    model, _, _ = train_stage.load(inputs["train"], params["target"], data.images.shape[-1], ctx.device)
    schedule = schedule_from_options(params["options"], "attacks.gan")
    target = f"{params['target']['model']['name']}+{params['target']['defense']['name']}"
    generators, record = train_gan(train.images, train.labels, model, schedule, ctx.device, params["seed"],
                                   label=f"gan vs {target}", progress=ctx.progress)
    torch.save({name: {k: v.detach().cpu() for k, v in g.state_dict().items()} for name, g in generators.items()},
               out / "generators.pt")
    record.update({"target": target,
                   "seconds": sum(d["seconds"] for d in record["directions"].values())})
    (out / "gan.json").write_text(json.dumps(record, indent=1))


def load(path: Path, device: torch.device) -> tuple[dict[str, UNetGenerator], dict]:
    """The generators of a gan artifact (weights_only load) and its record."""
    record = json.loads((path / "gan.json").read_text())
    schedule = GanSchedule(**record["schedule"])
    states = torch.load(path / "generators.pt", map_location="cpu", weights_only=True)
    generators = {}
    for name in DIRECTIONS:
        gen = UNetGenerator(schedule.unet_base, schedule.unet_levels, schedule.logit_skip)
        gen.load_state_dict(states[name])
        generators[name] = gen.to(device).eval()
    return generators, record
