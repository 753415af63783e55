"""Config validation: typed objects out, one clear error naming file and key otherwise."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import tiny_raw

from benchmark.config import load_config, parse_budget, parse_config
from benchmark.errors import BenchmarkError

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["default", "ci", "full"])
def test_shipped_configs_parse(name: str) -> None:
    config = load_config(ROOT / "configs" / f"{name}.toml")
    assert config.dataset.name == "synthetic-mammo"
    assert config.models and config.attacks and config.defenses


def test_default_values_and_overrides(tmp_path: Path) -> None:
    raw = tiny_raw(tmp_path)
    raw["models"] = [{"name": "resnet10t", "epochs": 5}, "resnet18"]
    config = parse_config(raw, "x.toml")
    assert config.models[0].train.epochs == 5
    assert config.models[0].train.lr == pytest.approx(0.003)  # from [training]
    assert config.models[0].train.batch_size == 16
    # resnet18's own recipe (strong augmentation, 60 epochs, batch 16) beats [training] where it has a key
    assert (config.models[1].train.epochs, config.models[1].train.batch_size) == (60, 16)
    assert config.models[1].train.augment == "strong" and config.models[1].train.lr == pytest.approx(0.003)
    raw["models"] = [{"name": "resnet18", "epochs": 4}]  # and its [[models]] table beats both
    table = parse_config(raw, "x.toml").models[0].train
    assert (table.epochs, table.augment) == (4, "strong")
    assert config.attacks[0].budgets == pytest.approx((2 / 255, 8 / 255))


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.update(modles=[]), r"x.toml: modles: unknown key \(did you mean 'models'\?\)"),
    (lambda r: r["run"].update(device="tpu"), r"x.toml: run.device: 'tpu' is not one of auto, cpu, cuda"),
    (lambda r: r["run"].update(seed="zero"), r"x.toml: run.seed: expected int, got 'zero'"),
    (lambda r: r["dataset"].pop("name"), r"x.toml: dataset.name: missing"),
    (lambda r: r["dataset"].update(split=[0.5, 0.5]), r"x.toml: dataset.split: expected three positive"),
    (lambda r: r["dataset"].update(image_size=8), r"x.toml: dataset.image_size: must lie in \[32, 4096\], got 8"),
    (lambda r: r["training"].update(lr=-1), r"x.toml: training.lr: must lie in \[1e-12, 10.0\], got -1.0"),
    (lambda r: r["training"].update(augment="heavy"), r"x.toml: training.augment: 'heavy' is not one of light, strong"),
    (lambda r: r["attacks"][0].update(budgets=["two/255"]), r"x.toml: attacks\[0\].budgets: cannot read budget"),
    (lambda r: r["attacks"][0].update(eps=1), r"x.toml: attacks\[0\].eps: unknown key"),
    (lambda r: r.update(models=["resnet10t", "resnet10t"]), r"x.toml: models: 'resnet10t' is listed twice"),
    (lambda r: r.update(attacks=[]), r"x.toml: attacks: expected a non-empty list"),
    (lambda r: r["attack"].update(sanity_budget="big"), r"x.toml: attack.sanity_budget: cannot read budget"),
    (lambda r: r["attack"].update(sanity_budget=2), r"x.toml: attack.sanity_budget: must lie in \[0, 1\]"),
])
def test_bad_config_is_one_clear_line(tmp_path: Path, mutate, message: str) -> None:
    raw = tiny_raw(tmp_path)
    mutate(raw)
    with pytest.raises(BenchmarkError, match=message) as err:
        parse_config(raw, "x.toml")
    assert "\n" not in str(err.value)


def test_budget_parsing() -> None:
    assert parse_budget("2/255") == pytest.approx(2 / 255)
    assert parse_budget("0.5/255") == pytest.approx(0.5 / 255)
    assert parse_budget(0.01) == 0.01
    with pytest.raises(ValueError):
        parse_budget(True)


def test_missing_and_invalid_toml_files(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\nseed = 1\n")
    with pytest.raises(BenchmarkError, match=r"bad.toml: not valid TOML"):
        load_config(bad)


def test_digest_ignores_output_paths_but_not_results(tmp_path: Path) -> None:
    a = parse_config(tiny_raw(tmp_path / "a"))
    b = parse_config(tiny_raw(tmp_path / "b"))
    assert a.digest() == b.digest()
    raw = tiny_raw(tmp_path)
    raw["run"]["seed"] = 1
    assert parse_config(raw).digest() != a.digest()
