"""Expand a matrix config into a DAG of cached stages: data -> train (+defense) -> attack -> score."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from benchmark.config import MatrixConfig, budget_label, parse_budget
from benchmark.errors import BenchmarkError
from benchmark.registry import get_entry
from benchmark.stages import runner_version
from benchmark.store import stage_key

__all__ = ["Stage", "Plan", "plan_matrix", "STAGE_KINDS"]

STAGE_KINDS = ("data", "train", "gan", "fakes", "attack", "score")


@dataclass(frozen=True)
class Stage:
    """One node of the DAG: what to compute (kind, params), from which artifacts (deps), named by key."""

    kind: str
    key: str
    label: str
    params: dict = field(hash=False, compare=False)
    deps: dict[str, str] = field(hash=False, compare=False)  # role -> key of the input stage
    cell: tuple | None = None  # (model, defense, attack, budget) for score stages


@dataclass
class Plan:
    """Stages in dependency order, and the score stage of every cell."""

    stages: list[Stage]
    cells: list[Stage]

    def by_key(self) -> dict[str, Stage]:
        """Stages indexed by key."""
        return {s.key: s for s in self.stages}


class _Builder:
    def __init__(self) -> None:
        self.stages: dict[str, Stage] = {}

    def add(self, kind: str, label: str, params: dict, deps: dict[str, Stage], versions: dict[str, str],
            cell: tuple | None = None) -> Stage:
        versions = {**versions, f"stage:{kind}": runner_version(kind)}
        key = stage_key(kind, params, [d.key for d in deps.values()], versions)
        if key not in self.stages:  # two cells never compute the same artifact twice
            self.stages[key] = Stage(kind, key, label, params, {r: d.key for r, d in deps.items()}, cell)
        return self.stages[key]


def _budgets(config: MatrixConfig, attack: object, entry: object) -> tuple[float, ...]:
    if entry.meta.get("threat") == "semantic":  # a GAN edit has no norm budget: one cell per (model, defense)
        if attack.budgets:
            raise BenchmarkError(f"{config.source}: attacks '{attack.name}': a semantic attack has no norm budget; "
                                 "remove budgets")
        return (0.0,)
    budgets = attack.budgets or tuple(parse_budget(b) for b in entry.meta.get("budgets", ()))
    if not budgets:
        raise BenchmarkError(f"{config.source}: attacks '{attack.name}': no budgets given and the attack has no "
                             "defaults; add budgets = [\"1/255\", \"2/255\"]")
    threat = entry.meta.get("threat", "linf")
    side = config.dataset.image_size
    ceiling = {"linf": 1.0, "l2": math.sqrt(side * side)}.get(threat, math.inf)
    for eps in budgets:
        if not 0 < eps <= ceiling:
            raise BenchmarkError(f"{config.source}: attacks '{attack.name}': budget {eps:.6g} is outside "
                                 f"(0, {ceiling:.6g}] for a {threat} attack on [0,1] images")
    return budgets


def plan_matrix(config: MatrixConfig) -> Plan:
    """The DAG for every (model x defense x attack x budget) cell; unknown names fail before anything runs."""
    b = _Builder()
    dataset = get_entry("datasets", config.dataset.name)
    models = [(m, get_entry("models", m.name)) for m in config.models]
    defenses = [(d, get_entry("defenses", d.name)) for d in config.defenses]
    attacks = [(a, get_entry("attacks", a.name)) for a in config.attacks]
    attacks = [(a, e, _budgets(config, a, e)) for a, e in attacks]
    seed = config.run.seed
    data = b.add("data", f"data {dataset.name}@{config.dataset.image_size}px",
                 {"dataset": asdict(config.dataset)}, {}, {f"dataset:{dataset.name}": dataset.version})
    cells: list[Stage] = []
    trains: dict[tuple[str, str], tuple[Stage, dict]] = {}
    for model, m_entry in models:
        for defense, d_entry in defenses:
            train_params = {"model": asdict(model), "defense": asdict(defense), "seed": seed}
            versions = {f"model:{model.name}": m_entry.version, f"defense:{defense.name}": d_entry.version}
            train = b.add("train", f"train {model.name}+{defense.name}", train_params, {"data": data}, versions)
            trains[(model.name, defense.name)] = (train, versions)
            for attack, a_entry, budgets in attacks:
                for eps in budgets:
                    cell = (model.name, defense.name, attack.name, eps)
                    params = {"attack": {"name": attack.name, "options": attack.options}, "budget": eps,
                              "train": train_params, "seed": seed}
                    label = f"{attack.name}@{budget_label(eps)} vs {model.name}+{defense.name}"
                    deps = {"data": data, "train": train}
                    if a_entry.meta.get("needs") == "fakes":
                        deps["fakes"] = _fakes_stage(b, config, data, attack, a_entry, (train, train_params, versions))
                    att = b.add("attack", f"attack {label}", params, deps,
                                {**versions, f"attack:{attack.name}": a_entry.version})
                    score = b.add("score", f"score {label}",
                                  {"cell": {"model": model.name, "defense": defense.name, "attack": attack.name,
                                            "budget": eps}},
                                  {"data": data, "train": train, "attack": att}, {}, cell)
                    cells.append(score)
    return Plan(list(b.stages.values()), cells)


def _surrogate(config: MatrixConfig, attack: object) -> tuple[dict, dict[str, str]]:
    """Train params and versions of a transfer attack's surrogate: a matrix model, trained without defense."""
    name = attack.options.get("surrogate", config.models[0].name)
    match = [m for m in config.models if m.name == name]
    if not match:
        raise BenchmarkError(f"{config.source}: attacks '{attack.name}': surrogate '{name}' is not a model of the "
                             f"matrix; use one of {', '.join(m.name for m in config.models)}")
    params = {"model": asdict(match[0]), "defense": {"name": "none", "options": {}}, "seed": config.run.seed}
    versions = {f"model:{name}": get_entry("models", name).version, "defense:none": get_entry("defenses", "none").version}
    return params, versions


def _fakes_stage(b: _Builder, config: MatrixConfig, data: Stage, attack: object, entry: object,
                 target: tuple[Stage, dict, dict[str, str]]) -> Stage:
    """gan -> fakes for a GAN attack: against the attacked model (white-box) or the surrogate (transfer)."""
    from benchmark.attacks.gan import check_options

    transfer = entry.meta.get("access") == "transfer"
    options = check_options(attack.name, dict(attack.options), transfer)
    if transfer:
        params, versions = _surrogate(config, attack)
        train = b.add("train", f"train {params['model']['name']}+none", params, {"data": data}, versions)
    else:
        train, params, versions = target
    schedule = {k: v for k, v in options.items() if k != "surrogate"}
    who = f"{params['model']['name']}+{params['defense']['name']}"
    mode = "transfer" if transfer else "white-box"
    gan = b.add("gan", f"gan {mode} vs {who}", {"attack": attack.name, "mode": mode, "options": schedule,
                                                "target": params, "seed": config.run.seed},
                {"data": data, "train": train}, {**versions, f"attack:{attack.name}": entry.version})
    return b.add("fakes", f"fakes {mode} vs {who}", {"seed": config.run.seed}, {"data": data, "gan": gan}, {})
