"""Local pretrained weights (train setting pretrained_file): timm's RGB checkpoint in, one channel summed, head
dropped, the file's sha256 in the train stage's key, its record and the leaderboard entry."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import timm
import torch
from conftest import tiny_config, tiny_raw

from benchmark.config import parse_config
from benchmark.errors import BenchmarkError
from benchmark.execution.matrix import run
from benchmark.execution.planner import plan_matrix
from benchmark.training.model_factory import create_timm
from benchmark.training.pretrained import load_pretrained


def _imagenet_like(path: Path, name: str = "resnet10t", seed: int = 0) -> dict:
    """A 3-channel, 1000-class timm state_dict written the way a user brings one (torch.save of state_dict())."""
    torch.manual_seed(seed)
    state = timm.create_model(name, in_chans=3).state_dict()
    torch.save(state, path)
    return state


def test_rgb_weights_are_summed_into_the_one_channel_conv_and_the_head_is_dropped(tmp_path: Path) -> None:
    state = _imagenet_like(tmp_path / "w.pt")
    model = create_timm("resnet10t", 32)
    head_before = model.fc.weight.detach().clone()
    info = load_pretrained(model, tmp_path / "w.pt", None)
    assert torch.equal(model.conv1[0].weight, state["conv1.0.weight"].sum(dim=1, keepdim=True))
    assert model.conv1[0].weight.shape == (24, 1, 3, 3)
    assert torch.equal(model.layer4[0].conv2.weight, state["layer4.0.conv2.weight"])
    assert torch.equal(model.bn1.running_mean, state["bn1.running_mean"])
    assert torch.equal(model.fc.weight, head_before) and model.fc.weight.shape == (2, 512)
    assert info["adapted_input_conv"] == ["conv1.0.weight"] and info["dropped_head"] == ["fc.weight", "fc.bias"]
    assert info["sha256"] == hashlib.sha256((tmp_path / "w.pt").read_bytes()).hexdigest()


def test_a_bad_weights_file_fails_with_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    _imagenet_like(tmp_path / "resnet18.pt", "resnet18")
    torch.save({"w": lambda: 0}.__class__, tmp_path / "pickle.pt")  # a class, not tensors: refused by weights_only
    cases = {"junk.pt": "refused: not a plain weights file", "resnet18.pt": "does not fit ResNet: size mismatch",
             "pickle.pt": "refused: not a plain weights file"}
    for name, problem in cases.items():
        with pytest.raises(BenchmarkError) as err:
            load_pretrained(create_timm("resnet10t", 32), tmp_path / name, None)
        assert "\n" not in str(err.value) and f"pretrained_file {tmp_path / name} {problem}" in str(err.value)
    with pytest.raises(BenchmarkError, match="changed since the run was planned"):
        load_pretrained(create_timm("resnet10t", 32), tmp_path / "junk.pt", "0" * 64)
    with pytest.raises(BenchmarkError, match=r"tiny.toml: training.pretrained_file: cannot read '.*missing.pt'"):
        tiny_config(tmp_path, training={"epochs": 1, "pretrained_file": str(tmp_path / "missing.pt")})


def test_the_train_key_follows_the_file_content_not_its_path(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    keys = []
    for seed in (0, 0, 1):
        _imagenet_like(path, seed=seed)
        config = tiny_config(tmp_path, training={"epochs": 1, "pretrained_file": str(path)})
        keys.append([s.key for s in plan_matrix(config).stages if s.kind == "train"][0])
    assert keys[0] == keys[1] != keys[2]


def test_a_model_trained_from_a_local_file_records_its_hash_in_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "resnet10t-rgb.pt"
    _imagenet_like(path)
    raw = tiny_raw(tmp_path)
    raw["training"] = {**raw["training"], "epochs": 1}
    raw["models"] = [{"name": "resnet10t", "pretrained_file": str(path)}]
    config = parse_config(raw, "tiny.toml")
    result = run(config, progress=False)
    assert not result.failed
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    entry = json.loads((config.run.leaderboards / "tiny-blobs" / "entries" / "resnet10t--none.json").read_text())
    assert entry["pretrained"] == {"file": "resnet10t-rgb.pt", "sha256": sha}
    train = [s for s in result.plan.stages if s.kind == "train"][0]
    assert train.params["model"]["train"]["pretrained_sha256"] == sha
