"""benchmarks/estimate_runtime.py: the arithmetic of the runtime estimate (gradients, FLOPs, scheduling on N GPUs)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import load_benchmark_script, tiny_raw, write_toml

est = load_benchmark_script("estimate_runtime")


def test_gradients_per_image_follow_each_attacks_budget() -> None:
    assert est.attack_gradients("fgsm", {}) == 1
    assert est.attack_gradients("pgd-linf", {}) == 10
    assert est.attack_gradients("pgd-l2", {"steps": 20, "restarts": 2}) == 40
    assert est.attack_gradients("cw-l2", {}) == 100
    assert est.attack_gradients("deepfool", {}) == 200  # upper bound: 100 iterations, 2 classes
    assert est.attack_gradients("deepfool", {}, robust=0.0) == 2  # every image fooled at the first iteration
    assert est.attack_gradients("square", {"queries": 299}) == pytest.approx(100)
    assert est.attack_gradients("autoattack", {}, robust=0.0) == 100  # only the first APGD run
    assert est.attack_gradients("autoattack", {}) == pytest.approx(500 + 200 + 25000 / 3)
    assert est.attack_gradients("gan", {}) == 0


def test_gan_and_train_flops_count_every_pass() -> None:
    sched = SimpleNamespace(identity_steps=1, head_steps=0, joint_steps=0, critic_steps=1, batch_size=1,
                            classifier_weight=0.0)
    assert est.gan_flops(sched, 1.0, 1.0) == 2 * 3  # both directions, forward and backward of the generator
    sched = SimpleNamespace(identity_steps=0, head_steps=0, joint_steps=1, critic_steps=1, batch_size=2,
                            classifier_weight=1.0)
    # critic step: fakes made (1) + critic forward and backward on real and fake (6); generator step: 3 + critic and
    # classifier backward (6); both directions, 2 images per batch
    assert est.gan_flops(sched, 1.0, 1.0) == 2 * 2 * (7 + 9)
    counts = {"train": 10, "val": 5, "test": 5}
    assert est.train_flops(1.0, 2, counts, "none", {}) == 2 * 10 * 3 + (2 + 3) * 5 + 2 * 5
    assert est.train_flops(1.0, 2, counts, "pgd-at", {"steps": 5, "fraction": 0.5}) == 2 * 10 * 3 * 3.5 + 35


def test_convolution_flops_grow_with_the_pixel_count() -> None:
    small, large = (est.forward_flops("model", "resnet10t", s) for s in (64, 128))
    assert large / small == pytest.approx(4, rel=1e-3)


def test_stages_are_scheduled_on_free_gpus_once_their_inputs_exist() -> None:
    work = [{"kind": "data", "key": "d", "deps": []}] + [
        {"kind": "train", "key": f"t{i}", "deps": ["d"]} for i in range(4)]
    seconds = {"d": 1.0, **{f"t{i}": 10.0 for i in range(4)}}
    assert [est.makespan(work, seconds, n) for n in (1, 2, 4, 8)] == [41, 21, 11, 11]
    chain = work[:1] + [{"kind": "train", "key": "a", "deps": ["d"]}, {"kind": "gan", "key": "b", "deps": ["a"]},
                        {"kind": "attack", "key": "c", "deps": ["b", "d"]}]
    assert est.makespan(chain, {"d": 1.0, "a": 10.0, "b": 10.0, "c": 10.0}, 4) == 31


def test_a_gpu_check_sets_the_gpu_rate() -> None:
    gpu = {"image_size": 64, "models": {"resnet10t": {"images_per_s": {"train": {"bf16": 1000.0}}}}}
    expected = 1000 * est.forward_flops("model", "resnet10t", 64) * 3 / 1e12
    assert est.gpu_tflops_from_check(gpu) == pytest.approx(expected)


def test_a_config_is_estimated_from_its_plan(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "tiny.toml", tiny_raw(tmp_path))
    result = est.main([str(path), "--gpus", "1", "2", "--gpu-tflops", "0.001", "--out", str(tmp_path / "e.json")])
    tiny = result["configs"]["tiny.toml"]
    assert tiny["stages"] == {"attack": 2, "data": 1, "score": 2, "train": 1}
    assert result["assumptions"]["gpu_tflops"] == 0.001 and result["assumptions"]["gpu_tflops_source"] == "option"
    assert tiny["gpu_hours"]["1"] == pytest.approx(sum(tiny["gpu_hours_by_kind"].values()), abs=0.02)
    assert tiny["gpu_hours"]["2"] <= tiny["gpu_hours"]["1"]
