"""Batches that fit: probe arithmetic, run.max_memory, adapted batches that keep results bit for bit, the one line."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import tiny_config

from benchmark.config import parse_memory
from benchmark.errors import BenchmarkError
from benchmark.execution.artifacts import ATTACK
from benchmark.execution.matrix import run
from benchmark.execution.store import Store
from benchmark.gan.networks import UNetGenerator
from benchmark.memory_fit import MEMORY_SAFETY, available_bytes, fit_batch, micro_batches, probe_bytes
from benchmark.stages import attack as attack_stage
from benchmark.stages import fakes as fakes_stage
from benchmark.stages import train as train_stage
from benchmark.stages.context import StageContext
from benchmark.training.inference import predict_proba
from benchmark.training.model_factory import create_timm

CPU = torch.device("cpu")


def test_memory_sizes_read_as_bytes() -> None:
    assert parse_memory("8GB") == 8 * 10**9
    assert parse_memory("512 MiB") == 512 * 2**20
    assert parse_memory(4096) == 4096
    assert parse_memory("1.5GiB") == 3 * 2**29
    for bad in ("lots", "8 parsecs", "-1GB", True):
        with pytest.raises(ValueError):
            parse_memory(bad)


def test_max_memory_in_the_config_names_the_key_when_wrong(tmp_path: Path) -> None:
    raw_run = {"device": "cpu", "store": str(tmp_path / "runs"), "max_memory": "2GB"}
    assert tiny_config(tmp_path, run=raw_run).run.max_memory == 2 * 10**9
    with pytest.raises(BenchmarkError, match=r"run\.max_memory: cannot read 'lots'"):
        tiny_config(tmp_path, run={**raw_run, "max_memory": "lots"})


def test_the_cpu_probe_counts_every_new_storage_once() -> None:
    assert probe_bytes(lambda: torch.zeros(1000), CPU) == 4000  # empty + fill_ in place: one storage
    assert probe_bytes(lambda: torch.ones(10, 10).mul(2).view(-1), CPU) == 800  # the view shares mul's storage


def test_max_memory_caps_the_free_memory_and_sets_the_batch() -> None:
    assert available_bytes(CPU, 1000) == (1000, "run.max_memory")
    allocate = lambda: torch.zeros(1000)  # noqa: E731 - 4000 bytes per image
    assert fit_batch("attack", 64, allocate, CPU, None).used == 64  # ample memory: the configured batch
    fit = fit_batch("attack", 64, allocate, CPU, 40_000)
    assert (fit.used, fit.per_image_bytes, fit.record()["adapted"]) == (int(40_000 * MEMORY_SAFETY) // 4000, 4000,
                                                                         True)
    with pytest.raises(BenchmarkError) as err:
        fit_batch("attack", 64, allocate, CPU, 4000)
    message = str(err.value)
    assert "\n" not in message and message.startswith("stage attack: one image needs about 4e-06 GB")
    assert "run.max_memory" in message and "dataset.image_size" in message


def test_fakes_adapt_their_batch_to_max_memory_and_stay_the_same_images() -> None:
    torch.manual_seed(0)
    generators = {d: UNetGenerator(base=4, levels=2, logit_skip=False) for d in ("insert", "remove")}
    rng = np.random.default_rng(0)
    data = SimpleNamespace(images=rng.random((10, 1, 32, 32), dtype=np.float32), labels=np.arange(10) % 2)
    full, fit = fakes_stage._generate(generators, data, StageContext(CPU, 64))
    assert (fit["used"], fit["adapted"]) == (64, False)
    per_image = fit["per_image_bytes"]
    small, fit = fakes_stage._generate(generators, data, StageContext(CPU, 64, max_memory=int(per_image * 2.5 / 0.8)))
    assert (fit["used"], fit["adapted"], fit["source"]) == (2, True, "run.max_memory")
    np.testing.assert_array_equal(small, full)  # GroupNorm and convolutions see each image alone
    with pytest.raises(BenchmarkError, match=r"^stage fakes: one image needs about .* raise run\.max_memory"):
        fakes_stage._generate(generators, data, StageContext(CPU, 64, max_memory=per_image // 2))


def test_fakes_halve_their_batch_when_the_device_runs_out(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def tight(generators: dict, images: np.ndarray, labels: np.ndarray, device: torch.device, batch: int) -> None:
        calls.append(batch)
        if batch > 16:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return images
    monkeypatch.setattr(fakes_stage, "apply_generators", tight)
    generators = {d: UNetGenerator(base=4, levels=2) for d in ("insert", "remove")}
    data = SimpleNamespace(images=np.zeros((4, 1, 32, 32), np.float32), labels=np.array([0, 1, 0, 1]))
    _, fit = fakes_stage._generate(generators, data, StageContext(CPU, 64))
    assert calls == [64, 32, 16] and fit["used"] == 16 and fit["adapted"]


def test_an_attack_squeezed_into_max_memory_gives_the_same_images_bit_for_bit(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, attacks=[{"name": "fgsm", "budgets": ["2/255"]},
                                            {"name": "pgd-linf", "budgets": ["2/255"]}])  # random start: seeded
    result = run(config, progress=False)
    store = Store(config.run.store)
    stages = [s for s in result.plan.stages if s.kind == "attack"]
    assert len(stages) == 2
    for stage in stages:
        folder = store.path(stage.key)
        record = json.loads((folder / ATTACK.record).read_text())
        assert record["batch"]["used"] == 64 and not record["batch"]["adapted"]  # ample memory: the default
        per_image = record["batch"]["per_image_bytes"]
        inputs = {role: store.path(key) for role, key in stage.deps.items()}
        out = tmp_path / f"squeezed-{stage.params['attack']['name']}"
        out.mkdir()
        ctx = StageContext(CPU, config.attack_batch_size, False, max_memory=int(per_image * 3.5 / MEMORY_SAFETY))
        attack_stage.run(stage.params, inputs, out, ctx)
        squeezed = json.loads((out / ATTACK.record).read_text())["batch"]
        assert (squeezed["used"], squeezed["adapted"]) == (3, True)
        with np.load(folder / ATTACK.images) as a, np.load(out / ATTACK.images) as b:
            assert len(a["images"]) > 3  # several micro-batches
            np.testing.assert_array_equal(a["images"], b["images"])
            np.testing.assert_array_equal(a["scores"], b["scores"])
        with pytest.raises(BenchmarkError, match=r"^stage attack: one image needs .* raise run\.max_memory"):
            attack_stage.run(stage.params, inputs, out, StageContext(CPU, 64, False, max_memory=per_image // 2))


def test_checkpointed_generator_blocks_give_the_same_gradients_bit_for_bit() -> None:
    torch.manual_seed(0)
    gen = UNetGenerator(base=4, levels=3, logit_skip=False)
    x = torch.rand(2, 1, 64, 64)
    grads = []
    for checkpointed in (False, True):
        gen.zero_grad()
        gen.checkpoint_blocks = checkpointed
        gen(x).square().mean().backward()
        grads.append([p.grad.clone() for p in gen.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))


def test_micro_batches_never_leave_a_lone_image() -> None:
    def sizes(n: int, size: int) -> list[int]:
        return [s.stop - s.start for s in micro_batches(n, size)]
    assert sizes(9, 4) == [4, 3, 2] and sizes(5, 2) == [2, 3] and sizes(12, 5) == [5, 5, 2]
    assert sizes(1, 4) == [1] and sizes(2, 1) == [1, 1] and sizes(64, 64) == [64]


def test_the_probe_leaves_the_random_streams_where_they_were() -> None:
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    probe_bytes(lambda: torch.rand(100), CPU)
    assert torch.equal(torch.rand(4), expected)


def test_a_train_stage_out_of_memory_names_the_batch_size_to_lower(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_config(tmp_path)
    result = run(config, progress=False)
    store = Store(config.run.store)
    stage = [s for s in result.plan.stages if s.kind == "train"][0]

    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
    monkeypatch.setattr(train_stage, "train_classifier", out_of_memory)
    (tmp_path / "out").mkdir()
    with pytest.raises(BenchmarkError) as err:
        train_stage.run(stage.params, {role: store.path(key) for role, key in stage.deps.items()}, tmp_path / "out",
                        StageContext(CPU, 64, False))
    assert str(err.value) == ("stage train resnet10t+none: out of cpu memory at batch_size = 16 and 32 px; lower the "
                              "model's batch_size (or [training] batch_size) or dataset.image_size")


def test_predictions_are_the_same_bits_at_any_batch_size() -> None:
    torch.manual_seed(0)
    model = create_timm("resnet10t", 32)
    images = np.random.default_rng(0).random((257, 1, 32, 32), dtype=np.float32)  # 257 = 2 x 128 + a lone image
    full = predict_proba(model, images, CPU, 128)
    for size in (2, 5, 64):
        np.testing.assert_array_equal(predict_proba(model, images, CPU, size), full)


def test_out_of_memory_at_a_batch_of_one_is_the_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.setattr(fakes_stage, "apply_generators", never)
    generators = {d: UNetGenerator(base=4, levels=2) for d in ("insert", "remove")}
    data = SimpleNamespace(images=np.zeros((4, 1, 32, 32), np.float32), labels=np.array([0, 1, 0, 1]))
    with pytest.raises(BenchmarkError) as err:
        fakes_stage._generate(generators, data, StageContext(CPU, 4, max_memory=10**9))
    assert str(err.value).startswith("stage fakes: ran out of memory at a batch of one image (about ")
    assert str(err.value).endswith("GB free by run.max_memory); raise run.max_memory, free device memory, or lower "
                                   "dataset.image_size")
