"""Code versions in cache keys: each stage's covers what it computes, artifacts are read apart from the stages."""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import tiny_raw

from benchmark.execution import artifacts
from benchmark.execution.code_version import module_closure, module_version
from benchmark.stages import STAGE_FUNCTIONS, stage_closure

ROOT = Path(__file__).resolve().parents[1]
STAGES = ROOT / "benchmark" / "stages"
STAGE_MODULES = {p.stem for p in STAGES.glob("*.py")} - {"__init__", "context"}


def _imported(path: Path) -> set[str]:
    """Every module name a file imports (for `from a import b`, both a and a.b)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


@pytest.mark.parametrize("name", sorted(STAGE_MODULES))
def test_no_stage_module_imports_another_stage(name: str) -> None:
    used = {m for m in _imported(STAGES / f"{name}.py") if m.startswith("benchmark.stages")}
    assert used <= {"benchmark.stages.context", "benchmark.stages.context.StageContext"}, used


@pytest.mark.parametrize("name", sorted(STAGE_MODULES))
def test_stages_name_artifact_files_only_through_artifacts(name: str) -> None:
    literals = [n.value for n in ast.walk(ast.parse((STAGES / f"{name}.py").read_text()))
                if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert not [s for s in literals if s.endswith((".npz", ".json", ".pt", ".png"))]


@pytest.mark.parametrize("kind", sorted(STAGE_FUNCTIONS))
def test_a_stage_is_typed_with_the_stage_context(kind: str) -> None:
    hints = STAGE_FUNCTIONS[kind].__annotations__
    assert hints == {"params": "dict", "inputs": "dict[str, Path]", "out": "Path", "ctx": "StageContext",
                     "return": "None"}


def test_the_readers_own_source_counts_but_not_what_it_imports() -> None:
    assert module_closure(artifacts) == ["benchmark.execution.artifacts"]
    for kind in STAGE_FUNCTIONS:
        assert "benchmark.execution.artifacts" in stage_closure(kind)
    assert len(module_version(artifacts)) == 12


def test_stage_closures_leave_out_other_stages_reporting_and_unrelated_computation() -> None:
    closures = {kind: set(stage_closure(kind)) for kind in STAGE_FUNCTIONS}
    for kind, names in closures.items():
        assert names & {f"benchmark.stages.{m}" for m in STAGE_MODULES} == {f"benchmark.stages.{kind}"}
        assert not [n for n in names if n.startswith("benchmark.leaderboard")], kind
    gan_training = "benchmark.gan.training"
    assert gan_training in closures["gan"]
    assert all(gan_training not in closures[k] for k in ("data", "train", "fakes", "attack", "score"))
    assert not [n for n in closures["score"] if n.startswith(("benchmark.gan", "benchmark.training"))]
    assert not [n for n in closures["attack"] if n.startswith("benchmark.gan")]
    assert "benchmark.training.loop" in closures["train"] and "benchmark.training.loop" not in closures["attack"]


_PLAN = """
import json, sys
import benchmark
assert benchmark.__file__.startswith(sys.argv[1]), benchmark.__file__
from benchmark.config import parse_config
from benchmark.execution.planner import plan_matrix
plan = plan_matrix(parse_config(json.loads(sys.argv[2]), "tiny.toml"))
print(json.dumps({s.label: {"key": s.key, "kind": s.kind, "deps": s.deps} for s in plan.stages}))
"""


def _copy_package(root: Path) -> Path:
    """benchmark/ and the entry folders, laid out as installed (pyproject's package-dir), under root/pkg."""
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    pkg = root / "pkg"
    for name, source in sorted(mapping.items()):  # "benchmark" first, then its sub-packages
        shutil.copytree(ROOT / source, pkg / name.replace(".", "/"), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return pkg


def _plan(pkg: Path, raw: dict) -> dict[str, dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pkg), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _PLAN, str(pkg), json.dumps(raw)], cwd=pkg, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _dependents(plan: dict[str, dict], seeds: set[str]) -> set[str]:
    """The labels of the stages in seeds and of every stage computed from them, directly or not."""
    by_key = {s["key"]: label for label, s in plan.items()}
    out, grew = set(seeds), True
    while grew:
        more = {label for label, s in plan.items() if any(by_key[d] in out for d in s["deps"].values())}
        grew = not more <= out
        out |= more
    return out


def _changed(before: dict[str, dict], after: dict[str, dict]) -> set[str]:
    assert before.keys() == after.keys()
    return {label for label in before if before[label]["key"] != after[label]["key"]}


@pytest.mark.slow
def test_an_edit_changes_only_the_keys_of_the_stages_whose_code_it_is(tmp_path: Path) -> None:
    raw = {**tiny_raw(tmp_path), "defenses": ["none", "gan-fakes-relabel"],
           "attacks": [{"name": "fgsm", "budgets": ["2/255"]}, {"name": "pgd-linf", "budgets": ["2/255", "8/255"]},
                       {"name": "gan"}]}
    pkg = _copy_package(tmp_path)
    base = _plan(pkg, raw)
    assert _plan(pkg, raw) == base  # planning is deterministic
    with (pkg / "benchmark" / "gan" / "training.py").open("a") as f:
        f.write("\n# a harmless edit to the GAN's training\n")
    after_gan = _plan(pkg, raw)
    gans = {label for label, s in base.items() if s["kind"] == "gan"}
    assert _changed(base, after_gan) == _dependents(base, gans)
    pixel_on_none = {label for label in base if label.split()[0] in ("attack", "score")
                     and label.split()[1].startswith(("fgsm@", "pgd-linf@")) and label.endswith("+none")}
    assert len(pixel_on_none) == 6 and not pixel_on_none & _changed(base, after_gan)
    assert {s["kind"] for label, s in base.items() if label in _changed(base, after_gan)} == \
        {"gan", "fakes", "train", "attack", "score"}  # train: the fake-based defense learns from the fakes
    with (pkg / "benchmark" / "attacks" / "pgd.py").open("a") as f:
        f.write("\n# a harmless edit to PGD\n")
    after_pgd = _plan(pkg, raw)
    changed = _changed(after_gan, after_pgd)
    assert changed == {label for label in base if label.split()[0] in ("attack", "score")
                       and label.split()[1].startswith("pgd-linf@")}
    assert len(changed) == 8  # 2 budgets x 2 defenses x (attack, score)
