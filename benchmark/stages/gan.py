"""Stage `gan`: the two lesion generators (insert, remove) trained on the train split against one classifier."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from benchmark.device import seed_everything
from benchmark.execution.artifacts import GAN, read_data, read_deployed
from benchmark.gan.schedule import schedule_from_options
from benchmark.gan.training import train_gan
from benchmark.stages.context import StageContext

__all__ = ["run"]


def run(params: dict, inputs: dict[str, Path], out: Path, ctx: StageContext) -> None:
    """Train both generators; the critic grows from the (white-box target or surrogate) classifier's features."""
    seed_everything(params["seed"])
    data = read_data(inputs["data"])
    train = data.subset("train")
    model, _, _ = read_deployed(inputs["train"], params["target"], data.images.shape[-1], ctx.device)
    schedule = schedule_from_options(params["options"], "attacks.gan")
    target = f"{params['target']['model']['name']}+{params['target']['defense']['name']}"
    generators, record = train_gan(train.images, train.labels, model, schedule, ctx.device, params["seed"],
                                   label=f"gan vs {target}", progress=ctx.progress)
    torch.save({name: {k: v.detach().cpu() for k, v in g.state_dict().items()} for name, g in generators.items()},
               out / GAN.generators)
    record.update({"target": target,
                   "seconds": sum(d["seconds"] for d in record["directions"].values())})
    (out / GAN.record).write_text(json.dumps(record, indent=1))
