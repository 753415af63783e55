"""Shared fixtures: a test plugin installed through real entry points, and tiny configs under tmp folders."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

from benchmark.config import MatrixConfig, parse_config

PLUGINS = Path(__file__).parent / "plugins"
SITE = Path(__file__).parent / "plugins" / "site"


def _install_test_plugin() -> None:
    """Make the tinyplugin distribution discoverable (a dist-info folder on sys.path, as pip would leave)."""
    info = SITE / "tinyplugin-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[benchmark.datasets]\ntiny-blobs = tinyplugin:tiny_blobs\n\n"
        "[benchmark.attacks]\nbroken = tinyplugin:broken_attack\nwrong-shape = tinyplugin:wrong_shape_attack\n\n"
        "[benchmark.models]\nconstant = tinyplugin:constant_model\n\n"
        "[benchmark.defenses]\nround-8bit = tinyplugin:Round8Bit\nrandom-noise-eot = tinyplugin:RandomNoiseEOT\n"
        "no-grad-wrap = tinyplugin:NoGradWrap\n")
    for path in (str(PLUGINS), str(SITE)):
        if path not in sys.path:
            sys.path.insert(0, path)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(PLUGINS), str(SITE), os.environ.get("PYTHONPATH", "")])


_install_test_plugin()
# one stage at a time, in the test process, unless a test says otherwise (tests/test_executor_contract.py does):
# CI has 2 cores, and pytest-xdist or concurrent runs would oversubscribe them with worker processes
os.environ.setdefault("BENCHMARK_WORKERS", "1")


def tiny_raw(tmp_path: Path) -> dict:
    """The raw TOML dict of a one-model matrix on tiny-blobs that writes only under tmp_path."""
    return {
        "run": {"seed": 0, "device": "cpu", "store": str(tmp_path / "runs"),
                "leaderboards": str(tmp_path / "leaderboards")},
        "dataset": {"name": "tiny-blobs", "image_size": 32, "options": {"count": 96}},
        "training": {"epochs": 2, "batch_size": 16, "lr": 0.003},
        "models": [{"name": "resnet10t"}],
        "defenses": ["none"],
        "attacks": [{"name": "fgsm", "budgets": ["2/255", "8/255"]}],
        "attack": {"sanity_budget": 0},  # the large-budget sanity cell has tests of its own (test_verdicts.py)
    }


def tiny_config(tmp_path: Path, **overrides: object) -> MatrixConfig:
    """tiny_raw with top-level sections replaced, validated."""
    return parse_config({**tiny_raw(tmp_path), **overrides}, "tiny.toml")


def load_benchmark_script(name: str) -> ModuleType:
    """A script of benchmarks/ (not a package) imported as a module, so that tests can call its main()."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_toml(path: Path, raw: dict) -> Path:
    """Write a raw config dict as TOML (small writer: tables, arrays of tables, scalars, lists)."""
    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        return repr(v)
    lines = []
    for section, body in raw.items():
        if isinstance(body, dict):
            lines.append(f"[{section}]")
            lines += [f"{k} = {value(v)}" for k, v in body.items()]
        else:
            for item in body:
                lines.append(f"[[{section}]]")
                item = {"name": item} if isinstance(item, str) else item
                lines += [f"{k} = {value(v)}" for k, v in item.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> MatrixConfig:
    """The tiny matrix config, writing under this test's tmp folder."""
    return tiny_config(tmp_path)
